// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models"), multistep, data prediction, B(h) = expm1(h) ("bh2"), as the original code
// (wl-zhao/UniPC `uni_pc.py`, class UniPC, `multistep_uni_pc_bh_update`) computes it, driven over
// sigmas the way ComfyUI's `sample_unipc` drives that class:
//  - the VP view of sigma: alpha = 1/sqrt(1 + sigma^2), std = sigma/sqrt(1 + sigma^2), lambda = -log sigma;
//    x_vp = x / sqrt(1 + sigma_0^2); the data prediction at x_vp is D(x_vp sqrt(1 + sigma^2), sigma);
//  - a final sigma of 0 is replaced by 1e-3, and the result is divided by alpha(1e-3);
//  - order = min(3, steps - 1), lower order at the start and (lower_order_final) at the end,
//    no corrector on the last step (no model call there): `steps` model calls in all.
// One update from t_prev_0 to t with `order` previous data predictions m_0 (newest) .. m_{order-1}:
//  1. h = lambda_t - lambda_prev0; r_k = (lambda_prev_k - lambda_prev0) / h; D1_k = (m_k - m_0) / r_k;
//  2. hh = -h, h_phi_1 = expm1(hh), B_h = expm1(hh); R[i][k] = r_k^i (r_order = 1),
//     b_i = h_phi_{i+1} * i! / B_h with h_phi_{k+1} = h_phi_k / hh - 1/k!;
//  3. predictor: rho_p = 0.5 (order 2) or R[:-1,:-1]^-1 b[:-1]; x_t_ = (std_t/std_prev0) x - alpha_t h_phi_1 m_0;
//     x_t = x_t_ - alpha_t B_h sum rho_p D1;
//  4. corrector (not on the last step): m_t = model(x_t); rho_c = 0.5 (order 1) or R^-1 b;
//     x_t = x_t_ - alpha_t B_h (sum rho_c[:-1] D1 + rho_c[-1] (m_t - m_0)).
// What it is not: no bh1 / vary_coeff variants, no noise-prediction mode, no thresholding.

import { ConfigError } from '../../util/index.ts';
import { Tensor, add, mul, sub } from '../../tensor/index.ts';
import type { SigmaDenoiser } from '../k-denoiser.ts';
import type { KSampler } from './k-diffusion.ts';

// The VP quantities of a sigma, in float32 step by step as the reference computes them on float32
// tensors (at sigma = 1e-3 the float32 rounding of 1 - alpha^2 is a few percent: reproduced, not fixed).
const f = Math.fround;
const logAlpha = (s: number): number => f(0.5 * f(Math.log(f(1 / f(f(s * s) + 1)))));
const alphaOf = (s: number): number => f(Math.exp(logAlpha(s)));
const oneMinusA2 = (s: number): number => f(1 - f(Math.exp(f(2 * logAlpha(s)))));
const stdOf = (s: number): number => f(Math.sqrt(oneMinusA2(s)));
const lambdaOf = (s: number): number => f(logAlpha(s) - f(0.5 * f(Math.log(oneMinusA2(s)))));

