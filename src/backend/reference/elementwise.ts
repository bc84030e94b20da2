// Reference elementwise kernels: unary maps and their gradients, broadcasting binary ops,
// scalar affine / pow / clamp, where. Plain loops: the specification the native backend matches.

import type { BinaryOp, UnaryOp } from '../types.ts';

/** erf with float32-level accuracy: Cody's rational form below 0.5, Numerical Recipes' erfcc
 *  above (|err| < 1.2e-7); Abramowitz-Stegun 7.1.26 (2.5e-5) would be too coarse for parity. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 0.5) {
    const t = x * x;
    const num = ((((0.185777706184603153 * t + 3.16112374387056560) * t + 113.864154151050156) * t + 377.485237685302021) * t + 3209.37758913846947);
    const den = ((((t + 23.6012909523441209) * t + 244.024637934444173) * t + 1282.61652607737228) * t + 2844.23683343917062);
    return x * num / den;
  } else {
    // Numerical Recipes erfcc (Chebyshev fit, fractional error < 1.2e-7 everywhere).
    const t = 1 / (1 + 0.5 * ax);
    const erfc = t * Math.exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    r = 1 - erfc;
  }
  return x < 0 ? -r : r;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;

export function unaryScalar(op: UnaryOp, v: number): number {
  switch (op) {
    case 'neg': return -v;
    case 'exp': return Math.exp(v);
    case 'log': return Math.log(v);
    case 'sqrt': return Math.sqrt(v);
    case 'rsqrt': return 1 / Math.sqrt(v);
    case 'abs': return Math.abs(v);
    case 'tanh': return Math.tanh(v);
    case 'sigmoid': return 1 / (1 + Math.exp(-v));
    case 'silu': return v / (1 + Math.exp(-v));
    case 'gelu': return 0.5 * v * (1 + erf(v * SQRT1_2));
    case 'relu': return v > 0 ? v : 0;
    // PyTorch softplus(beta=1, threshold=20): linear above the threshold.
    case 'softplus': return v > 20 ? v : Math.log1p(Math.exp(v));
    case 'sin': return Math.sin(v);
    case 'cos': return Math.cos(v);
    case 'sign': return v > 0 ? 1 : v < 0 ? -1 : 0;
    case 'square': return v * v;
    case 'reciprocal': return 1 / v;
    case 'erf': return erf(v);
  }
}

/** d op(x) / dx given x and y = op(x). */
function unaryDeriv(op: UnaryOp, x: number, y: number): number {
  switch (op) {
    case 'neg': return -1;
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / y;
    case 'rsqrt': return -0.5 * y * y * y;
    case 'abs': return x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'tanh': return 1 - y * y;
    case 'sigmoid': return y * (1 - y);
    case 'silu': { const s = 1 / (1 + Math.exp(-x)); return s * (1 + x * (1 - s)); }
    case 'gelu': return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case 'relu': return x > 0 ? 1 : 0;
    case 'softplus': return x > 20 ? 1 : 1 / (1 + Math.exp(-x));
    case 'sin': return Math.cos(x);
    case 'cos': return -Math.sin(x);
    case 'sign': return 0;
    case 'square': return 2 * x;
    case 'reciprocal': return -y * y;
    case 'erf': return 2 / Math.sqrt(Math.PI) * Math.exp(-x * x);
  }
}

export function unary(op: UnaryOp, x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = unaryScalar(op, x[i]!);
}

export function unaryGrad(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = gy[i]! * unaryDeriv(op, x[i]!, y[i]!);
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return (a, b) => Math.pow(a, b);
    case 'max': return (a, b) => (a >= b || Number.isNaN(a) ? a : b);
    case 'min': return (a, b) => (a <= b || Number.isNaN(a) ? a : b);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'eq': return (a, b) => (a === b ? 1 : 0);
  }
}

/** Walk an N-d index space calling body(outIndex, aIndex, bIndex) with strided offsets. The
 *  innermost axis is a tight loop; outer axes advance with an odometer. */
