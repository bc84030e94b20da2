// Gaussian diffusion on tensors (Ho et al. 2020 "Denoising Diffusion Probabilistic Models";
// Nichol & Dhariwal 2021 "Improved DDPM"; Salimans & Ho 2022 for v): the forward process
// q(x_t|x_0), the posterior q(x_{t-1}|x_t,x_0), the conversions between eps / x0 / v / x_{t-1}
// predictions, the reverse step p(x_{t-1}|x_t) and the ancestral sampling loop, with the formulas
// and operation order of LDM `DDPM` (ldm/models/diffusion/ddpm.py) and improved-diffusion's
// `GaussianDiffusion` (learned and fixed-large variances, PREVIOUS_X).
//
// What it is: float32 buffer tensors made from the float64 schedule of schedules.ts (under the
// official buffer names, so a model can register THE SAME tensors as its state-dict buffers) and
// pure tensor math over them. What it is not: no network (the model is a Denoiser callback), no
// losses (losses.ts), no fast samplers (samplers/).

import { ConfigError, Generator, ShapeError, defaultGenerator, fmtShape } from '../util/index.ts';
import {
  Tensor, add, clamp, div, exp, indexSelect, mul, noGrad, randn, split, sub, tensor, toInt64,
} from '../tensor/index.ts';
import {
  DIFFUSION_BUFFER_KEYS, makeDdimSchedule, registerSchedule, type DdimDiscretize, type DdimPlan, type DiffusionBuffers,
} from './schedules.ts';
import type { Cond, Denoiser, Parameterization, VarianceType } from './types.ts';

export type DiffusionBufferName = (typeof DIFFUSION_BUFFER_KEYS)[number];

export interface GaussianDiffusionOptions {
  /** What the denoiser predicts (default 'eps'). */
  parameterization?: Parameterization;
  /** Reverse-process variance (default 'fixedsmall', LDM's posterior variance). */
  varianceType?: VarianceType;
  /** Clamp the x0 estimate to [-1, 1] in p_mean_variance (default true). */
  clipDenoised?: boolean;
  /** Draw the step noise at t = 0 too (LDM, default true: torch draws it and multiplies by 0);
   *  pytorch-ddpm and lucidrains draw none there, which matters to a shared generator. */
  noiseAtLastStep?: boolean;
  /** A code base's own DDIM discretisation (alphas_cumprod float32, S, eta) -> schedule; default
   *  LDM `DDIMSampler.make_schedule` (makeDdimSchedule) with the given discretize. */
  ddimSchedule?: DdimScheduleFn;
}

/** How a code base turns its alphas_cumprod into the DDIM steps (see GaussianDiffusionOptions). */
export type DdimScheduleFn = (alphasCumprod: Float32Array, steps: number, eta: number) => DdimPlan;

export interface MeanVariance {
  mean: Tensor;
  /** [B, 1, 1, 1] for fixed variances; the x shape for learned ones */
  variance: Tensor;
  logVariance: Tensor;
}

export interface PMeanVariance extends MeanVariance {
  /** the (clipped) x0 estimate */
  predXstart: Tensor;
}

export interface PSampleOptions {
  cond?: Cond;
  /** the step's standard normal noise (else drawn from `gen`, as torch.randn would be) */
  noise?: Tensor;
  gen?: Generator;
  clipDenoised?: boolean;
  /** noise multiplier (LDM p_sample `temperature`, default 1) */
  temperature?: number;
}

export interface PSampleLoopOptions {
  cond?: Cond;
  /** starting noise x_T (else randn(shape) from gen) */
  xT?: Tensor;
  gen?: Generator;
  /** per-step noises, in loop order (step i uses noises[i]) */
  noises?: readonly Tensor[];
  clipDenoised?: boolean;
  /** keep an intermediate when t % logEveryT == 0 or t == start - 1 (default 100) */
  logEveryT?: number;
  /** run the chain from min(T, startT) (LDM `start_T` / `timesteps`) */
  startT?: number;
  /** inpainting: known region x0 (re-noised by q_sample each step) where mask == 1 */
  mask?: Tensor;
  x0?: Tensor;
  temperature?: number;
  /** called after each step with (x_{t-1}, x0 estimate, t) */
  callback?: (img: Tensor, predXstart: Tensor, t: number) => void;
}

export interface SampleResult {
  sample: Tensor;
  /** p_sample_loop: [x_T, x_t at the logged steps...]; progressive_denoising: x0 estimates */
  intermediates: Tensor[];
}

const f32Tensor = (a: ArrayLike<number>): Tensor => tensor(Float32Array.from(a));