/** Solve the small dense system A x = b (Gaussian elimination with partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * x[k]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

/** One `multistep_uni_pc_bh_update` (bh2, data prediction); returns x_t and the model value at t (null without corrector). */
function uniPcUpdate(modelFn: (x: Tensor, s: number) => Tensor, x: Tensor, models: readonly Tensor[], ts: readonly number[],
  t: number, order: number, useCorrector: boolean): [Tensor, Tensor | null] {
  const tPrev0 = ts[ts.length - 1]!;
  const m0 = models[models.length - 1]!;
  const lPrev0 = lambdaOf(tPrev0), lT = lambdaOf(t);
  const alphaT = alphaOf(t);
  const h = f(lT - lPrev0); // 1.
  const rks: number[] = [];
  const D1s: Tensor[] = [];
  for (let i = 1; i < order; i++) {
    const rk = f(f(lambdaOf(ts[ts.length - 1 - i]!) - lPrev0) / h);
    rks.push(rk);
    D1s.push(mul(sub(models[models.length - 1 - i]!, m0), 1 / rk));
  }
  rks.push(1);
  const hh = -h; // 2.
  const hPhi1 = f(Math.expm1(hh));
  const Bh = hPhi1;
  let hPhiK = f(f(hPhi1 / hh) - 1);
  let fact = 1;
  const R: number[][] = [], b: number[] = [];
  for (let i = 1; i <= order; i++) {
    R.push(rks.map((r) => f(Math.pow(r, i - 1))));
    b.push(f(f(hPhiK * fact) / Bh));
    fact *= i + 1;
    hPhiK = f(f(hPhiK / hh) - f(1 / fact));
  }
  const xT_ = sub(mul(x, f(stdOf(t) / stdOf(tPrev0))), mul(m0, f(alphaT * hPhi1))); // 3.
  let xT = xT_;
  if (D1s.length > 0) {
    const rhosP = order === 2 ? [0.5] : solve(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1));
    let pred: Tensor | null = null;
    D1s.forEach((d, k) => { const term = mul(d, rhosP[k]!); pred = pred ? add(pred, term) : term; });
    xT = sub(xT_, mul(pred!, f(alphaT * Bh)));
  }
  if (!useCorrector) return [xT, null];
  const mT = modelFn(xT, t); // 4.
  const rhosC = order === 1 ? [0.5] : solve(R, b);
  let corr = mul(sub(mT, m0), rhosC[rhosC.length - 1]!);
  D1s.forEach((d, k) => { corr = add(corr, mul(d, rhosC[k]!)); });
  return [sub(xT_, mul(corr, f(alphaT * Bh))), mT];
}

/** UniPC bh2 over sigmas (x = x_T * sigmas[0], sigmas ending in 0 or not); callback once per model call. */
export const sampleUniPc: KSampler = (model: SigmaDenoiser, x0, sigmasIn, o) => {
  const steps = sigmasIn.length - 1;
  if (steps < 2) throw new ConfigError(`unipc needs at least 2 steps, got ${steps}`);
  const ts = Array.from(sigmasIn);
  const toZero = ts[ts.length - 1] === 0;
  if (toZero) ts[ts.length - 1] = 0.001;
  const order = Math.min(3, steps - 1);
  let calls = 0;
  const modelFn = (xv: Tensor, s: number): Tensor => {
    const xk = mul(xv, Math.sqrt(s * s + 1));
    const d = model(xk, s);
    o.callback?.({ i: calls++, x: xk, sigma: s, sigmaHat: s, denoised: d });
    return d;
  };
  let x = mul(x0, 1 / Math.sqrt(1 + ts[0]! * ts[0]!));
  const tPrev: number[] = [ts[0]!];
  const mPrev: Tensor[] = [modelFn(x, ts[0]!)];
  for (let step = 1; step < order; step++) { // lower-order warm-up
    const [xn, mx] = uniPcUpdate(modelFn, x, mPrev, tPrev, ts[step]!, step, true);
    x = xn;
    tPrev.push(ts[step]!);
    mPrev.push(mx ?? modelFn(x, ts[step]!));
  }
  for (let step = order; step <= steps; step++) {
    const stepOrder = Math.min(order, steps + 1 - step); // lower_order_final
    const useCorrector = step !== steps;
    const [xn, mx] = uniPcUpdate(modelFn, x, mPrev, tPrev, ts[step]!, stepOrder, useCorrector);
    x = xn;
    for (let i = 0; i < order - 1; i++) { tPrev[i] = tPrev[i + 1]!; mPrev[i] = mPrev[i + 1]!; }
    tPrev[tPrev.length - 1] = ts[step]!;
    if (step < steps) mPrev[mPrev.length - 1] = mx ?? modelFn(x, ts[step]!);
  }
  return mul(x, 1 / alphaOf(ts[ts.length - 1]!));
};
