// Drawing images from a trained diffusion model with any of the samplers of diffusion/ (ancestral
// DDPM, DDIM, PLMS, DPM-Solver++), with class labels and classifier-free guidance for a
// class-conditional ('adm') DDPM, and the two pictures of the denoising process:
//  - the denoising strip of real images (the seeds' t = 200 / 500 / 900 figure): for each t,
//    x_t = q_sample(x0, t) and the model's one-step estimate of x0 from x_t;
//  - the trajectory strip of a sampling run: x_t and pred_x0 at the logged steps.
// LatentDiffusion models (crossattn ClassEmbedder / BERTEmbedder): the same requests, sampled in
// latent space by `sampleLatent` and decoded through the first stage; labels of a text model
// become the MNIST captions 'a handwritten seven'; the strip's x_t and x0 estimates are decoded.
// What it is not: no file output (cli/ and trainer.ts write the PNGs through io/).

import { ConfigError, Generator, defined, fmtShape } from '../util/index.ts';
import { Tensor, cat, clamp, full, noGrad, randn, stack, sub } from '../tensor/index.ts';
import { fullT, getSampler, type Cond, type SampleOptions, type SamplerName, type SamplerResult, type StepInfo } from '../diffusion/index.ts';
import { interpolate, type DDPM, type UNetModel, type LatentDiffusion } from '../models/index.ts';
import { MNIST_CLASSES } from '../io/index.ts';
import type { TrainSettings } from './settings.ts';
import { binarizeMask, checkInitShapes, expandBatch, initOptions, pasteKept, type SamplerExtras } from './img2img.ts';

/** Class conditioning of a model: real classes 0..numClasses-1, and the null label (if trained with one). */
export interface ClassCond {
  numClasses: number;
  nullLabel: number | null;
  /** text-conditional LDM: the prompt of class k ('a handwritten seven') */
  prompt?: (k: number) => string;
}

/** The LatentDiffusion interface sampling needs (duck-typed: train/ builds no models here). */
const asLatent = (model: DDPM): LatentDiffusion | null =>
  typeof (model as unknown as { sampleLatent?: unknown }).sampleLatent === 'function' ? model as unknown as LatentDiffusion : null;

/** The caption convention of the MNIST data set (io/datasets/mnist.ts). */
export const mnistPrompt = (k: number): string => `a handwritten ${MNIST_CLASSES[k] ?? String(k)}`;

/** Class conditioning of a LatentDiffusion: ClassEmbedder (last class = null) or a text encoder. */
function latentClassConditioning(ldm: LatentDiffusion): ClassCond | null {
  const cs = ldm.cond_stage_model as unknown as { nClasses?: number; tokenizer?: unknown; constructor: { name: string } } | null;
  if (!cs) return null;
  if (typeof cs.nClasses === 'number') return { numClasses: cs.nClasses - 1, nullLabel: cs.nClasses - 1 };
  if (cs.constructor.name === 'BERTEmbedder') return { numClasses: MNIST_CLASSES.length, nullLabel: null, prompt: mnistPrompt };
  return null;
}

/** The class conditioning of an 'adm' DDPM whose UNet has num_classes (null otherwise). */
export function classConditioning(model: DDPM, settings?: Pick<TrainSettings, 'ucg' | 'condKey'>): ClassCond | null {
  const ldm = asLatent(model);
  if (ldm) return latentClassConditioning(ldm);
  if (model.model.conditioningKey !== 'adm') return null;
  const net = model.model.diffusion_model as unknown as Partial<UNetModel>;
  const n = net.numClasses ?? null;
  if (n === null || n === undefined) return null;
  const u = settings?.ucg.find((e) => e.key === (settings.condKey ?? 'class_label'));
  const nullLabel = u && typeof u.val === 'number' ? u.val : null;
  if (nullLabel !== null && (nullLabel < 0 || nullLabel >= n)) {
    throw new ConfigError(`ucg_training null label ${nullLabel} is outside the UNet's num_classes ${n}`);
  }
  return { numClasses: nullLabel !== null && nullLabel === n - 1 ? n - 1 : n, nullLabel };
}

/** A sampler's StepInfo as the (steps done, total) of a progress bar. */
const stepCounter = (f: (done: number, total: number) => void) => (s: StepInfo): void => f(s.i + 1, s.total);

const labelsTensor = (labels: readonly number[]): Tensor => new Tensor(Float64Array.from(labels), [labels.length], 'int64');

