// The LDM `DDPM` model class (ldm/models/diffusion/ddpm.py, CompVis/latent-diffusion a506df5):
// classic DDPM with Gaussian diffusion in image space, plus `DiffusionWrapper` (the key
// `model.diffusion_model.*` and the conditioning routes none / concat / crossattn / hybrid / adm).
// Constructor kwargs, defaults, buffer names and log keys are the official ones; the state dict
// holds `betas`, `alphas_cumprod`, ..., `model.diffusion_model.*`, `model_ema.*` (use_ema) and
// `logvar` (learn_logvar). The math lives in diffusion/ (schedules.ts, gaussian.ts, losses.ts):
// this class registers THE SAME float32 buffer tensors that its GaussianDiffusion computes with,
// so loading a checkpoint updates both.
// Designed to be extended by LatentDiffusion: `getInput`, `applyModel` (conditioning wrap),
// `pLosses` (optional cond; `logvarInLoss` switches to LatentDiffusion's logvar weighting) and
// `denoiser()` are the hooks. What it is not: no file I/O (`ckpt_path` is rejected: load
// checkpoints through io/), no Lightning logging/optimiser plumbing (train/ owns that).

import { ConfigError, F, Generator, ShapeError, checkKwargs, defaultGenerator, fmtShape, kwargs, orNull, readOptions, required, schemaKeys, type Schema } from '../util/index.ts';
import { Tensor, cat, full, inference, noGrad, permute, randint, randn, toFloat, unsqueeze } from '../tensor/index.ts';
import { LitEma, Module } from '../nn/index.ts';
import {
  DIFFUSION_BUFFER_KEYS, GaussianDiffusion, SAMPLERS, elementLoss, ldmLoss, lossTarget, makeBetaSchedule, registerSchedule,
  type Cond, type Denoiser, type LdmBetaScheduleKind, type LdmSchedule, type LossType, type LossWithLog,
  type MeanVariance, type PMeanVariance, type SampleResult, type SamplerResult,
} from '../diffusion/index.ts';
import type { BuildFn, TargetConfig, TargetTable } from './targets.ts';
import type { ConditionInput, ConditioningSpec, DiffusionModel } from './diffusion-model.ts';

/** The network DiffusionWrapper drives (UNetModel.forward(x, timesteps, {context, y})). */
export interface DiffusionNet extends Module {
  /** class-conditional ('adm') networks: the number of label embeddings */
  readonly numClasses?: number | null;
  forward(x: Tensor, timesteps: Tensor, cond?: { context?: Tensor | null; y?: Tensor | null }): Tensor;
}

/** A built module with a forward method (what unet_config must build). */
function isDiffusionNet(v: unknown): v is DiffusionNet {
  return v instanceof Module && 'forward' in v && typeof v.forward === 'function';
}

export type ConditioningKey = 'concat' | 'crossattn' | 'hybrid' | 'adm';
const CONDITIONING_KEYS: readonly (ConditioningKey | null)[] = [null, 'concat', 'crossattn', 'hybrid', 'adm'];

/** `DiffusionWrapper(diff_model_config, conditioning_key)`: `diffusion_model` + conditioning routing. */
export class DiffusionWrapper extends Module {
  readonly diffusion_model: DiffusionNet;

  constructor(net: DiffusionNet, readonly conditioningKey: ConditioningKey | null) {
    super();
    if (!CONDITIONING_KEYS.includes(conditioningKey)) {
      throw new ConfigError(`DiffusionWrapper: conditioning_key '${String(conditioningKey)}' is not one of None, concat, crossattn, hybrid, adm`);
    }
    this.diffusion_model = this.child('diffusion_model', net);
  }

