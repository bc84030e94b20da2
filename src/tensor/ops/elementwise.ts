// Elementwise ops with broadcasting, each with its gradient beside it (tinygrad style).
// Composite activations are one-liners over primitives where that costs nothing; silu, gelu,
// sigmoid and friends are primitive unary kernels because they sit on the hot path.

import { broadcastShapes, broadcastStrides, contiguousStrides, numel, shapesEqual, ShapeError, fmtShape } from '../../util/index.ts';
import type { BinaryOp, UnaryOp } from '../../backend/index.ts';
import { K } from '../dispatch.ts';
import { Tensor, record } from '../tensor.ts';
import { emptyF32 } from '../buffer.ts';
import { scalar } from './creation.ts';

export type TensorOrNumber = Tensor | number;

const asTensor = (v: TensorOrNumber): Tensor => (typeof v === 'number' ? scalar(v) : v);

/** A result whose kernel writes every element. */
function out(shape: readonly number[]): Tensor {
  return new Tensor(emptyF32(numel(shape)), shape);
}

/** Sum contiguous data of `shape` over `axes` (ascending), one [outer, axis, inner] kernel pass
 *  per axis; reduced axes keep size 1 in the layout. Shared by sum() and sumTo(). */
export function reduceSumAxes(data: Float32Array, shape: readonly number[], axes: readonly number[]): Float32Array {
  let cur = data;
  const curShape = [...shape];
  for (let j = axes.length - 1; j >= 0; j--) {
    const ax = axes[j]!;
    if (curShape[ax] === 1) continue;
    const outer = numel(curShape.slice(0, ax));
    const inner = numel(curShape.slice(ax + 1));
    const next = new Float32Array(outer * inner);
    K().reduceSum(cur, outer, curShape[ax]!, inner, next);
    cur = next;
    curShape[ax] = 1;
  }
  return cur;
}

/** Sum a broadcast gradient back down to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const off = g.ndim - shape.length;
  // Reduce leading extra axes and axes where the target has 1.
  const axes: number[] = [];
  g.shape.forEach((d, ax) => {
    const target = ax < off ? 1 : shape[ax - off]!;
    if (d === target) return;
    if (target !== 1) throw new ShapeError(`sumTo: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
    axes.push(ax);
  });
  return new Tensor(reduceSumAxes(g.f32, g.shape, axes), shape);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const o = out(shape);
  if (shapesEqual(a.shape, b.shape)) {
    const s = contiguousStrides(shape);
    K().binary(op, a.f32, s, b.f32, s, o.f32, shape);
  } else {
    K().binary(op, a.f32, broadcastStrides(a.shape, shape), b.f32, broadcastStrides(b.shape, shape), o.f32, shape);
  }
  return o;
}

function unaryRaw(op: UnaryOp, x: Tensor): Tensor {
  const o = out(x.shape);
  K().unary(op, x.f32, o.f32);
  return o;
}

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  const y = unaryRaw(op, x);
  return record(y, op, [x], (g) => {
    const gx = out(x.shape);
    K().unaryGrad(op, x.f32, y.f32, g.f32, gx.f32);
    return [gx];
  });
}

// ---- binary arithmetic --------------------------------------------------------------------

export function add(a: TensorOrNumber, b: TensorOrNumber): Tensor {
  if (typeof b === 'number') return affine(asTensor(a), 1, b);
  if (typeof a === 'number') return affine(b, 1, a);
  const y = binaryRaw('add', a, b);
  return record(y, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: TensorOrNumber, b: TensorOrNumber): Tensor {
  if (typeof b === 'number') return affine(asTensor(a), 1, -b);
  if (typeof a === 'number') return affine(b, -1, a);
  const y = binaryRaw('sub', a, b);
  return record(y, 'sub', [a, b], (g) => [sumTo(g, a.shape), a.requiresGrad || b.requiresGrad ? sumTo(neg(g), b.shape) : null]);
}

export function mul(a: TensorOrNumber, b: TensorOrNumber): Tensor {
  if (typeof b === 'number') return affine(asTensor(a), b, 0);
  if (typeof a === 'number') return affine(b, a, 0);
  const y = binaryRaw('mul', a, b);
  return record(y, 'mul', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryRaw('mul', g, b), a.shape) : null,
    b.requiresGrad ? sumTo(binaryRaw('mul', g, a), b.shape) : null,
  ]);
}

export function div(a: TensorOrNumber, b: TensorOrNumber): Tensor {
  if (typeof b === 'number') return affine(asTensor(a), 1 / b, 0);
  const at = asTensor(a);
  const y = binaryRaw('div', at, b);
  return record(y, 'div', [at, b], (g) => [
    at.requiresGrad ? sumTo(binaryRaw('div', g, b), at.shape) : null,
    // d(a/b)/db = -a/b^2 = -y/b
    b.requiresGrad ? sumTo(neg(binaryRaw('div', binaryRaw('mul', g, y), b)), b.shape) : null,
  ]);
}

/** x * scale + shift with scalars (one pass, no broadcast). */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  const y = out(x.shape);
  K().affine(x.f32, scale, shift, y.f32);
  return record(y, 'affine', [x], (g) => {
    if (scale === 1) return [g];
    const gx = out(x.shape);
    K().affine(g.f32, scale, 0, gx.f32);
    return [gx];
  });
}

