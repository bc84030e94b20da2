// `LatentDiffusion` of ldm/models/diffusion/ddpm.py (CompVis/latent-diffusion a506df5): the LDM
// `DDPM` run on the latents of a frozen first stage, with a conditioning stage.
//  - first stage (`first_stage_config`): built through the registry, eval, requires_grad False,
//    `train()` cannot switch it back (the official `disabled_train`);
//  - cond stage (`cond_stage_config`): a {target, params} config, '__is_first_stage__' (the first
//    stage itself) or '__is_unconditional__' (none; conditioning_key None); frozen unless
//    `cond_stage_trainable` (then embedded inside `forward`, and optimised with the UNet);
//  - conditioning_key: None -> 'concat' if concat_mode (default) else 'crossattn';
//  - `scale_factor`: a plain number, or (scale_by_std) the registered buffer `scale_factor`,
//    replaced on the very first training batch by 1 / std of the first batch's latents
//    (`onTrainBatchStart`; unbiased std of one posterior sample; asserts it starts at 1.0);
//  - `get_input` (here `getLatentInput`): channels-last image -> NCHW -> encode under no-grad ->
//    z = scale_factor * posterior SAMPLE; c from `cond_stage_key` ('caption' / 'class_label' /
//    an image key), embedded unless cond_stage_trainable;
//  - `p_losses`: DDPM's, with the per-timestep logvar weighting `loss_simple / exp(logvar_t) +
//    logvar_t` (loss_simple logged before the division), lvlb and l_simple_weight;
//  - `num_timesteps_cond` > 1: the conditioning is itself noised by q_sample at cond_ids[t]
//    during training (`make_cond_schedule`; the samplers do not do this, as DDIMSampler does not);
//  - classifier-free guidance training: `ucg_training` {batch key: {p, val}} replaces raw
//    conditioning rows (null class / empty caption) with probability p in training `sharedStep`
//    (Stability's ddpm.py form; the trainer may do the same on its side instead, not both);
//  - sampling: `sampleLatent` runs a sampler of diffusion/ on the latent Denoiser and decodes.
//  - VQ first stages (VQModelInterface): encode gives the pre-quantisation h (used as is, times
//    scale_factor); decode_first_stage quantises unless `force_not_quantize` (or `predict_cids`,
//    which first maps argmax-over-channels code ids to codebook entries).
// Not supported (clear errors or documented no-ops): `split_input_params` patch-wise
// encode/decode, quantize_denoised, `use_positional_encodings`
// (the official get_input calls an undefined compute_latent_shifts), bbox/keypoint tokenizers.

import { ConfigError, F, Generator, LdmError, ShapeError, defaultGenerator, defined, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Module } from '../nn/index.ts';
import {
  getSampler, type Cond, type LossWithLog, type SampleOptions, type SamplerIntermediates, type SamplerName, type StepInfo,
} from '../diffusion/index.ts';
import { DDPM, DDPM_KWARGS, DDPM_SCHEMA, type CondInput, type DDPMOptions } from './ddpm.ts';
import { DiagonalGaussianDistribution } from './autoencoder/kl.ts';
import { VQModelBase, VQModelInterface } from './autoencoder/vq.ts';
import { BERTEmbedder, ClassEmbedder, TransformerEmbedder, conditioningTargets, inpaintingConcat, lowResConcat, type InterpolateMode } from './conditioning.ts';
import type { BuildFn, TargetConfig, TargetTable } from './targets.ts';
import type { ConditionInput, ConditioningSpec } from './diffusion-model.ts';

/** `LatentDiffusion(first_stage_config, cond_stage_config, num_timesteps_cond=None, cond_stage_key='image',
 *  cond_stage_trainable=False, concat_mode=True, cond_stage_forward=None, conditioning_key=None,
 *  scale_factor=1.0, scale_by_std=False, *args, **kwargs)`: its own kwargs and DDPM's, plus
 *  `ucg_training` (batch key -> {p, val}: conditioning dropout, as later LDM code bases write it). */
export interface LatentDiffusionOptions extends DDPMOptions {
  first_stage_config: TargetConfig;
  cond_stage_config: TargetConfig | '__is_first_stage__' | '__is_unconditional__';
  num_timesteps_cond?: number | null;
  cond_stage_key?: string;
  cond_stage_trainable?: boolean;
  concat_mode?: boolean;
  cond_stage_forward?: string | null;
  scale_factor?: number;
  scale_by_std?: boolean;
  /** checked entry by entry by the constructor */
  ucg_training?: Readonly<Record<string, unknown>>;
}