  /**
   * None: net(x, t); concat: net(cat([x] + c_concat, 1), t); crossattn: net(x, t, context =
   * cat(c_crossattn, 1)); hybrid: both; adm: net(x, t, y = c_crossattn[0]) (or cond.y).
   */
  forward(x: Tensor, t: Tensor, cond: Cond = {}): Tensor {
    const need = (list: Tensor[] | undefined, name: string): Tensor[] => {
      if (!list || list.length === 0) throw new ConfigError(`DiffusionWrapper(${this.conditioningKey}): conditioning '${name}' is missing`);
      return list;
    };
    switch (this.conditioningKey) {
      case null:
        return this.diffusion_model.forward(x, t);
      case 'concat':
        return this.diffusion_model.forward(cat([x, ...need(cond.c_concat, 'c_concat')], 1), t);
      case 'crossattn':
        return this.diffusion_model.forward(x, t, { context: cat(need(cond.c_crossattn, 'c_crossattn'), 1) });
      case 'hybrid':
        return this.diffusion_model.forward(cat([x, ...need(cond.c_concat, 'c_concat')], 1), t,
          { context: cat(need(cond.c_crossattn, 'c_crossattn'), 1) });
      case 'adm':
        return this.diffusion_model.forward(x, t, { y: cond.y ?? need(cond.c_crossattn, 'c_crossattn')[0]! });
      default:
        throw new ConfigError(`DiffusionWrapper: conditioning_key '${String(this.conditioningKey)}' not supported`);
    }
  }
}

/** Conditioning as `apply_model` accepts it: a tensor or list (wrapped by conditioning_key) or a Cond record. */
export type CondInput = Tensor | Tensor[] | Cond | null | undefined;

/** The official DDPM constructor kwargs (snake_case). */
export interface DDPMOptions {
  unet_config: TargetConfig;
  timesteps?: number;
  beta_schedule?: LdmBetaScheduleKind;
  loss_type?: LossType;
  ckpt_path?: string | null;
  ignore_keys?: string[];
  load_only_unet?: boolean;
  monitor?: string | null;
  use_ema?: boolean;
  first_stage_key?: string;
  image_size?: number;
  channels?: number;
  log_every_t?: number;
  clip_denoised?: boolean;
  linear_start?: number;
  linear_end?: number;
  cosine_s?: number;
  given_betas?: number[] | null;
  original_elbo_weight?: number;
  v_posterior?: number;
  l_simple_weight?: number;
  conditioning_key?: ConditioningKey | null;
  parameterization?: 'eps' | 'x0' | 'v';
  scheduler_config?: TargetConfig | null;
  use_positional_encodings?: boolean;
  learn_logvar?: boolean;
  logvar_init?: number;
}

/** The DDPM kwargs as a config gives them (readOptions; the constructor checks the rest). */
export const DDPM_SCHEMA: Schema<DDPMOptions> = {
  unet_config: required(F.config), timesteps: F.int, beta_schedule: F.oneOf('linear', 'cosine', 'sqrt_linear', 'sqrt'),
  loss_type: F.oneOf('l1', 'l2'), ckpt_path: F.str, ignore_keys: F.strList, load_only_unet: F.bool, monitor: orNull(F.str),
  use_ema: F.bool, first_stage_key: F.str, image_size: F.int, channels: F.int, log_every_t: F.int, clip_denoised: F.bool,
  linear_start: F.num, linear_end: F.num, cosine_s: F.num, given_betas: F.numList, original_elbo_weight: F.num,
  v_posterior: F.num, l_simple_weight: F.num, conditioning_key: F.oneOf('concat', 'crossattn', 'hybrid', 'adm'),
  parameterization: F.oneOf('eps', 'x0', 'v'), scheduler_config: F.config, use_positional_encodings: F.bool,
  learn_logvar: F.bool, logvar_init: F.num,
};
export const DDPM_KWARGS = schemaKeys(DDPM_SCHEMA);


export interface DdpmSampleOptions {
  xT?: Tensor;
  gen?: Generator;
  cond?: CondInput;
  /** per-step noises (step i uses noises[i]) instead of draws from gen */
  noises?: readonly Tensor[];
  logEveryT?: number;
  startT?: number;
  mask?: Tensor;
  x0?: Tensor;
}

