// The diffusion wrappers of w86763777/pytorch-ddpm (diffusion.py, f804ccb):
// GaussianDiffusionTrainer (Ho et al. 2020, Algorithm 1: the simple eps loss, per element) and
// GaussianDiffusionSampler (Algorithm 2: ancestral sampling, mean_type epsilon / xstart / xprev,
// var_type fixedlarge / fixedsmall), with the official numerics:
//  - betas = torch.linspace(beta_1, beta_T, T) in FLOAT32, widened to float64; every buffer is a
//    float64 computation from those betas (diffusion/schedules.ts), stored float64;
//  - `extract` gathers the float64 value and casts it to float32, then the arithmetic with the
//    images runs in float32;
//  - p_mean_variance: the model mean uses the UNclipped x_0 (the official clip result is unused);
//    the log variance at t = 0 borrows index 1; the final x_0 of the chain is clipped to [-1, 1].
// The Gaussian math and the chain are diffusion/'s: each wrapper holds a GaussianDiffusion over
// `pddpmDiffusionBuffers` (its float64 arrays, cast to float32 as `extract` does) with the quirks
// as data (mean_type -> parameterization, var_type, no clipping, no noise draw at t = 0) and
// samples through the sampler table's `ddpm` row.
// Our Tensor has no float64 dtype: the state-dict buffers hold the float32 casts, and the float64
// values live beside them (`buffers64`; `setFloat64Buffers` loads the stored F64 values).
// What it is not: the UNet (models/unet/pddpm.ts) or the schedule arithmetic (diffusion/).

import { ConfigError, F, Generator, ShapeError, checkKwargs, field, fmtShape, kwargs, required, schemaKeys, type Schema } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Module, mseLoss } from '../nn/index.ts';
import type { ConditionInput, ConditioningSpec, DiffusionModel } from './diffusion-model.ts';
import {
  GaussianDiffusion, SAMPLERS, pddpmBetas, pddpmDiffusionBuffers, pddpmSamplerBuffers, pddpmTrainerBuffers,
  type Cond, type Denoiser, type PddpmSamplerBuffers, type PddpmTrainerBuffers,
} from '../diffusion/index.ts';

/** The network a pytorch-ddpm wrapper drives: model(x_t, t) with int64 timesteps. */
export interface PddpmModel extends Module {
  forward(x: Tensor, t: Tensor): Tensor;
}

/** Supplies the standard-normal draws the official code makes with torch.randn_like, in order. */
export type NoiseFn = (shape: readonly number[]) => Tensor;

export const noiseFromGenerator = (gen: Generator): NoiseFn => (shape) => T.randn(shape, gen);

const isModel = (v: unknown): v is PddpmModel => v instanceof Module && 'forward' in v && typeof v.forward === 'function';

function asModel(owner: string, v: unknown): PddpmModel {
  if (isModel(v)) return v;
  throw new ConfigError(`${owner}: 'model' must be a built network module (for example pytorch-ddpm UNet), got ${v === undefined ? 'nothing' : typeof v}`);
}

/** `GaussianDiffusionTrainer(model, beta_1, beta_T, T)`. */
export interface GaussianDiffusionTrainerOptions {
  model: PddpmModel;
  beta_1: number;
  beta_T: number;
  T: number;
}

/** `GaussianDiffusionSampler(model, beta_1, beta_T, T, img_size=32, mean_type='eps', var_type='fixedlarge')`:
 *  give mean_type, the official default fails the official assert (see GaussianDiffusionSampler). */
export interface GaussianDiffusionSamplerOptions extends GaussianDiffusionTrainerOptions {
  img_size?: number;
  mean_type?: PddpmMeanType;
  var_type?: PddpmVarType;
}

const modelField = field('a built network module (for example pytorch-ddpm UNet)', isModel);

