// `GaussianDiffusion` of lucidrains/denoising-diffusion-pytorch v2.3.1 (faed4db): objectives
// pred_noise / pred_x0 / pred_v (Salimans & Ho 2022, appendix D), linear / cosine / sigmoid beta
// schedules, min-SNR loss weights (Hang et al. 2023), auto-normalisation [0, 1] <-> [-1, 1],
// q_sample, model_predictions (clip_x_start, rederive_pred_noise), p_mean_variance, p_sample,
// p_sample_loop and ddim_sample (Song et al. 2021; times from a float32 linspace truncated by
// `.int()`), and the training loss p_losses (offset noise and self-conditioning included).
// The Gaussian math and the sampling loops are diffusion/'s: this class holds a diffusion
// GaussianDiffusion over its buffers with lucidrains' quirks as data (objective -> parameterization,
// x_start always clipped, no noise draw at t = 0, `lucidrainsDdimPlan` for DDIM) and samples
// through the sampler table. Numerics as the official: every buffer is computed in float64
// (diffusion/schedules.ts) and stored FLOAT32; DDIM's per-step scalars are float32 0-d tensor
// arithmetic (emulated with Math.fround). Output mapping quirks: `ddim_sample` /
// `p_sample_loop` return unnormalize(...) ([0, 1]); `p_sample` returns the raw [-1, 1] image.
// Random draws (torch.randn / randn_like / randint / python random) come from a NoiseFn or a
// Generator, in the official order.
// Not supported: immiscible diffusion (scipy linear_sum_assignment), rejected by name.

import { ConfigError, F, Generator, ShapeError, checkKwargs, field, fmtShape, required, schemaKeys, type Schema } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Module, mseLoss } from '../nn/index.ts';
import {
  DIFFUSION_BUFFER_KEYS, GaussianDiffusion as Diffusion, SAMPLERS, lucidrainsBetaSchedule, lucidrainsBuffers, lucidrainsDdimPlan,
  type Cond, type Denoiser, type LucidrainsBetaScheduleKind, type LucidrainsObjective, type SampleOptions, type SamplerResult,
} from '../diffusion/index.ts';
import { noiseFromGenerator, type NoiseFn } from './pddpm-diffusion.ts';
import type { ConditionInput, ConditioningSpec, DiffusionModel } from './diffusion-model.ts';


/** The network GaussianDiffusion drives (lucidrains Unet or anything with the same attributes). */
export interface LucidrainsModel extends Module {
  readonly channels: number;
  readonly out_dim?: number;
  readonly self_condition: boolean;
  readonly random_or_learned_sinusoidal_cond?: boolean;
  forward(x: Tensor, t: Tensor, xSelfCond?: Tensor | null): Tensor;
}

export interface LucidrainsModelPrediction {
  pred_noise: Tensor;
  pred_x_start: Tensor;
}

/** lucidrains `GaussianDiffusion(model, *, image_size, timesteps=1000, sampling_timesteps=None,
 *  objective='pred_v', beta_schedule='sigmoid', schedule_fn_kwargs=dict(), ddim_sampling_eta=0.,
 *  auto_normalize=True, offset_noise_strength=0., min_snr_loss_weight=False, min_snr_gamma=5,
 *  immiscible=False)` (image_size: an int or a [h, w] list). */
export interface LucidrainsDiffusionOptions {
  model: LucidrainsModel;
  image_size: number | readonly number[];
  timesteps?: number;
  sampling_timesteps?: number | null;
  objective?: LucidrainsObjective;
  beta_schedule?: LucidrainsBetaScheduleKind;
  /** the schedule function's kwargs (cosine: s; sigmoid: start, end, tau, clamp_min) */
  schedule_fn_kwargs?: Readonly<Record<string, number>>;
  ddim_sampling_eta?: number;
  auto_normalize?: boolean;
  offset_noise_strength?: number;
  min_snr_loss_weight?: boolean;
  min_snr_gamma?: number;
  /** rejected when true (needs scipy's linear_sum_assignment) */
  immiscible?: boolean;
}