export class DDPM extends Module implements DiffusionModel {
  /** the class name, for messages (LatentDiffusion when extended) */
  readonly owner: string;
  readonly model: DiffusionWrapper;
  readonly model_ema: LitEma | null;
  readonly diffusion: GaussianDiffusion;
  /** float64 schedule (register_schedule before the float32 cast) */
  readonly schedule: LdmSchedule;
  readonly numTimesteps: number;
  readonly parameterization: 'eps' | 'x0' | 'v';
  clipDenoised: boolean;
  readonly logEveryT: number;
  readonly firstStageKey: string;
  readonly imageSize: number;
  readonly channels: number;
  readonly usePositionalEncodings: boolean;
  readonly useEma: boolean;
  readonly useScheduler: boolean;
  readonly schedulerConfig: TargetConfig | null;
  readonly vPosterior: number;
  readonly originalElboWeight: number;
  readonly lSimpleWeight: number;
  readonly monitor: string | null;
  readonly lossType: LossType;
  readonly learnLogvar: boolean;
  readonly linearStart: number;
  readonly linearEnd: number;
  readonly ignoreKeys: string[];
  readonly loadOnlyUnet: boolean;
  /** per-timestep log-variance [T]: a parameter (state key `logvar`) when learn_logvar */
  readonly logvar: Tensor;
  /** non-persistent buffer `lvlb_weights` [T] */
  readonly lvlbWeights: Tensor;
  /** LatentDiffusion.p_losses weighs the loss by exp(-logvar_t) (DDPM.p_losses does not). */
  protected logvarInLoss = false;

  constructor(params: DDPMOptions, build: BuildFn, allowedExtra: readonly string[] = []) {
    super();
    const owner = new.target.name;
    this.owner = owner;
    checkKwargs(owner, params, [...DDPM_KWARGS, ...allowedExtra]);
    const o = params, kw = kwargs(owner, o);
    // 1. options with the official defaults
    const parameterization = kw.str('parameterization', 'eps', ['eps', 'x0', 'v']);
    this.parameterization = parameterization;
    this.clipDenoised = kw.bool('clip_denoised', true);
    this.logEveryT = kw.num('log_every_t', 100);
    this.firstStageKey = kw.str('first_stage_key', 'image');
    this.imageSize = kw.num('image_size', 256);
    this.channels = kw.num('channels', 3);
    this.usePositionalEncodings = kw.bool('use_positional_encodings', false);
    const ck = (o['conditioning_key'] ?? null) as ConditioningKey | null;
    const unetCfg = o['unet_config'] as TargetConfig | undefined;
    if (!unetCfg || typeof unetCfg !== 'object' || typeof unetCfg.target !== 'string') {
      throw new ConfigError(`${owner}: 'unet_config' must be a {target, params} config`);
    }
    // 2. the network: DiffusionWrapper(unet_config, conditioning_key)
    const net = build(unetCfg, `${owner}.unet_config`);
    if (!isDiffusionNet(net)) throw new ConfigError(`${owner}: unet_config target '${unetCfg.target}' did not build a network module`);
    this.model = this.child('model', new DiffusionWrapper(net, ck));
    this.useEma = kw.bool('use_ema', true);
    this.model_ema = this.optionalChild('model_ema', this.useEma ? new LitEma(this.model) : null);
    const sc = (o['scheduler_config'] ?? null) as TargetConfig | null;
    this.useScheduler = sc !== null;
    this.schedulerConfig = sc;
    this.vPosterior = kw.num('v_posterior', 0);
    this.originalElboWeight = kw.num('original_elbo_weight', 0);
    this.lSimpleWeight = kw.num('l_simple_weight', 1);
    const mon = o['monitor'] === undefined ? 'val/loss' : o['monitor'];
    this.monitor = mon === null ? null : kw.str('monitor', 'val/loss');
    this.ignoreKeys = (o['ignore_keys'] ?? []) as string[];
    this.loadOnlyUnet = kw.bool('load_only_unet', false);
    if (o['ckpt_path'] !== undefined && o['ckpt_path'] !== null) {
      throw new ConfigError(`${owner}: ckpt_path '${String(o['ckpt_path'])}' cannot be read by the model (models do no file I/O); ` +
        'load the checkpoint through io/ (loadCheckpoint) after construction, with ignore_keys / load_only_unet there');
    }
    // 3. register_schedule
    this.linearStart = kw.num('linear_start', 1e-4);
    this.linearEnd = kw.num('linear_end', 2e-2);
    const given = o['given_betas'] ?? null;
    let betas: ArrayLike<number>;
    if (given !== null) {
      if (!Array.isArray(given) || !given.every((b) => typeof b === 'number')) throw new ConfigError(`${owner}: 'given_betas' must be a list of numbers`);
      betas = given as number[];
    } else {
      betas = makeBetaSchedule(kw.str('beta_schedule', 'linear', ['linear', 'cosine', 'sqrt_linear', 'sqrt']),
        kw.num('timesteps', 1000), this.linearStart, this.linearEnd, kw.num('cosine_s', 8e-3));
    }
    this.schedule = registerSchedule(betas, { parameterization, vPosterior: this.vPosterior });
    this.numTimesteps = betas.length;
    this.diffusion = new GaussianDiffusion(this.schedule, { parameterization, varianceType: 'fixedsmall', clipDenoised: this.clipDenoised });
    for (const k of DIFFUSION_BUFFER_KEYS) this.buffer(k, this.diffusion.buffers[k]);
    this.lvlbWeights = this.buffer('lvlb_weights', new Tensor(Float32Array.from(this.schedule.lvlb_weights), [this.numTimesteps]), false);
    // 4. loss settings and logvar
    this.lossType = kw.str('loss_type', 'l2', ['l1', 'l2']);
    this.learnLogvar = kw.bool('learn_logvar', false);
    const logvar = full([this.numTimesteps], kw.num('logvar_init', 0));
    this.logvar = this.learnLogvar ? this.param('logvar', logvar) : logvar;
  }

