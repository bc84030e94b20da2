// The Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models")
// view of a discrete-time DDPM, as k-diffusion's `external.CompVisDenoiser` /
// `CompVisVDenoiser` build it: the model's float32 alphas_cumprod become noise levels
// sigma_t = sqrt((1 - abar_t) / abar_t), x_sigma = x_0 + sigma * n, and the network becomes a
// function D(x, sigma) -> x_0 estimate ("denoised"):
//  1. t = sigma_to_t(sigma): linear interpolation of log sigma on the discrete grid (fractional t),
//     or the nearest grid index when quantized;
//  2. c_in = 1 / sqrt(sigma^2 + 1): the network sees x * c_in = the VP-scaled x_t;
//  3. eps model:  D = x - sigma * eps;
//     v model:    D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * v;
//     x0 model:   D = the output.
// Classifier-free guidance on D (uncond first: cat([uc, c]), u + s (c - u)), and inpainting by
// masked sampling (the kept region re-noised to the current sigma). Float32 arithmetic of the
// torch buffers is reproduced with Math.fround. What it is not: no sampler (samplers/k-diffusion.ts).

import { ConfigError } from '../util/index.ts';
import { Tensor, add, cat, chunk, clamp, mul, sub } from '../tensor/index.ts';
import { f32, torchLinspace } from './float-emulation.ts';
import { catCond } from './guidance.ts';
import type { Cond, Denoiser } from './types.ts';

/** D(x, sigma): the denoised estimate of x at noise level sigma (conditioning bound). x [B, C, H, W] */
export type SigmaDenoiser = (x: Tensor, sigma: number) => Tensor;

/**
 * k-diffusion `DiscreteSchedule` over a model's alphas_cumprod: `sigmas` ascending in t (float32
 * values), `log_sigmas`, and the maps between sigma and (fractional) t.
 */
export class DiscreteSigmas {
  /** sigma_t for t = 0..T-1, float32 values. [T] */
  readonly sigmas: Float64Array;
  /** log sigma_t, float32 values. [T] */
  readonly logSigmas: Float64Array;

  constructor(alphasCumprod: ArrayLike<number>) {
    const T = alphasCumprod.length;
    if (T < 2) throw new ConfigError(`DiscreteSigmas: alphas_cumprod needs at least 2 entries, got ${T}`);
    this.sigmas = new Float64Array(T);
    this.logSigmas = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      const a = f32(alphasCumprod[i]!);
      if (!(a > 0 && a < 1)) throw new ConfigError(`DiscreteSigmas: alphas_cumprod[${i}] = ${a} is outside (0, 1)`);
      this.sigmas[i] = f32(Math.sqrt(f32(f32(1 - a) / a))); // ((1 - ac) / ac) ** 0.5
      this.logSigmas[i] = f32(Math.log(this.sigmas[i]!));
    }
  }

  get T(): number { return this.sigmas.length; }
  get sigmaMin(): number { return this.sigmas[0]!; }
  get sigmaMax(): number { return this.sigmas[this.T - 1]!; }

  /** `sigma_to_t(sigma, quantize)`: fractional t (float32) by log-linear interpolation, clamped to [0, T-1]. */
  sigmaToT(sigma: number, quantize = false): number {
    const ls = f32(Math.log(f32(sigma)));
    const L = this.logSigmas;
    if (quantize) {
      let best = 0;
      for (let i = 1; i < L.length; i++) if (Math.abs(f32(ls - L[i]!)) < Math.abs(f32(ls - L[best]!))) best = i;
      return best;
    }
    // low_idx = last i with log_sigmas[i] <= log_sigma (0 when none), at most T-2
    let count = 0;
    for (let i = 0; i < L.length; i++) if (f32(ls - L[i]!) >= 0) count++;
    const low = Math.min(Math.max(count - 1, 0), L.length - 2);
    const lo = L[low]!, hi = L[low + 1]!;
    let w = f32(f32(lo - ls) / f32(lo - hi));
    w = Math.min(1, Math.max(0, w));
    return f32(f32(f32(1 - w) * low) + f32(w * (low + 1)));
  }

  /** `t_to_sigma(t)`: exp of the linear interpolation of log sigma between floor(t) and ceil(t). */
  tToSigma(t: number): number {
    const tf = f32(t);
    const lo = Math.floor(tf), hi = Math.ceil(tf), w = f32(tf - lo);
    const L = this.logSigmas;
    if (lo < 0 || hi >= L.length) throw new ConfigError(`t_to_sigma: t = ${t} is outside [0, ${L.length - 1}]`);
    return f32(Math.exp(f32(f32(f32(1 - w) * L[lo]!) + f32(w * L[hi]!))));
  }

  /** `get_sigmas(n)`: n sigmas at t = linspace(T-1, 0, n) (float32), then a trailing zero. n absent: every sigma. */
  getSigmas(n?: number): Float64Array {
    if (n === undefined) {
      const out = new Float64Array(this.T + 1);
      for (let i = 0; i < this.T; i++) out[i] = this.sigmas[this.T - 1 - i]!;
      return out;
    }
    const ts = torchLinspace(this.T - 1, 0, n, 'float32');
    const out = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) out[i] = this.tToSigma(ts[i]!);
    return out;
  }
}

