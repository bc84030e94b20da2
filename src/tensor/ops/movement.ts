// Movement ops: reshape, permute/transpose, expand, slice/select, cat/stack/chunk/split, pad,
// index-select/gather, flip. Every output is contiguous: a view is materialised with one strided
// copy kernel, and its gradient is the matching strided accumulate.

import { ShapeError, contiguousStrides, fmtShape, normAxis, numel, shapesEqual } from '../../util/index.ts';
import { reference } from '../../backend/index.ts';
import { K } from '../dispatch.ts';
import { Tensor, record, type Storage } from '../tensor.ts';
import { emptyF32 } from '../buffer.ts';

/** Copy a strided view of a tensor's storage into a fresh contiguous tensor (any dtype). */
function gatherView(x: Tensor, offset: number, strides: readonly number[], shape: readonly number[]): Tensor {
  const n = numel(shape);
  if (x.dtype === 'float32') {
    const out = emptyF32(n);
    K().stridedCopy(x.f32, offset, strides, shape, out);
    return new Tensor(out, shape);
  }
  // int64 storage is a Float64Array; the reference loop is dtype-agnostic JavaScript.
  const out = new Float64Array(n);
  reference.stridedCopy(x.data as unknown as Float32Array, offset, strides, shape, out as unknown as Float32Array);
  return new Tensor(out, shape, 'int64');
}

/** Scatter-add g into a zero tensor of `shape` through the view (offset, strides, viewShape). */
function scatterView(g: Tensor, shape: readonly number[], offset: number, strides: readonly number[],
  viewShape: readonly number[]): Tensor {
  const out = new Float32Array(numel(shape));
  K().stridedAccumulate(g.f32, out, offset, strides, viewShape);
  return new Tensor(out, shape);
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const sh = [...shape];
  const infer = sh.indexOf(-1);
  if (infer >= 0) {
    const rest = sh.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    sh[infer] = rest === 0 ? 0 : x.size / rest;
  }
  if (numel(sh) !== x.size || sh.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`reshape: cannot view ${fmtShape(x.shape)} (${x.size} elements) as ${fmtShape(shape)}`);
  }
  if (shapesEqual(sh, x.shape)) return x;
  const y = new Tensor(x.data, sh, x.dtype); // contiguous storage: a reshape shares it
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export const flatten = (x: Tensor, start = 0): Tensor => {
  const s = normAxis(start, x.ndim);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s))]);
};

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + x.ndim + 1 : dim;
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normAxis(dim, x.ndim);
  return x.shape[d] === 1 ? reshape(x, x.shape.filter((_, i) => i !== d)) : x;
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) throw new ShapeError(`permute: ${dims.length} dims given for a tensor of shape ${fmtShape(x.shape)}`);
  const p = dims.map((d) => normAxis(d, x.ndim, 'permute dim'));
  if (p.every((d, i) => d === i)) return x;
  const st = contiguousStrides(x.shape);
  const y = gatherView(x, 0, p.map((d) => st[d]!), p.map((d) => x.shape[d]!));
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => { inv[d] = i; });
  return record(y, 'permute', [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, a: number, b: number): Tensor {
  const p = x.shape.map((_, i) => i);
  const aa = normAxis(a, x.ndim), bb = normAxis(b, x.ndim);
  p[aa] = bb; p[bb] = aa;
  return permute(x, p);
}

/** Broadcast to `shape` (torch.expand; -1 keeps a size). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const off = shape.length - x.ndim;
  if (off < 0) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - off]! : d));
  const st = contiguousStrides(x.shape);
  const strides = target.map((d, i) => {
    if (i < off) return 0;
    const s = x.shape[i - off]!;
    if (s === d) return st[i - off]!;
    if (s === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(target)} (dim ${i}: ${s} vs ${d})`);
  });
  if (shapesEqual(target, x.shape)) return x;
  const y = gatherView(x, 0, strides, target);
  return record(y, 'expand', [x], (g) => {
    // Sum the gradient over the broadcast axes.
    return [scatterView(g, x.shape, 0, strides, target)];
  });
}

/** x[..., start:end:step, ...] along one dim (negative indices count from the end). */
export function slice(x: Tensor, dim: number, start: number, end?: number, step = 1): Tensor {
  const d = normAxis(dim, x.ndim, 'slice dim');
  const n = x.shape[d]!;
  const clampIdx = (i: number): number => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start), e = clampIdx(end ?? n);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const st = contiguousStrides(x.shape);
  const shape = x.shape.map((v, i) => (i === d ? len : v));
  const strides = st.map((v, i) => (i === d ? v * step : v));
  if (len === n && step === 1) return x;
  const y = gatherView(x, s * st[d]!, strides, shape);
  return record(y, 'slice', [x], (g) => [scatterView(g, x.shape, s * st[d]!, strides, shape)]);
}