const isLucidrainsModel = (v: unknown): v is LucidrainsModel => v instanceof Module && 'channels' in v && typeof v.channels === 'number';

/** The kwargs as a config gives them, `model` built from its nested config (readOptions). */
export const LUCIDRAINS_DIFFUSION_SCHEMA: Schema<LucidrainsDiffusionOptions> = {
  model: required(field("a built network with 'channels' (for example lucidrains Unet)", isLucidrainsModel)),
  image_size: required(F.either(F.int, F.intList, 'an integer or a list of two integers')),
  timesteps: F.int, sampling_timesteps: F.int, objective: F.oneOf('pred_noise', 'pred_x0', 'pred_v'),
  beta_schedule: F.oneOf('linear', 'cosine', 'sigmoid'),
  schedule_fn_kwargs: field('a mapping of numbers', (v): v is Record<string, number> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'number')),
  ddim_sampling_eta: F.num, auto_normalize: F.bool, offset_noise_strength: F.num, min_snr_loss_weight: F.bool, min_snr_gamma: F.num,
  immiscible: F.bool,
};
const KEYS = schemaKeys(LUCIDRAINS_DIFFUSION_SCHEMA);

const SCHEDULE_KWARGS: Record<LucidrainsBetaScheduleKind, readonly string[]> = {
  linear: [],
  cosine: ['s'],
  sigmoid: ['start', 'end', 'tau', 'clamp_min'], // clamp_min is accepted and unused by the official
};

export interface LucidrainsLossOptions {
  /** Timesteps int64 [B]; drawn with torch.randint(0, T, (B,)) from `generator` when absent. */
  times?: Tensor;
  /** Noise like the image; drawn with torch.randn_like from `generator` when absent. */
  noise?: Tensor;
  offset_noise_strength?: number;
  loss_reduction?: 'mean' | 'none';
  generator?: Generator;
}

export interface LucidrainsLossTerms {
  /** loss_reduction 'mean': 0-d; 'none': [B]. */
  loss: Tensor;
  x_t: Tensor;
  model_out: Tensor;
  target: Tensor;
}

const PARAMETERIZATION = { pred_noise: 'eps', pred_x0: 'x0', pred_v: 'v' } as const satisfies Record<LucidrainsObjective, string>;

type BufferName = (typeof DIFFUSION_BUFFER_KEYS)[number] | 'loss_weight';

/** lucidrains `GaussianDiffusion(model, *, image_size, timesteps=1000, ...)` (named apart from diffusion/'s
 *  GaussianDiffusion, which it holds). As a DiffusionModel it samples images in the network's
 *  [-1, 1] space (the official `sample` returns them unnormalized to [0, 1]). */
export class LucidrainsDiffusion extends Module implements DiffusionModel {
  readonly model: LucidrainsModel;
  readonly channels: number;
  readonly self_condition: boolean;
  readonly image_size: readonly [number, number];
  readonly objective: LucidrainsObjective;
  readonly num_timesteps: number;
  readonly sampling_timesteps: number;
  readonly is_ddim_sampling: boolean;
  ddim_sampling_eta: number;
  readonly auto_normalize: boolean;
  offset_noise_strength: number;
  /** The Gaussian math over this module's buffers (the same tensors: loading a state dict updates both). */
  readonly diffusion: Diffusion;

