// The k-diffusion samplers (crowsonkb/k-diffusion `sampling.py`), each a function of a denoiser
// D(x, sigma) over a decreasing list of noise levels ending in 0 (Karras et al. 2022, "Elucidating
// the Design Space of Diffusion-Based Generative Models": x_sigma = x_0 + sigma n, the probability
// flow ODE dx/dsigma = (x - D(x, sigma)) / sigma):
//   euler        Karras Algorithm 2 with Euler steps (optional churn s_churn / s_tmin / s_tmax / s_noise)
//   euler_a      ancestral Euler: step to sigma_down, add sigma_up noise (eta, s_noise)
//   heun         Karras Algorithm 2 (second order; Euler on the last step)
//   dpm2         DPM-Solver-2 inspired midpoint in log sigma (Euler on the last step)
//   dpmpp_2s_a   DPM-Solver++(2S) ancestral (Lu et al. 2022), eta, s_noise
//   dpmpp_2m     DPM-Solver++(2M)
//   dpmpp_2m_sde DPM-Solver++(2M) SDE, solver_type midpoint | heun, eta, s_noise
//   dpmpp_3m_sde DPM-Solver++(3M) SDE, eta, s_noise
//   lms          linear multistep of order 4 with exact polynomial-integral coefficients
// Noise: every Gaussian draw comes from `noise()` in k-diffusion's order (euler / heun / dpm2 draw
// one per step even without churn, as `torch.randn_like` there; the SDE samplers use plain Gaussian
// draws where k-diffusion defaults to a Brownian tree). What it is not: no model wrapping
// (k-denoiser.ts), no schedules (sigma-schedules.ts); UniPC lives in unipc.ts.

import { ConfigError } from '../../util/index.ts';
import { Tensor, add, mul, sub } from '../../tensor/index.ts';
import type { SigmaDenoiser } from '../k-denoiser.ts';

/** What k-diffusion's callback receives each step. */
export interface KStepInfo {
  i: number;
  x: Tensor;
  sigma: number;
  sigmaHat: number;
  denoised: Tensor;
}

export interface KSamplerOptions {
  /** the next standard normal draw of x's shape */
  noise: () => Tensor;
  callback?: (info: KStepInfo) => void;
  /** ancestral / SDE noise amount (default 1) */
  eta?: number;
  /** scale of the added noise (default 1) */
  sNoise?: number;
  /** Karras churn (euler, heun, dpm2; default 0) */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  /** dpmpp_2m_sde: 'midpoint' (default) or 'heun' */
  solverType?: 'midpoint' | 'heun';
  /** lms order (default 4) */
  order?: number;
}

/** x [B, C, H, W] (already x_T * sigmas[0]), sigmas [n + 1] ending in 0 -> the sample. */
export type KSampler = (model: SigmaDenoiser, x: Tensor, sigmas: ArrayLike<number>, o: KSamplerOptions) => Tensor;

/** `to_d`: the Karras ODE derivative (x - D) / sigma. */
const toD = (x: Tensor, sigma: number, denoised: Tensor): Tensor => mul(sub(x, denoised), 1 / sigma);

/** `get_ancestral_step(sigma_from, sigma_to, eta)` -> [sigma_down, sigma_up]. */
export function ancestralStep(from: number, to: number, eta = 1): [number, number] {
  if (!eta) return [to, 0];
  const up = Math.min(to, eta * Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
  return [Math.sqrt(to * to - up * up), up];
}

/** Karras churn shared by euler / heun / dpm2: returns x at sigma_hat and sigma_hat (one draw always). */
function churn(x: Tensor, sigmas: ArrayLike<number>, i: number, o: KSamplerOptions): [Tensor, number] {
  const s = sigmas[i]!;
  const n = sigmas.length - 1;
  const inRange = (o.sTmin ?? 0) <= s && s <= (o.sTmax ?? Infinity);
  const gamma = inRange ? Math.min((o.sChurn ?? 0) / n, Math.SQRT2 - 1) : 0;
  const eps = o.noise(); // drawn every step, as k-diffusion does
  const sHat = s * (gamma + 1);
  if (gamma > 0) return [add(x, mul(eps, (o.sNoise ?? 1) * Math.sqrt(sHat * sHat - s * s))), sHat];
  return [x, sHat];
}

/** The start of a step of euler / heun / dpm2: x churned to sigma_hat, denoised there (reported to
 *  the callback), and the derivative d = (x - D) / sigma_hat. */
function churnedStep(model: SigmaDenoiser, x0: Tensor, sigmas: ArrayLike<number>, i: number,
  o: KSamplerOptions): { x: Tensor; sHat: number; d: Tensor } {
  const [x, sHat] = churn(x0, sigmas, i, o);
  const denoised = model(x, sHat);
  o.callback?.({ i, x, sigma: sigmas[i]!, sigmaHat: sHat, denoised });
  return { x, sHat, d: toD(x, sHat, denoised) };
}

/** Karras Algorithm 2, Euler steps. */
export const sampleEuler: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const { x: xh, sHat, d } = churnedStep(model, x, sigmas, i, o);
    x = add(xh, mul(d, sigmas[i + 1]! - sHat)); // Euler
  }
  return x;
};

