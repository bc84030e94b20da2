// The k-diffusion samplers as rows of the sampler table (samplers/index.ts), through one driver:
//  1. sigmas = the named schedule on the model's discrete levels (sigma-schedules.ts), or given;
//     image-to-image (tStart): the last tStart of them, starting from the VP-noised image xT;
//  2. D = CompVisDenoiser over the Denoiser (k-denoiser.ts), with guidance and the inpainting mask;
//  3. x = x_T * sigmas[0] (k-diffusion's start; tStart: xT * sqrt(1 + sigma^2), the VP sample in
//     sigma space), then the sampler function;
//  4. inpainting: the kept region is pasted back exactly (mask == 1 keeps x0).
// Adding a k-sampler is one function, one entry of K_SAMPLERS and one row in samplers/index.ts.
// What it is not: no model, no files.

import { ConfigError, Generator, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import type { GaussianDiffusion } from '../gaussian.ts';
import { DiscreteSigmas, compVisDenoiser } from '../k-denoiser.ts';
import { sigmaSchedule, type SigmaScheduleName } from '../sigma-schedules.ts';
import type { Cond, Denoiser } from '../types.ts';
import {
  sampleDpm2, sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmpp3mSde, sampleEuler,
  sampleEulerAncestral, sampleHeun, sampleLms, type KSampler, type KSamplerOptions,
} from './k-diffusion.ts';
import { sampleUniPc } from './unipc.ts';
import type { Sampler, SamplerIntermediates } from './types.ts';

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
  /** inpainting: the known image in model space. [B, C, H, W] */
  x0?: Tensor;
  /** image-to-image: run the last tStart steps, from xT = the image noised (VP form) to that step */
  tStart?: number;
  /** inpainting: 1 = keep x0, 0 = generate. [B or 1, 1 or C, H, W] */
  mask?: Tensor;
  /** every model call: the network input and output (parity fixtures) */
  onCall?: (x: Tensor, t: number, out: Tensor) => void;
  /** after every step's model call: (step index, steps, x, sigma, denoised) */
  onDenoised?: (i: number, total: number, x: Tensor, sigma: number, denoised: Tensor) => void;
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
    const n = sigmas.length - 1;
    if (o.tStart !== undefined) { // 1. image-to-image: the last tStart steps
      if (!Number.isInteger(o.tStart) || o.tStart < 1 || o.tStart > n) throw new ConfigError(`${o.sampler}: tStart must be an integer in [1, ${n}], got ${o.tStart}`);
      if (!o.xT) throw new ConfigError(`${o.sampler}: tStart needs xT (the image noised to that step)`);
      sigmas = sigmas.slice(n - o.tStart);
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
    const s0 = sigmas[0]!;
    const x = o.tStart !== undefined ? mul(xT, Math.sqrt(1 + s0 * s0)) : mul(xT, s0); // 3.
    const denoised: Tensor[] = [], xs: Tensor[] = [];
    const total = sigmas.length - 1;
    const opts: KSamplerOptions = {
      noise,
      callback: (info) => { denoised.push(info.denoised); xs.push(info.x); o.onDenoised?.(Math.min(info.i, total - 1), total, info.x, info.sigma, info.denoised); },
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

/** The starting sigma of image-to-image with `tStart` of `steps` steps (to noise the image: sqrt(abar) x0 + sqrt(1 - abar) n, abar = 1 / (1 + sigma^2)). */
export function kStartSigma(diffusion: GaussianDiffusion, steps: number, tStart: number, o: Pick<KSampleOptions, 'scheduler' | 'sigmaMin' | 'sigmaMax' | 'rho'> = {}): number {
  const sched = new DiscreteSigmas(diffusion.alphasCumprod);
  const s = sigmaSchedule(o.scheduler ?? 'karras', steps, sched, defined({ sigmaMin: o.sigmaMin, sigmaMax: o.sigmaMax, rho: o.rho }));
  if (!Number.isInteger(tStart) || tStart < 1 || tStart > steps) throw new ConfigError(`tStart must be an integer in [1, ${steps}], got ${tStart}`);
  return s[steps - tStart]!;
}

function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/**
 * A row of the sampler table for a k-sampler: the table's options onto kSample; x_inter / pred_x0
 * hold x and the denoised estimate every `logEvery` steps (default: every step).
 */
export function kRow(name: KSamplerName): Sampler {
  return (denoiser, diffusion, o) => {
    if (o.discretize !== undefined || o.temperature !== undefined || o.progressive) {
      throw new ConfigError(`${name}: discretize / temperature / progressive are DDIM / ancestral options; the k-samplers take --scheduler`);
    }
    if (o.eta !== undefined && o.eta !== 1 && !K_SAMPLERS_WITH_ETA.includes(name)) throw new ConfigError(`${name} has no eta (samplers with eta: ${K_SAMPLERS_WITH_ETA.join(', ')})`);
    if (diffusion.parameterization === 'xprev') throw new ConfigError(`${name}: a model predicting x_{t-1} has no denoised estimate; use the ddpm sampler`);
    const steps = o.steps ?? 50;
    const sched = new DiscreteSigmas(diffusion.alphasCumprod);
    const every = Math.max(1, o.logEvery ?? 1);
    const r = kSample(denoiser, diffusion.alphasCumprod, {
      sampler: name, steps, shape: o.shape, parameterization: diffusion.parameterization,
      ...defined({
        scheduler: o.scheduler, quantize: o.quantize, cond: o.cond, uncond: o.uncond, guidanceScale: o.guidance, gen: o.gen, xT: o.xT,
        noises: o.noises, x0: o.x0, mask: o.mask, tStart: o.tStart, clipDenoised: o.clipDenoised, eta: o.eta,
        sNoise: o.sNoise, sChurn: o.sChurn, sTmin: o.sTmin, sTmax: o.sTmax, solverType: o.solverType, order: o.lmsOrder,
        sigmaMin: o.sigmaMin, sigmaMax: o.sigmaMax, rho: o.rho,
      }),
      ...(o.onStep ? {
        onDenoised: (i: number, total: number, x: Tensor, sigma: number, d: Tensor) =>
          o.onStep!({ i, total, t: Math.round(sched.sigmaToT(sigma)), x, predX0: d }),
      } : {}),
    });
    // x_t in the VP form the other rows log (x_sigma / sqrt(1 + sigma^2)), every `every` steps
    const vp = (i: number): Tensor => {
      const x = r.xs[i], s = r.sigmas[i]!;
      return x && i < r.sigmas.length - 1 ? mul(x, 1 / Math.sqrt(1 + s * s)) : r.samples;
    };
    const intermediates: SamplerIntermediates = { x_inter: [vp(0)], pred_x0: [vp(0)] };
    for (let i = 0; i < r.denoised.length; i++) {
      if ((i + 1) % every === 0 || i === r.denoised.length - 1) {
        intermediates.x_inter.push(vp(i + 1));
        intermediates.pred_x0.push(r.denoised[i]!);
      }
    }
    return { samples: r.samples, intermediates };
  };
}