function forEach2(shape: readonly number[], sa: readonly number[], sb: readonly number[],
  body: (o: number, ia: number, ib: number, len: number, da: number, db: number) => void): void {
  const r = shape.length;
  if (r === 0) { body(0, 0, 0, 1, 0, 0); return; }
  const inner = shape[r - 1]!;
  const da = sa[r - 1]!, db = sb[r - 1]!;
  let outer = 1;
  for (let i = 0; i < r - 1; i++) outer *= shape[i]!;
  const idx = new Array<number>(r).fill(0);
  let ia = 0, ib = 0;
  for (let o = 0; o < outer; o++) {
    body(o * inner, ia, ib, inner, da, db);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]!++;
      ia += sa[d]!; ib += sb[d]!;
      if (idx[d]! < shape[d]!) break;
      ia -= sa[d]! * shape[d]!; ib -= sb[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function binary(op: BinaryOp, a: Float32Array, aStrides: readonly number[], b: Float32Array,
  bStrides: readonly number[], out: Float32Array, outShape: readonly number[]): void {
  const f = binaryFn(op);
  if (op === 'add' || op === 'mul' || op === 'sub' || op === 'div') {
    // Specialised tight loops for the four hot ops.
    forEach2(outShape, aStrides, bStrides, (o, ia, ib, len, da, db) => {
      if (op === 'add') for (let i = 0; i < len; i++) out[o + i] = a[ia + i * da]! + b[ib + i * db]!;
      else if (op === 'mul') for (let i = 0; i < len; i++) out[o + i] = a[ia + i * da]! * b[ib + i * db]!;
      else if (op === 'sub') for (let i = 0; i < len; i++) out[o + i] = a[ia + i * da]! - b[ib + i * db]!;
      else for (let i = 0; i < len; i++) out[o + i] = a[ia + i * da]! / b[ib + i * db]!;
    });
    return;
  }
  forEach2(outShape, aStrides, bStrides, (o, ia, ib, len, da, db) => {
    for (let i = 0; i < len; i++) out[o + i] = f(a[ia + i * da]!, b[ib + i * db]!);
  });
}

export function affine(x: Float32Array, scale: number, shift: number, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * scale + shift;
}

export function powScalar(x: Float32Array, p: number, out: Float32Array): void {
  if (p === 2) for (let i = 0; i < x.length; i++) out[i] = x[i]! * x[i]!;
  else for (let i = 0; i < x.length; i++) out[i] = Math.pow(x[i]!, p);
}

export function clamp(x: Float32Array, lo: number, hi: number, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = v < lo ? lo : v > hi ? hi : v; // NaN passes through, as in torch.clamp
  }
}

export function where(cond: Float32Array, cs: readonly number[], a: Float32Array, as: readonly number[],
  b: Float32Array, bs: readonly number[], out: Float32Array, shape: readonly number[]): void {
  // Gather a and b broadcast first, then select with cond broadcast.
  const n = out.length;
  const ta = new Float32Array(n), tb = new Float32Array(n), tc = new Float32Array(n);
  stridedCopy(a, 0, as, shape, ta);
  stridedCopy(b, 0, bs, shape, tb);
  stridedCopy(cond, 0, cs, shape, tc);
  for (let i = 0; i < n; i++) out[i] = tc[i] !== 0 ? ta[i]! : tb[i]!;
}

export function stridedCopy(src: Float32Array, offset: number, strides: readonly number[],
  shape: readonly number[], out: Float32Array): void {
  forEach2(shape, strides, strides, (o, ia, _ib, len, da) => {
    const base = offset + ia;
    if (da === 1) out.set(src.subarray(base, base + len), o);
    else for (let i = 0; i < len; i++) out[o + i] = src[base + i * da]!;
  });
}

export function stridedAccumulate(src: Float32Array, dst: Float32Array, offset: number,
  strides: readonly number[], shape: readonly number[]): void {
  forEach2(shape, strides, strides, (o, ia, _ib, len, da) => {
    const base = offset + ia;
    for (let i = 0; i < len; i++) { const j = base + i * da; dst[j] = dst[j]! + src[o + i]!; }
  });
}
