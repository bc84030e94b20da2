// Evaluation of a trained pixel DDPM:
//  - bits per dimension on test images: the variational bound sum_t L_t + L_T of improved DDPM's
//    `calc_bpd_loop` (diffusion/losses.ts `calcBpd`: T model calls per batch), conditional on the
//    true labels for a class-conditional model;
//  - class accuracy of generated samples: n samples per class (with the chosen sampler and
//    guidance), read back by the MNIST classifier (classifier.ts); per-class accuracy and the
//    confusion matrix.

import { Generator } from '../util/index.ts';
import { Tensor, cat, permute } from '../tensor/index.ts';
import { calcBpd } from '../diffusion/index.ts';
import type { DDPM } from '../models/index.ts';
import { makeBatch, type ImageDataset } from '../io/index.ts';
import { centerCrop28, type MnistClassifier } from './classifier.ts';
import { sampleImages, type ClassCond } from './sampling.ts';
import type { SamplerName } from './settings.ts';

export interface BpdReport {
  bitsPerDim: number;
  priorBpd: number;
  n: number;
  conditional: boolean;
}

export function evalBitsPerDim(model: DDPM, cls: ClassCond | null, ds: ImageDataset,
  opts: { n: number; batchSize?: number; seed?: number; onBatch?: (done: number, total: number) => void }): BpdReport {
  const n = Math.min(opts.n, ds.length);
  const bs = opts.batchSize ?? 50;
  const gen = new Generator(opts.seed ?? 0);
  let total = 0, prior = 0;
  for (let s = 0; s < n; s += bs) {
    const idx = Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
    const b = makeBatch(ds, idx);
    const x0 = permute(b.image, [0, 3, 1, 2]); // [B, C, H, W]
    const cond = cls ? { y: b.class_label } : undefined;
    const r = calcBpd(model.denoiser(), model.diffusion, x0, { gen, clipDenoised: model.clipDenoised, ...(cond ? { cond } : {}) });
    total += r.totalBpd.toArray().reduce((a, v) => a + v, 0);
    prior += r.priorBpd.toArray().reduce((a, v) => a + v, 0);
    opts.onBatch?.(s + idx.length, n);
  }
  return { bitsPerDim: total / n, priorBpd: prior / n, n, conditional: cls !== null };
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
  opts: { perClass: number; sampler: SamplerName; steps: number; eta?: number; guidance?: number; seed?: number; batchSize?: number;
    onBatch?: (done: number, total: number) => void }): AccuracyReport {
  const K = cls.numClasses;
  const labels = Array.from({ length: K * opts.perClass }, (_, i) => i % K);
  const bs = opts.batchSize ?? 100;
  const parts: Tensor[] = [];
  for (let s = 0; s < labels.length; s += bs) {
    const lab = labels.slice(s, s + bs);
    const r = sampleImages(model, cls, {
      n: lab.length, labels: lab, sampler: opts.sampler, steps: opts.steps, eta: opts.eta ?? 0, guidance: opts.guidance ?? 1,
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