  constructor(params: LucidrainsDiffusionOptions) {
    super();
    const owner = 'lucidrains GaussianDiffusion';
    checkKwargs(owner, params, KEYS);
    const m: unknown = params['model'];
    if (!isLucidrainsModel(m)) throw new ConfigError(`${owner}: 'model' must be a built network with 'channels' (for example lucidrains Unet)`);
    if (m.out_dim !== undefined && m.channels !== m.out_dim) throw new ConfigError(`${owner}: model.channels (${m.channels}) != model.out_dim (${m.out_dim}) (learned variance needs a different class)`);
    if (m.random_or_learned_sinusoidal_cond) throw new ConfigError(`${owner}: the model must not use random or learned sinusoidal conditioning`);
    this.model = this.child('model', m);
    this.channels = m.channels;
    this.self_condition = m.self_condition;

    const size = params['image_size'];
    if (typeof size === 'number' && Number.isInteger(size) && size > 0) this.image_size = [size, size];
    else if (Array.isArray(size) && size.length === 2 && size.every((s) => Number.isInteger(s) && s > 0)) this.image_size = [size[0] as number, size[1] as number];
    else throw new ConfigError(`${owner}: image size must be a integer or a tuple/list of two integers, got ${JSON.stringify(size)}`);

    const objective = params['objective'] ?? 'pred_v';
    if (objective !== 'pred_noise' && objective !== 'pred_x0' && objective !== 'pred_v') {
      throw new ConfigError(`${owner}: objective must be either pred_noise, pred_x0 or pred_v, got ${JSON.stringify(objective)}`);
    }
    this.objective = objective;
    const schedule = params['beta_schedule'] ?? 'sigmoid';
    if (schedule !== 'linear' && schedule !== 'cosine' && schedule !== 'sigmoid') throw new ConfigError(`${owner}: unknown beta schedule ${JSON.stringify(schedule)}`);
    const kw = (params['schedule_fn_kwargs'] ?? {}) as Record<string, number>;
    checkKwargs(`${owner} schedule_fn_kwargs (${schedule})`, kw, SCHEDULE_KWARGS[schedule]);
    const timesteps = params['timesteps'] ?? 1000;
    if (!Number.isInteger(timesteps) || (timesteps as number) < 1) throw new ConfigError(`${owner}: timesteps must be a positive integer, got ${JSON.stringify(timesteps)}`);
    const betas = lucidrainsBetaSchedule(schedule, timesteps as number, kw);
    this.num_timesteps = betas.length;

    const st = params['sampling_timesteps'] ?? this.num_timesteps;
    if (!Number.isInteger(st) || (st as number) < 1 || (st as number) > this.num_timesteps) {
      throw new ConfigError(`${owner}: sampling_timesteps must be an integer in [1, ${this.num_timesteps}], got ${JSON.stringify(st)}`);
    }
    this.sampling_timesteps = st as number;
    this.is_ddim_sampling = this.sampling_timesteps < this.num_timesteps;
    this.ddim_sampling_eta = (params['ddim_sampling_eta'] ?? 0) as number;

    // buffers: float64 values cast to float32 (register_buffer(name, val.to(torch.float32)))
    const bufs = lucidrainsBuffers(betas, {
      objective,
      minSnrLossWeight: Boolean(params['min_snr_loss_weight'] ?? false),
      minSnrGamma: (params['min_snr_gamma'] ?? 5) as number,
    });
    this.diffusion = new Diffusion(bufs, {
      parameterization: PARAMETERIZATION[objective], varianceType: 'fixedsmall', clipDenoised: true,
      noiseAtLastStep: false, ddimSchedule: lucidrainsDdimPlan,
    });
    for (const k of DIFFUSION_BUFFER_KEYS) this.buffer(k, this.diffusion.buffers[k]);
    this.buffer('loss_weight', new Tensor(Float32Array.from(bufs.loss_weight), [bufs.loss_weight.length]));

    if (params['immiscible']) throw new ConfigError(`${owner}: immiscible=True (noise assignment by scipy linear_sum_assignment) is not supported`);
    this.offset_noise_strength = (params['offset_noise_strength'] ?? 0) as number;
    this.auto_normalize = Boolean(params['auto_normalize'] ?? true);
  }

