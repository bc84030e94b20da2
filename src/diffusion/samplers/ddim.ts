// DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12) exactly
// as LDM's `DDIMSampler` (ldm/models/diffusion/ddim.py): the schedule of
// `make_schedule` (schedules.ts `makeDdimSchedule`: timesteps shifted by +1, alphas_prev[0] =
// alphas_cumprod[0], sigmas from eta), the loop of `ddim_sampling` and the step of
// `p_sample_ddim`, with classifier-free guidance (uncond first) and the x_inter / pred_x0
// intermediates. A function of a Denoiser callback and the model's float32 alphas_cumprod.
// What it is not: no model, no PLMS (plms.ts reuses `ddimStep`).

import { ConfigError, Generator, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, clamp, div, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import { makeDdimSchedule, type DdimDiscretize, type DdimSchedule } from '../schedules.ts';
import { fullT } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import type { Cond, Denoiser } from '../types.ts';

const f32 = Math.fround;

/** What DDIM reads from the model: its float32 `alphas_cumprod` / `alphas_cumprod_prev` buffers. */
export interface DdimModelSchedule {
  alphas_cumprod: ArrayLike<number>;
  alphas_cumprod_prev: ArrayLike<number>;
}

export interface DdimSampleOptions {
  /** number of DDIM steps S */
  S: number;
  /** [B, C, H, W] */
  shape: readonly number[];
  eta?: number;
  discretize?: DdimDiscretize;
  cond?: Cond;
  /** unconditional conditioning for classifier-free guidance */
  uncond?: Cond;
  /** `unconditional_guidance_scale` (default 1) */
  guidanceScale?: number;
  /** x_T (else randn(shape) from gen) */
  xT?: Tensor;
  gen?: Generator;
  /** per-step standard normal noises (step i uses noises[i]); else drawn from gen every step */
  noises?: readonly Tensor[];
  /** default 100, as `DDIMSampler.sample` */
  logEveryT?: number;
  temperature?: number;
  /** what the denoiser predicts: 'eps' (official), 'x0' or 'v' (Stability-AI ddim.py) */
  parameterization?: 'eps' | 'x0' | 'v';
  /** clamp pred_x0 to [-1, 1] and re-derive eps (not in the official LDM sampler; default false) */
  clipDenoised?: boolean;
  /** inpainting: keep q_sample(x0, t) where mask == 1 (noise drawn from gen before the model call) */
  mask?: Tensor;
  x0?: Tensor;
  callback?: (i: number, img: Tensor, predX0: Tensor) => void;
}

export interface SamplerIntermediates {
  x_inter: Tensor[];
  pred_x0: Tensor[];
}

export interface SamplerResult {
  samples: Tensor;
  intermediates: SamplerIntermediates;
}

/** The float32 scalars of one step, as `torch.full((b,1,1,1), ...)` makes them. */
export interface DdimStepScalars {
  aT: number;
  aPrev: number;
  sigma: number;
  sqrtOneMinusAT: number;
}

export function ddimStepScalars(s: DdimSchedule, index: number): DdimStepScalars {
  return {
    aT: f32(s.ddim_alphas[index]!),
    aPrev: f32(s.ddim_alphas_prev[index]!),
    sigma: f32(s.ddim_sigmas[index]!),
    sqrtOneMinusAT: f32(s.ddim_sqrt_one_minus_alphas[index]!),
  };
}

/** eps and pred_x0 from a model output under a parameterization, at DDIM scalars. */
export function ddimEpsAndX0(x: Tensor, out: Tensor, k: DdimStepScalars, parameterization: 'eps' | 'x0' | 'v',
  clip = false): { eT: Tensor; predX0: Tensor } {
  const sqrtA = f32(Math.sqrt(k.aT));
  let eT: Tensor, predX0: Tensor;
  if (parameterization === 'eps') {
    eT = out;
    predX0 = div(sub(x, mul(eT, k.sqrtOneMinusAT)), sqrtA); // (x - sqrt(1-a_t) e_t) / sqrt(a_t)
  } else if (parameterization === 'v') {
    eT = add(mul(out, sqrtA), mul(x, k.sqrtOneMinusAT)); // predict_eps_from_z_and_v
    predX0 = sub(mul(x, sqrtA), mul(out, k.sqrtOneMinusAT)); // predict_start_from_z_and_v
  } else {
    predX0 = out;
    eT = div(sub(x, mul(predX0, sqrtA)), k.sqrtOneMinusAT);
  }
  if (clip) {
    predX0 = clamp(predX0, -1, 1);
    eT = div(sub(x, mul(predX0, sqrtA)), k.sqrtOneMinusAT);
  }
  return { eT, predX0 };
}

/**
 * One DDIM update (Song et al. eq. 12), `p_sample_ddim` after the model call:
 *  1. pred_x0 = (x - sqrt(1 - a_t) e_t) / sqrt(a_t)        (given)
 *  2. dir_xt  = sqrt(1 - a_prev - sigma_t^2) e_t           ("direction pointing to x_t")
 *  3. noise   = sigma_t z temperature
 *  4. x_prev  = sqrt(a_prev) pred_x0 + dir_xt + noise
 */
export function ddimUpdate(eT: Tensor, predX0: Tensor, k: DdimStepScalars, z: Tensor, temperature = 1): Tensor {
  const dirCoef = f32(Math.sqrt(f32(f32(1 - k.aPrev) - f32(k.sigma * k.sigma))));
  const dirXt = mul(eT, dirCoef); // 2.
  let noise = mul(z, k.sigma); // 3.
  if (temperature !== 1) noise = mul(noise, temperature);
  return add(add(mul(predX0, f32(Math.sqrt(k.aPrev))), dirXt), noise); // 4.
}

/** q_sample(x0, t) with the model's float32 alphas_cumprod (inpainting masks). */
export function qSampleFromAlphas(alphasCumprod: ArrayLike<number>, x0: Tensor, t: number, noise: Tensor): Tensor {
  const a = f32(alphasCumprod[t]!);
  return add(mul(x0, f32(Math.sqrt(a))), mul(noise, f32(Math.sqrt(f32(1 - a)))));
}

/** Resolve the step noise: the given list, else a fresh draw (always drawn, as torch does). */
export function stepNoise(shape: readonly number[], step: number, noises: readonly Tensor[] | undefined, gen: Generator): Tensor {
  const n = noises?.[step];
  if (noises && !n) throw new ConfigError(`sampler: ${noises.length} step noises given, step ${step} needs one more`);
  return n ?? randn(shape, gen);
}

/**
 * `DDIMSampler.sample` + `ddim_sampling`:
 *  1. make_schedule(S, discretize, eta) on the model's alphas_cumprod;
 *  2. img = x_T; intermediates = {x_inter: [img], pred_x0: [img]};
 *  3. for i, step in enumerate(flip(ddim_timesteps)): index = S - i - 1, ts = full(B, step);
 *     (mask: img = q_sample(x0, ts) mask + (1 - mask) img); model (with guidance) -> e_t;
 *     DDIM update at `index`; log when index % log_every_t == 0 or index == S - 1.
 */
export function ddimSample(denoiser: Denoiser, model: DdimModelSchedule, opts: DdimSampleOptions): SamplerResult & { schedule: DdimSchedule } {
  return noGrad(() => {
    const eta = opts.eta ?? 0;
    const schedule = makeDdimSchedule(model, { ddimNumSteps: opts.S, ddimDiscretize: opts.discretize ?? 'uniform', ddimEta: eta });
    const r = ddimLoop(denoiser, model, schedule, opts);
    return { ...r, schedule };
  });
}

/** The `ddim_sampling` loop over a prepared schedule (shared with callers that make their own). */
export function ddimLoop(denoiser: Denoiser, model: DdimModelSchedule, schedule: DdimSchedule, opts: DdimSampleOptions): SamplerResult {
  const gen = opts.gen ?? defaultGenerator;
  const guided = cfgDenoiser(denoiser, { uncond: opts.uncond, scale: opts.guidanceScale ?? 1 });
  const param = opts.parameterization ?? 'eps';
  const every = opts.logEveryT ?? 100;
  let img = opts.xT ?? randn(opts.shape, gen);
  const B = img.shape[0]!;
  const steps = schedule.ddim_timesteps;
  const total = steps.length;
  const intermediates: SamplerIntermediates = { x_inter: [img], pred_x0: [img] };
  if (opts.mask && !opts.x0) throw new ConfigError('ddim: mask given without x0');
  for (let i = 0; i < total; i++) {
    const index = total - i - 1;
    const step = steps[index]!;
    const ts = fullT(B, step);
    if (opts.mask && opts.x0) {
      const orig = qSampleFromAlphas(model.alphas_cumprod, opts.x0, step, randn(opts.x0.shape, gen));
      img = add(mul(orig, opts.mask), mul(sub(1, opts.mask), img));
    }
    const out = guided(img, ts, opts.cond);
    const k = ddimStepScalars(schedule, index);
    const { eT, predX0 } = ddimEpsAndX0(img, out, k, param, opts.clipDenoised ?? false);
    const z = stepNoise(img.shape, i, opts.noises, gen);
    img = ddimUpdate(eT, predX0, k, z, opts.temperature ?? 1);
    opts.callback?.(i, img, predX0);
    if (index % every === 0 || index === total - 1) {
      intermediates.x_inter.push(img);
      intermediates.pred_x0.push(predX0);
    }
  }
  return { samples: img, intermediates };
}