export interface SampleRequest {
  n: number;
  sampler: SamplerName;
  /** sampler steps (ddim / plms / dpm-solver++); ddpm always runs all T steps */
  steps: number;
  eta?: number;
  /** classifier-free guidance scale (1 = none) */
  guidance?: number;
  /** class of each sample (class-conditional models; default: 0, 1, 2, ... cycling) */
  labels?: readonly number[] | null;
  seed: number;
  /** text-conditional LDM: one prompt per sample (instead of labels) */
  prompts?: readonly string[] | null;
  /** keep x_t / pred_x0 about this many times along the way (default 10) */
  snapshots?: number;
  /** clamp every x0 estimate to [-1, 1] (default: the model's clip_denoised for pixel-space
   *  models, as the ancestral sampler does; the official DDIM / PLMS samplers never clamp) */
  clipDenoised?: boolean;
  onStep?: (i: number, total: number) => void;
  /** k-diffusion rows: --scheduler and the sampler kwargs (s_noise, s_churn, solver_type, ...) */
  samplerOptions?: SamplerExtras;
  /** the unconditional branch of guidance: these classes (negative class) instead of the null class */
  negativeLabels?: readonly number[] | null;
  /** text models: the unconditional branch of guidance from these prompts (negative prompt) */
  negativePrompts?: readonly string[] | null;
  /** image-to-image / inpainting: the initial image(s) in [-1, 1] at the model's pixel size [1 | n, C, H, W] */
  init?: Tensor | null;
  /** SDEdit strength in (0, 1] (default 1 = from pure noise) */
  strength?: number;
  /** inpainting: [1 | n, 1, H, W] in [0, 1], white (> 0.5) = regenerate, black = keep */
  mask?: Tensor | null;
}

export interface SampleOutput extends SamplerResult {
  labels: number[] | null;
}

/** Draw req.n images [n, C, H, W] (in the model's current weights: wrap in emaScope for EMA). */
export function sampleImages(model: DDPM, cls: ClassCond | null, req: SampleRequest): SampleOutput {
  const ldm = asLatent(model);
  if (ldm) return sampleLatentImages(ldm, cls, req);
  return noGrad(() => {
    const gen = new Generator(req.seed);
    const shape = [req.n, model.channels, model.imageSize, model.imageSize];
    const guidance = req.guidance ?? 1;
    let labels: number[] | null = null;
    let cond: Cond | undefined, uncond: Cond | undefined;
    if (cls) {
      labels = req.labels ? [...req.labels] : Array.from({ length: req.n }, (_, i) => i % cls.numClasses);
      if (labels.length !== req.n) throw new ConfigError(`sample: ${labels.length} labels for ${req.n} samples`);
      checkLabels(labels, cls);
      cond = { y: labelsTensor(labels) };
      if (guidance !== 1) {
        if (req.negativeLabels) uncond = { y: labelsTensor(negatives(req.negativeLabels, req.n, cls)) };
        else if (cls.nullLabel === null) throw new ConfigError('sample: guidance needs a model trained with a null class (model.params.ucg_training); use --guidance 1');
        else uncond = { y: full([req.n], cls.nullLabel, 'int64') };
      }
    } else if (req.labels && req.labels.length > 0) {
      throw new ConfigError('sample: this model is not class-conditional; leave out --class');
    }
    const snaps = Math.max(1, req.snapshots ?? 10);
    const pixelSpace = typeof (model as unknown as { decodeFirstStage?: unknown }).decodeFirstStage !== 'function';
    const ancestral = req.sampler === 'ddpm';
    checkInitShapes(req.init, req.mask, model.channels, model.imageSize, model.imageSize);
    const x0 = req.init ? expandBatch(req.init, req.n, '--init') : null;
    const keep = req.mask ? sub(1, expandBatch(binarizeMask(req.mask), req.n, '--mask')) : null;
    const extras = req.samplerOptions ?? {};
    const init = x0 ? initOptions(model.diffusion, req.sampler, { steps: req.steps, eta: req.eta ?? 0, ...extras }, x0, keep, req.strength ?? 1, gen) : {};
    const r = getSampler(req.sampler)(model.denoiser(), model.diffusion, {
      shape, steps: req.steps, guidance, gen, ...defined({ eta: req.eta }),
      clipDenoised: req.clipDenoised ?? (model.clipDenoised && pixelSpace),
      logEvery: Math.max(1, Math.floor((ancestral ? model.numTimesteps : req.steps) / snaps)),
      ...extras, ...init,
      ...defined({ cond, uncond }),
      ...(req.onStep ? { onStep: stepCounter(req.onStep) } : {}),
    });
    const samples = clamp(r.samples, -1, 1);
    return { ...r, samples: x0 && keep ? pasteKept(samples, x0, keep) : samples, labels };
  });
}

/** Labels of real classes, or the null class (unconditional sampling, `--class none`). */
function checkLabels(labels: readonly number[], cls: ClassCond): void {
  const bad = labels.find((l) => !Number.isInteger(l) || l < 0 || (l >= cls.numClasses && l !== cls.nullLabel));
  if (bad !== undefined) throw new ConfigError(`sample: class ${bad} is outside 0..${cls.numClasses - 1}${cls.nullLabel !== null ? ` (null class ${cls.nullLabel})` : ''}`);
}

