// Evaluation of a trained pixel DDPM:
//  - bits per dimension on test images: the variational bound sum_t L_t + L_T of improved DDPM's
//    `calc_bpd_loop` (diffusion/losses.ts `calcBpd`: T model calls per batch), conditional on the
//    true labels for a class-conditional model;
//  - class accuracy of generated samples: n samples per class (with the chosen sampler and
//    guidance), read back by the MNIST classifier (classifier.ts); per-class accuracy and the
//    confusion matrix;
//  - classifier-FID of those samples against real test images, with the real-vs-real floor at the
//    same N (fid.ts: Fréchet distance on the classifier's 64 fc1 features, not Inception's).

import { ConfigError, Generator } from '../util/index.ts';
import { Tensor, cat, full, mul, noGrad, permute, randn } from '../tensor/index.ts';
import { discretizedGaussianLogLikelihood, fullT, meanFlat, priorBpd, vbTermsBpd } from '../diffusion/index.ts';
import type { DDPM } from '../models/index.ts';
import { makeBatch, type ImageDataset } from '../io/index.ts';
import { centerCrop28, type MnistClassifier } from './classifier.ts';
import { sampleImages, type ClassCond } from './sampling.ts';
import { featureStats, frechetDistance } from './fid.ts';
import type { SamplerName } from '../diffusion/index.ts';
import type { SamplerExtras } from './img2img.ts';

export interface BpdReport {
  bitsPerDim: number;
  priorBpd: number;
  /** the decoder term L_0 */
  decoderBpd: number;
  n: number;
  conditional: boolean;
  /** 1: the exact sum over all T terms; k > 1: L_1..L_{T-1} estimated from every k-th timestep */
  stride: number;
}

/**
 * Bits per dimension, `calc_bpd_loop`: total = L_T (prior) + L_0 (decoder) + sum_{t=1}^{T-1} L_t,
 * with improved DDPM's decoder variance beta~_1 at t = 0.
 * With stride k > 1 the middle sum is estimated as (T-1)/|S| sum_{t in S} L_t over S = {T-1, T-1-k,
 * ...} (t >= 1), which needs T/k model calls per batch instead of T (L_0 is always exact).
 */
export function evalBitsPerDim(model: DDPM, cls: ClassCond | null, ds: ImageDataset,
  opts: { n: number; batchSize?: number; seed?: number; stride?: number; onBatch?: (done: number, total: number) => void }): BpdReport {
  const n = Math.min(opts.n, ds.length);
  const bs = opts.batchSize ?? 50;
  const stride = Math.max(1, Math.floor(opts.stride ?? 1));
  const gen = new Generator(opts.seed ?? 0);
  const T = model.numTimesteps;
  const mid: number[] = [];
  for (let t = T - 1; t >= 1; t -= stride) mid.push(t);
  const scale = (T - 1) / mid.length;
  const den = model.denoiser();
  let total = 0, prior = 0, decoder = 0;
  noGrad(() => {
    for (let s = 0; s < n; s += bs) {
      const idx = Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
      const b = makeBatch(ds, idx);
      const x0 = permute(b.image, [0, 3, 1, 2]); // [B, C, H, W]
      const cond = cls ? { y: b.class_label } : undefined;
      const B = idx.length;
      const term = (t: number): number[] => {
        const tt = fullT(B, t);
        const xt = model.diffusion.qSample(x0, tt, randn(x0.shape, gen));
        return vbTermsBpd(model.diffusion, den(xt, tt, cond), x0, xt, tt, model.clipDenoised).output.toArray();
      };
      const sumMid = new Array<number>(B).fill(0);
      for (const t of mid) term(t).forEach((v, i) => { sumMid[i]! += v; });
      // L_0 = -log p(x0 | x1) with the decoder variance of improved DDPM (beta~_1), not LDM's
      // posterior_log_variance_clipped[0] = log(1e-20), which makes the bound meaningless
      const l0 = noGrad(() => {
        const t0 = fullT(B, 0);
        const xt = model.diffusion.qSample(x0, t0, randn(x0.shape, gen));
        const pm = model.diffusion.pMeanVariance(den(xt, t0, cond), xt, t0, { clipDenoised: model.clipDenoised });
        const logScale = 0.5 * Math.log(model.diffusion.buf('posterior_variance').f32[Math.min(1, T - 1)]!);
        return mul(meanFlat(discretizedGaussianLogLikelihood(x0, pm.mean, full(x0.shape, logScale))), -1 / Math.LN2).toArray();
      });
      const lp = priorBpd(model.diffusion, x0).toArray();
      for (let i = 0; i < B; i++) {
        total += lp[i]! + l0[i]! + scale * sumMid[i]!;
        prior += lp[i]!;
        decoder += l0[i]!;
      }
      opts.onBatch?.(s + B, n);
    }
  });
  return { bitsPerDim: total / n, priorBpd: prior / n, decoderBpd: decoder / n, n, conditional: cls !== null, stride };
}