/** Timesteps as int64 (torch.long). */
function asLong(t: Tensor): Tensor {
  return t.dtype === 'int64' ? t : toInt64(t);
}

/** torch.full((b,), i, dtype=long). */
export function fullT(b: number, i: number): Tensor {
  return new Tensor(new Float64Array(b).fill(i), [b], 'int64');
}

export class GaussianDiffusion {
  readonly numTimesteps: number;
  readonly parameterization: Parameterization;
  readonly varianceType: VarianceType;
  readonly clipDenoised: boolean;
  readonly noiseAtLastStep: boolean;
  private readonly ddimFn: DdimScheduleFn | undefined;
  /** The twelve persistent buffers, float32 [T], official names. */
  readonly buffers: Readonly<Record<DiffusionBufferName, Tensor>>;
  /** log(append(beta~_1, beta_{1:})) -- improved-DDPM 'fixedlarge' log variance, float32 [T] */
  readonly fixedLargeLogVariance: Tensor;
  readonly fixedLargeVariance: Tensor;
  /** log(beta_t), the upper end of 'learned_range', float32 [T] */
  readonly logBetas: Tensor;
  /** 1 / posterior_mean_coef1 and coef2 / coef1 (x0 from x_{t-1}), float32 [T] */
  readonly recipPosteriorMeanCoef1: Tensor;
  readonly posteriorMeanCoef2OverCoef1: Tensor;

  /**
   * From float64 schedule buffers (`registerSchedule(betas)` or `lucidrainsBuffers(betas)`).
   * Derived arrays (fixedlarge, xprev) are computed here in float64 from `schedule`; loading a
   * state dict into `buffers` later updates the twelve buffers only.
   */
  constructor(schedule: DiffusionBuffers, opts: GaussianDiffusionOptions = {}) {
    this.parameterization = opts.parameterization ?? 'eps';
    this.varianceType = opts.varianceType ?? 'fixedsmall';
    this.clipDenoised = opts.clipDenoised ?? true;
    this.noiseAtLastStep = opts.noiseAtLastStep ?? true;
    this.ddimFn = opts.ddimSchedule;
    const T = schedule.betas.length;
    this.numTimesteps = T;
    const bufs = {} as Record<DiffusionBufferName, Tensor>;
    for (const k of DIFFUSION_BUFFER_KEYS) {
      const a = schedule[k];
      if (a.length !== T) throw new ShapeError(`GaussianDiffusion: buffer '${k}' has ${a.length} entries, betas ${T}`);
      bufs[k] = f32Tensor(a);
    }
    this.buffers = bufs;
    const pv = schedule.posterior_variance, b = schedule.betas;
    const c1 = schedule.posterior_mean_coef1, c2 = schedule.posterior_mean_coef2;
    const large = Float64Array.from({ length: T }, (_, i) => (i === 0 ? (T > 1 ? pv[1]! : b[0]!) : b[i]!));
    this.fixedLargeVariance = f32Tensor(large);
    this.fixedLargeLogVariance = f32Tensor(large.map(Math.log));
    this.logBetas = f32Tensor(Float64Array.from(b, Math.log));
    this.recipPosteriorMeanCoef1 = f32Tensor(Float64Array.from(c1, (v) => 1 / v));
    this.posteriorMeanCoef2OverCoef1 = f32Tensor(Float64Array.from({ length: T }, (_, i) => c2[i]! / c1[i]!));
  }

  /** LDM buffers (`registerSchedule`) from betas, e.g. `makeBetaSchedule('linear', 1000)`. */
  static fromBetas(betas: ArrayLike<number>, opts: GaussianDiffusionOptions & { vPosterior?: number } = {}): GaussianDiffusion {
    const p = opts.parameterization;
    const sched = registerSchedule(betas, {
      ...(p === 'eps' || p === 'x0' || p === 'v' ? { parameterization: p } : {}),
      ...(opts.vPosterior !== undefined ? { vPosterior: opts.vPosterior } : {}),
    });
    return new GaussianDiffusion(sched, opts);
  }

  buf(name: DiffusionBufferName): Tensor {
    return this.buffers[name];
  }

  /** The current float32 alphas_cumprod [T] (what DDIM, PLMS, DPM-Solver and sigma samplers read). */
  get alphasCumprod(): Float32Array {
    return this.buffers.alphas_cumprod.f32;
  }

  get alphasCumprodPrev(): Float32Array {
    return this.buffers.alphas_cumprod_prev.f32;
  }