/** x ** p for a scalar exponent, or elementwise a ** b for tensors. */
export function pow(x: Tensor, p: TensorOrNumber): Tensor {
  if (typeof p === 'number') {
    const y = out(x.shape);
    K().powScalar(x.f32, p, y.f32);
    return record(y, 'pow', [x], (g) => {
      const d = out(x.shape);
      K().powScalar(x.f32, p - 1, d.f32);
      return [binaryRaw('mul', g, affine(d, p, 0))];
    });
  }
  const y = binaryRaw('pow', x, p);
  return record(y, 'pow', [x, p], (g) => [
    x.requiresGrad ? sumTo(binaryRaw('mul', g, binaryRaw('mul', p, binaryRaw('pow', x, affine(p, 1, -1)))), x.shape) : null,
    p.requiresGrad ? sumTo(binaryRaw('mul', g, binaryRaw('mul', y, unaryRaw('log', x))), p.shape) : null,
  ]);
}

export function maximum(a: Tensor, b: TensorOrNumber): Tensor {
  const bt = asTensor(b);
  const y = binaryRaw('max', a, bt);
  return record(y, 'maximum', [a, bt], (g) => {
    const m = binaryRaw('ge', a, bt); // ties go to a, as torch does for gradients split... (torch splits ties; rare)
    return [sumTo(binaryRaw('mul', g, m), a.shape), sumTo(binaryRaw('mul', g, affine(m, -1, 1)), bt.shape)];
  });
}

export function minimum(a: Tensor, b: TensorOrNumber): Tensor {
  const bt = asTensor(b);
  const y = binaryRaw('min', a, bt);
  return record(y, 'minimum', [a, bt], (g) => {
    const m = binaryRaw('le', a, bt);
    return [sumTo(binaryRaw('mul', g, m), a.shape), sumTo(binaryRaw('mul', g, affine(m, -1, 1)), bt.shape)];
  });
}

/** Comparisons give float 0/1 masks and no gradient. */
export const gt = (a: Tensor, b: TensorOrNumber): Tensor => binaryRaw('gt', a, asTensor(b));
export const lt = (a: Tensor, b: TensorOrNumber): Tensor => binaryRaw('lt', a, asTensor(b));
export const ge = (a: Tensor, b: TensorOrNumber): Tensor => binaryRaw('ge', a, asTensor(b));
export const le = (a: Tensor, b: TensorOrNumber): Tensor => binaryRaw('le', a, asTensor(b));
export const eq = (a: Tensor, b: TensorOrNumber): Tensor => binaryRaw('eq', a, asTensor(b));

// ---- unary --------------------------------------------------------------------------------

export const neg = (x: Tensor): Tensor => affine(x, -1, 0);
export const exp = (x: Tensor): Tensor => unaryOp('exp', x);
export const log = (x: Tensor): Tensor => unaryOp('log', x);
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unaryOp('rsqrt', x);
export const abs = (x: Tensor): Tensor => unaryOp('abs', x);
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x);
export const silu = (x: Tensor): Tensor => unaryOp('silu', x);
/** GELU with the exact erf form (torch default approximate='none'). */
export const gelu = (x: Tensor): Tensor => unaryOp('gelu', x);
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
export const softplus = (x: Tensor): Tensor => unaryOp('softplus', x);
export const sin = (x: Tensor): Tensor => unaryOp('sin', x);
export const cos = (x: Tensor): Tensor => unaryOp('cos', x);
export const square = (x: Tensor): Tensor => unaryOp('square', x);
export const reciprocal = (x: Tensor): Tensor => unaryOp('reciprocal', x);
export const erf = (x: Tensor): Tensor => unaryOp('erf', x);
/** Sign (no gradient). */
export const sign = (x: Tensor): Tensor => unaryRaw('sign', x);

/** LeakyReLU(slope) = max(x, 0) + slope * min(x, 0). */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return add(relu(x), mul(neg(relu(neg(x))), slope));
}

export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  const y = out(x.shape);
  K().clamp(x.f32, lo, hi, y.f32);
  return record(y, 'clamp', [x], (g) => {
    // Gradient passes where lo <= x <= hi (torch's convention at the boundaries).
    const m = binaryRaw('mul', binaryRaw('ge', x, scalar(lo)), binaryRaw('le', x, scalar(hi)));
    return [binaryRaw('mul', g, m)];
  });
}

/** where(cond != 0, a, b) with broadcasting. */
export function where(cond: Tensor, a: TensorOrNumber, b: TensorOrNumber): Tensor {
  const at = asTensor(a), bt = asTensor(b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, at.shape, 'where'), bt.shape, 'where');
  const c = cond.dtype === 'float32' ? cond : new Tensor(Float32Array.from(cond.data), cond.shape);
  const y = out(shape);
  K().where(c.f32, broadcastStrides(c.shape, shape), at.f32, broadcastStrides(at.shape, shape),
    bt.f32, broadcastStrides(bt.shape, shape), y.f32, shape);
  return record(y, 'where', [at, bt], (g) => {
    const zero = scalar(0);
    const ga = where(c, g, zero), gb = where(c, zero, g);
    return [sumTo(ga, at.shape), sumTo(gb, bt.shape)];
  });
}