/** The negative classes cycled over n samples. */
function negatives(neg: readonly number[], n: number, cls: ClassCond): number[] {
  if (neg.length === 0) throw new ConfigError('sample: empty list of negative classes');
  const out = Array.from({ length: n }, (_, i) => neg[i % neg.length]!);
  checkLabels(out, cls);
  return out;
}

/** sampleImages for a LatentDiffusion: cond from labels or prompts, uc = the null input, decoded. */
function sampleLatentImages(ldm: LatentDiffusion, cls: ClassCond | null, req: SampleRequest): SampleOutput {
  return noGrad(() => {
    const gen = new Generator(req.seed);
    const guidance = req.guidance ?? 1;
    let labels: number[] | null = null;
    let cond: Tensor | null = null;
    if (req.prompts && req.prompts.length > 0) {
      if (req.prompts.length !== req.n) throw new ConfigError(`sample: ${req.prompts.length} prompts for ${req.n} samples`);
      cond = ldm.conditionFromPrompts(req.prompts);
    } else if (cls) {
      labels = req.labels ? [...req.labels] : Array.from({ length: req.n }, (_, i) => i % cls.numClasses);
      if (labels.length !== req.n) throw new ConfigError(`sample: ${labels.length} labels for ${req.n} samples`);
      checkLabels(labels, cls);
      cond = cls.prompt ? ldm.conditionFromPrompts(labels.map((l) => (l === cls.nullLabel ? '' : cls.prompt!(l)))) : ldm.conditionFromLabels(labels);
    } else if (ldm.model.conditioningKey === 'concat' && req.mask && req.init) {
      cond = null; // the inpainting recipe below builds it
    } else if (ldm.model.conditioningKey !== null) {
      throw new ConfigError('sample: this latent diffusion model is conditional: give --class or --prompt');
    }
    let uc: Tensor | null = null;
    if (guidance !== 1) {
      if (req.negativePrompts && req.negativePrompts.length > 0) uc = ldm.conditionFromPrompts(Array.from({ length: req.n }, (_, i) => req.negativePrompts![i % req.negativePrompts!.length]!));
      else if (req.negativeLabels && cls) uc = ldm.conditionFromLabels(negatives(req.negativeLabels, req.n, cls));
      else uc = ldm.unconditionalConditioning(req.n);
    }
    const snaps = Math.max(1, req.snapshots ?? 10);
    if (req.init) checkInitShapes(req.init, req.mask, req.init.shape[1]!, req.init.shape[2]!, req.init.shape[3]!);
    const image = req.init ? expandBatch(req.init, req.n, '--init') : null;
    const hole = req.mask ? expandBatch(binarizeMask(req.mask), req.n, '--mask') : null; // 1 = regenerate
    const extras = req.samplerOptions ?? {};
    let init: Partial<SampleOptions> = {};
    if (image && hole && ldm.model.conditioningKey === 'concat') {
      // scripts/inpaint.py: c = cat([encode((1 - mask) image), nearest(mask)]); sample; paste in pixels
      cond = ldm.inpaintingConditioning(image, hole);
    } else if (image) {
      const z0 = encodeToLatent(ldm, image);
      const keep = hole ? sub(1, interpolate(hole, { size: [z0.shape[2]!, z0.shape[3]!], mode: 'nearest' })) : null;
      init = initOptions(ldm.diffusion, req.sampler, { steps: req.steps, eta: req.eta ?? 0, ...extras }, z0, keep, req.strength ?? 1, gen);
    }
    const r = ldm.sampleLatent({
      n: req.n, cond, uc, guidance, sampler: req.sampler, steps: req.steps, gen, ...defined({ eta: req.eta }),
      logEveryT: req.sampler === 'ddpm' ? Math.max(1, Math.floor(ldm.numTimesteps / snaps)) : Math.max(1, Math.floor(req.steps / snaps)),
      samplerOptions: { ...extras, ...init },
      ...(req.onStep ? { onStep: stepCounter(req.onStep) } : {}),
    });
    // the trajectory strip shows decoded latents
    const dec = (xs: Tensor[]): Tensor[] => xs.map((x) => ldm.decodeFirstStage(x));
    const intermediates = { ...r.intermediates, x_inter: dec(r.intermediates.x_inter), pred_x0: dec(r.intermediates.pred_x0) };
    const samples = image && hole ? pasteKept(r.images!, image, sub(1, hole)) : r.images!;
    return { samples, intermediates, labels };
  });
}

