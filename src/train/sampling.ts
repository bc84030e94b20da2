// Drawing images from a trained diffusion model with any sampler of the sampler table
// (diffusion/samplers), with class labels or prompts and classifier-free guidance, and the two
// pictures of the denoising process:
//  - the denoising strip of real images (the seeds' t = 200 / 500 / 900 figure): for each t,
//    x_t = q_sample(x0, t) and the model's one-step estimate of x0 from x_t;
//  - the trajectory strip of a sampling run: x_t and pred_x0 at the logged steps.
// Everything goes through the DiffusionModel face (models/diffusion-model.ts): pixel DDPMs and
// latent diffusion models (sampled in latent space, decoded through the first stage) take the same
// path; labels of a text model become the MNIST captions 'a handwritten seven'. Image-to-image
// and inpainting (img2img.ts) start from an image: pixel models directly, latent models through
// their first stage's encode; the kept region is pasted back in pixels; a concat-conditioned
// inpainting model gets the scripts/inpaint.py conditioning instead.
// What it is not: no file output (cli/ and trainer.ts write the PNGs through io/).

import { ConfigError, Generator, defined, fmtShape } from '../util/index.ts';
import { Tensor, cat, clamp, noGrad, randn, stack, sub } from '../tensor/index.ts';
import { fullT, getSampler, type Cond, type SampleOptions, type SamplerName, type SamplerResult, type StepInfo } from '../diffusion/index.ts';
import { LatentDiffusion, interpolate, type DiffusionModel } from '../models/index.ts';
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

/** The caption convention of the MNIST data set (io/datasets/mnist.ts). */
export const mnistPrompt = (k: number): string => `a handwritten ${MNIST_CLASSES[k] ?? String(k)}`;

/**
 * The class conditioning of a model: a text model samples the MNIST captions; a class model's
 * null label is its own (ClassEmbedder) or the config's ucg_training value (an 'adm' DDPM).
 */
export function classConditioning(model: DiffusionModel, settings?: Pick<TrainSettings, 'ucg' | 'condKey'>): ClassCond | null {
  const spec = model.conditioningSpec();
  if (spec.kind === 'text') return { numClasses: MNIST_CLASSES.length, nullLabel: null, prompt: mnistPrompt };
  if (spec.kind !== 'class') return null;
  if (spec.nullLabel !== null) return { numClasses: spec.numClasses, nullLabel: spec.nullLabel };
  const n = spec.numClasses;
  const u = settings?.ucg.find((e) => e.key === (settings.condKey ?? 'class_label'));
  const nullLabel = u && typeof u.val === 'number' ? u.val : null;
  if (nullLabel !== null && (nullLabel < 0 || nullLabel >= n)) {
    throw new ConfigError(`ucg_training null label ${nullLabel} is outside the UNet's num_classes ${n}`);
  }
  return { numClasses: nullLabel !== null && nullLabel === n - 1 ? n - 1 : n, nullLabel };
}

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
  /** after each step, the current x_t and x0 estimate [n, C, H, W] as images (latents decoded):
   *  the denoising trajectory as it is computed (the page's playground draws it) */
  onPreview?: (i: number, total: number, xt: Tensor, x0: Tensor) => void;
}

/** The guidance scale when none is asked for: 3 for a model trained with a null class or a text
 *  encoder (classifier-free guidance), else 1. */
export function defaultGuidanceFor(cls: ClassCond | null): number {
  return cls && (cls.nullLabel !== null || cls.prompt) ? 3 : 1;
}

export interface SampleOutput extends SamplerResult {
  labels: number[] | null;
}

/** A sampler's StepInfo as the (steps done, total) of a progress bar. */
const stepCounter = (f: (done: number, total: number) => void) => (s: StepInfo): void => f(s.i + 1, s.total);

/** A sampler's onStep for a request's onStep (steps done) and onPreview (x_t and x0 as images, through `image`). */
const stepHooks = (req: SampleRequest, image: (x: Tensor) => Tensor) => (s: StepInfo): void => {
  req.onStep?.(s.i + 1, s.total);
  req.onPreview?.(s.i + 1, s.total, image(s.x), image(s.predX0));
};