/** The LatentDiffusion kwargs as a config gives them (readOptions). */
export const LATENT_DIFFUSION_SCHEMA: Schema<LatentDiffusionOptions> = {
  ...DDPM_SCHEMA,
  first_stage_config: required(F.config),
  cond_stage_config: required(F.either(F.config, F.oneOf('__is_first_stage__', '__is_unconditional__'),
    "a {target, params} mapping, '__is_first_stage__' or '__is_unconditional__'")),
  num_timesteps_cond: F.int, cond_stage_key: F.str, cond_stage_trainable: F.bool, concat_mode: F.bool, cond_stage_forward: F.str,
  scale_factor: F.num, scale_by_std: F.bool, ucg_training: F.mapping,
};
export const LATENT_DIFFUSION_KWARGS = schemaKeys(LATENT_DIFFUSION_SCHEMA).filter((k) => !(DDPM_KWARGS as readonly string[]).includes(k));

type Obj = Readonly<Record<string, unknown>>;
export type LatentBatch = Readonly<Record<string, unknown>>;

/** What the first stage must offer: encode -> posterior (or latent tensor), decode. */
export interface FirstStageModel extends Module {
  encode(x: Tensor): DiagonalGaussianDistribution | Tensor;
  decode(z: Tensor): Tensor;
}

/** A built module with encode and decode (what first_stage_config must build). */
function isFirstStage(v: unknown): v is FirstStageModel {
  return v instanceof Module && 'encode' in v && typeof v.encode === 'function' && 'decode' in v && typeof v.decode === 'function';
}

/** The options of `decode_first_stage` (VQ first stages only). */
export interface DecodeFirstStageOptions {
  /** z holds code-id logits [N, n_embed, h, w] (or ids [N, h, w]): look them up in the codebook */
  predictCids?: boolean;
  /** VQModelInterface: decode z without quantising it first */
  forceNotQuantize?: boolean;
}

export interface UcgEntry {
  key: string;
  p: number;
  /** the replacement: a label (class keys) or a caption (text keys); null = the cond stage's null input */
  val: number | string | null;
}

export interface LatentInputOptions {
  /** also return x and its reconstruction decode(z) */
  returnFirstStageOutputs?: boolean;
  forceCEncode?: boolean;
  condKey?: string;
  bs?: number;
  /** the posterior sample's noise (a tensor) or the generator it is drawn from */
  noise?: Tensor | Generator;
}

export interface LatentInput {
  z: Tensor;
  /** the conditioning: embedded, or raw (the batch dict, captions, image) when cond_stage_trainable */
  c: unknown;
  /** the original conditioning input (`return_original_cond`) */
  xc: unknown;
  x?: Tensor;
  xrec?: Tensor;
}

export interface LatentForwardOptions {
  gen?: Generator;
  t?: Tensor;
  noise?: Tensor;
  /** `c` of forward(x, c): raw when cond_stage_trainable, else embedded */
  cond?: unknown;
}

export interface LatentStepOptions extends Omit<LatentForwardOptions, 'cond'> {
  /** noise of the first-stage posterior sample (else drawn from gen) */
  posteriorNoise?: Tensor;
  /** generator of the ucg_training draws (default gen) */
  ucgGen?: Generator;
}

export type LatentLoss = LossWithLog & { modelOutput: Tensor; xNoisy: Tensor };

export interface LatentSampleOptions {
  n: number;
  /** learned conditioning (get_learned_conditioning output, or a Cond record) */
  cond?: CondInput | null;
  /** unconditional conditioning for classifier-free guidance */
  uc?: CondInput | null;
  /** a name of the sampler table (diffusion/samplers; default 'ddim') */
  sampler?: SamplerName;
  /** sampler steps (ddim / plms / dpm-solver++; ddpm runs all T) */
  steps?: number;
  eta?: number;
  /** classifier-free guidance scale (1 = none) */
  guidance?: number;
  gen?: Generator;
  xT?: Tensor;
  /** latent [C, H, W] (default [channels, image_size, image_size]) */
  shape?: readonly number[];
  logEveryT?: number;
  /** decode the latents with the first stage (default true) */
  decode?: boolean;
  /** inpainting in latent space (ddim / ancestral): keep q_sample(x0, t) where mask == 1 */
  mask?: Tensor;
  x0?: Tensor;
  /** img2img: run the last tStart steps from xT (the noised latent) */
  tStart?: number;
  onStep?: (info: StepInfo) => void;
  /** further options of the sampler table row (k-diffusion scheduler and kwargs; img2img xT / tStart, mask / x0) */
  samplerOptions?: Partial<SampleOptions>;
}

