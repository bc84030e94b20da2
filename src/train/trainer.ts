// The trainer: what the official `main.py` + PyTorch Lightning do for an LDM `DDPM` config, in one
// seeded, resumable loop:
//  1. build the model (init weights from the seed) and the data (main.DataModuleFromConfig);
//  2. AdamW over `trainableParameters()` at base_learning_rate (scaled by batch size when
//     scale_lr), the LambdaLR schedule of `scheduler_config`, gradient clipping, accumulation;
//  3. per step: a batch (seeded shuffle and flips), conditioning dropout (`ucg_training`),
//     `shared_step` (t and noise from the training generator), backward, optimizer step, EMA
//     update (`on_train_batch_end`), a JSONL metrics row;
//  4. every N steps: checkpoint (atomic; see io/checkpoint.ts), validation losses with and without
//     EMA, sample grids and the denoising strip with EMA weights, the loss-curve PNG;
//  5. a NaN guard: a non-finite loss or gradient stops the run with a clear message, keeping the
//     last good checkpoint; at the end, RUN/model.safetensors holds the EMA weights for sampling.
// Resume restores weights, EMA, optimizer moments, every generator and the loader position, so a
// resumed run reproduces the losses of an uninterrupted one exactly. No console output here:
// progress goes to the `onEvent` callback (cli/ renders it).

import { join } from 'node:path';
import { ConfigError, Generator, type GeneratorState } from '../util/index.ts';
import { Tensor, backward, div, noGrad, permute, recycle } from '../tensor/index.ts';
import { AdamW, clipGradNorm, initGenerator, setInitSeed } from '../nn/index.ts';
import { DDPM, LatentDiffusion } from '../models/index.ts';
import {
  DataLoader, MetricsLog, buildDataFromConfig, hasCheckpoint, buildModelFromConfig, drawCurve, dumpConfig, loadTrainingCheckpoint, makeBatch,
  saveImageGrid, saveModelFile, saveTrainingCheckpoint, writePng, writeTextFile,
  type Batch, type ConfigTree, type DataModule, type ImageDataset, type LoaderState, type MetricsRow,
} from '../io/index.ts';
import { buildScheduler, type LrSchedule } from './lr.ts';
import { resolveSettings, type TrainSettings } from './settings.ts';
import { classConditioning, denoisingStrip, sampleImages, type ClassCond } from './sampling.ts';
import { initFromWeights, initVocab } from './init-from.ts';
import { TrainingStopped, type RunResult, type TrainEvent, type TrainOptions } from './types.ts';
import { isLatentConfig, loadFirstStage, prepareLatentConfig } from './latent.ts';
import { sidecarState } from './state.ts';

/** What trainDiffusion returns: the run's outcome, the model and its settings. */
export interface TrainResult extends RunResult {
  kind: 'diffusion';
  model: DDPM;
  settings: TrainSettings;
}

/** The trainer's part of a checkpoint sidecar (everything needed to resume exactly). */
type TrainerState = {
  adam: { step: number; lr: number };
  trainGen: GeneratorState;
  ucgGen: GeneratorState;
  initGen: GeneratorState;
  loader: LoaderState;
};

/** The sidecar's trainer state, checked field by field (train/state.ts). */
function trainerState(v: Readonly<Record<string, unknown>>, where: string): TrainerState {
  const r = sidecarState(v, where);
  return { adam: r.optimizer('adam'), trainGen: r.generator('trainGen'), ucgGen: r.generator('ucgGen'), initGen: r.generator('initGen'), loader: r.loader('loader') };
}

/** How a batch becomes a loss for this model. */
export function lossFn(model: DDPM, settings: TrainSettings): (batch: Batch, gen: Generator) => { loss: Tensor; log: Map<string, Tensor> } {
  const ck = model.model.conditioningKey;
  if (model.constructor === DDPM && ck === 'adm') {
    return (batch, gen) => {
      const y = batch[settings.condKey];
      if (!(y instanceof Tensor)) throw new ConfigError(`train: the batch has no tensor '${settings.condKey}' for the class-conditional model (cond_stage_key)`);
      const x = model.getInput(batch, model.firstStageKey);
      const r = model.forward(x, { gen, cond: { y } });
      return { loss: r.loss, log: r.lossDict };
    };
  }
  if (model.constructor === DDPM && ck !== null) {
    throw new ConfigError(`train: a DDPM with conditioning_key '${ck}' needs a conditioning stage; use LatentDiffusion (or conditioning_key adm with class labels)`);
  }
  return (batch, gen) => {
    const r = model.sharedStep(batch, { gen });
    return { loss: r.loss, log: r.lossDict };
  };
}