/** Ancestral Euler: 1. D; 2. Euler step to sigma_down; 3. + noise * s_noise * sigma_up (unless the last). */
export const sampleEulerAncestral: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!, sNext = sigmas[i + 1]!;
    const denoised = model(x, s);
    const [down, up] = ancestralStep(s, sNext, o.eta ?? 1);
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    x = add(x, mul(toD(x, s, denoised), down - s));
    if (sNext > 0) x = add(x, mul(o.noise(), (o.sNoise ?? 1) * up));
  }
  return x;
};

/** Karras Algorithm 2 (Heun): x' = x + d dt; d' = (x' - D(x', s_next)) / s_next; x += (d + d')/2 dt. */
export const sampleHeun: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const { x: xh, sHat, d } = churnedStep(model, x, sigmas, i, o);
    x = xh;
    const sNext = sigmas[i + 1]!;
    const dt = sNext - sHat;
    if (sNext === 0) {
      x = add(x, mul(d, dt));
    } else {
      const x2 = add(x, mul(d, dt));
      const d2 = toD(x2, sNext, model(x2, sNext));
      x = add(x, mul(add(d, d2), dt / 2));
    }
  }
  return x;
};

/** DPM2: midpoint sigma_mid = exp((log s_hat + log s_next) / 2), x += d(x_mid) (s_next - s_hat). */
export const sampleDpm2: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const { x: xh, sHat, d } = churnedStep(model, x, sigmas, i, o);
    x = xh;
    const sNext = sigmas[i + 1]!;
    if (sNext === 0) {
      x = add(x, mul(d, sNext - sHat));
    } else {
      const sMid = Math.exp(Math.log(sHat) + 0.5 * (Math.log(sNext) - Math.log(sHat)));
      const x2 = add(x, mul(d, sMid - sHat));
      const d2 = toD(x2, sMid, model(x2, sMid));
      x = add(x, mul(d2, sNext - sHat));
    }
  }
  return x;
};

/**
 * DPM-Solver++(2S) ancestral, in t = -log sigma: 1. D; 2. (sigma_down, sigma_up);
 * 3. s = t + h/2: x_2 = (sigma_s / sigma) x - expm1(-h/2) D; 4. x = (sigma_down / sigma) x - expm1(-h) D(x_2, sigma_s);
 * 5. + noise * s_noise * sigma_up (unless the last step).
 */
export const sampleDpmpp2sAncestral: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!, sNext = sigmas[i + 1]!;
    const denoised = model(x, s);
    const [down, up] = ancestralStep(s, sNext, o.eta ?? 1);
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    if (down === 0) {
      x = add(x, mul(toD(x, s, denoised), down - s));
    } else {
      const t = -Math.log(s), tNext = -Math.log(down);
      const h = tNext - t;
      const sMid = Math.exp(-(t + 0.5 * h));
      const x2 = sub(mul(x, sMid / s), mul(denoised, Math.expm1(-0.5 * h)));
      const denoised2 = model(x2, sMid);
      x = sub(mul(x, down / s), mul(denoised2, Math.expm1(-h)));
    }
    if (sNext > 0) x = add(x, mul(o.noise(), (o.sNoise ?? 1) * up));
  }
  return x;
};

/** DPM-Solver++(2M): x = (s_next / s) x - expm1(-h) D_d, D_d = (1 + 1/2r) D - (1/2r) D_old (first order at the ends). */
export const sampleDpmpp2m: KSampler = (model, x0, sigmas, o) => {
  let x = x0;
  let old: Tensor | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!, sNext = sigmas[i + 1]!;
    const denoised = model(x, s);
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    const t = -Math.log(s), tNext = -Math.log(sNext);
    const h = tNext - t;
    let dd = denoised;
    if (old !== null && sNext !== 0) {
      const r = (t + Math.log(sigmas[i - 1]!)) / h; // h_last / h
      dd = sub(mul(denoised, 1 + 1 / (2 * r)), mul(old, 1 / (2 * r)));
    }
    x = sub(mul(x, sNext / s), mul(dd, Math.expm1(-h)));
    old = denoised;
  }
  return x;
};