  /** The DDIM steps of S steps at eta: the code base's own (options.ddimSchedule) or LDM's. */
  ddimSchedule(steps: number, eta = 0, discretize: DdimDiscretize = 'uniform'): DdimPlan {
    if (this.ddimFn) return this.ddimFn(this.alphasCumprod, steps, eta);
    return makeDdimSchedule({ alphas_cumprod: this.alphasCumprod, alphas_cumprod_prev: this.alphasCumprodPrev },
      { ddimNumSteps: steps, ddimDiscretize: discretize, ddimEta: eta });
  }

  /** `extract_into_tensor(a, t, x_shape)`: a[t] reshaped to [B, 1, 1, ...]. a [T], t int64 [B] */
  extract(a: Tensor, t: Tensor, shape: readonly number[]): Tensor {
    const tl = asLong(t);
    if (tl.ndim !== 1 || tl.shape[0] !== shape[0]) {
      throw new ShapeError(`extract: timesteps ${fmtShape(tl.shape)} do not match batch of ${fmtShape(shape)}`);
    }
    const out = indexSelect(a, 0, tl);
    return out.reshape(tl.shape[0]!, ...new Array<number>(shape.length - 1).fill(1));
  }

  private ex(name: DiffusionBufferName, t: Tensor, shape: readonly number[]): Tensor {
    return this.extract(this.buffers[name], t, shape);
  }

  // ---- q(x_t | x_0), Ho et al. eq. 4 ----------------------------------------------------------

  /** `q_mean_variance`: mean sqrt(abar) x0, variance 1 - abar, log(1 - abar). */
  qMeanVariance(xStart: Tensor, t: Tensor): MeanVariance {
    const s = xStart.shape;
    return {
      mean: mul(this.ex('sqrt_alphas_cumprod', t, s), xStart),
      variance: sub(1, this.ex('alphas_cumprod', t, s)), // [B, 1, 1, 1]
      logVariance: this.ex('log_one_minus_alphas_cumprod', t, s),
    };
  }

  /** `q_sample`: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. */
  qSample(xStart: Tensor, t: Tensor, noise: Tensor): Tensor {
    const s = xStart.shape;
    return add(mul(this.ex('sqrt_alphas_cumprod', t, s), xStart), mul(this.ex('sqrt_one_minus_alphas_cumprod', t, s), noise));
  }

  // ---- conversions between predictions --------------------------------------------------------

  /** `predict_start_from_noise`: x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps. */
  predictStartFromNoise(xT: Tensor, t: Tensor, noise: Tensor): Tensor {
    const s = xT.shape;
    return sub(mul(this.ex('sqrt_recip_alphas_cumprod', t, s), xT), mul(this.ex('sqrt_recipm1_alphas_cumprod', t, s), noise));
  }

  /** `_predict_eps_from_xstart`: eps = (sqrt(1/abar) x_t - x0) / sqrt(1/abar - 1). */
  predictEpsFromStart(xT: Tensor, t: Tensor, xStart: Tensor): Tensor {
    const s = xT.shape;
    return div(sub(mul(this.ex('sqrt_recip_alphas_cumprod', t, s), xT), xStart), this.ex('sqrt_recipm1_alphas_cumprod', t, s));
  }

  /** improved-DDPM `_predict_xstart_from_xprev`: x0 = x_{t-1}/coef1 - (coef2/coef1) x_t. */
  predictXstartFromXprev(xT: Tensor, t: Tensor, xprev: Tensor): Tensor {
    const s = xT.shape;
    return sub(mul(this.extract(this.recipPosteriorMeanCoef1, t, s), xprev), mul(this.extract(this.posteriorMeanCoef2OverCoef1, t, s), xT));
  }

  /** `predict_start_from_z_and_v`: x0 = sqrt(abar) x_t - sqrt(1 - abar) v. */
  predictStartFromV(xT: Tensor, t: Tensor, v: Tensor): Tensor {
    const s = xT.shape;
    return sub(mul(this.ex('sqrt_alphas_cumprod', t, s), xT), mul(this.ex('sqrt_one_minus_alphas_cumprod', t, s), v));
  }

  /** `predict_eps_from_z_and_v`: eps = sqrt(abar) v + sqrt(1 - abar) x_t. */
  predictEpsFromV(xT: Tensor, t: Tensor, v: Tensor): Tensor {
    const s = xT.shape;
    return add(mul(this.ex('sqrt_alphas_cumprod', t, s), v), mul(this.ex('sqrt_one_minus_alphas_cumprod', t, s), xT));
  }