/** Conditioning dropout (Stability's `ucg_training`): each row's value replaced with prob. p. */
export function applyUcg(batch: Batch, settings: TrainSettings, gen: Generator): Batch {
  if (settings.ucg.length === 0) return batch;
  const out: Batch = { ...batch };
  const B = batch.index.length;
  for (const u of settings.ucg) {
    const draws = gen.rand(B);
    const v = batch[u.key];
    if (v instanceof Tensor) {
      if (typeof u.val !== 'number') throw new ConfigError(`ucg_training.${u.key}.val must be a number for the tensor batch key '${u.key}'`);
      const d = Float64Array.from(v.data);
      for (let i = 0; i < B; i++) if (draws[i]! < u.p) d[i] = u.val;
      out[u.key] = new Tensor(d, v.shape, 'int64');
    } else if (Array.isArray(v)) {
      out[u.key] = v.map((s, i) => (draws[i]! < u.p ? String(u.val) : s));
    } else {
      throw new ConfigError(`ucg_training: the batch has no key '${u.key}' (keys: ${Object.keys(batch).join(', ')})`);
    }
  }
  return out;
}

/** [B, H, W, C] channels-last batch images -> [B, C, H, W]. */
const nchw = (x: Tensor): Tensor => permute(x, [0, 3, 1, 2]);

export function paramNames(model: DDPM, params: readonly Tensor[]): string[] {
  const byId = new Map(model.namedParameters().map(([n, p]) => [p.id, n]));
  return params.map((p, i) => byId.get(p.id) ?? `param.${i}`);
}

/** The step a run's files are named after. */
const stepTag = (s: number): string => `step-${String(s).padStart(6, '0')}`;