  // ---- q(x_t | x_0) and the posterior (delegations with the official names in comments) -----------

  /** `q_mean_variance(x_start, t)` */
  qMeanVariance(xStart: Tensor, t: Tensor): MeanVariance { return this.diffusion.qMeanVariance(xStart, t); }
  /** `predict_start_from_noise(x_t, t, noise)` */
  predictStartFromNoise(xT: Tensor, t: Tensor, noise: Tensor): Tensor { return this.diffusion.predictStartFromNoise(xT, t, noise); }
  /** `q_posterior(x_start, x_t, t)` */
  qPosterior(xStart: Tensor, xT: Tensor, t: Tensor): MeanVariance { return this.diffusion.qPosterior(xStart, xT, t); }
  /** `q_sample(x_start, t, noise)`; noise defaults to randn_like(x_start) from gen. */
  qSample(xStart: Tensor, t: Tensor, noise?: Tensor, gen?: Generator): Tensor {
    return this.diffusion.qSample(xStart, t, noise ?? randn(xStart.shape, gen ?? defaultGenerator));
  }

  // ---- the DiffusionModel face (diffusion-model.ts) -----------------------------------------------

  sampleShape(n: number): number[] {
    return [n, this.channels, this.imageSize, this.imageSize];
  }

  /** 'adm' with a class-conditional network: class labels (the null label is the config's). */
  conditioningSpec(): ConditioningSpec {
    const n = this.model.diffusion_model.numClasses;
    if (this.model.conditioningKey === 'adm' && typeof n === 'number') return { kind: 'class', numClasses: n, nullLabel: null };
    return this.model.conditioningKey === null ? { kind: 'none' } : { kind: 'other' };
  }

  condition(input: ConditionInput): Cond {
    const spec = this.conditioningSpec();
    if ('prompts' in input) throw new ConfigError(`${this.constructor.name}: this model takes no text prompts (conditioning: ${spec.kind})`);
    if (spec.kind !== 'class') throw new ConfigError(`${this.constructor.name}: this model is not class-conditional (conditioning: ${spec.kind})`);
    const bad = input.labels.find((l) => !Number.isInteger(l) || l < 0 || l >= spec.numClasses);
    if (bad !== undefined) throw new ConfigError(`${this.constructor.name}: class ${bad} is outside 0..${spec.numClasses - 1}`);
    return { y: new Tensor(Float64Array.from(input.labels), [input.labels.length], 'int64') };
  }

  unconditional(n: number, nullLabel: number | null = null): Cond | null {
    return this.conditioningSpec().kind === 'class' && nullLabel !== null ? { y: full([n], nullLabel, 'int64') } : null;
  }

  // ---- the network ------------------------------------------------------------------------------

