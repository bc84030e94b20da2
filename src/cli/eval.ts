// `ldm eval [CKPT]` (bits/dim on the test set; class accuracy of generated samples read by the
// MNIST classifier) and `ldm train-classifier` (trains that classifier, >= 98% test accuracy,
// and writes its weights, about 0.42 MB, to models/mnist-classifier.safetensors).

import { join } from 'node:path';
import { ConfigError } from '../util/index.ts';
import {
  buildDataFromConfig, loadFashionMnist, loadMnist, loadWeightsInto, modelsDir, readWeights, saveImageGrid, saveModelFile,
  type ImageDataset,
} from '../io/index.ts';
import {
  MnistClassifier, evalBitsPerDim, evalClassAccuracy, evalFid, type FidReport, loadModel, trainClassifier, type AccuracyReport, type BpdReport,
} from '../train/index.ts';
import { LatentDiffusion } from '../models/index.ts';
import { defaultGuidance, samplerChoice, describeModel, samplerExtras, stepBar } from './sample.ts';

export const CLASSIFIER_FILE = 'mnist-classifier.safetensors';
/** The evaluation classifier of Fashion-MNIST models (`ldm train-classifier --dataset fashion-mnist`). */
export const FASHION_CLASSIFIER_FILE = 'fashion-classifier.safetensors';

/** The shipped classifier that reads images of this data set. */
const classifierFor = (ds: ImageDataset): string => join(modelsDir(), /fashion/i.test(ds.name) ? FASHION_CLASSIFIER_FILE : CLASSIFIER_FILE);

export function loadClassifier(path = join(modelsDir(), CLASSIFIER_FILE)): MnistClassifier {
  const w = readWeights(path);
  const c = new MnistClassifier();
  loadWeightsInto(c, w.tensors, path, true);
  c.eval();
  return c;
}

export interface EvalCommandOptions {
  model?: string;
  config?: string;
  bpdN: number;
  bpdStride: number;
  perClass: number;
  /** default: the shipped model's stored sampler and steps, else ddim 50 */
  sampler?: string | undefined;
  steps?: number | undefined;
  eta?: number | undefined;
  scheduler?: string;
  sNoise?: number;
  sChurn?: number;
  solverType?: string;
  guidance?: number | undefined;
  seed: number;
  classifier?: string;
  samples?: string;
  json?: boolean;
  noEma?: boolean;
  /** false: skip the classifier-FID (commander's --no-fid) */
  fid?: boolean;
}

export interface EvalReport {
  model: string;
  sampling: { sampler: string; scheduler?: string; steps: number; eta?: number; guidance: number; seed: number; secondsPerSample?: number };
  bpd: BpdReport | null;
  accuracy: Omit<AccuracyReport, 'samples'> | null;
  /** classifier-FID of the accuracy samples against real test images, with its real-vs-real floor */
  fid: FidReport | null;
}

/** The test split of the model's data (config's test, else validation), else MNIST test. */
async function testSet(config: Record<string, unknown>, whole = false): Promise<ImageDataset> {
  try {
    const d = await buildDataFromConfig(whole ? withoutLimits(config) : config, {}, ['test', 'validation']);
    const ds = d.test ?? d.validation;
    if (ds) return ds;
  } catch {
    // fall through to MNIST
  }
  return loadMnist({ split: 'test' });
}

/** The config with the test / validation data sets' `limit` removed (FID needs 2N real images;
 *  training configs cap validation at a few hundred for speed). */
function withoutLimits(config: Record<string, unknown>): Record<string, unknown> {
  const c = structuredClone(config);
  const params = (c['data'] as { params?: Record<string, { params?: Record<string, unknown> } | undefined> } | undefined)?.params;
  for (const split of ['test', 'validation']) delete params?.[split]?.params?.['limit'];
  return c;
}