/** x [n, C, H, W] in [-1, 1] -> the scaled latent z0 (posterior mode), checked against the model's latent shape. */
function encodeToLatent(ldm: LatentDiffusion, x: Tensor): Tensor {
  const post = ldm.encodeFirstStage(x) as { mode?: () => Tensor };
  const z0 = ldm.getFirstStageEncoding(typeof post.mode === 'function' ? post.mode() : (post as unknown as Tensor));
  if (z0.shape[1] !== ldm.channels || z0.shape[2] !== ldm.imageSize || z0.shape[3] !== ldm.imageSize) {
    throw new ConfigError(`--init: the image encodes to a ${fmtShape(z0.shape)} latent; the model samples [N, ${ldm.channels}, ${ldm.imageSize}, ${ldm.imageSize}] (resize the image to the model's size)`);
  }
  return z0;
}

/** The strip of a LatentDiffusion: x0 -> z0 (posterior mode, scaled), q_sample, x0 estimate, all decoded. */
function latentDenoisingStrip(ldm: LatentDiffusion, x0: Tensor, labels: readonly number[] | null, ts: readonly number[], seed: number, cls: ClassCond | null): { images: Tensor; nrow: number } {
  return noGrad(() => {
    const gen = new Generator(seed);
    const B = x0.shape[0]!;
    const post = ldm.encodeFirstStage(x0) as { mode?: () => Tensor };
    const z0 = ldm.getFirstStageEncoding(typeof post.mode === 'function' ? post.mode() : (post as unknown as Tensor));
    let cond: Cond | undefined;
    if (labels && cls) {
      const c = cls.prompt ? ldm.conditionFromPrompts(labels.map(cls.prompt)) : ldm.conditionFromLabels(labels);
      cond = ldm.model.conditioningKey === 'concat' ? { c_concat: [c] } : { c_crossattn: [c] };
    }
    const cols: Tensor[] = [x0];
    for (const tv of ts) {
      const t = fullT(B, Math.min(ldm.numTimesteps - 1, Math.max(0, tv)));
      const zt = ldm.diffusion.qSample(z0, t, randn(z0.shape, gen));
      const out = ldm.denoiser()(zt, t, cond);
      cols.push(clamp(ldm.decodeFirstStage(zt), -1, 1), clamp(ldm.decodeFirstStage(ldm.diffusion.predictXstart(out, zt, t)), -1, 1));
    }
    const nrow = cols.length;
    return { images: stack(cols, 1).reshape(B * nrow, ...x0.shape.slice(1)), nrow };
  });
}

/**
 * The denoising strip of real images x0 [B, C, H, W]: for each t in ts, x_t = q_sample(x0, t, noise)
 * and the model's x0 estimate from x_t (clamped). Returns [B * (1 + 2 len(ts)), C, H, W] in
 * row-major order with columns x0 | x_t1 | x0_hat(t1) | x_t2 | ... (nrow = 1 + 2 len(ts)).
 */
export function denoisingStrip(model: DDPM, x0: Tensor, labels: readonly number[] | null, ts: readonly number[], seed: number,
  cls: ClassCond | null = null): { images: Tensor; nrow: number } {
  const ldm = asLatent(model);
  if (ldm) return latentDenoisingStrip(ldm, x0, labels, ts, seed, cls ?? classConditioning(model));
  return noGrad(() => {
    const gen = new Generator(seed);
    const B = x0.shape[0]!;
    const cond: Cond | undefined = labels ? { y: labelsTensor(labels) } : undefined;
    const cols: Tensor[] = [x0];
    for (const tv of ts) {
      const t = fullT(B, Math.min(model.numTimesteps - 1, Math.max(0, tv)));
      const xt = model.diffusion.qSample(x0, t, randn(x0.shape, gen));
      const out = model.denoiser()(xt, t, cond);
      cols.push(clamp(xt, -1, 1), clamp(model.diffusion.predictXstart(out, xt, t), -1, 1));
    }
    const nrow = cols.length;
    // [B, nrow, C, H, W] -> [B * nrow, C, H, W]
    const s = stack(cols, 1);
    return { images: s.reshape(B * nrow, ...x0.shape.slice(1)), nrow };
  });
}

/** The trajectory of a sampling run for its first k samples: rows x_t, pred_x0 per sample. */
export function trajectoryStrip(r: SamplerResult, k: number): { images: Tensor; nrow: number } {
  const xs = r.intermediates.x_inter, ps = r.intermediates.pred_x0;
  const cols = Math.min(xs.length, ps.length);
  if (cols === 0) throw new ConfigError('trajectory strip: the sampler logged no intermediates');
  const B = xs[0]!.shape[0]!;
  const kk = Math.min(k, B);
  const rows: Tensor[] = [];
  for (let b = 0; b < kk; b++) {
    for (const list of [xs, ps]) {
      for (let c = 0; c < cols; c++) rows.push(clamp(list[c]!.slice(0, b, b + 1), -1, 1));
    }
  }
  return { images: cat(rows, 0), nrow: cols };
}