/** The conditioning of a request: prompts, else labels (given or 0, 1, 2, ... cycling). */
function requestCondition(model: DiffusionModel, cls: ClassCond | null, req: SampleRequest): { cond: Cond | undefined; labels: number[] | null } {
  if (req.prompts && req.prompts.length > 0) {
    if (req.prompts.length !== req.n) throw new ConfigError(`sample: ${req.prompts.length} prompts for ${req.n} samples`);
    return { cond: model.condition({ prompts: req.prompts }), labels: null };
  }
  if (cls) {
    const labels = req.labels ? [...req.labels] : Array.from({ length: req.n }, (_, i) => i % cls.numClasses);
    if (labels.length !== req.n) throw new ConfigError(`sample: ${labels.length} labels for ${req.n} samples`);
    checkLabels(labels, cls);
    return { cond: model.condition(cls.prompt ? { prompts: labels.map(cls.prompt) } : { labels }), labels };
  }
  if (req.labels && req.labels.length > 0) throw new ConfigError('sample: this model is not class-conditional; leave out --class');
  const kind = model.conditioningSpec().kind;
  if (kind === 'other' && model instanceof LatentDiffusion && model.model.conditioningKey === 'concat' && req.init && req.mask) {
    return { cond: undefined, labels: null }; // the inpainting recipe of sampleImages builds it
  }
  if (kind !== 'none') throw new ConfigError(`sample: this model is conditional (${kind}): give --class or --prompt`);
  return { cond: undefined, labels: null };
}

/**
 * Draw req.n images [n, C, H, W] (in the model's current weights: wrap in emaScope for EMA):
 *  1. conditioning from labels / prompts, the null conditioning when guidance != 1;
 *  2. the sampler of the table on the model's Denoiser and schedule, x_T of sampleShape(n);
 *  3. latent models: decode the samples and the logged intermediates; clamp to [-1, 1].
 */