export async function evalCommand(ckpt: string | undefined, o: EvalCommandOptions): Promise<EvalReport> {
  const { sampler, steps } = samplerChoice(ckpt, o);
  const m = loadModel({ checkpoint: ckpt, name: o.model, config: o.config, noEma: o.noEma });
  process.stderr.write(`${describeModel(m)}\n`);
  const guidance = defaultGuidance(m, o.guidance);
  const extras = samplerExtras(sampler, o);
  const report: EvalReport = {
    model: m.path, bpd: null, accuracy: null, fid: null,
    sampling: { sampler, steps, guidance, seed: o.seed, ...(o.eta !== undefined ? { eta: o.eta } : {}), ...(extras.scheduler ? { scheduler: extras.scheduler } : {}) },
  };
  // a LatentDiffusion: no pixel bits/dim (its bound is over latents); accuracy of decoded samples
  const latent = m.model instanceof LatentDiffusion;
  if (latent && o.bpdN > 0 && !o.json) console.log('bits/dim: skipped (latent diffusion: the bound would be over latents, not pixels)');
  if (o.bpdN > 0 && !latent) {
    const ds = await testSet(m.config);
    if (ds.height !== m.model.imageSize || ds.channels !== m.model.channels) {
      throw new ConfigError(`eval: ${ds.name} images (${ds.height}x${ds.width}x${ds.channels}) do not fit the model (${m.model.imageSize}px, ${m.model.channels} channels)`);
    }
    const bar = stepBar('bits/dim');
    report.bpd = evalBitsPerDim(m.model, m.cls, ds, { n: o.bpdN, seed: o.seed, stride: o.bpdStride, onBatch: bar.onStep });
    bar.stop();
    if (!o.json) console.log(`bits/dim: ${report.bpd.bitsPerDim.toFixed(4)} (${report.bpd.conditional ? 'conditional on the labels, ' : ''}${report.bpd.n} test images of ${ds.name}; ` +
      `${report.bpd.stride === 1 ? 'exact sum over all timesteps' : `L_1..L_T-1 estimated from every ${report.bpd.stride}th timestep`}; decoder term ${report.bpd.decoderBpd.toFixed(4)}, prior ${report.bpd.priorBpd.toExponential(2)})`);
  }
  if (m.cls && o.perClass > 0) {
    if (!latent && (m.model.channels !== 1 || m.model.imageSize < 28)) throw new ConfigError('eval: the class accuracy uses the MNIST classifier (grey images of at least 28x28)');
    const real = await testSet(m.config, true);
    const classifier = loadClassifier(o.classifier ?? classifierFor(real));
    const bar = stepBar('samples');
    const t0 = Date.now();
    const acc = evalClassAccuracy(m.model, m.cls, classifier, {
      perClass: o.perClass, sampler, steps, eta: o.eta, guidance, seed: o.seed, onBatch: bar.onStep, samplerOptions: extras,
    });
    bar.stop();
    report.sampling.secondsPerSample = (Date.now() - t0) / 1000 / acc.n;
    const { samples, ...rest } = acc;
    report.accuracy = rest;
    if (o.fid !== false) report.fid = evalFid(samples, real, classifier);
    if (o.samples) await saveImageGrid(o.samples, samples, { nrow: m.cls.numClasses });
    if (!o.json) {
      console.log(`class accuracy of samples: ${(acc.accuracy * 100).toFixed(2)}% (${acc.n} samples, ${sampler}${sampler === 'ddpm' ? '' : ` ${steps} steps`}` +
        `${extras.scheduler ? ` ${extras.scheduler}` : ''}, guidance ${guidance}; ${report.sampling.secondsPerSample!.toFixed(3)} s per sample)`);
      console.log(`per class: ${acc.perClass.map((a, k) => `${k}:${(a * 100).toFixed(0)}%`).join(' ')}`);
      if (report.fid) console.log(`classifier-FID: ${report.fid.fid.toFixed(2)} (real-vs-real floor at the same N: ${report.fid.floor.toFixed(2)}; ` +
        `N = ${report.fid.n} against ${report.fid.reference} images; features of the evaluation classifier, not Inception)`);
      if (o.samples) console.log(`samples: ${o.samples}`);
    }
  } else if (!m.cls && !o.json) {
    console.log('class accuracy: not applicable (the model is not class-conditional)');
  }
  if (o.json) console.log(JSON.stringify(report));
  return report;
}

export interface TrainClassifierOptions {
  out?: string;
  epochs: number;
  seed: number;
  dataset: string;
}

export async function trainClassifierCommand(o: TrainClassifierOptions): Promise<number> {
  const load = o.dataset === 'fashion-mnist' ? loadFashionMnist : o.dataset === 'mnist' ? loadMnist : null;
  if (!load) throw new ConfigError(`--dataset must be mnist or fashion-mnist, got '${o.dataset}'`);
  const out = o.out ?? join(modelsDir(), o.dataset === 'fashion-mnist' ? FASHION_CLASSIFIER_FILE : CLASSIFIER_FILE);
  const bar = stepBar('classifier');
  const t0 = Date.now();
  const r = trainClassifier({ train: load({ split: 'train' }), test: load({ split: 'test' }), epochs: o.epochs, seed: o.seed,
    onProgress: (e) => bar.onStep(e.step, e.steps) });
  bar.stop();
  saveModelFile(out, r.model.stateDict(), { classifier: 'MnistClassifier', dataset: o.dataset, epochs: o.epochs, seed: o.seed },
    { test_accuracy: r.testAccuracy.toFixed(4) });
  console.log(`test accuracy ${(r.testAccuracy * 100).toFixed(2)}% after ${o.epochs} epochs (${((Date.now() - t0) / 1000).toFixed(0)} s) -> ${out}`);
  return r.testAccuracy;
}
