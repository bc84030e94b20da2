// Training with no files: the loop of trainer.ts (same seeds, same order of random draws, same
// loss, AdamW, LR schedule, gradient clipping and EMA), over a data set held in memory, without
// checkpoints, validation or image logging. It is what the browser build runs in a Web Worker;
// given the same config and data its losses equal those of `train()` (test/train/memory.test.ts).
// What it is not: no resume, no latent-diffusion or autoencoder configs (they need a first stage
// read from disk), no NaN guard beyond stopping with a clear error.

import { ConfigError, Generator } from '../util/index.ts';
import { backward, div } from '../tensor/index.ts';
import { AdamW, clipGradNorm, setInitSeed } from '../nn/index.ts';
import { DDPM, LatentDiffusion } from '../models/index.ts';
import { DataLoader, buildModelFromConfig, getPath, type ConfigTree, type ImageDataset } from '../io/index.ts';
import { buildScheduler, type LrSchedule } from './lr.ts';
import { resolveSettings, type TrainSettings } from './settings.ts';
import { classConditioning, type ClassCond } from './sampling.ts';
import { AUTOENCODER_TARGET } from './autoencoder.ts';
import { isLatentConfig } from './latent.ts';
import { applyUcg, lossFn } from './trainer.ts';

export interface MemoryStep {
  step: number;
  maxSteps: number;
  loss: number;
  lr: number;
  /** seconds of this step */
  seconds: number;
}

export interface MemoryTrainOptions {
  /** the resolved config (overrides applied); its data section is not read */
  config: ConfigTree;
  /** the training images (e.g. mnistFromBytes) */
  train: ImageDataset;
  /** number of steps (default: lightning.trainer.max_steps of the config) */
  steps?: number;
  /** after every step; awaited, so a worker can let messages in (a stop request) */
  onStep?: (s: MemoryStep) => void | Promise<void>;
  /** checked after every step: true ends the run */
  shouldStop?: () => boolean;
}

export interface MemoryTrainResult {
  model: DDPM;
  cls: ClassCond | null;
  settings: TrainSettings;
  losses: number[];
  reason: 'finished' | 'stopped';
}

export async function trainInMemory(opts: MemoryTrainOptions): Promise<MemoryTrainResult> {
  const config = opts.config;
  if (getPath(config, 'model.target') === AUTOENCODER_TARGET || isLatentConfig(config)) {
    throw new ConfigError('trainInMemory: only pixel-space DDPM configs (model.target ldm.models.diffusion.ddpm.DDPM) train without files');
  }
  const settings = { ...resolveSettings(config) };
  if (opts.steps !== undefined) {
    if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new ConfigError(`trainInMemory: steps must be a positive integer, got ${opts.steps}`);
    settings.maxSteps = opts.steps;
  }
  // 1. model and data, in the order of train(): the init seed before the model is built
  setInitSeed(settings.seed);
  const built = buildModelFromConfig(config);
  if (!(built instanceof DDPM) || built instanceof LatentDiffusion) throw new ConfigError('trainInMemory: model.target must be a pixel-space DDPM');
  const model = built;
  model.train();
  const ds = opts.train;
  if (ds.channels !== model.channels || ds.height !== model.imageSize || ds.width !== model.imageSize) {
    throw new ConfigError(`trainInMemory: ${ds.name} images are ${ds.height}x${ds.width}x${ds.channels}, the model expects ` +
      `${model.imageSize}x${model.imageSize}x${model.channels}`);
  }
  const loader = new DataLoader(ds, { batchSize: settings.batchSize, seed: settings.seed });
  const cls = classConditioning(model, settings);
  // 2. optimizer, schedule, generators (the seeds of train())
  const params = model.trainableParameters();
  const opt = new AdamW(params, { lr: settings.learningRate, betas: settings.betas, eps: settings.eps, weightDecay: settings.weightDecay });
  const sched: LrSchedule = model.useScheduler ? buildScheduler(model.schedulerConfig) : { schedule: () => 1 };
  const trainGen = new Generator(BigInt(settings.seed) + 1n);
  const ucgGen = new Generator(BigInt(settings.seed) + 2n);
  const computeLoss = lossFn(model, settings);
  const losses: number[] = [];
  let reason: MemoryTrainResult['reason'] = 'finished';
  // 3. the loop of train(), step for step
  for (let step = 0; step < settings.maxSteps;) {
    const ts = performance.now();
    const lr = settings.learningRate * sched.schedule(step);
    opt.lr = lr;
    opt.zeroGrad();
    let lossSum = 0;
    for (let a = 0; a < settings.accumulate; a++) {
      const batch = applyUcg(loader.next(), settings, ucgGen);
      const r = computeLoss(batch, trainGen);
      const l = r.loss.item();
      if (!Number.isFinite(l)) throw new ConfigError(`trainInMemory: the loss is ${l} at step ${step + 1} (learning rate ${lr.toExponential(3)})`);
      lossSum += l;
      backward(settings.accumulate > 1 ? div(r.loss, settings.accumulate) : r.loss);
    }
    if (settings.gradientClip !== null) clipGradNorm(params, settings.gradientClip);
    opt.step();
    model.onTrainBatchEnd();
    step += 1;
    const loss = lossSum / settings.accumulate;
    losses.push(loss);
    await opts.onStep?.({ step, maxSteps: settings.maxSteps, loss, lr, seconds: (performance.now() - ts) / 1000 });
    if (opts.shouldStop?.()) {
      reason = 'stopped';
      break;
    }
  }
  model.eval();
  return { model, cls, settings, losses, reason };
}