export function sampleImages(model: DiffusionModel, cls: ClassCond | null, req: SampleRequest): SampleOutput {
  return noGrad(() => {
    const gen = new Generator(req.seed);
    const guidance = req.guidance ?? 1;
    let { cond, labels } = requestCondition(model, cls, req); // 1.
    let uncond: Cond | undefined;
    if (guidance !== 1) {
      if (req.negativePrompts && req.negativePrompts.length > 0) {
        uncond = model.condition({ prompts: Array.from({ length: req.n }, (_, i) => req.negativePrompts![i % req.negativePrompts!.length]!) });
      } else if (req.negativeLabels && cls && !cls.prompt) {
        uncond = model.condition({ labels: negatives(req.negativeLabels, req.n, cls) });
      } else {
        uncond = model.unconditional(req.n, cls?.nullLabel ?? null) ?? undefined;
        if (!uncond) throw new ConfigError('sample: guidance needs a model trained with a null class (model.params.ucg_training); use --guidance 1');
      }
    }
    // image-to-image / inpainting in the model's space
    const shape = model.sampleShape(req.n);
    const image = req.init ? expandBatch(req.init, req.n, '--init') : null;
    if (image) checkInitShapes(image, req.mask, image.shape[1]!, image.shape[2]!, image.shape[3]!);
    const hole = req.mask ? expandBatch(binarizeMask(req.mask), req.n, '--mask') : null; // 1 = regenerate
    if (req.mask && !image) throw new ConfigError('--mask needs --init (the image whose black region is kept)');
    const extras = req.samplerOptions ?? {};
    let init: Partial<SampleOptions> = {};
    if (image && hole && model instanceof LatentDiffusion && model.model.conditioningKey === 'concat' && model.conditioningSpec().kind === 'other') {
      // scripts/inpaint.py: c = cat([encode((1 - mask) image), nearest(mask)]); sample; paste in pixels
      cond = { c_concat: [model.inpaintingConditioning(image, hole)] };
    } else if (image) {
      const z0 = model.encode ? model.encode(image) : image;
      if (z0.shape.some((d, i) => d !== shape[i])) {
        throw new ConfigError(`--init: the image gives ${fmtShape(z0.shape)} in the model's space; it samples ${fmtShape(shape)} (resize the image to the model's size)`);
      }
      const keep = hole ? sub(1, z0 === image ? hole : interpolate(hole, { size: [z0.shape[2]!, z0.shape[3]!], mode: 'nearest' })) : null;
      init = initOptions(model.diffusion, req.sampler, { steps: req.steps, ...defined({ eta: req.eta }), ...extras }, z0, keep, req.strength ?? 1, gen);
    } else if (req.strength !== undefined && req.strength !== 1) {
      throw new ConfigError('--strength needs --init (the image to start from)');
    }
    const snaps = Math.max(1, req.snapshots ?? 10);
    const chain = req.sampler === 'ddpm' ? model.numTimesteps : req.steps; // the ancestral row logs in timesteps
    const decode = model.decode?.bind(model);
    const r = getSampler(req.sampler)(model.denoiser(), model.diffusion, { // 2.
      shape, steps: req.steps, guidance, gen, ...defined({ eta: req.eta }),
      logEvery: Math.max(1, Math.floor(chain / snaps)),
      ...(decode ? defined({ clipDenoised: req.clipDenoised }) : { clipDenoised: req.clipDenoised ?? model.clipDenoised }),
      ...extras, ...init,
      ...defined({ cond, uncond }),
      ...(req.onStep || req.onPreview ? { onStep: stepHooks(req, (x) => clamp(decode ? decode(x) : x, -1, 1)) } : {}),
    });
    const paste = (x: Tensor): Tensor => (image && hole ? pasteKept(x, image, sub(1, hole)) : x); // the kept region, exactly
    if (!decode) return { ...r, samples: paste(clamp(r.samples, -1, 1)), labels };
    const dec = (xs: Tensor[]): Tensor[] => xs.map((x) => decode(x)); // 3. the trajectory strip shows decoded latents
    return { samples: paste(clamp(decode(r.samples), -1, 1)), intermediates: { x_inter: dec(r.intermediates.x_inter), pred_x0: dec(r.intermediates.pred_x0) }, labels };
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

/**
 * The denoising strip of real images x0 [B, C, H, W]: for each t in ts, x_t = q_sample(x0, t, noise)
 * and the model's x0 estimate from x_t (clamped; latent models: on the encoded x0, both decoded).
 * Returns [B * (1 + 2 len(ts)), C, H, W] in row-major order with columns
 * x0 | x_t1 | x0_hat(t1) | x_t2 | ... (nrow = 1 + 2 len(ts)).
 */
export function denoisingStrip(model: DiffusionModel, x0: Tensor, labels: readonly number[] | null, ts: readonly number[], seed: number,
  cls: ClassCond | null = null): { images: Tensor; nrow: number } {
  return noGrad(() => {
    const gen = new Generator(seed);
    const B = x0.shape[0]!;
    const c = cls ?? classConditioning(model);
    const cond = labels && c ? model.condition(c.prompt ? { prompts: labels.map(c.prompt) } : { labels }) : undefined;
    const show = (z: Tensor): Tensor => clamp(model.decode ? model.decode(z) : z, -1, 1);
    const z0 = model.encode ? model.encode(x0) : x0;
    const den = model.denoiser();
    const cols: Tensor[] = [x0];
    for (const tv of ts) {
      const t = fullT(B, Math.min(model.numTimesteps - 1, Math.max(0, tv)));
      const zt = model.diffusion.qSample(z0, t, randn(z0.shape, gen));
      const out = den(zt, t, cond);
      cols.push(show(zt), show(model.diffusion.predictXstart(out, zt, t)));
    }
    const nrow = cols.length;
    // [B, nrow, C, H, W] -> [B * nrow, C, H, W]
    return { images: stack(cols, 1).reshape(B * nrow, ...x0.shape.slice(1)), nrow };
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
