// The k-diffusion sampler table and the one driver every model samples them through:
//  1. sigmas = the named schedule on the model's discrete levels (sigma-schedules.ts), or given;
//     image-to-image (SDEdit, Meng et al. 2022) keeps the last round(strength * steps) of them;
//  2. D = CompVisDenoiser over the Denoiser (k-denoiser.ts), with guidance and the inpainting mask;
//  3. x = x_T * sigmas[0] (+ x0 for image-to-image), then the sampler row;
//  4. inpainting: the kept region is pasted back exactly (mask == 1 keeps x0).
// Adding a sampler is one function and one row of K_SAMPLERS. What it is not: no model, no files.

import { ConfigError, Generator, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import { DiscreteSigmas, compVisDenoiser } from '../k-denoiser.ts';
import { sigmaSchedule, type SigmaScheduleName } from '../sigma-schedules.ts';
import type { Cond, Denoiser } from '../types.ts';
import {
  sampleDpm2, sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmpp3mSde, sampleEuler,
  sampleEulerAncestral, sampleHeun, sampleLms, type KSampler, type KSamplerOptions,
} from './k-diffusion.ts';
import { sampleUniPc } from './unipc.ts';

/** name -> sampler; what each reads of eta / s_noise / churn / solver_type / order. */
export const K_SAMPLERS = {
  euler: sampleEuler,
  euler_a: sampleEulerAncestral,
  heun: sampleHeun,
  dpm2: sampleDpm2,
  dpmpp_2s_a: sampleDpmpp2sAncestral,
  dpmpp_2m: sampleDpmpp2m,
  dpmpp_2m_sde: sampleDpmpp2mSde,
  dpmpp_3m_sde: sampleDpmpp3mSde,
  lms: sampleLms,
  unipc: sampleUniPc,
} as const satisfies Record<string, KSampler>;

export type KSamplerName = keyof typeof K_SAMPLERS;
export const K_SAMPLER_NAMES = Object.keys(K_SAMPLERS) as KSamplerName[];
/** the samplers that take eta (ancestral / SDE noise) */
export const K_SAMPLERS_WITH_ETA: readonly KSamplerName[] = ['euler_a', 'dpmpp_2s_a', 'dpmpp_2m_sde', 'dpmpp_3m_sde'];

export function isKSampler(name: string): name is KSamplerName {
  return Object.prototype.hasOwnProperty.call(K_SAMPLERS, name);
}

export interface KSampleOptions {
  sampler: KSamplerName;
  /** default 'karras' */
  scheduler?: SigmaScheduleName;
  steps: number;
  /** [B, C, H, W] */
  shape: readonly number[];
  cond?: Cond | undefined;
  uncond?: Cond | undefined;
  guidanceScale?: number;
  parameterization?: 'eps' | 'v' | 'x0';
  /** integer timesteps for the network (models that index tables by t) */
  quantize?: boolean;
  clipDenoised?: boolean;
  /** explicit sigmas [n + 1] (instead of scheduler / steps) */
  sigmas?: ArrayLike<number>;
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  eta?: number;
  sNoise?: number;
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  solverType?: 'midpoint' | 'heun';
  order?: number;
  gen?: Generator;
  /** unit-normal x_T (else drawn first from gen) */
  xT?: Tensor;
  /** the sampler's Gaussian draws in order (else drawn from gen) */
  noises?: readonly Tensor[];
  /** image-to-image / inpainting: the known image in model space. [B, C, H, W] */
  x0?: Tensor;
  /** image-to-image: fraction of the schedule to run (1 = from pure noise) */
  strength?: number;
  /** inpainting: 1 = keep x0, 0 = generate. [B or 1, 1 or C, H, W] */
  mask?: Tensor;
  /** every model call: the network input and output (parity fixtures) */
  onCall?: (x: Tensor, t: number, out: Tensor) => void;
  /** after every step: (step, total) */
  onStep?: (i: number, total: number) => void;
}

export interface KSampleResult {
  samples: Tensor;
  /** the sigmas run, with the trailing zero */
  sigmas: Float64Array;
  /** the denoised prediction at each step (as k-diffusion's callback reports it) */
  denoised: Tensor[];
  /** x at each step, before the update */
  xs: Tensor[];
}

/** Steps 1-4 above. */
export function kSample(denoiser: Denoiser, alphasCumprod: ArrayLike<number>, o: KSampleOptions): KSampleResult {
  return noGrad(() => {
    const row = K_SAMPLERS[o.sampler];
    if (!row) throw new ConfigError(`unknown sampler '${String(o.sampler)}' (${K_SAMPLER_NAMES.join(', ')})`);
    const gen = o.gen ?? defaultGenerator;
    const sched = new DiscreteSigmas(alphasCumprod);
    let sigmas = o.sigmas ? Float64Array.from(o.sigmas) : sigmaSchedule(o.scheduler ?? 'karras', o.steps, sched, {
      ...(o.sigmaMin !== undefined ? { sigmaMin: o.sigmaMin } : {}), ...(o.sigmaMax !== undefined ? { sigmaMax: o.sigmaMax } : {}),
      ...(o.rho !== undefined ? { rho: o.rho } : {}),
    });
    const strength = o.strength ?? 1;
    if (!(strength > 0 && strength <= 1)) throw new ConfigError(`--strength must be in (0, 1], got ${strength}`);
    if (strength < 1) { // 1. SDEdit: the last round(strength * n) steps
      if (!o.x0) throw new ConfigError('image-to-image (strength < 1) needs the initial image');
      const n = sigmas.length - 1;
      const run = Math.max(1, Math.min(n, Math.round(strength * n)));
      sigmas = sigmas.slice(n - run);
    }
    if (o.mask && !o.x0) throw new ConfigError('inpainting: a mask needs the initial image');
    const xT = o.xT ?? randn(o.shape, gen);
    let k = 0;
    const noise = (): Tensor => {
      if (o.noises) {
        const z = o.noises[k++];
        if (!z) throw new ConfigError(`sampler ${o.sampler}: ${o.noises.length} noise draws given, it needs more`);
        return z;
      }
      return randn(xT.shape, gen);
    };
    const maskNoise = o.mask ? noise() : undefined;
    const model = compVisDenoiser(denoiser, sched, { // 2.
      parameterization: o.parameterization ?? 'eps', quantize: o.quantize ?? false, cond: o.cond, uncond: o.uncond,
      guidanceScale: o.guidanceScale ?? 1, clipDenoised: o.clipDenoised ?? false, mask: o.mask, x0: o.x0, maskNoise,
      ...(o.onCall ? { onCall: o.onCall } : {}),
    });
    let x = mul(xT, sigmas[0]!); // 3.
    if (strength < 1 && o.x0) x = add(o.x0, x);
    const denoised: Tensor[] = [], xs: Tensor[] = [];
    const total = sigmas.length - 1;
    const opts: KSamplerOptions = {
      noise,
      callback: (info) => { denoised.push(info.denoised); xs.push(info.x); o.onStep?.(Math.min(info.i + 1, total), total); },
      ...(o.eta !== undefined ? { eta: o.eta } : {}), ...(o.sNoise !== undefined ? { sNoise: o.sNoise } : {}),
      ...(o.sChurn !== undefined ? { sChurn: o.sChurn } : {}), ...(o.sTmin !== undefined ? { sTmin: o.sTmin } : {}),
      ...(o.sTmax !== undefined ? { sTmax: o.sTmax } : {}), ...(o.solverType ? { solverType: o.solverType } : {}),
      ...(o.order !== undefined ? { order: o.order } : {}),
    };
    let samples = row(model, x, sigmas, opts);
    if (o.mask && o.x0) samples = add(mul(o.x0, o.mask), mul(sub(1, o.mask), samples)); // 4.
    return { samples, sigmas, denoised, xs };
  });
}
