// Noise-level schedules for the k-diffusion samplers (`--scheduler`): each gives n sigmas from
// high to low and a trailing zero, [n + 1], float32 values as the torch code stores them.
//  - discrete:    the model's own levels at t = linspace(T-1, 0, n) (CompVisDenoiser.get_sigmas);
//  - karras:      Karras et al. 2022 eq. 5, (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho
//                 (k-diffusion get_sigmas_karras);
//  - exponential: uniform in log sigma (get_sigmas_exponential);
//  - sgm_uniform: t uniform from the t of sigma_max to that of sigma_min with n + 1 points, the last
//                 dropped (ComfyUI normal_scheduler(sgm=True), as Stability's sgm code);
//  - simple:      every (T/n)-th entry of the model's sigma table from the top (ComfyUI simple_scheduler).
// sigma_min / sigma_max default to the model's (CompVisDenoiser sigma_min / sigma_max).
// What it is not: no sampler, no model.

import { ConfigError } from '../util/index.ts';
import { f32, torchLinspace } from './float-emulation.ts';
import type { DiscreteSigmas } from './k-denoiser.ts';

export type SigmaScheduleName = 'discrete' | 'karras' | 'exponential' | 'sgm_uniform' | 'simple';

export interface SigmaScheduleOptions {
  sigmaMin?: number;
  sigmaMax?: number;
  /** Karras rho (default 7) */
  rho?: number;
}

/** `get_sigmas_karras(n, sigma_min, sigma_max, rho)`. [n + 1] */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): Float64Array {
  const ramp = torchLinspace(0, 1, n, 'float32');
  const minInv = sigmaMin ** (1 / rho), maxInv = sigmaMax ** (1 / rho); // python floats
  const out = new Float64Array(n + 1);
  const d = f32(minInv - maxInv), m = f32(maxInv), r = f32(rho);
  for (let i = 0; i < n; i++) out[i] = f32(Math.pow(f32(m + f32(ramp[i]! * d)), r));
  return out;
}

/** `get_sigmas_exponential(n, sigma_min, sigma_max)`. [n + 1] */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): Float64Array {
  const ls = torchLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n, 'float32');
  const out = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) out[i] = f32(Math.exp(ls[i]!));
  return out;
}

/** ComfyUI `normal_scheduler(sgm=True)`: t from timestep(sigma_max) to timestep(sigma_min). [n + 1] */
export function sgmUniformSigmas(n: number, sched: DiscreteSigmas, sigmaMin = sched.sigmaMin, sigmaMax = sched.sigmaMax): Float64Array {
  const start = sched.sigmaToT(sigmaMax, true), end = sched.sigmaToT(sigmaMin, true);
  const ts = torchLinspace(start, end, n + 1, 'float32');
  const out = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) out[i] = sched.tToSigma(Math.min(sched.T - 1, Math.max(0, ts[i]!)));
  return out;
}

/** ComfyUI `simple_scheduler`: sigmas[-(1 + int(i * T / n))]. [n + 1] */
export function simpleSigmas(n: number, sched: DiscreteSigmas): Float64Array {
  const ss = sched.T / n;
  const out = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) out[i] = sched.sigmas[sched.T - 1 - Math.trunc(i * ss)]!;
  return out;
}

export const SIGMA_SCHEDULES: readonly SigmaScheduleName[] = ['discrete', 'karras', 'exponential', 'sgm_uniform', 'simple'];

/** The n + 1 sigmas of a named schedule on a model's discrete levels. */
export function sigmaSchedule(name: SigmaScheduleName, n: number, sched: DiscreteSigmas, o: SigmaScheduleOptions = {}): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--steps must be a positive integer, got ${n}`);
  const sMin = o.sigmaMin ?? sched.sigmaMin, sMax = o.sigmaMax ?? sched.sigmaMax;
  if (!(sMin > 0 && sMax > sMin)) throw new ConfigError(`sigma schedule: need 0 < sigma_min < sigma_max, got ${sMin}, ${sMax}`);
  switch (name) {
    case 'discrete': return sched.getSigmas(n);
    case 'karras': return karrasSigmas(n, sMin, sMax, o.rho ?? 7);
    case 'exponential': return exponentialSigmas(n, sMin, sMax);
    case 'sgm_uniform': return sgmUniformSigmas(n, sched, sMin, sMax);
    case 'simple': return simpleSigmas(n, sched);
    default: throw new ConfigError(`--scheduler must be one of ${SIGMA_SCHEDULES.join(', ')}, got '${String(name)}'`);
  }
}