/** x.select(dim, index): drop the dim. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = normAxis(dim, x.ndim);
  const i = index < 0 ? index + x.shape[d]! : index;
  if (i < 0 || i >= x.shape[d]!) throw new ShapeError(`select: index ${index} out of range for dim ${dim} of ${fmtShape(x.shape)}`);
  return squeeze(slice(x, d, i, i + 1), d);
}

export function cat(xs: readonly Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('cat: no tensors given');
  const first = xs[0]!;
  const d = normAxis(dim, first.ndim, 'cat dim');
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.dtype !== first.dtype || t.shape.some((v, i) => i !== d && v !== first.shape[i])) {
      throw new ShapeError(`cat: shapes ${xs.map((q) => fmtShape(q.shape)).join(', ')} differ outside dim ${dim}`);
    }
  }
  if (xs.length === 1) return first;
  const outer = numel(first.shape.slice(0, d));
  const inner = numel(first.shape.slice(d + 1));
  const total = xs.reduce((a, t) => a + t.shape[d]!, 0);
  const shape = first.shape.map((v, i) => (i === d ? total : v));
  // every element is written by the copies below
  const data: Storage = first.dtype === 'float32' ? emptyF32(numel(shape)) : new Float64Array(numel(shape));
  let off = 0;
  for (const t of xs) {
    const chunk = t.shape[d]! * inner;
    for (let o = 0; o < outer; o++) {
      data.set(t.data.subarray(o * chunk, (o + 1) * chunk) as never, o * total * inner + off);
    }
    off += chunk;
  }
  const y = new Tensor(data, shape, first.dtype);
  return record(y, 'cat', xs, (g) => {
    let s = 0;
    return xs.map((t) => {
      const part = slice(g, d, s, s + t.shape[d]!);
      s += t.shape[d]!;
      return t.requiresGrad ? part : null;
    });
  });
}

export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  return cat(xs.map((t) => unsqueeze(t, dim)), dim);
}

/** Split into pieces of the given sizes (or equal pieces of `size`) along dim. */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normAxis(dim, x.ndim);
  const n = x.shape[d]!;
  const list = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : [...sizes];
  if (list.reduce((a, b) => a + b, 0) !== n) throw new ShapeError(`split: sizes ${list.join(',')} do not sum to dim ${dim} of ${fmtShape(x.shape)}`);
  let s = 0;
  return list.map((len) => {
    const part = slice(x, d, s, s + len);
    s += len;
    return part;
  });
}

/** torch.chunk: `chunks` pieces of ceil(n / chunks). */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const n = x.dim(dim);
  return split(x, Math.ceil(n / chunks), dim);
}