  /** A float32 buffer value at index i (alphas_cumprod[time] etc.). */
  bufferAt(name: BufferName, i: number): number {
    const b = this.getBuffer(name).f32;
    if (!Number.isInteger(i) || i < 0 || i >= b.length) throw new ShapeError(`GaussianDiffusion.${name}: index ${i} outside [0, ${b.length})`);
    return b[i]!;
  }

  /** `extract(a, t, x_shape)`: float32 buffer values at t, shape [B, 1, ..., 1]. */
  extract(name: BufferName, t: Tensor, ndim: number): Tensor {
    const out = new Float32Array(t.size);
    for (let i = 0; i < t.size; i++) out[i] = this.bufferAt(name, t.data[i]!);
    return new Tensor(out, [t.size, ...new Array<number>(ndim - 1).fill(1)]);
  }

  normalize(img: Tensor): Tensor {
    return this.auto_normalize ? T.sub(T.mul(img, 2), 1) : img;
  }

  unnormalize(t: Tensor): Tensor {
    return this.auto_normalize ? T.mul(T.add(t, 1), 0.5) : t;
  }

  predictStartFromNoise(xt: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.diffusion.predictStartFromNoise(xt, t, noise);
  }

  predictNoiseFromStart(xt: Tensor, t: Tensor, x0: Tensor): Tensor {
    return this.diffusion.predictEpsFromStart(xt, t, x0);
  }

  /** v = sqrt(abar) eps - sqrt(1 - abar) x_0. */
  predictV(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.diffusion.getV(x0, noise, t);
  }

  /** x_0 = sqrt(abar) x_t - sqrt(1 - abar) v. */
  predictStartFromV(xt: Tensor, t: Tensor, v: Tensor): Tensor {
    return this.diffusion.predictStartFromV(xt, t, v);
  }

  /** q(x_{t-1} | x_t, x_0): mean, variance, clipped log variance. */
  qPosterior(x0: Tensor, xt: Tensor, t: Tensor): { mean: Tensor; variance: Tensor; logVariance: Tensor } {
    return this.diffusion.qPosterior(x0, xt, t);
  }

  modelPredictions(x: Tensor, t: Tensor, xSelfCond: Tensor | null = null, clipXStart = false, rederivePredNoise = false): LucidrainsModelPrediction {
    const out = this.model.forward(x, t, xSelfCond);
    const clip = (v: Tensor): Tensor => (clipXStart ? T.clamp(v, -1, 1) : v);
    let predNoise: Tensor, xStart: Tensor;
    switch (this.objective) {
      case 'pred_noise':
        predNoise = out;
        xStart = clip(this.predictStartFromNoise(x, t, predNoise));
        if (clipXStart && rederivePredNoise) predNoise = this.predictNoiseFromStart(x, t, xStart);
        break;
      case 'pred_x0':
        xStart = clip(out);
        predNoise = this.predictNoiseFromStart(x, t, xStart);
        break;
      case 'pred_v':
        xStart = clip(this.predictStartFromV(x, t, out));
        predNoise = this.predictNoiseFromStart(x, t, xStart);
        break;
    }
    return { pred_noise: predNoise, pred_x_start: xStart };
  }

  pMeanVariance(x: Tensor, t: Tensor, xSelfCond: Tensor | null = null, clipDenoised = true):
    { mean: Tensor; variance: Tensor; logVariance: Tensor; xStart: Tensor } {
    let xStart = this.modelPredictions(x, t, xSelfCond).pred_x_start;
    if (clipDenoised) xStart = T.clamp(xStart, -1, 1);
    return { ...this.qPosterior(xStart, x, t), xStart };
  }

  /**
   * The network as a Denoiser for the sampler table. With self-conditioning it feeds each call
   * the previous call's clipped x_start (what p_sample_loop / ddim_sample pass on), so use a
   * fresh one per sampling run.
   */
  denoiser(): Denoiser {
    let selfCond: Tensor | null = null;
    return (x, t) => {
      const out = T.inference(() => this.model.forward(x, t, selfCond));
      if (this.self_condition) selfCond = T.clamp(this.diffusion.predictXstart(out, x, t), -1, 1);
      return out;
    };
  }