export interface LatentSampleResult {
  /** decoded images [n, C, H, W], clamped to [-1, 1] (null when decode is false) */
  images: Tensor | null;
  /** the sampled latents [n, C, h, w] (unscaled: what decode_first_stage takes) */
  latents: Tensor;
  intermediates: SamplerIntermediates;
}

function isTargetConfig(v: unknown): v is TargetConfig {
  return typeof v === 'object' && v !== null && typeof (v as { target?: unknown }).target === 'string';
}

/** The DDPM kwargs of LatentDiffusion.__init__ (conditioning_key resolved before super()). */
function ddpmParams(params: LatentDiffusionOptions): LatentDiffusionOptions {
  let ck = params['conditioning_key'] ?? null;
  if (ck === null) ck = (params['concat_mode'] ?? true) ? 'concat' : 'crossattn';
  if (params['cond_stage_config'] === '__is_unconditional__') ck = null;
  return { ...params, conditioning_key: ck };
}

function parseUcg(v: unknown, owner: string): UcgEntry[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${owner}: 'ucg_training' must map batch keys to {p, val}`);
  return Object.entries(v as Obj).map(([key, e]) => {
    const p = (e as Obj | null)?.['p'];
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ConfigError(`${owner}: ucg_training.${key}.p must be a probability, got ${JSON.stringify(p)}`);
    const val = (e as Obj)['val'] ?? null;
    if (val !== null && typeof val !== 'number' && typeof val !== 'string') throw new ConfigError(`${owner}: ucg_training.${key}.val must be a number, a string or null`);
    return { key, p, val };
  });
}

/** A batch-first slice [0, bs) of a tensor, list or dict of those. */
function sliceBatch(v: unknown, bs: number): unknown {
  if (v instanceof Tensor) return T.slice(v, 0, 0, bs);
  if (Array.isArray(v)) return v.slice(0, bs);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v as Obj).map(([k, x]) => [k, sliceBatch(x, bs)]));
  return v;
}

export class LatentDiffusion extends DDPM {
  readonly numTimestepsCond: number;
  readonly scaleByStd: boolean;
  readonly concatMode: boolean;
  readonly condStageTrainable: boolean;
  readonly condStageKey: string;
  readonly condStageForward: string | null;
  readonly shortenCondSchedule: boolean;
  /** `cond_ids` [T] int64 (num_timesteps_cond > 1) */
  readonly condIds: Tensor | null;
  readonly first_stage_model: FirstStageModel;
  readonly cond_stage_model: Module | null;
  readonly ucgTraining: readonly UcgEntry[];
  /** set when training continues from loaded weights: scale_by_std then keeps the loaded factor */
  restartedFromCkpt = false;
  #scaleFactor = 1;
  protected override logvarInLoss = true;

  constructor(params: LatentDiffusionOptions, build: BuildFn) {
    super(ddpmParams(params), build, LATENT_DIFFUSION_KWARGS);
    const O = this.owner, o = params, kw = kwargs(O, o);
    this.numTimestepsCond = kw.num('num_timesteps_cond', 1);
    if (!Number.isInteger(this.numTimestepsCond) || this.numTimestepsCond < 1 || this.numTimestepsCond > this.numTimesteps) {
      throw new ConfigError(`${O}: num_timesteps_cond ${this.numTimestepsCond} must be an integer in 1..timesteps (${this.numTimesteps})`);
    }
    this.scaleByStd = kw.bool('scale_by_std', false);
    this.concatMode = kw.bool('concat_mode', true);
    this.condStageTrainable = kw.bool('cond_stage_trainable', false);
    const ck = o['cond_stage_key'] ?? 'image';
    if (typeof ck !== 'string') throw new ConfigError(`${O}: 'cond_stage_key' must be a string`);
    this.condStageKey = ck;
    const cf = o['cond_stage_forward'] ?? null;
    if (cf !== null && typeof cf !== 'string') throw new ConfigError(`${O}: 'cond_stage_forward' must be a method name`);
    this.condStageForward = cf;
    if (this.usePositionalEncodings) throw new ConfigError(`${O}: use_positional_encodings is not supported (the official get_input calls an undefined compute_latent_shifts)`);
    // scale_factor: plain attribute, or a registered buffer with scale_by_std
    const sf = kw.num('scale_factor', 1.0);
    if (this.scaleByStd) this.buffer('scale_factor', T.scalar(sf));
    else this.#scaleFactor = sf;
    // instantiate_first_stage
    const fsCfg = o['first_stage_config'];
    if (!isTargetConfig(fsCfg)) throw new ConfigError(`${O}: 'first_stage_config' must be a {target, params} config`);
    const fs = build(fsCfg, `${O}.first_stage_config`);
    if (!isFirstStage(fs)) throw new ConfigError(`${O}: first stage '${fsCfg.target}' has no encode/decode`);
    this.first_stage_model = this.child('first_stage_model', fs);
    this.first_stage_model.eval().freeze();
    // instantiate_cond_stage
    const cs = o['cond_stage_config'];
    if (cs === '__is_first_stage__' || cs === '__is_unconditional__') {
      if (this.condStageTrainable) throw new ConfigError(`${O}: cond_stage_trainable needs a real cond stage, not '${cs}'`);
      this.cond_stage_model = cs === '__is_first_stage__' ? this.child('cond_stage_model', this.first_stage_model) : null;
    } else {
      if (!isTargetConfig(cs)) throw new ConfigError(`${O}: 'cond_stage_config' must be a {target, params} config, '__is_first_stage__' or '__is_unconditional__'`);
      const m = build(cs, `${O}.cond_stage_config`);
      if (!(m instanceof Module)) throw new ConfigError(`${O}: cond stage '${cs.target}' did not build a module`);
      this.cond_stage_model = this.child('cond_stage_model', m);
      if (!this.condStageTrainable) m.eval().freeze();
    }
    this.clipDenoised = false;
    // register_schedule -> make_cond_schedule
    this.shortenCondSchedule = this.numTimestepsCond > 1;
    this.condIds = this.shortenCondSchedule ? this.makeCondSchedule() : null;
    this.ucgTraining = parseUcg(o['ucg_training'], O);
  }

  /** `make_cond_schedule`: cond_ids = full(T, T-1); cond_ids[:n] = round(linspace(0, T-1, n)) (half to even). */
  private makeCondSchedule(): Tensor {
    const Tn = this.numTimesteps, n = this.numTimestepsCond;
    const ids = new Float64Array(Tn).fill(Tn - 1);
    const lin = T.linspace(0, Tn - 1, n).f32;
    for (let i = 0; i < n; i++) {
      const v = lin[i]!, r = Math.round(v);
      ids[i] = Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    }
    return new Tensor(ids, [Tn], 'int64');
  }

  // ---- modes -----------------------------------------------------------------------------------------

  /** train(mode): the first stage (and a frozen cond stage) stays in eval (`disabled_train`). */
  override train(mode = true): this {
    super.train(mode);
    // first_stage_model / cond_stage_model are unset while DDPM's constructor runs
    if (this.first_stage_model) this.first_stage_model.train(false);
    if (this.cond_stage_model && !this.condStageTrainable) this.cond_stage_model.train(false);
    return this;
  }

  /** The current scale factor (the buffer's value with scale_by_std). */
  get scaleFactor(): number {
    return this.scaleByStd ? this.getBuffer('scale_factor').item() : this.#scaleFactor;
  }

  // ---- first stage -------------------------------------------------------------------------------------

  /** `encode_first_stage(x)` (no-grad): the posterior (AutoencoderKL) or the latent tensor. */
  encodeFirstStage(x: Tensor): DiagonalGaussianDistribution | Tensor {
    return T.noGrad(() => this.first_stage_model.encode(x));
  }

  /** `get_first_stage_encoding`: scale_factor * (posterior SAMPLE, noise from `noise`, or the tensor). */
  getFirstStageEncoding(posterior: DiagonalGaussianDistribution | Tensor, noise?: Tensor | Generator): Tensor {
    let z: Tensor;
    if (posterior instanceof DiagonalGaussianDistribution) z = posterior.sample(noise);
    else if (posterior instanceof Tensor) z = posterior;
    else throw new LdmError(`${this.owner}.get_first_stage_encoding: encoder_posterior of type '${typeof posterior}' not yet implemented`);
    return this.scaleByStd ? T.mul(z, this.getBuffer('scale_factor')) : T.mul(z, this.#scaleFactor);
  }

  /** `decode_first_stage(z, predict_cids=False, force_not_quantize=False)` (no-grad):
   *  first_stage.decode(1 / scale_factor * z), with force_not_quantize for a VQModelInterface. */
  decodeFirstStage(z: Tensor, opts: DecodeFirstStageOptions = {}): Tensor {
    return T.noGrad(() => this.differentiableDecodeFirstStage(z, opts));
  }

  /** `differentiable_decode_first_stage(z, ...)`: the same with gradients. */
  differentiableDecodeFirstStage(z: Tensor, opts: DecodeFirstStageOptions = {}): Tensor {
    const fs = this.first_stage_model;
    let zz = z;
    if (opts.predictCids) {
      if (!(fs instanceof VQModelBase)) throw new ConfigError(`${this.owner}.decode_first_stage: predict_cids needs a VQ first stage (first_stage_model.quantize), not ${fs.constructor.name}`);
      // z [N, n_embed, h, w] logits -> code ids [N, h, w] -> codebook rows [N, h, w, C] -> [N, C, h, w]
      const ids = zz.ndim === 4 ? T.max(T.exp(zz), 1).indices : zz;
      zz = T.permute(fs.quantize.getCodebookEntry(ids, null), [0, 3, 1, 2]);
    }
    const inv = this.scaleByStd ? T.div(1, this.getBuffer('scale_factor')) : 1 / this.#scaleFactor;
    zz = T.mul(zz, inv);
    if (fs instanceof VQModelInterface) return fs.decode(zz, opts.predictCids === true || opts.forceNotQuantize === true);
    return fs.decode(zz);
  }

  // ---- conditioning ------------------------------------------------------------------------------------

  /** `get_learned_conditioning(c)`: cond_stage_forward, else `.encode` (posterior -> mode), else the module itself. */
  getLearnedConditioning(c: unknown): unknown {
    const m = this.cond_stage_model;
    if (!m) throw new ConfigError(`${this.owner}: the model is unconditional (cond_stage_config '__is_unconditional__'); there is no conditioning to compute`);
    const call = (name: string): unknown => {
      const f: unknown = Reflect.get(m, name);
      if (typeof f !== 'function') throw new ConfigError(`${this.owner}: the cond stage ${m.constructor.name} has no method '${name}'`);
      return (f as (x: unknown) => unknown).call(m, c);
    };
    if (this.condStageForward !== null) return call(this.condStageForward);
    if (typeof Reflect.get(m, 'encode') === 'function') {
      const r = call('encode');
      return r instanceof DiagonalGaussianDistribution ? r.mode() : r;
    }
    return call('forward');
  }

  /** A conditioning value as apply_model takes it (tensor, list of tensors, or a Cond dict). */
  protected asCondInput(c: unknown): CondInput {
    if (c === null || c === undefined) return undefined;
    if (c instanceof Tensor) return c;
    if (Array.isArray(c) && c.every((x) => x instanceof Tensor)) return c as Tensor[];
    if (typeof c === 'object' && Object.keys(c).every((k) => k === 'c_concat' || k === 'c_crossattn' || k === 'y')) return c as Cond;
    throw new ConfigError(`${this.owner}: the conditioning is not a tensor, a list of tensors or {c_concat, c_crossattn}: embed it with get_learned_conditioning first`);
  }

  /** Conditioning dropout (`ucg_training`): per key, one uniform draw per row; p -> the null input. */
  applyUcg(batch: LatentBatch, gen: Generator, entries: readonly UcgEntry[] = this.ucgTraining): LatentBatch {
    if (entries.length === 0) return batch;
    const out: Record<string, unknown> = { ...batch };
    for (const u of entries) {
      const v = batch[u.key];
      if (v instanceof Tensor) {
        const nullClass = (this.cond_stage_model as { nullClass?: unknown } | null)?.nullClass;
        const val = typeof u.val === 'number' ? u.val : typeof nullClass === 'number' ? nullClass : null;
        if (val === null) throw new ConfigError(`${this.owner}: ucg_training.${u.key}.val must be a number (the null label) for a tensor batch key`);
        const B = v.shape[0]!;
        const draws = gen.rand(B);
        const per = v.size / B;
        const d = v.dtype === 'int64' ? Float64Array.from(v.data) : Float32Array.from(v.data);
        for (let i = 0; i < B; i++) if (draws[i]! < u.p) d.fill(val, i * per, (i + 1) * per);
        out[u.key] = new Tensor(d, v.shape, v.dtype);
      } else if (Array.isArray(v)) {
        const draws = gen.rand(v.length);
        const val = u.val === null ? '' : u.val;
        out[u.key] = v.map((s, i) => (draws[i]! < u.p ? (typeof s === 'string' ? String(val) : val) : s));
      } else {
        throw new ConfigError(`${this.owner}: ucg_training key '${u.key}' is not in the batch (keys: ${Object.keys(batch).join(', ')})`);
      }
    }
    return out;
  }

  /** get_learned_conditioning of class labels (no-grad): ClassEmbedder reads {key: labels}. */
  conditionFromLabels(labels: readonly number[] | Tensor): Tensor {
    const key = (this.cond_stage_model as { key?: unknown } | null)?.key;
    const t = labels instanceof Tensor ? labels : new Tensor(Float64Array.from(labels), [labels.length], 'int64');
    const batch = { [this.condStageKey]: t, ...(typeof key === 'string' ? { [key]: t } : {}) };
    return this.embedded(T.noGrad(() => this.getLearnedConditioning(batch)), 'class labels');
  }

  /** get_learned_conditioning of captions (no-grad). */
  conditionFromPrompts(prompts: readonly string[]): Tensor {
    return this.embedded(T.noGrad(() => this.getLearnedConditioning([...prompts])), 'prompts');
  }

  /** The unconditional conditioning of n rows (null class / empty captions) for guidance. */
  unconditionalConditioning(n: number): Tensor {
    const m = this.cond_stage_model as { unconditionalInput?: (n: number) => unknown } | null;
    if (!m || typeof m.unconditionalInput !== 'function') {
      throw new ConfigError(`${this.owner}: the cond stage ${this.cond_stage_model?.constructor.name ?? '(none)'} has no null input; pass uc explicitly`);
    }
    const raw = m.unconditionalInput(n);
    return this.embedded(T.noGrad(() => this.getLearnedConditioning(raw)), 'the null input');
  }

  // ---- the DiffusionModel face (diffusion-model.ts) -----------------------------------------------

  /** ClassEmbedder: labels, its last class the null one; a text encoder: prompts. */
  override conditioningSpec(): ConditioningSpec {
    const cs = this.cond_stage_model;
    if (cs instanceof ClassEmbedder) return { kind: 'class', numClasses: cs.nClasses - 1, nullLabel: cs.nClasses - 1 };
    if (cs instanceof BERTEmbedder || cs instanceof TransformerEmbedder) return { kind: 'text' };
    return this.model.conditioningKey === null ? { kind: 'none' } : { kind: 'other' };
  }

  override condition(input: ConditionInput): Cond {
    const spec = this.conditioningSpec();
    if ('prompts' in input) {
      if (spec.kind !== 'text') throw new ConfigError(`${this.owner}: this model takes no text prompts (conditioning: ${spec.kind})`);
      return this.wrapCond(this.conditionFromPrompts(input.prompts));
    }
    if (spec.kind !== 'class') throw new ConfigError(`${this.owner}: this model takes no class labels (conditioning: ${spec.kind})`);
    return this.wrapCond(this.conditionFromLabels(input.labels));
  }

  override unconditional(n: number): Cond | null {
    const kind = this.conditioningSpec().kind;
    return kind === 'class' || kind === 'text' ? this.wrapCond(this.unconditionalConditioning(n)) : null;
  }

  decode(z: Tensor): Tensor {
    return this.decodeFirstStage(z);
  }

  /** A BERTEmbedder with a tokenizer: the prompt words its vocabulary lacks (else none). */
  unknownPromptWords(prompts: readonly string[]): string[] {
    const cs = this.cond_stage_model;
    return cs instanceof BERTEmbedder && cs.hasTokenizer ? cs.tokenizer.wordsNotWhole(prompts) : [];
  }

  encode(x: Tensor): Tensor {
    const p = this.encodeFirstStage(x);
    return this.getFirstStageEncoding(p instanceof DiagonalGaussianDistribution ? p.mode() : p);
  }

  /** Inpainting conditioning (scripts/inpaint.py): cat([cond_stage(masked image), nearest(mask)], 1). */
  inpaintingConditioning(image: Tensor, mask: Tensor): Tensor {
    return T.noGrad(() => inpaintingConcat((x) => this.embedded(this.getLearnedConditioning(x), 'the masked image'), image, mask));
  }

  /** Super-resolution conditioning: cond_stage(lr) at the latent size (resized with `mode` when it differs). */
  lowResConditioning(lowRes: Tensor, mode: InterpolateMode = 'bilinear'): Tensor {
    return T.noGrad(() => lowResConcat(this.embedded(this.getLearnedConditioning(lowRes), 'the low-resolution image'), [this.imageSize, this.imageSize], mode));
  }

  private embedded(c: unknown, what: string): Tensor {
    if (!(c instanceof Tensor)) throw new ConfigError(`${this.owner}: the cond stage did not turn ${what} into a tensor`);
    return c;
  }

  // ---- training ----------------------------------------------------------------------------------------

  /**
   * `get_input(batch, k, return_first_stage_outputs, force_c_encode, cond_key, return_original_cond, bs)`
   * under no-grad: x = DDPM.get_input (channels-last -> NCHW); z = scale_factor * posterior sample;
   * xc = batch[cond_key] for 'caption' / 'coordinates_bbox' / 'keypoints', the batch for
   * 'class_label', x when cond_key == first_stage_key, else DDPM.get_input(batch, cond_key);
   * c = get_learned_conditioning(xc) unless cond_stage_trainable (then c = xc).
   */
  getLatentInput(batch: LatentBatch, k: string = this.firstStageKey, opts: LatentInputOptions = {}): LatentInput {
    return T.noGrad(() => {
      let x = this.getInput(batch, k);
      if (opts.bs !== undefined) x = T.slice(x, 0, 0, opts.bs);
      const z = this.getFirstStageEncoding(this.encodeFirstStage(x), opts.noise).detach();
      let c: unknown = null, xc: unknown = null;
      if (this.model.conditioningKey !== null) {
        const cKey = opts.condKey ?? this.condStageKey;
        if (cKey !== this.firstStageKey) {
          if (['caption', 'coordinates_bbox', 'keypoints'].includes(cKey)) xc = batch[cKey];
          else if (cKey === 'class_label') xc = batch;
          else xc = this.getInput(batch, cKey);
        } else {
          xc = x;
        }
        if (xc === undefined) throw new ConfigError(`${this.owner}.get_input: batch has no '${cKey}' (keys: ${Object.keys(batch).join(', ')})`);
        c = !this.condStageTrainable || (opts.forceCEncode === true && cKey !== 'keypoints') ? this.getLearnedConditioning(xc) : xc;
        if (opts.bs !== undefined) c = sliceBatch(c, opts.bs);
      }
      const r: LatentInput = { z, c, xc };
      if (opts.returnFirstStageOutputs) {
        r.x = x;
        r.xrec = this.decodeFirstStage(z);
      }
      return r;
    });
  }

  /**
   * `forward(x, c)`: 1. t ~ randint(0, T, [B]) from gen; 2. c = get_learned_conditioning(c) when
   * cond_stage_trainable; 3. (num_timesteps_cond > 1) c = q_sample(c, cond_ids[t], randn_like(c));
   * 4. p_losses(x, c, t) (noise from gen after the draws above).
   */
  override forward(x: Tensor, opts: LatentForwardOptions = {}): LatentLoss {
    const gen = opts.gen ?? defaultGenerator;
    const t = opts.t ?? T.randint(0, this.numTimesteps, [x.shape[0]!], gen); // 1.
    let c = opts.cond;
    if (this.model.conditioningKey !== null) {
      if (c === null || c === undefined) throw new ConfigError(`${this.owner}.forward: conditioning_key '${this.model.conditioningKey}' needs a conditioning c`);
      if (this.condStageTrainable) c = this.getLearnedConditioning(c); // 2.
      if (this.shortenCondSchedule) { // 3.
        const ct = this.embedded(c, 'the conditioning');
        const tc = T.indexSelect(this.condIds!, 0, t);
        c = this.qSample(ct, tc, T.randn(ct.shape, gen));
      }
    }
    return this.pLosses(x, t, opts.noise, this.asCondInput(c), gen); // 4.
  }

  /** `shared_step(batch)`: (training) ucg_training dropout; get_input(batch, first_stage_key); forward(z, c). */
  override sharedStep(batch: LatentBatch, opts: LatentStepOptions = {}): LatentLoss {
    const gen = opts.gen ?? defaultGenerator;
    const b = this.training && this.ucgTraining.length > 0 ? this.applyUcg(batch, opts.ucgGen ?? gen) : batch;
    const { z, c } = this.getLatentInput(b, this.firstStageKey, { noise: opts.posteriorNoise ?? gen });
    const { posteriorNoise: _p, ucgGen: _u, ...rest } = opts;
    return this.forward(z, { ...rest, gen, cond: c });
  }

  /**
   * `on_train_batch_start(batch, batch_idx)`: with scale_by_std, on the very first batch
   * (epoch 0, global_step 0, batch_idx 0, not restarted from a checkpoint): asserts scale_factor
   * == 1, encodes the batch (one posterior sample, noise from opts.noise), and replaces the buffer
   * by 1 / std(z) (unbiased, over every element). Returns the new factor, or null when it did nothing.
   */
  onTrainBatchStart(batch: LatentBatch, globalStep = 0, opts: { batchIdx?: number; currentEpoch?: number; noise?: Tensor | Generator } = {}): number | null {
    if (!this.scaleByStd || globalStep !== 0 || (opts.batchIdx ?? 0) !== 0 || (opts.currentEpoch ?? 0) !== 0 || this.restartedFromCkpt) return null;
    if (this.scaleFactor !== 1) throw new LdmError(`${this.owner}: rather not use custom rescaling and std-rescaling simultaneously (scale_factor is ${this.scaleFactor}, scale_by_std needs 1.0)`);
    const sf = T.noGrad(() => {
      const x = this.getInput(batch, this.firstStageKey);
      const z = this.getFirstStageEncoding(this.encodeFirstStage(x), opts.noise).detach();
      return T.div(1, T.std(T.reshape(z, [z.size]))); // [] float32
    });
    this.setBuffer('scale_factor', sf);
    return sf.item();
  }

  /** `configure_optimizers` parameters: the wrapper, the cond stage when trainable, logvar when learned. */
  override trainableParameters(): Tensor[] {
    const ps = this.model.parameters().filter((p) => p.requiresGrad);
    if (this.condStageTrainable && this.cond_stage_model) ps.push(...this.cond_stage_model.parameters().filter((p) => p.requiresGrad));
    if (this.learnLogvar) ps.push(this.logvar);
    return ps;
  }

  // ---- sampling ----------------------------------------------------------------------------------------

  /**
   * Sample n latents with a sampler of diffusion/ on this model's Denoiser (classifier-free
   * guidance with `uc` and `guidance`), then decode them with the first stage:
   *  1. cond / uc -> Cond ({c_concat} for 'concat', else {c_crossattn}); 2. x_T ~ N(0, I) from gen
   *  (or xT); 3. the sampler loop; 4. images = clamp(decode_first_stage(latents), -1, 1).
   */
  sampleLatent(o: LatentSampleOptions): LatentSampleResult {
    return T.noGrad(() => {
      const n = o.n;
      const shape = [n, ...(o.shape ?? [this.channels, this.imageSize, this.imageSize])];
      const cond = this.sampleCond(o.cond, n, 'cond');
      const uncond = this.sampleCond(o.uc, n, 'uc');
      const guidance = o.guidance ?? 1;
      if (guidance !== 1 && !uncond) throw new ConfigError(`${this.owner}.sampleLatent: guidance ${guidance} needs the unconditional conditioning uc`);
      if (this.model.conditioningKey !== null && !cond) throw new ConfigError(`${this.owner}.sampleLatent: conditioning_key '${this.model.conditioningKey}' needs cond`);
      const r = getSampler(o.sampler ?? 'ddim')(this.denoiser(), this.diffusion, {
        shape, steps: o.steps ?? 50, ...defined({ eta: o.eta }), guidance, gen: o.gen ?? defaultGenerator, logEvery: o.logEveryT ?? this.logEveryT,
        ...defined({ cond, uncond, xT: o.xT, mask: o.mask, x0: o.x0, tStart: o.tStart, onStep: o.onStep }),
        ...o.samplerOptions,
      });
      const images = o.decode === false ? null : T.clamp(this.decodeFirstStage(r.samples), -1, 1);
      return { images, latents: r.samples, intermediates: r.intermediates };
    });
  }

  /** cond / uc of sampleLatent as a Cond whose tensors have n rows. */
  private sampleCond(c: CondInput | null | undefined, n: number, what: string): Cond | undefined {
    if (c === null || c === undefined) return undefined;
    const cond = this.wrapCond(c);
    for (const list of [cond.c_concat ?? [], cond.c_crossattn ?? [], cond.y ? [cond.y] : []]) {
      for (const t of list) {
        if (t.shape[0] !== n) throw new ShapeError(`${this.owner}.sampleLatent: ${what} ${fmtShape(t.shape)} does not have n = ${n} rows`);
      }
    }
    return cond;
  }
}

/** Official class paths of LatentDiffusion and its conditioning encoders -> constructors (merged into MODEL_TARGETS). */
export const latentDiffusionTargets = {
  'ldm.models.diffusion.ddpm.LatentDiffusion': (params, build) => new LatentDiffusion(readOptions('LatentDiffusion', params, LATENT_DIFFUSION_SCHEMA), build),
  ...conditioningTargets,
} satisfies TargetTable;