/** Constant padding. pads as torch.nn.functional.pad: [left, right, top, bottom, ...] from the last dim
 *  backward. Negative pads crop. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim) throw new ShapeError(`pad: ${pads.length} pad values for a tensor of shape ${fmtShape(x.shape)}`);
  const before = new Array<number>(x.ndim).fill(0), after = new Array<number>(x.ndim).fill(0);
  for (let i = 0; i < pads.length / 2; i++) {
    before[x.ndim - 1 - i] = pads[2 * i]!;
    after[x.ndim - 1 - i] = pads[2 * i + 1]!;
  }
  // Negative pads: crop first.
  let src = x;
  for (let ax = 0; ax < x.ndim; ax++) {
    const b = before[ax]!, a = after[ax]!;
    if (b < 0 || a < 0) src = slice(src, ax, Math.max(0, -b), src.shape[ax]! - Math.max(0, -a));
  }
  const lo = before.map((b) => Math.max(0, b)), hi = after.map((a) => Math.max(0, a));
  const shape = src.shape.map((d, i) => d + lo[i]! + hi[i]!);
  const st = contiguousStrides(shape);
  const offset = lo.reduce((acc, v, i) => acc + v * st[i]!, 0);
  const out = new Float32Array(numel(shape));
  if (value !== 0) out.fill(value);
  K().stridedAccumulate(src.f32, out, offset, st, src.shape);
  const y = new Tensor(out, shape);
  const s0 = src;
  return record(y, 'pad', [s0], (g) => [gatherView(g, offset, st, s0.shape)]);
}

/** torch.index_select(x, dim, index) with an int64 index vector. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normAxis(dim, x.ndim);
  const n = x.shape[d]!;
  const idx = index.data;
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= n) throw new ShapeError(`index_select: index ${v} out of range for dim ${dim} of size ${n}`);
  }
  const outer = numel(x.shape.slice(0, d)), inner = numel(x.shape.slice(d + 1));
  const shape = x.shape.map((v, i) => (i === d ? idx.length : v));
  const data: Storage = x.dtype === 'float32' ? new Float32Array(numel(shape)) : new Float64Array(numel(shape));
  for (let o = 0; o < outer; o++) for (let j = 0; j < idx.length; j++) {
    const src = (o * n + idx[j]!) * inner;
    data.set(x.data.subarray(src, src + inner) as never, (o * idx.length + j) * inner);
  }
  const y = new Tensor(data, shape, x.dtype);
  return record(y, 'index_select', [x], (g) => {
    const gx = new Float32Array(x.size);
    const gd = g.f32;
    for (let o = 0; o < outer; o++) for (let j = 0; j < idx.length; j++) {
      const dst = (o * n + idx[j]!) * inner, s = (o * idx.length + j) * inner;
      for (let i = 0; i < inner; i++) gx[dst + i]! += gd[s + i]!;
    }
    return [new Tensor(gx, x.shape)];
  });
}

/** torch.gather(x, dim, index) with an index of the output's shape. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const d = normAxis(dim, x.ndim);
  if (index.ndim !== x.ndim) throw new ShapeError(`gather: index of shape ${fmtShape(index.shape)} must have the rank of ${fmtShape(x.shape)}`);
  const ist = contiguousStrides(index.shape), xst = contiguousStrides(x.shape);
  const n = index.size;
  const src = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i, off = 0;
    for (let a = 0; a < index.ndim; a++) {
      const c = Math.floor(rem / ist[a]!);
      rem -= c * ist[a]!;
      const v = a === d ? index.data[i]! : c;
      if (v < 0 || v >= x.shape[a]!) throw new ShapeError(`gather: index ${v} out of range for dim ${a} of ${fmtShape(x.shape)}`);
      off += v * xst[a]!;
    }
    src[i] = off;
  }
  const out = new Float32Array(n);
  const xd = x.f32;
  for (let i = 0; i < n; i++) out[i] = xd[src[i]!]!;
  const y = new Tensor(out, index.shape);
  return record(y, 'gather', [x], (g) => {
    const gx = new Float32Array(x.size);
    const gd = g.f32;
    for (let i = 0; i < n; i++) gx[src[i]!]! += gd[i]!;
    return [new Tensor(gx, x.shape)];
  });
}

/** Reverse along dims (torch.flip). */
export function flip(x: Tensor, dims: readonly number[]): Tensor {
  const st = contiguousStrides(x.shape);
  let offset = 0;
  const strides = st.map((s, i) => {
    if (dims.map((d) => normAxis(d, x.ndim)).includes(i)) {
      offset += (x.shape[i]! - 1) * s;
      return -s;
    }
    return s;
  });
  const y = gatherView(x, offset, strides, x.shape);
  return record(y, 'flip', [x], (g) => [flip(g, dims)]);
}

/** Materialise a copy (all tensors are contiguous; this breaks storage sharing). */
export function clone(x: Tensor): Tensor {
  const y = new Tensor(x.data.slice(), x.shape, x.dtype);
  return record(y, 'clone', [x], (g) => [g]);
}
