// Parameter initialisation with PyTorch's default formulas, drawn from a seedable generator.
// (Values are not bit-identical to torch's init: torch draws per layer in constructor order with
// its own kernels; weights that must match come from checkpoints.)

import { Generator, numel } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';

let gen = new Generator(0);
let shapesOnly = false;
let shared = new ArrayBuffer(0);

/** Build modules for their structure only (`ldm inspect`): inside fn the initialisers draw
 *  nothing and return views of one shared zero buffer (`shapeStorage`), and LitEma copies no
 *  values. A 1.5B-parameter model then builds in about a second in a few MB, with the same
 *  modules, parameter shapes and state-dict keys as a real build (torch's meta device plays this
 *  part for the official code). The tensors alias each other: never run or save such a model. */
export function buildShapesOnly<R>(fn: () => R): R {
  const prev = shapesOnly;
  shapesOnly = true;
  try {
    return fn();
  } finally {
    shapesOnly = prev;
    if (!prev) shared = new ArrayBuffer(0); // the built model keeps its views; drop ours
  }
}

export function isShapesOnly(): boolean {
  return shapesOnly;
}

/** n float32 values for a shapes-only build: a view of one shared, grown-on-demand buffer (one
 *  allocation instead of one per tensor: billions of values would otherwise cost seconds of
 *  allocation and collection). */
export function shapeStorage(n: number): Float32Array {
  if (shared.byteLength < n * 4) shared = new ArrayBuffer(Math.max(n * 4, shared.byteLength * 2));
  return new Float32Array(shared, 0, n);
}

/** Seed the generator used by layer constructors (torch.manual_seed before building a model). */
export function setInitSeed(seed: number): void {
  gen = new Generator(seed);
}

export function initGenerator(): Generator {
  return gen;
}

export function uniform(shape: readonly number[], bound: number): Tensor {
  if (shapesOnly) return new Tensor(shapeStorage(numel(shape)), shape);
  const u = gen.uniform(numel(shape), -bound, bound);
  return new Tensor(u, shape);
}

export function normal(shape: readonly number[], mean: number, std: number): Tensor {
  if (shapesOnly) return new Tensor(shapeStorage(numel(shape)), shape);
  return new Tensor(gen.normal(numel(shape), mean, std), shape);
}

/** fan_in of a weight [out, in, ...kernel]. */
export function fanIn(shape: readonly number[]): number {
  return (shape[1] ?? 1) * numel(shape.slice(2));
}

/** torch's default for Linear/Conv: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function defaultWeight(shape: readonly number[]): Tensor {
  return uniform(shape, 1 / Math.sqrt(Math.max(1, fanIn(shape))));
}

export function defaultBias(n: number, fanInValue: number): Tensor {
  return uniform([n], 1 / Math.sqrt(Math.max(1, fanInValue)));
}

/** xavier_uniform (pytorch-ddpm init) with gain. */
export function xavierUniform(shape: readonly number[], gain = 1): Tensor {
  const rf = numel(shape.slice(2));
  const fi = (shape[1] ?? 1) * rf, fo = (shape[0] ?? 1) * rf;
  return uniform(shape, gain * Math.sqrt(6 / (fi + fo)));
}

export function zerosParam(shape: readonly number[]): Tensor {
  return new Tensor(new Float32Array(numel(shape)), shape);
}

/** In-place fill with zeros (zero_module of the official code). */
export function zeroInit(t: Tensor): void {
  t.data = new Float32Array(t.size);
}