/** Train a DDPM-family config (DDPM, LatentDiffusion): the TRAINERS row of their targets (run.ts). */
export async function trainDiffusion(opts: TrainOptions): Promise<TrainResult> {
  const t0 = Date.now();
  const emit = (e: TrainEvent): void => opts.onEvent?.(e);
  let config = opts.config;
  const out = opts.outDir;
  const ckptDir = join(out, 'checkpoints');
  const resumed = opts.resume ? loadTrainingCheckpoint(out) : null;
  if (!opts.resume && hasCheckpoint(out)) {
    throw new ConfigError(`the run folder ${out} already has checkpoints: continue it with --resume ${out}, or choose another --out`);
  }
  const settings = resolveSettings(config);

  // 1. model (weights drawn from the seed) and data. LatentDiffusion (latent.ts): the data first
  // (a BERTEmbedder's vocabulary comes from the captions), first_stage ckpt_path loaded by us.
  let earlyData: DataModule | null = null;
  let firstStageCkpt: string | null = null;
  if (opts.initFrom && opts.resume) throw new ConfigError('--init-from starts a new run; --resume continues one from its own checkpoint (give one of them)');
  if (opts.initFrom) config = initVocab(config, opts.initFrom);
  if (isLatentConfig(config)) {
    earlyData = opts.data ?? await buildDataFromConfig(config, { onWarning: (m) => emit({ type: 'warn', message: m }) });
    ({ config, firstStageCkpt } = prepareLatentConfig(config, earlyData.train));
  }
  setInitSeed(settings.seed);
  const built = buildModelFromConfig(config);
  if (!(built instanceof DDPM)) throw new ConfigError(`train: model.target must be a DDPM-family model (got ${(built as object)?.constructor?.name})`);
  const model = built;
  if (firstStageCkpt && model instanceof LatentDiffusion) {
    const r = loadFirstStage(model, firstStageCkpt);
    emit({ type: 'info', message: `first stage: ${r.loaded} tensors from ${firstStageCkpt}` });
  }
  if (opts.initFrom) {
    const r = initFromWeights(model, config, opts.initFrom);
    emit({ type: 'info', message: `init: ${r.loaded} tensors from ${opts.initFrom}${r.emaFromWeights ? ' (EMA starts from them)' : ''}` });
  }
  model.train();
  const data = earlyData ?? opts.data ?? await buildDataFromConfig(config, { onWarning: (m) => emit({ type: 'warn', message: m }) });
  if (!data.train) throw new ConfigError("config: 'data.params.train' is required for training");
  const trainDs = data.train;
  if (!(model instanceof LatentDiffusion) && (trainDs.channels !== model.channels || trainDs.height !== model.imageSize || trainDs.width !== model.imageSize)) {
    throw new ConfigError(`train: ${trainDs.name} images are ${trainDs.height}x${trainDs.width}x${trainDs.channels}, the model expects ` +
      `${model.imageSize}x${model.imageSize}x${model.channels} (model.params.image_size / channels)`);
  }
  const loader = new DataLoader(trainDs, { batchSize: settings.batchSize, seed: settings.seed });
  const cls = classConditioning(model, settings);

  // 2. optimizer, schedule, generators
  const params = model.trainableParameters();
  const names = paramNames(model, params);
  const opt = new AdamW(params, { lr: settings.learningRate, betas: settings.betas, eps: settings.eps, weightDecay: settings.weightDecay });
  const sched: LrSchedule = model.useScheduler ? buildScheduler(model.schedulerConfig) : { schedule: () => 1 };
  const trainGen = new Generator(BigInt(settings.seed) + 1n);
  const ucgGen = new Generator(BigInt(settings.seed) + 2n);
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'));
  let step = 0;

  if (resumed) {
    model.loadStateDict(resumed.stateDict, true, join(resumed.dir, resumed.sidecar.model));
    const st = trainerState(resumed.sidecar.state, join(resumed.dir, 'last.json'));
    const m = names.map((n) => resumed.optimizer.get(`exp_avg.${n}`));
    const v = names.map((n) => resumed.optimizer.get(`exp_avg_sq.${n}`));
    const missing = names.filter((_, i) => !m[i] || !v[i]);
    if (missing.length > 0) throw new ConfigError(`resume: the optimizer state lacks ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}`);
    opt.loadStateDict({ step: st.adam.step, lr: st.adam.lr, exp_avg: m.map((t) => t!.f32), exp_avg_sq: v.map((t) => t!.f32) });
    trainGen.setState(st.trainGen);
    ucgGen.setState(st.ucgGen);
    initGenerator().setState(st.initGen);
    loader.setState(st.loader);
    step = resumed.sidecar.step;
    if (model instanceof LatentDiffusion) model.restartedFromCkpt = true; // scale_by_std: keep the saved factor
    metrics.truncate(step);
  } else {
    metrics.truncate(0);
  }
  writeTextFile(join(out, 'config.yaml'), dumpConfig(config));
  const computeLoss = lossFn(model, settings);
  emit({
    type: 'start', step, maxSteps: settings.maxSteps, parameters: model.model.numParameters(), learningRate: settings.learningRate,
    dataset: trainDs.name, examples: trainDs.length, outDir: out, resumed: resumed !== null, batchSize: settings.batchSize,
  });

  const saveCheckpoint = (): string => {
    const optState = opt.stateDict();
    const moments = new Map<string, Tensor>();
    names.forEach((n, i) => {
      moments.set(`exp_avg.${n}`, new Tensor(optState.exp_avg[i]!, params[i]!.shape));
      moments.set(`exp_avg_sq.${n}`, new Tensor(optState.exp_avg_sq[i]!, params[i]!.shape));
    });
    const state: TrainerState = {
      adam: { step: optState.step, lr: optState.lr }, trainGen: trainGen.getState(), ucgGen: ucgGen.getState(),
      initGen: initGenerator().getState(), loader: loader.getState(),
    };
    const side = saveTrainingCheckpoint(ckptDir, model.stateDict(), moments,
      { step, config, state }, settings.keepCheckpoints);
    const path = join(ckptDir, side.model);
    emit({ type: 'checkpoint', step, path });
    return path;
  };

  const losses: number[] = [];
  let lastCkptStep = resumed ? step : -1;
  let ema = 0, emaN = 0; // smoothed seconds per step
  const startStep = step;
  let reason: TrainResult['reason'] = 'finished';

  // 3. the loop
  while (step < settings.maxSteps) {
    const ts = performance.now();
    const lr = settings.learningRate * sched.schedule(step);
    opt.lr = lr;
    opt.zeroGrad();
    // The step runs in T.recycle: its activations and dead gradients go back to the pool for the
    // next step (no fresh buffers, so no garbage collections to free them); what outlives it is
    // kept: the parameters' gradients and every tensor the model holds.
    const done = recycle(() => {
      let lossSum = 0;
      let log: Map<string, Tensor> = new Map();
      for (let a = 0; a < settings.accumulate; a++) {
        const batch = applyUcg(loader.next(), settings, ucgGen);
        if (model instanceof LatentDiffusion && step === 0 && a === 0) {
          // on_train_batch_start: scale_by_std sets scale_factor = 1 / std(z) of the first batch
          const sf = model.onTrainBatchStart(batch, step, { noise: trainGen });
          if (sf !== null) emit({ type: 'info', message: `scale_by_std: scale_factor = ${sf.toFixed(4)}` });
        }
        const r = computeLoss(batch, trainGen);
        log = r.log;
        const l = r.loss.item();
        lossSum += l;
        if (settings.nanGuard && !Number.isFinite(l)) nanStop(step + 1, 'loss', l, lr, lastCkptStep, ckptDir);
        backward(settings.accumulate > 1 ? div(r.loss, settings.accumulate) : r.loss);
      }
      const loss = lossSum / settings.accumulate;
      let gradNorm: number | null = null;
      if (settings.gradientClip !== null) gradNorm = clipGradNorm(params, settings.gradientClip);
      if (settings.nanGuard) {
        const gn = gradNorm ?? gradNormOf(params);
        if (!Number.isFinite(gn)) nanStop(step + 1, 'gradient norm', gn, lr, lastCkptStep, ckptDir);
      }
      opt.step();
      const logged = new Map([...log].filter(([k]) => k !== 'train/loss').map(([k, v]) => [k, v.item()] as const));
      return { loss, gradNorm, logged };
    }, () => [params.map((p) => p.grad), model.parameters(), model.namedBuffers().map(([, b]) => b)]);
    const { loss, gradNorm, logged } = done;
    model.onTrainBatchEnd();
    step += 1;
    losses.push(loss);
    const dt = (performance.now() - ts) / 1000;
    ema = emaN === 0 ? dt : 0.9 * ema + 0.1 * dt;
    emaN++;
    const imgPerSec = (settings.batchSize * settings.accumulate) / ema;
    if (step % settings.logEvery === 0 || step === settings.maxSteps) {
      const row: MetricsRow = { step, loss, lr, epoch: loader.currentEpoch, img_per_s: +imgPerSec.toFixed(2) };
      for (const [k, v] of logged) row[k] = v;
      if (gradNorm !== null) row['grad_norm'] = gradNorm;
      metrics.append(row);
    }
    emit({ type: 'step', step, maxSteps: settings.maxSteps, loss, lr, itPerSec: 1 / ema, imgPerSec, etaSec: ema * (settings.maxSteps - step), epoch: loader.currentEpoch });

    if (opts.killAfterSteps !== undefined && step - startStep >= opts.killAfterSteps) {
      reason = 'killed';
      break;
    }
    // Ctrl-C: stop now (validation and pictures skipped), the checkpoint is written below. The loop
    // is synchronous: let the event loop run the SIGINT handler once per step.
    if (opts.shouldStop) await new Promise<void>((r) => setImmediate(r));
    if (opts.shouldStop?.()) {
      reason = 'stopped';
      break;
    }
    if (step % settings.checkpointEvery === 0) lastCkptStep = (saveCheckpoint(), step);
    if (settings.valEvery && step % settings.valEvery === 0 && data.validation) {
      const values = validate(model, computeLoss, data.validation, settings);
      metrics.append({ step, ...values });
      emit({ type: 'val', step, values });
    }
    if (settings.imageEvery && step % settings.imageEvery === 0) {
      emit({ type: 'images', step, paths: await logImages(model, cls, settings, data, out, step) });
      await writeLossCurve(metrics, out);
    }
  }

  // 4. the end: checkpoint, pictures, the inference model file
  let modelPath: string | null = null;
  if (reason !== 'killed') {
    if (lastCkptStep !== step) saveCheckpoint();
    if (reason === 'finished') {
      if (settings.imageEvery && step % settings.imageEvery !== 0) emit({ type: 'images', step, paths: await logImages(model, cls, settings, data, out, step) });
      modelPath = join(out, 'model.safetensors');
      exportModel(model, config, modelPath, step);
    }
    await writeLossCurve(metrics, out);
  }
  const seconds = (Date.now() - t0) / 1000;
  const imgPerSec = ema > 0 ? (settings.batchSize * settings.accumulate) / ema : 0;
  emit({ type: 'done', step, reason, modelPath, seconds, imgPerSec });
  return { kind: 'diffusion', step, reason, model, settings, losses, modelPath, imgPerSec };
}

