// Convolution, transposed convolution, pooling and nearest upsampling over NCHW tensors.
// conv-transpose2d is the input-gradient kernel of a convolution run forward, so both directions
// share the same three kernels (and the same oneDNN primitives natively).

import { ShapeError, fmtShape } from '../../util/index.ts';
import type { Conv2dGeom } from '../../backend/index.ts';
import { K } from '../dispatch.ts';
import { Tensor, record } from '../tensor.ts';
import { emptyF32 } from '../buffer.ts';

/** Padding as torch accepts it: p, [ph, pw], or asymmetric [top, bottom, left, right]. */
export type Padding2d = number | readonly [number, number] | readonly [number, number, number, number];

function pads(p: Padding2d): [number, number, number, number] {
  if (typeof p === 'number') return [p, p, p, p];
  if (p.length === 2) return [p[0], p[0], p[1], p[1]];
  return [p[0], p[1], p[2], p[3]];
}

function stride2(s: number | readonly [number, number]): [number, number] {
  return typeof s === 'number' ? [s, s] : [s[0], s[1]];
}

function geometry(x: Tensor, w: Tensor, stride: number | readonly [number, number], padding: Padding2d, op: string): Conv2dGeom {
  if (x.ndim !== 4 || w.ndim !== 4) throw new ShapeError(`${op}: expected input [N, C, H, W] and weight [O, I, kH, kW], got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
  const [n, cin, h, wd] = x.shape as [number, number, number, number];
  const [cout, wcin, kh, kw] = w.shape as [number, number, number, number];
  if (wcin !== cin) throw new ShapeError(`${op}: input ${fmtShape(x.shape)} has ${cin} channels but weight ${fmtShape(w.shape)} expects ${wcin}`);
  const [sh, sw] = stride2(stride);
  const [pt, pb, pl, pr] = pads(padding);
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - kw) / sw) + 1;
  if (oh <= 0 || ow <= 0) throw new ShapeError(`${op}: input ${fmtShape(x.shape)} is smaller than kernel ${kh}x${kw} after padding`);
  return { n, cin, h, w: wd, cout, kh, kw, strideH: sh, strideW: sw, padT: pt, padB: pb, padL: pl, padR: pr, oh, ow };
}

export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, stride: number | readonly [number, number] = 1,
  padding: Padding2d = 0): Tensor {
  const g = geometry(x, w, stride, padding, 'conv2d');
  const out = emptyF32(g.n * g.cout * g.oh * g.ow);
  K().conv2d(x.f32, w.f32, b ? b.f32 : null, g, out);
  const y = new Tensor(out, [g.n, g.cout, g.oh, g.ow]);
  return record(y, 'conv2d', b ? [x, w, b] : [x, w], (gy) => {
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      const d = emptyF32(x.size);
      K().conv2dBackwardInput(gy.f32, w.f32, g, d);
      gx = new Tensor(d, x.shape);
    }
    if (w.requiresGrad || b?.requiresGrad) {
      const dw = emptyF32(w.size);
      const db = b ? new Float32Array(g.cout) : null;
      K().conv2dBackwardWeight(gy.f32, x.f32, g, dw, db);
      gw = new Tensor(dw, w.shape);
      if (b && db) gb = new Tensor(db, b.shape);
    }
    return b ? [gx, gw, gb] : [gx, gw];
  });
}

/** torch.nn.functional.conv_transpose2d for weight [Cin, Cout, kH, kW]. */
export function convTranspose2d(x: Tensor, w: Tensor, b: Tensor | null = null, stride: number | readonly [number, number] = 1,
  padding: number | readonly [number, number] = 0, outputPadding: number | readonly [number, number] = 0): Tensor {
  if (x.ndim !== 4 || w.ndim !== 4 || w.shape[0] !== x.shape[1]) {
    throw new ShapeError(`conv_transpose2d: input ${fmtShape(x.shape)} and weight ${fmtShape(w.shape)} (expected [Cin, Cout, kH, kW] with Cin = input channels)`);
  }
  const [n, cin, h, wd] = x.shape as [number, number, number, number];
  const [, cout, kh, kw] = w.shape as [number, number, number, number];
  const [sh, sw] = stride2(stride);
  const [ph, pw] = typeof padding === 'number' ? [padding, padding] : [padding[0], padding[1]];
  const [oph, opw] = typeof outputPadding === 'number' ? [outputPadding, outputPadding] : [outputPadding[0], outputPadding[1]];
  const OH = (h - 1) * sh - 2 * ph + kh + oph, OW = (wd - 1) * sw - 2 * pw + kw + opw;
  // The equivalent forward convolution maps [n, cout, OH, OW] -> [n, cin, h, w].
  const g: Conv2dGeom = { n, cin: cout, h: OH, w: OW, cout: cin, kh, kw, strideH: sh, strideW: sw, padT: ph, padB: ph, padL: pw, padR: pw, oh: h, ow: wd };
  const out = new Float32Array(n * cout * OH * OW);
  K().conv2dBackwardInput(x.f32, w.f32, g, out);
  if (b) {
    const bd = b.f32;
    for (let i = 0; i < n; i++) for (let c = 0; c < cout; c++) {
      const o = (i * cout + c) * OH * OW, bv = bd[c]!;
      for (let j = 0; j < OH * OW; j++) out[o + j]! += bv;
    }
  }
  const y = new Tensor(out, [n, cout, OH, OW]);
  return record(y, 'conv_transpose2d', b ? [x, w, b] : [x, w], (gy) => {
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      const d = new Float32Array(x.size);
      K().conv2d(gy.f32, w.f32, null, g, d);
      gx = new Tensor(d, x.shape);
    }
    if (w.requiresGrad) {
      const dw = new Float32Array(w.size);
      // dL/dW of conv(gy_as_input, W) -> x: "gy" of that conv is x, its input is gy.
      K().conv2dBackwardWeight(x.f32, gy.f32, g, dw, null);
      gw = new Tensor(dw, w.shape);
    }
    if (b) {
      const db = new Float32Array(cout);
      const gd = gy.f32;
      for (let i = 0; i < n; i++) for (let c = 0; c < cout; c++) {
        let s = 0;
        const o = (i * cout + c) * OH * OW;
        for (let j = 0; j < OH * OW; j++) s += gd[o + j]!;
        db[c]! += s;
      }
      gb = new Tensor(db, b.shape);
    }
    return b ? [gx, gw, gb] : [gx, gw];
  });
}

function pooledShape(x: Tensor, k: number, s: number, op: string): [number, number, number, number, number, number] {
  if (x.ndim !== 4) throw new ShapeError(`${op}: expected [N, C, H, W], got ${fmtShape(x.shape)}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
  if (oh <= 0 || ow <= 0) throw new ShapeError(`${op}: input ${fmtShape(x.shape)} is smaller than kernel ${k}`);
  return [n, c, h, w, oh, ow];
}

export function avgPool2d(x: Tensor, k: number, s = k): Tensor {
  const [n, c, h, w, oh, ow] = pooledShape(x, k, s, 'avg_pool2d');
  const out = new Float32Array(n * c * oh * ow);
  K().avgPool2d(x.f32, n, c, h, w, k, s, out);
  return record(new Tensor(out, [n, c, oh, ow]), 'avg_pool2d', [x], (g) => {
    const gx = new Float32Array(x.size);
    K().avgPool2dGrad(g.f32, n, c, h, w, k, s, gx);
    return [new Tensor(gx, x.shape)];
  });
}

export function maxPool2d(x: Tensor, k: number, s = k): Tensor {
  const [n, c, h, w, oh, ow] = pooledShape(x, k, s, 'max_pool2d');
  const out = new Float32Array(n * c * oh * ow);
  const idx = new Int32Array(out.length);
  K().maxPool2d(x.f32, n, c, h, w, k, s, out, idx);
  return record(new Tensor(out, [n, c, oh, ow]), 'max_pool2d', [x], (g) => {
    const gx = new Float32Array(x.size);
    const gd = g.f32;
    for (let i = 0; i < idx.length; i++) gx[idx[i]!]! += gd[i]!;
    return [new Tensor(gx, x.shape)];
  });
}

/** F.interpolate(x, scale_factor=s, mode='nearest') for integer scales. */
export function upsampleNearest(x: Tensor, scale = 2): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`upsample_nearest: expected [N, C, H, W], got ${fmtShape(x.shape)}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = emptyF32(x.size * scale * scale);
  K().upsampleNearest(x.f32, n * c, h, w, scale, scale, out);
  return record(new Tensor(out, [n, c, h * scale, w * scale]), 'upsample_nearest', [x], (g) => {
    const gx = new Float32Array(x.size);
    K().upsampleNearestGrad(g.f32, n * c, h, w, scale, scale, gx);
    return [new Tensor(gx, x.shape)];
  });
}
