// Reference GroupNorm (also fused with a following SiLU) and LayerNorm with their backward
// passes (biased variance, as PyTorch).
// Statistics are accumulated in float64; mean and rstd are saved for the backward pass.

import { unary, unaryGrad } from './elementwise.ts';

export function groupNorm(x: Float32Array, n: number, c: number, hw: number, groups: number, eps: number,
  gamma: Float32Array | null, beta: Float32Array | null, out: Float32Array, mean: Float32Array,
  rstd: Float32Array): void {
  const cpg = c / groups;
  const m = cpg * hw;
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const base = (b * c + g * cpg) * hw;
      let s = 0, s2 = 0;
      for (let i = 0; i < m; i++) { const v = x[base + i]!; s += v; }
      const mu = s / m;
      for (let i = 0; i < m; i++) { const d = x[base + i]! - mu; s2 += d * d; }
      const r = 1 / Math.sqrt(s2 / m + eps);
      mean[b * groups + g] = mu;
      rstd[b * groups + g] = r;
      for (let ci = 0; ci < cpg; ci++) {
        const ch = g * cpg + ci;
        const ga = gamma ? gamma[ch]! : 1, be = beta ? beta[ch]! : 0;
        const o = base + ci * hw;
        for (let i = 0; i < hw; i++) out[o + i] = (x[o + i]! - mu) * r * ga + be;
      }
    }
  }
}

export function groupNormGrad(gy: Float32Array, x: Float32Array, n: number, c: number, hw: number,
  groups: number, gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, gx: Float32Array,
  ggamma: Float32Array | null, gbeta: Float32Array | null): void {
  const cpg = c / groups;
  const m = cpg * hw;
  const gg = new Float64Array(c), gbb = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const mu = mean[b * groups + g]!, r = rstd[b * groups + g]!;
      const base = (b * c + g * cpg) * hw;
      // With xhat = (x - mu) r and dxhat = gy * gamma:
      // gx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      let sd = 0, sdx = 0;
      for (let ci = 0; ci < cpg; ci++) {
        const ch = g * cpg + ci;
        const ga = gamma ? gamma[ch]! : 1;
        const o = base + ci * hw;
        for (let i = 0; i < hw; i++) {
          const xh = (x[o + i]! - mu) * r;
          const gv = gy[o + i]!;
          gg[ch]! += gv * xh;
          gbb[ch]! += gv;
          const d = gv * ga;
          sd += d; sdx += d * xh;
        }
      }
      sd /= m; sdx /= m;
      for (let ci = 0; ci < cpg; ci++) {
        const ch = g * cpg + ci;
        const ga = gamma ? gamma[ch]! : 1;
        const o = base + ci * hw;
        for (let i = 0; i < hw; i++) {
          const xh = (x[o + i]! - mu) * r;
          gx[o + i] = r * (gy[o + i]! * ga - sd - xh * sdx);
        }
      }
    }
  }
  if (ggamma) for (let i = 0; i < c; i++) ggamma[i] = gg[i]!;
  if (gbeta) for (let i = 0; i < c; i++) gbeta[i] = gbb[i]!;
}

export function layerNorm(x: Float32Array, rows: number, d: number, eps: number, gamma: Float32Array | null,
  beta: Float32Array | null, out: Float32Array, mean: Float32Array, rstd: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let s = 0, s2 = 0;
    for (let i = 0; i < d; i++) s += x[o + i]!;
    const mu = s / d;
    for (let i = 0; i < d; i++) { const v = x[o + i]! - mu; s2 += v * v; }
    const rs = 1 / Math.sqrt(s2 / d + eps);
    mean[r] = mu; rstd[r] = rs;
    for (let i = 0; i < d; i++) out[o + i] = (x[o + i]! - mu) * rs * (gamma ? gamma[i]! : 1) + (beta ? beta[i]! : 0);
  }
}

export function layerNormGrad(gy: Float32Array, x: Float32Array, rows: number, d: number,
  gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, gx: Float32Array,
  ggamma: Float32Array | null, gbeta: Float32Array | null): void {
  const gg = new Float64Array(d), gbb = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d, mu = mean[r]!, rs = rstd[r]!;
    let sd = 0, sdx = 0;
    for (let i = 0; i < d; i++) {
      const xh = (x[o + i]! - mu) * rs, gv = gy[o + i]!;
      gg[i]! += gv * xh; gbb[i]! += gv;
      const dd = gv * (gamma ? gamma[i]! : 1);
      sd += dd; sdx += dd * xh;
    }
    sd /= d; sdx /= d;
    for (let i = 0; i < d; i++) {
      const xh = (x[o + i]! - mu) * rs;
      gx[o + i] = rs * (gy[o + i]! * (gamma ? gamma[i]! : 1) - sd - xh * sdx);
    }
  }
  if (ggamma) for (let i = 0; i < d; i++) ggamma[i] = gg[i]!;
  if (gbeta) for (let i = 0; i < d; i++) gbeta[i] = gbb[i]!;
}

/** out = silu(groupNorm(x)): GroupNorm then SiLU, as the pair GroupNorm32 + SiLU that opens
 *  every UNet block computes it (the fused kernel saves a pass and a buffer). */
export function groupNormSilu(x: Float32Array, n: number, c: number, hw: number, groups: number, eps: number,
  gamma: Float32Array | null, beta: Float32Array | null, out: Float32Array, mean: Float32Array,
  rstd: Float32Array): void {
  groupNorm(x, n, c, hw, groups, eps, gamma, beta, out, mean, rstd);
  unary('silu', out, out);
}

/** Gradient of groupNormSilu: the pre-activation z = groupNorm(x) is recomputed from x and the
 *  saved statistics, gz = gy * silu'(z), then the GroupNorm gradient of gz. */
export function groupNormSiluGrad(gy: Float32Array, x: Float32Array, n: number, c: number, hw: number,
  groups: number, gamma: Float32Array | null, beta: Float32Array | null, mean: Float32Array, rstd: Float32Array,
  gx: Float32Array, ggamma: Float32Array | null, gbeta: Float32Array | null): void {
  const cpg = c / groups;
  const z = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) {
    const g = Math.floor(ch / cpg), mu = mean[b * groups + g]!, r = rstd[b * groups + g]!;
    const ga = gamma ? gamma[ch]! : 1, be = beta ? beta[ch]! : 0;
    const o = (b * c + ch) * hw;
    for (let i = 0; i < hw; i++) z[o + i] = (x[o + i]! - mu) * r * ga + be;
  }
  const gz = new Float32Array(x.length);
  unaryGrad('silu', z, z, gy, gz);
  groupNormGrad(gz, x, n, c, hw, groups, gamma, mean, rstd, gx, ggamma, gbeta);
}