/** The wrappers' kwargs as a config gives them, `model` built from its nested config (readOptions). */
export const PDDPM_TRAINER_SCHEMA: Schema<GaussianDiffusionTrainerOptions> = {
  model: required(modelField), beta_1: required(F.num), beta_T: required(F.num), T: required(F.int),
};
export const PDDPM_SAMPLER_SCHEMA: Schema<GaussianDiffusionSamplerOptions> = {
  ...PDDPM_TRAINER_SCHEMA, img_size: F.int,
  mean_type: field("'epsilon', 'xstart' or 'xprev' (the official default 'eps' fails the official assert; use 'epsilon')",
    (v): v is PddpmMeanType => v === 'epsilon' || v === 'xstart' || v === 'xprev'),
  var_type: F.oneOf('fixedlarge', 'fixedsmall'),
};


function steps(owner: string, params: GaussianDiffusionTrainerOptions): number {
  const v = kwargs(owner, params).num('T');
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${owner}: 'T' must be a positive integer, got ${v}`);
  return v;
}

/** Register float32 casts of float64 arrays as persistent buffers, in the given order. */
function registerBuffers<K extends string>(m: Module, bufs: Readonly<Record<K, Float64Array>>, keys: readonly K[]): void {
  for (const k of keys) m.buffer(k, new Tensor(Float32Array.from(bufs[k]), [bufs[k].length]));
}

/** Replace float64 buffers by stored F64 values (same length), refreshing their float32 casts. */
function loadBuffers64<K extends string>(m: Module, bufs: Record<K, Float64Array>, keys: readonly K[],
  stored: ReadonlyMap<string, Float64Array>, prefix: string): string[] {
  const used: string[] = [];
  for (const k of keys) {
    const v = stored.get(prefix + k);
    if (!v) continue;
    if (v.length !== bufs[k].length) throw new ShapeError(`${prefix}${k}: stored length ${v.length}, expected ${bufs[k].length}`);
    bufs[k] = Float64Array.from(v);
    m.setBuffer(k, new Tensor(Float32Array.from(v), [v.length]));
    used.push(prefix + k);
  }
  return used;
}

const TRAINER_KEYS = schemaKeys(PDDPM_TRAINER_SCHEMA);
const TRAINER_BUFFERS = ['betas', 'sqrt_alphas_bar', 'sqrt_one_minus_alphas_bar'] as const;

export interface TrainerCallOptions {
  /** Timesteps (int64 [B]); drawn as torch.randint(T, (B,)) from `generator` when absent. */
  t?: Tensor;
  /** eps (like x_0); drawn as torch.randn_like(x_0) from `generator` when absent. */
  noise?: Tensor;
  generator?: Generator;
}

/** `GaussianDiffusionTrainer(model, beta_1, beta_T, T)`: forward(x_0) -> per-element loss [B, C, H, W]. */
export class GaussianDiffusionTrainer extends Module {
  readonly model: PddpmModel;
  readonly T: number;
  readonly buffers64: PddpmTrainerBuffers;
  /** q_sample over buffers64 (rebuilt by setFloat64Buffers) */
  diffusion: GaussianDiffusion;

  constructor(params: GaussianDiffusionTrainerOptions) {
    super();
    const owner = 'pytorch-ddpm GaussianDiffusionTrainer';
    checkKwargs(owner, params, TRAINER_KEYS);
    this.model = this.child('model', asModel(owner, params['model']));
    this.T = steps(owner, params);
    this.buffers64 = pddpmTrainerBuffers(pddpmBetas(kwargs(owner, params).num('beta_1'), kwargs(owner, params).num('beta_T'), this.T));
    registerBuffers(this, this.buffers64, TRAINER_BUFFERS);
    this.diffusion = new GaussianDiffusion(pddpmDiffusionBuffers(this.buffers64));
  }

  /** Use stored float64 buffers (an official state dict's F64 values); returns the keys taken. */
  setFloat64Buffers(stored: ReadonlyMap<string, Float64Array>, prefix = ''): string[] {
    const used = loadBuffers64(this, this.buffers64, TRAINER_BUFFERS, stored, prefix);
    this.diffusion = new GaussianDiffusion(pddpmDiffusionBuffers(this.buffers64));
    return used;
  }

  /** q(x_t | x_0) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. eq. 4). */
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.diffusion.qSample(x0, t, noise);
  }

  /** Algorithm 1: t ~ U{0..T-1}, eps ~ N(0, I), loss = (eps_theta(x_t, t) - eps)^2, reduction 'none'. */
  forward(x0: Tensor, opts: TrainerCallOptions = {}): Tensor {
    const b = x0.dim(0);
    const gen = opts.generator;
    // 1. timesteps (torch.randint) then 2. noise (torch.randn_like), in the official order
    const t = opts.t ?? (gen ? T.randint(0, this.T, [b], gen) : missing('t'));
    const noise = opts.noise ?? (gen ? T.randn(x0.shape, gen) : missing('noise'));
    if (t.size !== b) throw new ShapeError(`GaussianDiffusionTrainer: ${t.size} timesteps for a batch of ${b}`);
    if (noise.size !== x0.size) throw new ShapeError(`GaussianDiffusionTrainer: noise ${fmtShape(noise.shape)} vs x_0 ${fmtShape(x0.shape)}`);
    const xt = this.qSample(x0, t, noise);
    return mseLoss(this.model.forward(xt, t), noise, 'none'); // [B, C, H, W]
  }
}

function missing(what: string): never {
  throw new ConfigError(`pytorch-ddpm: pass '${what}' or a generator to draw it from`);
}

export type PddpmMeanType = 'epsilon' | 'xstart' | 'xprev';
const PARAMETERIZATION = { epsilon: 'eps', xstart: 'x0', xprev: 'xprev' } as const satisfies Record<PddpmMeanType, string>;
export type PddpmVarType = 'fixedlarge' | 'fixedsmall';

const SAMPLER_KEYS = schemaKeys(PDDPM_SAMPLER_SCHEMA);
const SAMPLER_BUFFERS = [
  'betas', 'sqrt_recip_alphas_bar', 'sqrt_recipm1_alphas_bar', 'posterior_var', 'posterior_log_var_clipped',
  'posterior_mean_coef1', 'posterior_mean_coef2',
] as const;

export interface SampleOptions {
  /** Noise draws in the official order (torch.randn_like per step with time_step > 0). */
  noise?: NoiseFn;
  generator?: Generator;
  /** Run only the last `steps` steps of the chain (time_step = steps-1 .. 0), as setting sampler.T does. */
  steps?: number;
}

/**
 * `GaussianDiffusionSampler(model, beta_1, beta_T, T, img_size=32, mean_type, var_type)`.
 * mean_type: the official `assert mean_type in ['xprev' 'xstart', 'epsilon']` lacks a comma, so
 * the original accepts only 'epsilon' (its default 'eps' fails the assert). We implement the three
 * branches the code contains ('xprev', 'xstart', 'epsilon') and reject 'eps' with that explanation.
 */
export class GaussianDiffusionSampler extends Module implements DiffusionModel {
  readonly model: PddpmModel;
  T: number;
  readonly img_size: number;
  readonly mean_type: PddpmMeanType;
  readonly var_type: PddpmVarType;
  readonly buffers64: PddpmSamplerBuffers;
  /** p_mean_variance and the chain over buffers64 (rebuilt by setFloat64Buffers) */
  diffusion: GaussianDiffusion;

  constructor(params: GaussianDiffusionSamplerOptions) {
    super();
    const owner = 'pytorch-ddpm GaussianDiffusionSampler';
    checkKwargs(owner, params, SAMPLER_KEYS);
    const mt = params['mean_type'] ?? 'eps';
    if (mt === 'eps') throw new ConfigError(`${owner}: mean_type 'eps' (the official default) fails the official assert; use 'epsilon'`);
    if (mt !== 'epsilon' && mt !== 'xstart' && mt !== 'xprev') throw new ConfigError(`${owner}: mean_type must be 'epsilon', 'xstart' or 'xprev', got ${JSON.stringify(mt)}`);
    const vt = params['var_type'] ?? 'fixedlarge';
    if (vt !== 'fixedlarge' && vt !== 'fixedsmall') throw new ConfigError(`${owner}: var_type must be 'fixedlarge' or 'fixedsmall', got ${JSON.stringify(vt)}`);
    this.mean_type = mt;
    this.var_type = vt;
    this.model = this.child('model', asModel(owner, params['model']));
    this.T = steps(owner, params);
    this.img_size = kwargs(owner, params).num('img_size', 32);
    this.buffers64 = pddpmSamplerBuffers(pddpmBetas(kwargs(owner, params).num('beta_1'), kwargs(owner, params).num('beta_T'), this.T));
    registerBuffers(this, this.buffers64, SAMPLER_BUFFERS);
    this.diffusion = this.makeDiffusion();
  }

  private makeDiffusion(): GaussianDiffusion {
    return new GaussianDiffusion(pddpmDiffusionBuffers(this.buffers64), {
      parameterization: PARAMETERIZATION[this.mean_type], varianceType: this.var_type, clipDenoised: false, noiseAtLastStep: false,
    });
  }

  setFloat64Buffers(stored: ReadonlyMap<string, Float64Array>, prefix = ''): string[] {
    const used = loadBuffers64(this, this.buffers64, SAMPLER_BUFFERS, stored, prefix);
    this.diffusion = this.makeDiffusion();
    return used;
  }

  // ---- the DiffusionModel face (diffusion-model.ts): an unconditional RGB pixel-space model -------

  /** The network as a Denoiser for the sampler table. */
  denoiser(): Denoiser {
    return (x, t) => T.inference(() => this.model.forward(x, t));
  }

  get numTimesteps(): number {
    return this.T;
  }

  /** The official p_mean_variance discards its clipped x_0 (only the chain's result is clipped). */
  readonly clipDenoised = false;

  /** [n, 3, img_size, img_size] (the pytorch-ddpm UNet is RGB). */
  sampleShape(n: number): number[] {
    return [n, 3, this.img_size, this.img_size];
  }

  conditioningSpec(): ConditioningSpec {
    return { kind: 'none' };
  }

  condition(_input: ConditionInput): Cond {
    throw new ConfigError('pytorch-ddpm GaussianDiffusionSampler: this model is unconditional (no class labels or prompts)');
  }

  unconditional(_n: number): Cond | null {
    return null;
  }

  /** q(x_{t-1} | x_t, x_0) mean and clipped log variance (Ho et al. eq. 7). */
  qMeanVariance(x0: Tensor, xt: Tensor, t: Tensor): { mean: Tensor; logVar: Tensor } {
    const q = this.diffusion.qPosterior(x0, xt, t);
    return { mean: q.mean, logVar: q.logVariance };
  }

  /** p(x_{t-1} | x_t): { mean, logVar [B, 1, 1, 1] }; the mean uses the unclipped x_0 (official). */
  pMeanVariance(xt: Tensor, t: Tensor): { mean: Tensor; logVar: Tensor; x0: Tensor } {
    // The official computes torch.clip(x_0, -1, 1) here and discards it.
    const p = this.diffusion.pMeanVariance(this.model.forward(xt, t), xt, t, { clipDenoised: false });
    return { mean: p.mean, logVar: p.logVariance, x0: p.predXstart };
  }

  /** One step of the chain (diffusion/'s p_sample): mean + exp(0.5 log_var) * noise, no noise at time_step 0. */
  step(xt: Tensor, timeStep: number, noise: NoiseFn): Tensor {
    return this.diffusion.pSample(this.denoiser(), xt, T.full([xt.dim(0)], timeStep, 'int64'), {
      clipDenoised: false, ...(timeStep > 0 ? { noise: noise(xt.shape) } : {}),
    }).sample;
  }

  /** Algorithm 2 (the table's `ddpm` row): x_T -> x_0 over time_step = steps-1 .. 0, result clipped to [-1, 1]. */
  forward(xT: Tensor, opts: SampleOptions = {}): Tensor {
    const n = opts.steps ?? this.T;
    if (!Number.isInteger(n) || n < 1 || n > this.T) throw new ConfigError(`GaussianDiffusionSampler: steps must be an integer in [1, ${this.T}], got ${n}`);
    // a NoiseFn replays the official draws in order: one per step with time_step > 0
    const noise = opts.noise;
    const src = noise ? { noises: Array.from({ length: n - 1 }, () => noise(xT.shape)) }
      : { gen: opts.generator ?? missing('noise') };
    const r = T.noGrad(() => SAMPLERS.ddpm(this.denoiser(), this.diffusion, { ...src, shape: xT.shape, xT, tStart: n, logEvery: n }));
    return T.clamp(r.samples, -1, 1);
  }
}
