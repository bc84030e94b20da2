// The Tensor: a shape, a dtype and a C-contiguous buffer, plus the autograd record of how it was
// made. Tensor holds no math loops: every operation lives in ops/ and runs through the kernels of
// the active backend (dispatch.ts). Methods here are one-line sugar over those functions.
//
// Storage: float32 tensors use Float32Array; int64 tensors (timesteps, class labels, indices)
// use Float64Array holding exact integers (|v| < 2^53), which covers every index a model uses.

import { ShapeError, fmtShape, numel } from '../util/index.ts';
import * as ew from './ops/elementwise.ts';
import * as mv from './ops/movement.ts';
import * as rd from './ops/reduce.ts';
import { matmul } from './ops/matmul.ts';
import { toFloat } from './ops/creation.ts';
import { noteTensor } from './buffer.ts';

export type DType = 'float32' | 'int64';
export type Storage = Float32Array | Float64Array;

/** How a tensor was produced: the inputs and the rule that maps the output gradient to theirs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Given dL/d(output), return dL/d(input_i) for each input (null where not needed). */
  backward(g: Tensor): (Tensor | null)[];
}

let gradEnabled = true;

/** Run fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with gradient recording on (torch.enable_grad), e.g. inside a no-grad region. */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Contiguous storage. Replaced (never resized) by in-place updates such as optimiser steps. */
  data: Storage;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;

  constructor(data: Storage, shape: readonly number[], dtype: DType = data instanceof Float64Array ? 'int64' : 'float32') {
    if (data.length !== numel(shape)) {
      throw new ShapeError(`tensor data has ${data.length} elements but shape ${fmtShape(shape)} needs ${numel(shape)}`);
    }
    if ((dtype === 'float32') !== (data instanceof Float32Array)) {
      throw new ShapeError(`dtype ${dtype} does not match storage ${data.constructor.name}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    noteTensor(this);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length;
  }

  /** Size of one axis (negative counts from the end). */
  dim(axis: number): number {
    const a = axis < 0 ? axis + this.shape.length : axis;
    const d = this.shape[a];
    if (d === undefined) throw new ShapeError(`axis ${axis} out of range for shape ${fmtShape(this.shape)}`);
    return d;
  }

  /** Float32 storage, or a clear error for an int64 tensor used where floats are needed. */
  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) {
      throw new ShapeError(`expected a float32 tensor, got int64 of shape ${fmtShape(this.shape)} (use .float())`);
    }
    return this.data;
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) throw new ShapeError(`item() needs one element, tensor has shape ${fmtShape(this.shape)}`);
    return this.data[0]!;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /** A new leaf sharing nothing with this tensor's graph (same storage). */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, this.dtype);
  }

  /** Mark as a leaf that accumulates .grad. */
  requireGrad(flag = true): this {
    if (flag && this.dtype !== 'float32') throw new ShapeError('only float32 tensors can require gradients');
    this.requiresGrad = flag;
    return this;
  }

  // ---- sugar: one-line delegations to ops/ (no math here) ----
  add(o: Tensor | number): Tensor { return ew.add(this, o); }
  sub(o: Tensor | number): Tensor { return ew.sub(this, o); }
  mul(o: Tensor | number): Tensor { return ew.mul(this, o); }
  div(o: Tensor | number): Tensor { return ew.div(this, o); }
  neg(): Tensor { return ew.neg(this); }
  exp(): Tensor { return ew.exp(this); }
  log(): Tensor { return ew.log(this); }
  sqrt(): Tensor { return ew.sqrt(this); }
  pow(p: Tensor | number): Tensor { return ew.pow(this, p); }
  abs(): Tensor { return ew.abs(this); }
  clamp(lo?: number, hi?: number): Tensor { return ew.clamp(this, lo, hi); }
  silu(): Tensor { return ew.silu(this); }
  matmul(o: Tensor): Tensor { return matmul(this, o); }
  reshape(...shape: number[]): Tensor { return mv.reshape(this, shape); }
  view(...shape: number[]): Tensor { return mv.reshape(this, shape); }
  permute(...dims: number[]): Tensor { return mv.permute(this, dims); }
  transpose(a: number, b: number): Tensor { return mv.transpose(this, a, b); }
  unsqueeze(d: number): Tensor { return mv.unsqueeze(this, d); }
  squeeze(d?: number): Tensor { return mv.squeeze(this, d); }
  expand(...shape: number[]): Tensor { return mv.expand(this, shape); }
  slice(dim: number, start: number, end?: number, step?: number): Tensor { return mv.slice(this, dim, start, end, step); }
  chunk(n: number, dim = 0): Tensor[] { return mv.chunk(this, n, dim); }
  flatten(start = 0): Tensor { return mv.flatten(this, start); }
  sum(dims?: number | number[], keepdim = false): Tensor { return rd.sum(this, dims, keepdim); }
  mean(dims?: number | number[], keepdim = false): Tensor { return rd.mean(this, dims, keepdim); }
  softmax(dim = -1): Tensor { return rd.softmax(this, dim); }
  float(): Tensor { return toFloat(this); }

  toString(): string {
    const head = Array.from(this.data.subarray(0, 6)).map((v) => v.toPrecision(4)).join(', ');
    return `Tensor(${this.dtype} ${fmtShape(this.shape)} [${head}${this.size > 6 ? ', …' : ''}])`;
  }
}

/** Record an op's output into the graph when any input needs gradients and recording is on. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[],
  backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}
