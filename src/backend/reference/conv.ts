// Reference 2-D convolution (PyTorch semantics: cross-correlation, NCHW, OIHW weights,
// asymmetric zero padding [top, bottom, left, right]) and its two backward passes.

import type { Conv2dGeom } from '../types.ts';

export function conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, g: Conv2dGeom,
  out: Float32Array): void {
  const { n, cin, h, w: W, cout, kh, kw, strideH, strideW, padT, padL, oh, ow } = g;
  const acc = new Float64Array(ow);
  for (let b = 0; b < n; b++) {
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < oh; oy++) {
        acc.fill(bias ? bias[co]! : 0);
        for (let ci = 0; ci < cin; ci++) {
          const xBase = (b * cin + ci) * h * W;
          const wBase = (co * cin + ci) * kh * kw;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * strideH - padT + ky;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const wv = w[wBase + ky * kw + kx]!;
              for (let ox = 0; ox < ow; ox++) {
                const ix = ox * strideW - padL + kx;
                if (ix >= 0 && ix < W) acc[ox]! += wv * x[xBase + iy * W + ix]!;
              }
            }
          }
        }
        out.set(acc, ((b * cout + co) * oh + oy) * ow);
      }
    }
  }
}

export function conv2dBackwardInput(gy: Float32Array, w: Float32Array, g: Conv2dGeom, gx: Float32Array): void {
  const { n, cin, h, w: W, cout, kh, kw, strideH, strideW, padT, padL, oh, ow } = g;
  const acc = new Float64Array(gx.length);
  for (let b = 0; b < n; b++) {
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          const gv = gy[((b * cout + co) * oh + oy) * ow + ox]!;
          for (let ci = 0; ci < cin; ci++) {
            const xBase = (b * cin + ci) * h * W;
            const wBase = (co * cin + ci) * kh * kw;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * strideH - padT + ky;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * strideW - padL + kx;
                if (ix >= 0 && ix < W) acc[xBase + iy * W + ix]! += gv * w[wBase + ky * kw + kx]!;
              }
            }
          }
        }
      }
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = acc[i]!;
}

export function conv2dBackwardWeight(gy: Float32Array, x: Float32Array, g: Conv2dGeom, gw: Float32Array,
  gb: Float32Array | null): void {
  const { n, cin, h, w: W, cout, kh, kw, strideH, strideW, padT, padL, oh, ow } = g;
  for (let co = 0; co < cout; co++) {
    for (let ci = 0; ci < cin; ci++) {
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          let s = 0;
          for (let b = 0; b < n; b++) {
            const xBase = (b * cin + ci) * h * W;
            const gBase = (b * cout + co) * oh * ow;
            for (let oy = 0; oy < oh; oy++) {
              const iy = oy * strideH - padT + ky;
              if (iy < 0 || iy >= h) continue;
              for (let ox = 0; ox < ow; ox++) {
                const ix = ox * strideW - padL + kx;
                if (ix >= 0 && ix < W) s += gy[gBase + oy * ow + ox]! * x[xBase + iy * W + ix]!;
              }
            }
          }
          gw[((co * cin + ci) * kh + ky) * kw + kx] = s;
        }
      }
    }
    if (gb) {
      let s = 0;
      for (let b = 0; b < n; b++) {
        const gBase = (b * cout + co) * oh * ow;
        for (let i = 0; i < oh * ow; i++) s += gy[gBase + i]!;
      }
      gb[co] = s;
    }
  }
}
