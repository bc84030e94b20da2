// Reference pooling and nearest-neighbour resampling over NCHW buffers (no padding; kernel k,
// stride s, floor output size, as nn.AvgPool2d(k, s) / nn.MaxPool2d(k, s) with defaults).

export function avgPool2d(x: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
  out: Float32Array): void {
  const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
  const inv = 1 / (k * k);
  for (let p = 0; p < n * c; p++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let acc = 0;
        for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) acc += x[p * h * w + (oy * s + ky) * w + ox * s + kx]!;
        out[(p * oh + oy) * ow + ox] = acc * inv;
      }
    }
  }
}

export function avgPool2dGrad(gy: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
  gx: Float32Array): void {
  const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
  const inv = 1 / (k * k);
  gx.fill(0);
  for (let p = 0; p < n * c; p++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const g = gy[(p * oh + oy) * ow + ox]! * inv;
        for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) gx[p * h * w + (oy * s + ky) * w + ox * s + kx]! += g;
      }
    }
  }
}

export function maxPool2d(x: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
  out: Float32Array, idx: Int32Array): void {
  const oh = Math.floor((h - k) / s) + 1, ow = Math.floor((w - k) / s) + 1;
  for (let p = 0; p < n * c; p++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let best = -Infinity, bi = -1;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const j = p * h * w + (oy * s + ky) * w + ox * s + kx;
            const v = x[j]!;
            if (v > best || bi < 0 || Number.isNaN(v)) { best = v; bi = j; }
          }
        }
        out[(p * oh + oy) * ow + ox] = best;
        idx[(p * oh + oy) * ow + ox] = bi;
      }
    }
  }
}

export function upsampleNearest(x: Float32Array, nc: number, h: number, w: number, sh: number, sw: number,
  out: Float32Array): void {
  const OH = h * sh, OW = w * sw;
  for (let p = 0; p < nc; p++) {
    for (let oy = 0; oy < OH; oy++) {
      const row = p * h * w + Math.floor(oy / sh) * w;
      const o = (p * OH + oy) * OW;
      for (let ox = 0; ox < OW; ox++) out[o + ox] = x[row + Math.floor(ox / sw)]!;
    }
  }
}

export function upsampleNearestGrad(gy: Float32Array, nc: number, h: number, w: number, sh: number, sw: number,
  gx: Float32Array): void {
  const OH = h * sh, OW = w * sw;
  gx.fill(0);
  for (let p = 0; p < nc; p++) {
    for (let oy = 0; oy < OH; oy++) {
      const row = p * h * w + Math.floor(oy / sh) * w;
      const o = (p * OH + oy) * OW;
      for (let ox = 0; ox < OW; ox++) gx[row + Math.floor(ox / sw)]! += gy[o + ox]!;
    }
  }
}