  // ---- the DiffusionModel face (diffusion-model.ts): an unconditional pixel-space model -----------

  get numTimesteps(): number {
    return this.num_timesteps;
  }

  /** p_sample / ddim_sample always clip x_start. */
  readonly clipDenoised = true;

  sampleShape(n: number): number[] {
    return [n, this.channels, this.image_size[0], this.image_size[1]];
  }

  conditioningSpec(): ConditioningSpec {
    return { kind: 'none' };
  }

  condition(_input: ConditionInput): Cond {
    throw new ConfigError('lucidrains GaussianDiffusion: this model is unconditional (no class labels or prompts)');
  }

  unconditional(_n: number): Cond | null {
    return null;
  }

  /** One ancestral step at integer time t: [pred_img (NOT unnormalized), x_start]. */
  pSample(x: Tensor, t: number, opts: { selfCond?: Tensor | null; noise?: NoiseFn; generator?: Generator } = {}): { pred_img: Tensor; x_start: Tensor } {
    const sc = opts.selfCond ?? null;
    const r = this.diffusion.pSample((xx, tt) => this.model.forward(xx, tt, sc), x, T.full([x.dim(0)], t, 'int64'), {
      clipDenoised: true, ...(t > 0 ? { noise: this.noiseFn(opts)(x.shape) } : {}),
    });
    return { pred_img: r.sample, x_start: r.predXstart };
  }

  /** The full ancestral chain T-1 .. 0 (the table's `ddpm` row) from img = torch.randn(shape); returns unnormalize(img or stack). */
  pSampleLoop(shape: readonly number[], returnAllTimesteps = false, opts: { noise?: NoiseFn; generator?: Generator } = {}): Tensor {
    return this.run('ddpm', shape, this.num_timesteps - 1, returnAllTimesteps, opts);
  }

  /**
   * DDIM (Song et al. 2021, eq. 12), `ddim_sample`, through the table's `ddim` row with
   * `lucidrainsDdimPlan`: times = reversed(linspace(-1, T-1, S+1).int()); x_start clipped and
   * pred_noise re-derived; the last pair (time_next = -1) returns x_start. Returns
   * unnormalize(img) or unnormalize(stack of every img) [B, S+1, C, H, W].
   */
  ddimSample(shape: readonly number[], returnAllTimesteps = false, opts: { noise?: NoiseFn; generator?: Generator; eta?: number } = {}): Tensor {
    return this.run('ddim', shape, this.sampling_timesteps - 1, returnAllTimesteps, opts);
  }

  private run(sampler: 'ddpm' | 'ddim', shape: readonly number[], draws: number, returnAll: boolean,
    opts: { noise?: NoiseFn; generator?: Generator; eta?: number }): Tensor {
    // a NoiseFn replays the official draws in order: x_T, then one per step that draws
    const src: Pick<SampleOptions, 'xT' | 'noises' | 'gen'> = opts.noise
      ? { xT: opts.noise(shape), noises: Array.from({ length: draws }, () => opts.noise!(shape)) }
      : { gen: opts.generator ?? missing('noise or generator') };
    const r: SamplerResult = T.noGrad(() => SAMPLERS[sampler](this.denoiser(), this.diffusion, {
      ...src, shape, steps: this.sampling_timesteps, eta: opts.eta ?? this.ddim_sampling_eta, clipDenoised: true, logEvery: 1,
    }));
    return this.unnormalize(returnAll ? T.stack(r.intermediates.x_inter, 1) : r.samples);
  }

