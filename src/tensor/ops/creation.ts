// Tensor creation: constants, ranges, conversions from arrays, and seeded random tensors.

import { Generator, ShapeError, numel } from '../../util/index.ts';
import { Tensor, type DType } from '../tensor.ts';

export type ArrayLike = readonly number[] | Float32Array | Float64Array;

export function tensor(values: ArrayLike, shape?: readonly number[], dtype: DType = 'float32'): Tensor {
  const sh = shape ?? [values.length];
  if (numel(sh) !== values.length) throw new ShapeError(`tensor(): ${values.length} values do not fill shape [${sh.join(', ')}]`);
  const data = dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values, (v) => Math.trunc(v));
  return new Tensor(data, sh, dtype);
}

export function scalar(v: number): Tensor {
  return new Tensor(Float32Array.of(v), []);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  const n = numel(shape);
  const data = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  if (value !== 0) data.fill(value);
  return new Tensor(data, shape, dtype);
}

export const zeros = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'float32'): Tensor => full(shape, 1, dtype);
export const zerosLike = (t: Tensor): Tensor => full(t.shape, 0, t.dtype);
export const onesLike = (t: Tensor): Tensor => full(t.shape, 1, t.dtype);
export const fullLike = (t: Tensor, v: number): Tensor => full(t.shape, v, t.dtype);

/** torch.arange(start, end, step) (int64 when every argument is an integer, else float32). */
export function arange(start: number, end?: number, step = 1, dtype?: DType): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  const n = Math.max(0, Math.ceil((e - s) / step));
  const dt = dtype ?? (Number.isInteger(s) && Number.isInteger(e) && Number.isInteger(step) ? 'int64' : 'float32');
  const data = dt === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = s + i * step;
  return new Tensor(data, [n], dt);
}

/** torch.linspace in float32. */
export function linspace(start: number, end: number, steps: number): Tensor {
  const data = new Float32Array(steps);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) data[i] = i < half ? start + step * i : end - step * (steps - i - 1);
  return new Tensor(data, [steps]);
}

export function randn(shape: readonly number[], gen: Generator): Tensor {
  return new Tensor(gen.randn(numel(shape)), shape);
}

export function rand(shape: readonly number[], gen: Generator): Tensor {
  return new Tensor(gen.rand(numel(shape)), shape);
}

/** torch.randint(low, high, shape) as int64. */
export function randint(low: number, high: number, shape: readonly number[], gen: Generator): Tensor {
  return new Tensor(gen.randint(low, high, numel(shape)), shape, 'int64');
}

export const randnLike = (t: Tensor, gen: Generator): Tensor => randn(t.shape, gen);

/** float32 copy of an int64 tensor (torch .float()); identity for float32. */
export function toFloat(t: Tensor): Tensor {
  if (t.dtype === 'float32') return t;
  return new Tensor(Float32Array.from(t.data), t.shape);
}

/** int64 copy (truncation toward zero, as torch .long()). */
export function toInt64(t: Tensor): Tensor {
  if (t.dtype === 'int64') return t;
  return new Tensor(Float64Array.from(t.data, (v) => Math.trunc(v)), t.shape, 'int64');
}
