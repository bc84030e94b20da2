// Reductions (sum, mean, max, var/std) and softmax / log-softmax, with their gradients.

import { normAxis, numel } from '../../util/index.ts';
import { K } from '../dispatch.ts';
import { Tensor, record } from '../tensor.ts';
import { affine, mul, reduceSumAxes, sub, sumTo } from './elementwise.ts';
import { expand, reshape } from './movement.ts';

function axesOf(x: Tensor, dims?: number | readonly number[]): number[] {
  if (dims === undefined) return x.shape.map((_, i) => i);
  const list = typeof dims === 'number' ? [dims] : [...dims];
  return [...new Set(list.map((d) => normAxis(d, x.ndim, 'reduction dim')))].sort((a, b) => a - b);
}

function keptShape(x: Tensor, axes: readonly number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Sum over dims (all when omitted); keepdim keeps reduced axes as size 1. */
export function sum(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const axes = axesOf(x, dims);
  const kept = keptShape(x, axes);
  let cur = reduceSumAxes(x.f32, x.shape, axes);
  if (cur === x.data) cur = Float32Array.from(cur); // nothing reduced: never alias the input
  const outShape = keepdim ? kept : x.shape.filter((_, i) => !axes.includes(i));
  const y = new Tensor(cur, outShape);
  return record(y, 'sum', [x], (g) => [expand(reshape(g, kept), x.shape)]);
}

export function mean(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const axes = axesOf(x, dims);
  const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
  return affine(sum(x, axes, keepdim), 1 / count, 0);
}

/** Variance over dims; unbiased (Bessel) by default as torch.var. */
export function variance(x: Tensor, dims?: number | readonly number[], keepdim = false, unbiased = true): Tensor {
  const axes = axesOf(x, dims);
  const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
  const d = sub(x, mean(x, axes, true));
  return affine(sum(mul(d, d), axes, keepdim), 1 / (unbiased ? count - 1 : count), 0);
}

export function std(x: Tensor, dims?: number | readonly number[], keepdim = false, unbiased = true): Tensor {
  const v = variance(x, dims, keepdim, unbiased);
  const y = new Tensor(v.f32.map(Math.sqrt), v.shape);
  return record(y, 'std', [v], (g) => [new Tensor(g.f32.map((gv, i) => gv * 0.5 / y.f32[i]!), v.shape)]);
}

/** Max over one dim: values and int64 indices (torch.max(x, dim)). */
export function max(x: Tensor, dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
  const ax = normAxis(dim, x.ndim, 'max dim');
  const outer = numel(x.shape.slice(0, ax)), n = x.shape[ax]!, inner = numel(x.shape.slice(ax + 1));
  const vals = new Float32Array(outer * inner), idx = new Float32Array(outer * inner);
  K().reduceMax(x.f32, outer, n, inner, vals, idx);
  const kept = x.shape.map((d, i) => (i === ax ? 1 : d));
  const outShape = keepdim ? kept : x.shape.filter((_, i) => i !== ax);
  const values = new Tensor(vals, outShape);
  const indices = new Tensor(Float64Array.from(idx), outShape, 'int64');
  record(values, 'max', [x], (g) => {
    const gx = new Float32Array(x.size);
    const gd = g.f32;
    for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) {
      gx[(o * n + idx[o * inner + i]!) * inner + i] = gd[o * inner + i]!;
    }
    return [new Tensor(gx, x.shape)];
  });
  return { values, indices };
}

/** Max over every element (a scalar). */
export function maxAll(x: Tensor): Tensor {
  return max(reshape(x, [x.size]), 0).values;
}

/** Move `dim` last, apply a row-wise kernel, move it back: softmax on any axis. */
function rowwise(x: Tensor, dim: number, log: boolean): Tensor {
  const ax = normAxis(dim, x.ndim, 'softmax dim');
  const cols = x.shape[ax]!;
  const last = ax === x.ndim - 1;
  const xin = last ? x.f32 : moveAxisLast(x.f32, x.shape, ax);
  const rows = x.size / cols;
  const y = new Float32Array(x.size);
  K().softmax(xin, rows, cols, y, log);
  const yOut = last ? y : moveLastAxisTo(y, x.shape, ax);
  const out = new Tensor(yOut, x.shape);
  return record(out, log ? 'log_softmax' : 'softmax', [x], (g) => {
    const gin = last ? g.f32 : moveAxisLast(g.f32, x.shape, ax);
    const gx = new Float32Array(x.size);
    K().softmaxGrad(y, gin, rows, cols, gx, log);
    return [new Tensor(last ? gx : moveLastAxisTo(gx, x.shape, ax), x.shape)];
  });
}

function moveAxisLast(data: Float32Array, shape: readonly number[], ax: number): Float32Array {
  const outer = numel(shape.slice(0, ax)), n = shape[ax]!, inner = numel(shape.slice(ax + 1));
  const out = new Float32Array(data.length);
  K().stridedCopy(data, 0, [n * inner, 1, inner], [outer, inner, n], out);
  return out;
}

function moveLastAxisTo(data: Float32Array, shape: readonly number[], ax: number): Float32Array {
  const outer = numel(shape.slice(0, ax)), n = shape[ax]!, inner = numel(shape.slice(ax + 1));
  const out = new Float32Array(data.length);
  // data is [outer, inner, n]; read it as [outer, n, inner].
  K().stridedCopy(data, 0, [inner * n, 1, n], [outer, n, inner], out);
  return out;
}

export const softmax = (x: Tensor, dim = -1): Tensor => rowwise(x, dim, false);
export const logSoftmax = (x: Tensor, dim = -1): Tensor => rowwise(x, dim, true);

export { sumTo };