  /** `sample(batch_size)`: DDIM when sampling_timesteps < timesteps, else the ancestral loop. */
  sample(batchSize = 16, returnAllTimesteps = false, opts: { noise?: NoiseFn; generator?: Generator } = {}): Tensor {
    const shape = [batchSize, this.channels, this.image_size[0], this.image_size[1]];
    return this.is_ddim_sampling ? this.ddimSample(shape, returnAllTimesteps, opts) : this.pSampleLoop(shape, returnAllTimesteps, opts);
  }

  /** q(x_t | x_0) = sqrt(abar) x_0 + sqrt(1 - abar) noise. */
  qSample(x0: Tensor, t: Tensor, noise: Tensor): Tensor {
    return this.diffusion.qSample(x0, t, noise);
  }

  /** `p_losses(x_start, t, noise, offset_noise_strength, loss_reduction)` with its intermediate values. */
  pLossTerms(x0: Tensor, t: Tensor, opts: LucidrainsLossOptions = {}): LucidrainsLossTerms {
    const [b, c] = x0.shape as [number, number];
    let noise = opts.noise ?? (opts.generator ? T.randn(x0.shape, opts.generator) : missing('noise'));
    if (noise.size !== x0.size) throw new ShapeError(`GaussianDiffusion: noise ${fmtShape(noise.shape)} vs image ${fmtShape(x0.shape)}`);
    const offset = opts.offset_noise_strength ?? this.offset_noise_strength;
    if (offset > 0) {
      const gen = opts.generator ?? missing('generator (offset noise)');
      noise = T.add(noise, T.mul(T.reshape(T.randn([b, c], gen), [b, c, 1, 1]), offset));
    }
    const x = this.qSample(x0, t, noise);
    let selfCond: Tensor | null = null;
    if (this.self_condition) {
      const gen = opts.generator ?? missing('generator (self-conditioning coin)');
      if (gen.rand(1)[0]! < 0.5) selfCond = T.noGrad(() => this.modelPredictions(x, t).pred_x_start).detach();
    }
    const modelOut = this.model.forward(x, t, selfCond);
    const target = this.objective === 'pred_noise' ? noise : this.objective === 'pred_x0' ? x0 : this.predictV(x0, t, noise);
    let loss = T.mean(mseLoss(modelOut, target, 'none'), [1, 2, 3].slice(0, x0.ndim - 1)); // 'b ... -> b'
    loss = T.mul(loss, this.extract('loss_weight', t, 1));
    if ((opts.loss_reduction ?? 'mean') === 'mean') loss = T.mean(loss);
    return { loss, x_t: x, model_out: modelOut, target };
  }

  /** `forward(img, times=None, noise=None, loss_reduction='mean')`: img in [0, 1] -> the training loss. */
  forward(img: Tensor, opts: LucidrainsLossOptions = {}): Tensor {
    return this.lossTerms(img, opts).loss;
  }

  /** forward() with its intermediate values (x_t, the model output, the target). */
  lossTerms(img: Tensor, opts: LucidrainsLossOptions = {}): LucidrainsLossTerms {
    const [b, , h, w] = img.shape as [number, number, number, number];
    if (img.ndim !== 4 || h !== this.image_size[0] || w !== this.image_size[1]) {
      throw new ShapeError(`GaussianDiffusion: height and width of image must be [${this.image_size.join(', ')}], got ${fmtShape(img.shape)}`);
    }
    const times = opts.times ?? (opts.generator ? T.randint(0, this.num_timesteps, [b], opts.generator) : missing('times'));
    if (times.size !== b) throw new ShapeError(`GaussianDiffusion: ${times.size} times for a batch of ${b}`);
    return this.pLossTerms(this.normalize(img), times, opts);
  }

  private noiseFn(opts: { noise?: NoiseFn; generator?: Generator }): NoiseFn {
    return opts.noise ?? (opts.generator ? noiseFromGenerator(opts.generator) : missing('noise or generator'));
  }
}

function missing(what: string): never {
  throw new ConfigError(`lucidrains GaussianDiffusion: pass '${what}' or a generator to draw it from`);
}