  /** `get_v`: v = sqrt(abar) eps - sqrt(1 - abar) x0. */
  getV(xStart: Tensor, noise: Tensor, t: Tensor): Tensor {
    const s = xStart.shape;
    return sub(mul(this.ex('sqrt_alphas_cumprod', t, s), noise), mul(this.ex('sqrt_one_minus_alphas_cumprod', t, s), xStart));
  }

  /** The x0 estimate of a model output under `parameterization` (unclipped). */
  predictXstart(modelOutput: Tensor, xT: Tensor, t: Tensor, parameterization = this.parameterization): Tensor {
    switch (parameterization) {
      case 'eps': return this.predictStartFromNoise(xT, t, modelOutput);
      case 'x0': return modelOutput;
      case 'v': return this.predictStartFromV(xT, t, modelOutput);
      case 'xprev': return this.predictXstartFromXprev(xT, t, modelOutput);
      default: throw new ConfigError(`GaussianDiffusion: unknown parameterization '${String(parameterization)}'`);
    }
  }

  /** The eps estimate of a model output under `parameterization`. */
  predictEps(modelOutput: Tensor, xT: Tensor, t: Tensor, parameterization = this.parameterization): Tensor {
    switch (parameterization) {
      case 'eps': return modelOutput;
      case 'v': return this.predictEpsFromV(xT, t, modelOutput);
      default: return this.predictEpsFromStart(xT, t, this.predictXstart(modelOutput, xT, t, parameterization));
    }
  }

  // ---- posterior q(x_{t-1} | x_t, x_0), Ho et al. eqs. 6-7 ------------------------------------

  /** `q_posterior`: mean coef1 x0 + coef2 x_t, variance beta~_t, log variance clipped. */
  qPosterior(xStart: Tensor, xT: Tensor, t: Tensor): MeanVariance {
    const s = xT.shape;
    return {
      mean: add(mul(this.ex('posterior_mean_coef1', t, s), xStart), mul(this.ex('posterior_mean_coef2', t, s), xT)),
      variance: this.ex('posterior_variance', t, s),
      logVariance: this.ex('posterior_log_variance_clipped', t, s),
    };
  }

  // ---- reverse process p(x_{t-1} | x_t) -------------------------------------------------------

  /**
   * `p_mean_variance` from a model output already computed on (x, t):
   *  1. learned variances: split the output channels into [prediction, variance values];
   *     'learned' log sigma^2 = values, 'learned_range' = frac log beta_t + (1-frac) log beta~_t
   *     with frac = (values + 1)/2 (improved DDPM eq. 15); fixed ones extracted from buffers;
   *  2. x0 estimate from the prediction (eps, x0, v, xprev), clamped to [-1, 1] if clipDenoised;
   *  3. mean = q_posterior(x0, x_t) (xprev: the output itself).
   */
  pMeanVariance(modelOutput: Tensor, x: Tensor, t: Tensor, opts: { clipDenoised?: boolean } = {}): PMeanVariance {
    const clip = opts.clipDenoised ?? this.clipDenoised;
    const s = x.shape;
    let out = modelOutput;
    let variance: Tensor, logVariance: Tensor;
    switch (this.varianceType) {
      case 'learned':
      case 'learned_range': {
        const C = s[1]!;
        if (modelOutput.shape[1] !== 2 * C) {
          throw new ShapeError(`p_mean_variance: a learned variance needs ${2 * C} output channels, got ${fmtShape(modelOutput.shape)}`);
        }
        const [o, values] = split(modelOutput, C, 1) as [Tensor, Tensor];
        out = o;
        if (this.varianceType === 'learned') {
          logVariance = values;
        } else {
          const minLog = this.ex('posterior_log_variance_clipped', t, s);
          const maxLog = this.extract(this.logBetas, t, s);
          const frac = mul(add(values, 1), 0.5);
          logVariance = add(mul(frac, maxLog), mul(sub(1, frac), minLog));
        }
        variance = exp(logVariance);
        break;
      }
      case 'fixedlarge':
        variance = this.extract(this.fixedLargeVariance, t, s);
        logVariance = this.extract(this.fixedLargeLogVariance, t, s);
        break;
      case 'fixedsmall':
        variance = this.ex('posterior_variance', t, s);
        logVariance = this.ex('posterior_log_variance_clipped', t, s);
        break;
      default:
        throw new ConfigError(`p_mean_variance: unknown variance type '${String(this.varianceType)}'`);
    }
    const raw = this.predictXstart(out, x, t);
    const predXstart = clip ? clamp(raw, -1, 1) : raw;
    const mean = this.parameterization === 'xprev' ? out : this.qPosterior(predXstart, x, t).mean;
    return { mean, variance, logVariance, predXstart };
  }