function gradNormOf(params: readonly Tensor[]): number {
  let ss = 0;
  for (const p of params) if (p.grad) for (const g of p.grad.f32) ss += g * g;
  return Math.sqrt(ss);
}

function nanStop(step: number, what: string, value: number, lr: number, lastCkpt: number, dir: string): never {
  const keep = lastCkpt >= 0
    ? `the last good checkpoint is ${join(dir, `${stepTag(lastCkpt)}.safetensors`)} (step ${lastCkpt}); resume with --resume and a lower learning rate`
    : 'no checkpoint was written yet';
  throw new TrainingStopped(`training stopped at step ${step}: the ${what} is ${value} (learning rate ${lr.toExponential(3)}); ${keep}`);
}

/** Mean validation losses over a few fixed batches, without and with EMA weights (keys + '_ema'). */
function validate(model: DDPM, computeLoss: ReturnType<typeof lossFn>, ds: ImageDataset, s: TrainSettings): Record<string, number> {
  const sums = new Map<string, number>();
  let n = 0;
  model.eval();
  try {
    noGrad(() => {
      for (let b = 0; b < s.valBatches; b++) {
        const start = b * s.batchSize;
        if (start >= ds.length) break;
        const batch = makeBatch(ds, Array.from({ length: Math.min(s.batchSize, ds.length - start) }, (_, i) => start + i));
        const run = (suffix: string): void => {
          const gen = new Generator(1000 + b);
          for (const [k, v] of computeLoss(batch, gen).log) sums.set(`${k}${suffix}`, (sums.get(`${k}${suffix}`) ?? 0) + v.item());
        };
        run('');
        model.emaScope(() => run('_ema'));
        n++;
      }
    });
  } finally {
    model.train();
  }
  return Object.fromEntries([...sums].map(([k, v]) => [k, v / Math.max(1, n)]));
}

