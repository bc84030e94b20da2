// The one signature every sampler of the table (samplers/index.ts) has:
//   (denoiser, schedule, options) => { samples, intermediates }
// `denoiser` is the model as a Denoiser callback (types.ts); `schedule` is the model's
// GaussianDiffusion (gaussian.ts): its float32 buffers (alphas_cumprod, ...), what the denoiser
// predicts (parameterization), the variance and clipping of the ancestral step, and the
// code-base quirks that are data (noise at the last step, its own DDIM discretisation).
// `options` carries everything that varies per call. A sampler reads the fields it understands
// and rejects (ConfigError) those it cannot honour, so a caller never gets a silently different
// sampling. What it is not: no sampler (those are the sibling files), no model.

import type { Generator } from '../../util/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import type { DdimDiscretize } from '../ddim-schedule.ts';
import type { GaussianDiffusion } from '../gaussian.ts';
import type { Cond, Denoiser } from '../types.ts';
import type { SigmaScheduleName } from '../sigma-schedules.ts';

/** What a sampler reports after each step (progress bars, previews). */
export interface StepInfo {
  /** 0-based index of the step just taken */
  i: number;
  /** steps this call takes */
  total: number;
  /** the model timestep of the step (integer on the model's grid) */
  t: number;
  /** the new sample [B, C, H, W] */
  x: Tensor;
  /** the sampler's x0 estimate at this step [B, C, H, W] */
  predX0: Tensor;
}

export interface SampleOptions {
  /** [B, C, H, W] of x_T */
  shape: readonly number[];
  /** sampler steps (model evaluations for ddim / plms / dpm-solver++; default 50). The ancestral
   *  sampler always walks the model's full chain of numTimesteps steps (see tStart). */
  steps?: number;
  /** conditioning as the Denoiser takes it */
  cond?: Cond;
  /** the unconditional (null / negative) conditioning for classifier-free guidance */
  uncond?: Cond;
  /** classifier-free guidance scale (`unconditional_guidance_scale`, default 1 = off) */
  guidance?: number;
  /** random source of x_T and of every draw not given below (default: the global generator) */
  gen?: Generator;
  /** the starting sample (else randn(shape) from gen); with tStart: the image noised to that step */
  xT?: Tensor;
  /** per-step standard normal noises (step i of this call uses noises[i]; PLMS: in draw order) */
  noises?: readonly Tensor[];
  /** inpainting: keep q_sample(x0, t) where mask == 1 at every step; needs x0. mask [B, 1|C, H, W] */
  mask?: Tensor;
  /** inpainting: the known image [B, C, H, W] */
  x0?: Tensor;
  /** img2img: run only the last tStart steps of the sampler's schedule (LDM `start_T` for the
   *  ancestral chain, `DDIMSampler.decode(t_start)` for DDIM), starting from xT */
  tStart?: number;
  /** DDIM eta (0 = deterministic); PLMS requires 0 */
  eta?: number;
  /** DDIM / PLMS timestep spacing (default 'uniform') */
  discretize?: DdimDiscretize;
  /** clamp x0 estimates to [-1, 1] (ancestral default: the schedule's clipDenoised; others: false) */
  clipDenoised?: boolean;
  /** noise multiplier (LDM `temperature`, default 1) */
  temperature?: number;
  /** keep an intermediate every this many steps (ancestral: timesteps; default per sampler) */
  logEvery?: number;
  /** ancestral only: log x0 estimates instead of x_t (LDM `progressive_denoising`) */
  progressive?: boolean;
  onStep?: (info: StepInfo) => void;
  // ---- the k-diffusion rows (k-sample.ts); other rows reject them ----
  /** sigma schedule (default 'karras') */
  scheduler?: SigmaScheduleName;
  /** give the denoiser the nearest integer timestep (models that index tables by t; default false) */
  quantize?: boolean;
  /** scale of the added noise (ancestral / SDE / churn; default 1) */
  sNoise?: number;
  /** Karras churn of euler / heun / dpm2 (default 0), applied where s_tmin <= sigma <= s_tmax */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  /** dpmpp_2m_sde: 'midpoint' (default) or 'heun' */
  solverType?: 'midpoint' | 'heun';
  /** lms order (default 4) */
  lmsOrder?: number;
  /** karras / exponential range (default: the model's) and Karras rho (default 7) */
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
}

export interface SamplerIntermediates {
  /** x_T, then x_t at the logged steps */
  x_inter: Tensor[];
  /** x_T, then the x0 estimates at the logged steps */
  pred_x0: Tensor[];
}

export interface SamplerResult {
  samples: Tensor;
  intermediates: SamplerIntermediates;
}

/** The signature of every row of the sampler table. */
export type Sampler = (denoiser: Denoiser, schedule: GaussianDiffusion, opts: SampleOptions) => SamplerResult;
