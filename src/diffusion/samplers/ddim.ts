// DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12), the
// `ddim` row of the sampler table, exactly as LDM's `DDIMSampler` (ldm/models/diffusion/ddim.py):
// the schedule of `make_schedule` (ddim-schedule.ts: timesteps shifted by +1, alphas_prev[0] =
// alphas_cumprod[0], sigmas from eta; or the model's own discretisation, GaussianDiffusion
// `ddimSchedule`), the loop of `ddim_sampling` / `decode` (img2img from t_start) and the step of
// `p_sample_ddim`, with classifier-free guidance (uncond first), inpainting masks and the
// x_inter / pred_x0 intermediates. What it is not: no model, no PLMS (plms.ts reuses the step).

import { ConfigError, Generator, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, clamp, div, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import type { DdimPlan, DdimSchedule } from '../schedules.ts';
import { fullT, type GaussianDiffusion } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import type { Denoiser } from '../types.ts';
import type { SampleOptions, Sampler, SamplerIntermediates, SamplerResult } from './types.ts';

const f32 = Math.fround;

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
 * `DDIMSampler.sample` + `ddim_sampling` (or `decode(x, cond, t_start)` with tStart):
 *  1. make_schedule(S, discretize, eta) on the model's float32 alphas_cumprod;
 *  2. img = x_T; intermediates = {x_inter: [img], pred_x0: [img]};
 *  3. for i, step in enumerate(flip(ddim_timesteps[:t_start])): index = t_start - i - 1,
 *     ts = full(B, step); (mask: img = q_sample(x0, ts) mask + (1 - mask) img); model (with
 *     guidance) -> e_t; DDIM update at `index`; log when index % log_every_t == 0 or index == t_start - 1.
 */
export const ddim: Sampler = (denoiser, diffusion, o) =>
  noGrad(() => ddimLoop(denoiser, diffusion, diffusion.ddimSchedule(o.steps ?? 50, o.eta ?? 0, o.discretize ?? 'uniform'), o));

/** The `ddim_sampling` loop over a prepared DDIM schedule. */
export function ddimLoop(denoiser: Denoiser, diffusion: GaussianDiffusion, schedule: DdimPlan, o: SampleOptions): SamplerResult {
  const gen = o.gen ?? defaultGenerator;
  const guided = cfgDenoiser(denoiser, { uncond: o.uncond, scale: o.guidance ?? 1 });
  const param = epsParameterization('ddim', diffusion);
  const every = o.logEvery ?? 100;
  let img = o.xT ?? randn(o.shape, gen);
  const B = img.shape[0]!;
  const steps = schedule.ddim_timesteps;
  const S = steps.length;
  const total = o.tStart ?? S;
  if (!Number.isInteger(total) || total < 1 || total > S) throw new ConfigError(`ddim: tStart must be an integer in [1, ${S}], got ${total}`);
  const intermediates: SamplerIntermediates = { x_inter: [img], pred_x0: [img] };
  if (o.mask && !o.x0) throw new ConfigError('ddim: mask given without x0');
  for (let i = 0; i < total; i++) {
    const index = total - i - 1;
    const step = steps[index]!;
    const ts = fullT(B, step);
    if (o.mask && o.x0) {
      const orig = qSampleFromAlphas(diffusion.alphasCumprod, o.x0, step, randn(o.x0.shape, gen));
      img = add(mul(orig, o.mask), mul(sub(1, o.mask), img));
    }
    const out = guided(img, ts, o.cond);
    const k = ddimStepScalars(schedule, index);
    const { eT, predX0 } = ddimEpsAndX0(img, out, k, param, o.clipDenoised ?? false);
    if (index === 0 && schedule.finalToX0) {
      img = predX0; // lucidrains: time_next < 0 -> img = x_start, no draw
    } else {
      const z = stepNoise(img.shape, i, o.noises, gen);
      img = ddimUpdate(eT, predX0, k, z, o.temperature ?? 1);
    }
    o.onStep?.({ i, total, t: step, x: img, predX0 });
    if (index % every === 0 || index === total - 1) {
      intermediates.x_inter.push(img);
      intermediates.pred_x0.push(predX0);
    }
  }
  return { samples: img, intermediates };
}

/** The schedule's parameterization where a sampler needs eps, x0 or v. */
export function epsParameterization(sampler: string, diffusion: GaussianDiffusion): 'eps' | 'x0' | 'v' {
  const p = diffusion.parameterization;
  if (p === 'xprev') throw new ConfigError(`${sampler}: a model predicting x_{t-1} (xprev) can only be sampled by the ancestral sampler 'ddpm'`);
  return p;
}
