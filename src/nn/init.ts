// Parameter initialisation with PyTorch's default formulas, drawn from a seedable generator.
// (Values are not bit-identical to torch's init: torch draws per layer in constructor order with
// its own kernels; weights that must match come from checkpoints.)

import { Generator, numel } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';

let gen = new Generator(0);

/** Seed the generator used by layer constructors (torch.manual_seed before building a model). */
export function setInitSeed(seed: number): void {
  gen = new Generator(seed);
}

export function initGenerator(): Generator {
  return gen;
}

export function uniform(shape: readonly number[], bound: number): Tensor {
  const u = gen.uniform(numel(shape), -bound, bound);
  return new Tensor(u, shape);
}

export function normal(shape: readonly number[], mean: number, std: number): Tensor {
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