/** DPM-Solver++(2M) SDE (midpoint or heun correction), eta, s_noise; the last step returns D. */
export const sampleDpmpp2mSde: KSampler = (model, x0, sigmas, o) => {
  const solver = o.solverType ?? 'midpoint';
  if (solver !== 'midpoint' && solver !== 'heun') throw new ConfigError(`dpmpp_2m_sde: solver_type must be 'heun' or 'midpoint', got '${String(solver)}'`);
  const eta = o.eta ?? 1;
  let x = x0;
  let old: Tensor | null = null;
  let hLast = 0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!, sNext = sigmas[i + 1]!;
    const denoised = model(x, s);
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    if (sNext === 0) {
      x = denoised;
    } else {
      const h = -Math.log(sNext) + Math.log(s);
      const etaH = eta * h;
      const e = -Math.expm1(-h - etaH);
      x = add(mul(x, (sNext / s) * Math.exp(-etaH)), mul(denoised, e));
      if (old !== null) {
        const r = hLast / h;
        const c = solver === 'heun' ? (e / (-h - etaH) + 1) * (1 / r) : 0.5 * e * (1 / r);
        x = add(x, mul(sub(denoised, old), c));
      }
      if (eta) x = add(x, mul(o.noise(), sNext * Math.sqrt(-Math.expm1(-2 * etaH)) * (o.sNoise ?? 1)));
      hLast = h;
    }
    old = denoised;
  }
  return x;
};

/** DPM-Solver++(3M) SDE, eta, s_noise; the last step returns D. */
export const sampleDpmpp3mSde: KSampler = (model, x0, sigmas, o) => {
  const eta = o.eta ?? 1;
  let x = x0;
  let d1: Tensor | null = null, d2: Tensor | null = null;
  let h1: number | null = null, h2: number | null = null;
  let h = 0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!, sNext = sigmas[i + 1]!;
    const denoised = model(x, s);
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    if (sNext === 0) {
      x = denoised;
    } else {
      h = -Math.log(sNext) + Math.log(s);
      const hEta = h * (eta + 1);
      x = add(mul(x, Math.exp(-hEta)), mul(denoised, -Math.expm1(-hEta)));
      const phi2 = Math.expm1(-hEta) / hEta + 1;
      if (h2 !== null && d1 && d2 && h1 !== null) {
        const r0 = h1 / h, r1 = h2 / h;
        const d10 = mul(sub(denoised, d1), 1 / r0);
        const d11 = mul(sub(d1, d2), 1 / r1);
        const dd1 = add(d10, mul(sub(d10, d11), r0 / (r0 + r1)));
        const dd2 = mul(sub(d10, d11), 1 / (r0 + r1));
        const phi3 = phi2 / hEta - 0.5;
        x = sub(add(x, mul(dd1, phi2)), mul(dd2, phi3));
      } else if (h1 !== null && d1) {
        const r = h1 / h;
        x = add(x, mul(sub(denoised, d1), phi2 / r));
      }
      if (eta) x = add(x, mul(o.noise(), sNext * Math.sqrt(-Math.expm1(-2 * h * eta)) * (o.sNoise ?? 1)));
    }
    d2 = d1; d1 = denoised;
    h2 = h1; h1 = h;
  }
  return x;
};

// 4-point Gauss-Legendre nodes and weights on [-1, 1]: exact for the cubic Lagrange basis
// polynomials of order-4 LMS (k-diffusion integrates them with scipy's quad, which is exact to
// rounding for polynomials of this degree).
const GL_X = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const GL_W = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

/** `linear_multistep_coeff(order, t, i, j)`: integral over [t_i, t_{i+1}] of the j-th Lagrange basis polynomial. */
export function lmsCoeff(order: number, t: ArrayLike<number>, i: number, j: number): number {
  if (order - 1 > i) throw new ConfigError(`lms: order ${order} too high for step ${i}`);
  const fn = (tau: number): number => {
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (j === k) continue;
      prod *= (tau - t[i - k]!) / (t[i - j]! - t[i - k]!);
    }
    return prod;
  };
  const a = t[i]!, b = t[i + 1]!;
  const half = (b - a) / 2, mid = (a + b) / 2;
  let s = 0;
  for (let q = 0; q < 4; q++) s += GL_W[q]! * fn(mid + half * GL_X[q]!);
  return s * half;
}

/** Linear multistep (order 4 default): x += sum_j c_j d_{i-j}. */
export const sampleLms: KSampler = (model, x0, sigmas, o) => {
  const order = o.order ?? 4;
  if (!Number.isInteger(order) || order < 1 || order > 4) throw new ConfigError(`lms: order must be 1..4, got ${order}`);
  let x = x0;
  const ds: Tensor[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const denoised = model(x, s);
    ds.push(toD(x, s, denoised));
    if (ds.length > order) ds.shift();
    o.callback?.({ i, x, sigma: s, sigmaHat: s, denoised });
    const cur = Math.min(i + 1, order);
    for (let j = 0; j < cur; j++) x = add(x, mul(ds[ds.length - 1 - j]!, lmsCoeff(cur, sigmas, i, j)));
  }
  return x;
};