/** A fixed set of real images for the strip: the first example of each class (up to 8). */
function stripExamples(ds: ImageDataset, k: number): number[] {
  const seen = new Set<number>();
  const idx: number[] = [];
  for (let i = 0; i < ds.length && idx.length < k; i++) {
    const l = ds.label(i);
    if (seen.has(l) && seen.size < ds.classNames.length) continue;
    seen.add(l);
    idx.push(i);
  }
  return idx;
}

/** Sample grid (EMA weights) and denoising strip, written under RUN/images/. */
async function logImages(model: DDPM, cls: ClassCond | null, s: TrainSettings, data: DataModule, out: string, step: number): Promise<string[]> {
  const nrow = cls ? cls.numClasses : 8;
  const ds = data.validation ?? data.train!;
  const idx = stripExamples(ds, 8);
  model.eval();
  let samples: Tensor, strip: { images: Tensor; nrow: number };
  try {
    // everything computed inside the (synchronous) EMA scope; files written afterwards
    [samples, strip] = model.emaScope(() => {
      const n = Math.max(nrow, Math.floor(s.maxImages / nrow) * nrow);
      const r = sampleImages(model, cls, { n, sampler: s.sampler, steps: s.sampleSteps, eta: s.eta, guidance: s.guidanceScale, seed: 4242 });
      const st = denoisingStrip(model, datasetImages(ds, idx), cls ? idx.map((i) => ds.label(i)) : null, s.stripT, 777, cls);
      return [r.samples, st] as const;
    });
  } finally {
    model.train();
  }
  const samplesPath = join(out, 'images', `samples_${stepTag(step)}.png`);
  const stripPath = join(out, 'images', `strip_${stepTag(step)}.png`);
  await saveImageGrid(samplesPath, samples, { nrow });
  await saveImageGrid(stripPath, strip.images, { nrow: strip.nrow });
  return [samplesPath, stripPath];
}

async function writeLossCurve(metrics: MetricsLog, out: string): Promise<void> {
  const rows = metrics.read().filter((r) => typeof r['loss'] === 'number');
  if (rows.length < 2) return;
  await writePng(join(out, 'loss.png'), drawCurve(rows.map((r) => r.step), rows.map((r) => r['loss'] as number), { logScale: true, title: 'loss' }));
}

/** RUN/model.safetensors: the EMA weights as the model weights, config with use_ema false. */
export function exportModel(model: DDPM, config: ConfigTree, path: string, step: number): void {
  const cfg = structuredClone(config) as ConfigTree;
  const mp = ((cfg['model'] as ConfigTree)['params'] ??= {}) as ConfigTree;
  mp['use_ema'] = false;
  model.emaScope(() => {
    const sd = new Map([...model.stateDict()].filter(([k]) => !k.startsWith('model_ema.')));
    saveModelFile(path, sd, cfg, { step: String(step), ema: model.model_ema ? 'true' : 'false' });
  });
}

/** Examples [B, C, H, W] of a data set (for strips and evaluation). */
export function datasetImages(ds: ImageDataset, indices: readonly number[]): Tensor {
  return nchw(makeBatch(ds, indices).image);
}