  /** The official `apply_model` wrapping: a tensor / list becomes {c_concat} for 'concat', else {c_crossattn}. */
  protected wrapCond(cond: CondInput): Cond {
    if (cond === null || cond === undefined) return {};
    if (cond instanceof Tensor || Array.isArray(cond)) {
      const list = cond instanceof Tensor ? [cond] : cond;
      return this.model.conditioningKey === 'concat' ? { c_concat: list } : { c_crossattn: list };
    }
    return cond;
  }

  /** `apply_model(x_noisy, t, cond)` -> DiffusionWrapper output. */
  applyModel(xNoisy: Tensor, t: Tensor, cond?: CondInput): Tensor {
    return this.model.forward(xNoisy, t, this.wrapCond(cond));
  }

  /** The model as a Denoiser for the samplers of diffusion/: each call runs in T.inference, so
   *  a sampling loop reuses the activation buffers of the previous call. */
  denoiser(): Denoiser {
    return (x, t, c) => inference(() => this.applyModel(x, t, c));
  }

  // ---- reverse process ----------------------------------------------------------------------------

  /** `p_mean_variance(x, t, clip_denoised)`: model -> x0 estimate (clamped) -> q_posterior. */
  pMeanVariance(x: Tensor, t: Tensor, clipDenoised: boolean, cond?: CondInput): PMeanVariance {
    return this.diffusion.pMeanVariance(this.applyModel(x, t, cond), x, t, { clipDenoised });
  }

  /** `p_sample(x, t, clip_denoised)`: noise given or drawn (after the model call) from gen. */
  pSample(x: Tensor, t: Tensor, opts: { clipDenoised?: boolean; noise?: Tensor; gen?: Generator; cond?: CondInput } = {}): Tensor {
    const c = this.wrapCond(opts.cond);
    return this.diffusion.pSample(this.denoiser(), x, t, {
      cond: c, clipDenoised: opts.clipDenoised ?? true,
      ...(opts.noise ? { noise: opts.noise } : {}), ...(opts.gen ? { gen: opts.gen } : {}),
    }).sample;
  }

  /** `p_sample_loop(shape, return_intermediates)` through the sampler table's `ddpm` row:
   *  x_T, then x_t at t % log_every_t == 0 or T-1. */
  pSampleLoop(shape: readonly number[], opts: DdpmSampleOptions = {}): SampleResult {
    const r = this.ancestral(shape, opts, false);
    return { sample: r.samples, intermediates: r.intermediates.x_inter };
  }

  /** `sample(batch_size, return_intermediates)`: p_sample_loop over [B, channels, image_size, image_size]. */
  sample(batchSize = 16, opts: DdpmSampleOptions = {}): SampleResult {
    return this.pSampleLoop([batchSize, this.channels, this.imageSize, this.imageSize], opts);
  }

  /** `progressive_denoising`: the x0 estimates every log_every_t steps. */
  progressiveDenoising(shape: readonly number[], opts: DdpmSampleOptions = {}): SampleResult {
    const r = this.ancestral(shape, opts, true);
    return { sample: r.samples, intermediates: r.intermediates.pred_x0 };
  }

  private ancestral(shape: readonly number[], opts: DdpmSampleOptions, progressive: boolean): SamplerResult {
    const { cond, startT, logEveryT, ...rest } = opts;
    return SAMPLERS.ddpm(this.denoiser(), this.diffusion, {
      ...rest, shape, cond: this.wrapCond(cond), clipDenoised: this.clipDenoised, logEvery: logEveryT ?? this.logEveryT, progressive,
      ...(startT !== undefined ? { tStart: Math.min(startT, this.numTimesteps) } : {}),
    });
  }

  // ---- training -------------------------------------------------------------------------------------

  /** `get_loss(pred, target, mean)`: l1 |target - pred| or l2 mse, elementwise or averaged. */
  getLoss(pred: Tensor, target: Tensor, mean = true): Tensor {
    const l = elementLoss(pred, target, this.lossType);
    return mean ? l.mean() : l;
  }