export interface KDenoiserOptions {
  /** what the network predicts (LDM `parameterization`) */
  parameterization?: 'eps' | 'v' | 'x0';
  /** give the network the nearest integer timestep instead of a fractional one (default false, as CompVisDenoiser) */
  quantize?: boolean;
  cond?: Cond | undefined;
  /** unconditional conditioning for classifier-free guidance */
  uncond?: Cond | undefined;
  /** `unconditional_guidance_scale` (default 1: one call on cond) */
  guidanceScale?: number;
  /** clamp D to [-1, 1] (pixel-space models trained with clip_denoised; k-diffusion never clamps) */
  clipDenoised?: boolean;
  /** inpainting: where mask == 1 the input is replaced by x0 + sigma * noise(sigma) before each call */
  mask?: Tensor | undefined;
  /** the known image (model space), with mask. [B, C, H, W] */
  x0?: Tensor | undefined;
  /** the unit noise used to re-noise the known region (fixed per run, as A1111 / ComfyUI) */
  maskNoise?: Tensor | undefined;
  /** every network call: (x_in, t, output) */
  onCall?: (x: Tensor, t: number, out: Tensor) => void;
}

/**
 * A CompVisDenoiser: steps 1-3 above over a diffusion/ Denoiser (network output at integer or
 * fractional t), with guidance and masking.
 */
export function compVisDenoiser(denoiser: Denoiser, sched: DiscreteSigmas, o: KDenoiserOptions = {}): SigmaDenoiser {
  const param = o.parameterization ?? 'eps';
  const scale = o.guidanceScale ?? 1;
  const guided = o.uncond !== undefined && scale !== 1;
  if (guided && !o.cond) throw new ConfigError('compVisDenoiser: guidance needs the conditional conditioning as well as the unconditional');
  if (o.mask && (!o.x0 || !o.maskNoise)) throw new ConfigError('compVisDenoiser: mask given without x0 and its noise');
  const cIn = o.uncond && o.cond && guided ? catCond(o.uncond, o.cond) : o.cond;
  return (xRaw, sigma) => {
    let x = xRaw;
    if (o.mask && o.x0 && o.maskNoise) x = add(mul(add(o.x0, mul(o.maskNoise, f32(sigma))), o.mask), mul(sub(1, o.mask), x));
    const B = x.shape[0]!;
    const s = f32(sigma);
    const c_in = f32(1 / f32(Math.sqrt(f32(f32(s * s) + 1)))); // 2.
    const t = sched.sigmaToT(s, o.quantize ?? false); // 1.
    const xs = guided ? cat([x, x], 0) : x;
    const n = xs.shape[0]!;
    const tT = o.quantize ? new Tensor(new Float64Array(n).fill(t), [n], 'int64') : new Tensor(new Float32Array(n).fill(t), [n], 'float32');
    const xIn = mul(xs, c_in);
    const out = denoiser(xIn, tT, cIn);
    o.onCall?.(xIn, t, out);
    let d: Tensor; // 3.
    if (param === 'eps') d = add(xs, mul(out, -s));
    else if (param === 'v') {
      const c_skip = f32(1 / f32(f32(s * s) + 1));
      const c_out = f32(f32(-s) / f32(Math.sqrt(f32(f32(s * s) + 1))));
      d = add(mul(out, c_out), mul(xs, c_skip));
    } else d = out;
    if (guided) {
      const [u, c] = chunk(d, 2, 0) as [Tensor, Tensor];
      d = add(u, mul(sub(c, u), scale));
    }
    if (d.shape[0] !== B) throw new ConfigError(`compVisDenoiser: network returned batch ${d.shape[0]} for ${B}`);
    return o.clipDenoised ? clamp(d, -1, 1) : d;
  };
}