export interface AccuracyReport {
  accuracy: number;
  perClass: number[];
  /** confusion[true][predicted] counts */
  confusion: number[][];
  n: number;
  samples: Tensor;
  labels: number[];
}

export function evalClassAccuracy(model: DDPM, cls: ClassCond, classifier: MnistClassifier,
  opts: { perClass: number; sampler: SamplerName; steps: number; eta?: number | undefined; guidance?: number; seed?: number; batchSize?: number;
    samplerOptions?: SamplerExtras;
    onBatch?: (done: number, total: number) => void }): AccuracyReport {
  const K = cls.numClasses;
  const labels = Array.from({ length: K * opts.perClass }, (_, i) => i % K);
  const bs = opts.batchSize ?? 100;
  const parts: Tensor[] = [];
  for (let s = 0; s < labels.length; s += bs) {
    const lab = labels.slice(s, s + bs);
    const r = sampleImages(model, cls, {
      n: lab.length, labels: lab, sampler: opts.sampler, steps: opts.steps, guidance: opts.guidance ?? 1,
      ...(opts.eta !== undefined ? { eta: opts.eta } : {}), ...(opts.samplerOptions ? { samplerOptions: opts.samplerOptions } : {}),
      seed: (opts.seed ?? 0) + s,
    });
    parts.push(r.samples);
    opts.onBatch?.(s + lab.length, labels.length);
  }
  const samples = cat(parts, 0);
  const pred = classifier.predict(centerCrop28(samples));
  const confusion = Array.from({ length: K }, () => new Array<number>(classifier.numClasses).fill(0));
  pred.forEach((p, i) => { confusion[labels[i]!]![p]! += 1; });
  const perClass = confusion.map((row, k) => row[k]! / Math.max(1, row.reduce((a, v) => a + v, 0)));
  const correct = pred.filter((p, i) => p === labels[i]).length;
  return { accuracy: correct / labels.length, perClass, confusion, n: labels.length, samples, labels };
}

export interface FidReport {
  /** FID(samples, real set A) */
  fid: number;
  /** FID(real set B, real set A): the value a perfect model would get at this N */
  floor: number;
  /** images on each side */
  n: number;
  /** what the features are */
  features: string;
  /** the real images' data set */
  reference: string;
}

/** Classifier-FID of samples [N, 1, H, W] in [-1, 1] against the first N images of `real` (set A),
 *  and the floor: the next N real images (set B) against set A. Needs 2N real images. */
export function evalFid(samples: Tensor, real: ImageDataset, classifier: MnistClassifier): FidReport {
  const n = samples.shape[0]!;
  if (real.length < 2 * n) throw new ConfigError(`FID: ${real.name} has ${real.length} images, ${2 * n} needed (N = ${n} samples plus the floor's N)`);
  const realFeatures = (start: number): Tensor => {
    const b = makeBatch(real, Array.from({ length: n }, (_, i) => start + i));
    return classifier.features(centerCrop28(permute(b.image, [0, 3, 1, 2]))); // [N, 64]
  };
  const a = featureStats(realFeatures(0));
  const fid = frechetDistance(featureStats(classifier.features(centerCrop28(samples))), a);
  const floor = frechetDistance(featureStats(realFeatures(n)), a);
  return { fid, floor, n, features: 'evaluation classifier fc1 (64 ReLU units)', reference: real.name };
}