  /**
   * `p_losses(x_start, t, noise)` (LatentDiffusion: with cond):
   *  1. x_noisy = q_sample(x_start, t, noise); 2. out = apply_model(x_noisy, t, cond);
   *  3. target by parameterization (eps: noise, x0: x_start, v: get_v);
   *  4. loss assembly and log keys (diffusion/losses.ts `ldmLoss`).
   */
  pLosses(xStart: Tensor, t: Tensor, noise?: Tensor, cond?: CondInput, gen?: Generator): LossWithLog & { modelOutput: Tensor; xNoisy: Tensor } {
    const n = noise ?? randn(xStart.shape, gen ?? defaultGenerator);
    const xNoisy = this.diffusion.qSample(xStart, t, n); // 1.
    const modelOutput = this.applyModel(xNoisy, t, cond); // 2.
    const target = lossTarget(this.parameterization, this.diffusion, xStart, n, t); // 3.
    const r = ldmLoss({ // 4.
      modelOutput, target, t, lossType: this.lossType, lvlbWeights: this.lvlbWeights,
      lSimpleWeight: this.lSimpleWeight, originalElboWeight: this.originalElboWeight,
      logvar: this.logvarInLoss ? this.logvar : null, learnLogvar: this.learnLogvar,
      prefix: this.training ? 'train' : 'val',
    });
    return { ...r, modelOutput, xNoisy };
  }

  /** `forward(x)`: t ~ randint(0, T, [B]) from gen (drawn first), then p_losses (noise from gen). */
  forward(x: Tensor, opts: { gen?: Generator; t?: Tensor; noise?: Tensor; cond?: CondInput } = {}): LossWithLog {
    const gen = opts.gen ?? defaultGenerator;
    const t = opts.t ?? randint(0, this.numTimesteps, [x.shape[0]!], gen);
    return this.pLosses(x, t, opts.noise, opts.cond, gen);
  }

  /** `get_input(batch, k)`: channels-last [B, H, W(, C)] -> [B, C, H, W] float32. */
  getInput(batch: Readonly<Record<string, unknown>>, k: string): Tensor {
    const v = batch[k];
    if (!(v instanceof Tensor)) throw new ConfigError(`${this.owner}.get_input: batch has no tensor under '${k}' (keys: ${Object.keys(batch).join(', ')})`);
    let x = v;
    if (x.ndim === 3) x = unsqueeze(x, 3);
    if (x.ndim !== 4) throw new ShapeError(`${this.owner}.get_input: '${k}' ${fmtShape(x.shape)} is not [B, H, W, C]`);
    return toFloat(permute(x, [0, 3, 1, 2])); // [B, C, H, W]
  }

  /** `shared_step(batch)`: get_input(batch, first_stage_key) then forward. */
  sharedStep(batch: Readonly<Record<string, unknown>>, opts: { gen?: Generator; t?: Tensor; noise?: Tensor } = {}): LossWithLog {
    return this.forward(this.getInput(batch, this.firstStageKey), opts);
  }

  /** `validation_step`: the loss dict without and with EMA weights (keys + '_ema'). */
  validationLosses(batch: Readonly<Record<string, unknown>>, gen?: Generator): Map<string, Tensor> {
    return noGrad(() => {
      const g = gen ?? defaultGenerator;
      const out = new Map(this.sharedStep(batch, { gen: g }).lossDict);
      this.emaScope(() => {
        for (const [k, v] of this.sharedStep(batch, { gen: g }).lossDict) out.set(`${k}_ema`, v);
      });
      return out;
    });
  }

  /** `on_train_batch_end`: one EMA update. */
  onTrainBatchEnd(): void {
    this.model_ema?.update();
  }

  /** `ema_scope`: run fn with the EMA weights swapped in (no-op without use_ema). */
  emaScope<T>(fn: () => T): T {
    return this.model_ema ? this.model_ema.scope(fn) : fn();
  }

  /** `configure_optimizers` parameter list: the wrapper's parameters (+ logvar when learned). */
  trainableParameters(): Tensor[] {
    const ps = this.model.parameters().filter((p) => p.requiresGrad);
    return this.learnLogvar ? [...ps, this.logvar] : ps;
  }
}

/** Official class paths of this file -> constructors (merged into MODEL_TARGETS). */
export const ddpmTargets = {
  'ldm.models.diffusion.ddpm.DDPM': (params, build) => new DDPM(readOptions('DDPM', params, DDPM_SCHEMA), build),
} satisfies TargetTable;