  /**
   * `p_sample` (Ho et al. Algorithm 2, step 4): x_{t-1} = mean + nonzero_mask exp(logvar/2) z,
   * z ~ N(0, I) (given or drawn AFTER the model call, as torch does), no noise where t == 0.
   */
  pSample(denoiser: Denoiser, x: Tensor, t: Tensor, opts: PSampleOptions = {}): { sample: Tensor; predXstart: Tensor } {
    return noGrad(() => {
      const tl = asLong(t);
      const out = denoiser(x, tl, opts.cond);
      const clipOpt = opts.clipDenoised !== undefined ? { clipDenoised: opts.clipDenoised } : {};
      const pm = this.pMeanVariance(out, x, tl, clipOpt);
      if (!this.noiseAtLastStep && tl.data.every((v) => v === 0)) return { sample: pm.mean, predXstart: pm.predXstart };
      let noise = opts.noise ?? randn(x.shape, opts.gen ?? defaultGenerator);
      if (opts.temperature !== undefined && opts.temperature !== 1) noise = mul(noise, opts.temperature);
      const B = x.shape[0]!;
      const mask = tensor(Array.from(tl.data, (v) => (v === 0 ? 0 : 1)), [B, ...new Array<number>(x.ndim - 1).fill(1)]);
      const sample = add(pm.mean, mul(mul(mask, exp(mul(pm.logVariance, 0.5))), noise));
      return { sample, predXstart: pm.predXstart };
    });
  }

  private runChain(denoiser: Denoiser, shape: readonly number[], opts: PSampleLoopOptions,
    log: (img: Tensor, x0: Tensor, i: number) => void): Tensor {
    const gen = opts.gen ?? defaultGenerator;
    let img = opts.xT ?? randn(shape, gen);
    const T = Math.min(this.numTimesteps, opts.startT ?? this.numTimesteps);
    const B = img.shape[0]!;
    if (opts.mask && !opts.x0) throw new ConfigError('p_sample_loop: mask given without x0');
    for (let i = T - 1, step = 0; i >= 0; i--, step++) {
      const ts = fullT(B, i);
      const po: PSampleOptions = { gen };
      if (opts.cond) po.cond = opts.cond;
      if (opts.clipDenoised !== undefined) po.clipDenoised = opts.clipDenoised;
      if (opts.temperature !== undefined) po.temperature = opts.temperature;
      const n = opts.noises?.[step];
      if (n) po.noise = n;
      const r = this.pSample(denoiser, img, ts, po);
      img = r.sample;
      if (opts.mask && opts.x0) {
        // inpainting: img = q_sample(x0, t) * mask + (1 - mask) * img
        const orig = this.qSample(opts.x0, ts, randn(opts.x0.shape, gen));
        img = add(mul(orig, opts.mask), mul(sub(1, opts.mask), img));
      }
      log(img, r.predXstart, i);
      opts.callback?.(img, r.predXstart, i);
    }
    return img;
  }

  /**
   * `p_sample_loop` (Ho et al. Algorithm 2): x_T ~ N(0, I), then p_sample for t = T-1 .. 0.
   * Intermediates: x_T, then x_{t-1} after every step with t % log_every_t == 0 or t == T-1.
   */
  pSampleLoop(denoiser: Denoiser, shape: readonly number[], opts: PSampleLoopOptions = {}): SampleResult {
    const every = opts.logEveryT ?? 100;
    const T = Math.min(this.numTimesteps, opts.startT ?? this.numTimesteps);
    const intermediates: Tensor[] = [];
    const first = opts.xT ?? randn(shape, opts.gen ?? defaultGenerator);
    intermediates.push(first);
    const sample = this.runChain(denoiser, shape, { ...opts, xT: first }, (img, _x0, i) => {
      if (i % every === 0 || i === T - 1) intermediates.push(img);
    });
    return { sample, intermediates };
  }

  /**
   * LDM `progressive_denoising`: the same chain, logging the x0 estimate (not x_{t-1}) of every
   * step with t % log_every_t == 0 or t == T-1 (no x_T entry).
   */
  progressiveDenoising(denoiser: Denoiser, shape: readonly number[], opts: PSampleLoopOptions = {}): SampleResult {
    const every = opts.logEveryT ?? 100;
    const T = Math.min(this.numTimesteps, opts.startT ?? this.numTimesteps);
    const intermediates: Tensor[] = [];
    const sample = this.runChain(denoiser, shape, opts, (_img, x0, i) => {
      if (i % every === 0 || i === T - 1) intermediates.push(x0);
    });
    return { sample, intermediates };
  }
}
