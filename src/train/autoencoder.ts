// Training an `ldm.models.autoencoder.AutoencoderKL` config (the first stage of an LDM), or a VQ
// first stage (`ldm.models.autoencoder.VQModel`, `taming.models.vqgan.VQModel` with
// VQLPIPSWithDiscriminator), as the official main.py + Lightning run it: per batch,
// optimizer_idx 0 (encoder/decoder/quant convs (+ codebook): reconstruction + KL or codebook loss +
// the adaptive-weighted GAN term from `disc_start` on) then optimizer_idx 1 (the discriminator),
// both Adam(lr, betas (0.5, 0.9)) at base_learning_rate (times batch size when scale_lr; the VQ
// autoencoder optimiser times lr_g_factor), one global step per batch (models/autoencoder/
// training.ts and vq-training.ts do the step).
// Logged: a JSONL metrics row per step, reconstruction grids (input row above its reconstruction
// row, posterior mode or quantised latent, held-out images), reconstruction error on held-out test images (L1, MSE and
// PSNR on the [0, 1] scale) every val_check_interval and at the end, the loss curve. Checkpoints
// and RUN/model.safetensors hold the whole state dict under the official keys (encoder.*,
// decoder.*, quant_conv.*, post_quant_conv.*, loss.*). Checkpoints are training checkpoints
// (io/checkpoint.ts: weights, both optimizers' moments, generator and loader state), so `--resume`
// continues a run exactly as the diffusion trainer does; Ctrl-C writes one and stops.

import { join } from 'node:path';
import { ConfigError, Generator, type GeneratorState } from '../util/index.ts';
import { Tensor as TensorClass, cat, noGrad, permute } from '../tensor/index.ts';
import { initGenerator, setInitSeed, type Adam } from '../nn/index.ts';
import type { Tensor } from '../tensor/index.ts';
import {
  AutoencoderKL, LPIPSWithDiscriminator, VQLPIPSWithDiscriminator, VQModel, autoencoderOptimizationStep, configureAutoencoderOptimizers,
  configureVQOptimizers, vqOptimizationStep,
} from '../models/index.ts';
import {
  DataLoader, MetricsLog, buildDataFromConfig, buildModelFromConfig, drawCurve, dumpConfig, hasCheckpoint, loadTrainingCheckpoint, makeBatch,
  saveImageGrid, saveModelFile, saveTrainingCheckpoint, writePng, writeTextFile, type ConfigTree, type ImageDataset, type LoaderState,
  type MetricsRow,
} from '../io/index.ts';
import { resolveSettings } from './settings.ts';
import { sidecarState } from './state.ts';
import type { RunResult, TrainEvent, TrainOptions } from './types.ts';

export const AUTOENCODER_TARGET = 'ldm.models.autoencoder.AutoencoderKL';
/** The model targets trained by trainAutoencoder. */
export const AUTOENCODER_TARGETS: readonly string[] = [AUTOENCODER_TARGET, 'ldm.models.autoencoder.VQModel', 'taming.models.vqgan.VQModel'];

/** A first stage this trainer handles. */
export type TrainableFirstStage = AutoencoderKL | VQModel;

/** The reconstruction used for metrics and grids: posterior mode (KL) or the quantised latent (VQ). */
function reconstruct(ae: TrainableFirstStage, x: Tensor): Tensor {
  return ae instanceof AutoencoderKL ? ae.forward(x, false)[0] : ae.forward(x)[0];
}
export interface ReconstructionReport {
  l1: number;
  mse: number;
  /** PSNR in dB of images mapped to [0, 1] */
  psnr: number;
  n: number;
}

export interface AutoencoderTrainResult extends RunResult {
  kind: 'autoencoder';
  model: TrainableFirstStage;
  reconstruction: ReconstructionReport | null;
}

const stepTag = (s: number): string => `step-${String(s).padStart(6, '0')}`;

/** Reconstruction error of the posterior mode on the first n examples of ds. */
export function reconstructionError(ae: TrainableFirstStage, ds: ImageDataset, n = 512, bs = 128): ReconstructionReport {
  const m = Math.min(n, ds.length);
  let l1 = 0, se = 0, count = 0;
  noGrad(() => {
    for (let s = 0; s < m; s += bs) {
      const idx = Array.from({ length: Math.min(bs, m - s) }, (_, i) => s + i);
      const x = permute(makeBatch(ds, idx).image, [0, 3, 1, 2]); // [B, C, H, W]
      const rec = reconstruct(ae, x);
      const a = x.f32, b = rec.f32;
      for (let i = 0; i < a.length; i++) {
        const d = Math.min(1, Math.max(-1, b[i]!)) - a[i]!;
        l1 += Math.abs(d);
        se += d * d;
      }
      count += a.length;
    }
  });
  const mse = se / count;
  // [-1, 1] -> [0, 1]: errors halve, squared errors quarter
  return { l1: l1 / count, mse, psnr: 10 * Math.log10(1 / (mse / 4)), n: m };
}

/** Input row above reconstruction row, k images per row. */
async function reconstructionGrid(ae: TrainableFirstStage, ds: ImageDataset, path: string, k = 16): Promise<void> {
  const idx = Array.from({ length: Math.min(k, ds.length) }, (_, i) => i);
  const x = permute(makeBatch(ds, idx).image, [0, 3, 1, 2]);
  const rec = noGrad(() => reconstruct(ae, x));
  await saveImageGrid(path, cat([x, rec], 0), { nrow: idx.length });
}

export async function trainAutoencoder(opts: TrainOptions): Promise<AutoencoderTrainResult> {
  const t0 = Date.now();
  const emit = (e: TrainEvent): void => opts.onEvent?.(e);
  const config: ConfigTree = opts.config;
  const out = opts.outDir;
  const resumed = opts.resume ? loadTrainingCheckpoint(out) : null;
  if (!opts.resume && hasCheckpoint(out)) {
    throw new ConfigError(`the run folder ${out} already has checkpoints: continue it with --resume ${out}, or choose another --out`);
  }
  const s = resolveSettings(config);
  setInitSeed(s.seed);
  const built = buildModelFromConfig(config);
  if (!(built instanceof AutoencoderKL) && !(built instanceof VQModel)) throw new ConfigError(`train: model.target ${String(getPathSafe(config))} did not build an AutoencoderKL or a VQModel`);
  const ae: TrainableFirstStage = built;
  const lossModule = ae.loss;
  let stepFn: (batch: Readonly<Record<string, Tensor>>, step: number) => { aeloss: Tensor; discloss: Tensor; log: Record<string, Tensor> };
  let loss: LPIPSWithDiscriminator | VQLPIPSWithDiscriminator;
  let nParams: number;
  let optimizers: { optAe: Adam; optDisc: Adam };
  const trainGen = new Generator(BigInt(s.seed) + 1n);
  if (ae instanceof AutoencoderKL) {
    if (!(lossModule instanceof LPIPSWithDiscriminator)) throw new ConfigError('train: an AutoencoderKL needs lossconfig ldm.modules.losses.LPIPSWithDiscriminator to train');
    const l = lossModule;
    const opt = configureAutoencoderOptimizers(ae, l, s.learningRate);
    optimizers = opt;
    stepFn = (batch, step) => autoencoderOptimizationStep(ae, l, opt, batch, step, { noise0: trainGen, noise1: trainGen });
    loss = l;
    nParams = [...ae.encoder.parameters(), ...ae.decoder.parameters(), ...ae.quant_conv.parameters(), ...ae.post_quant_conv.parameters()]
      .reduce((a, p) => a + p.size, 0);
  } else {
    if (!(lossModule instanceof VQLPIPSWithDiscriminator)) throw new ConfigError('train: a VQModel needs lossconfig taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator (or ldm.modules.losses.vqperceptual.VQLPIPSWithDiscriminator) to train');
    const l = lossModule;
    const opt = configureVQOptimizers(ae, l, s.learningRate);
    optimizers = opt;
    stepFn = (batch, step) => vqOptimizationStep(ae, l, opt, batch, step, { unknownDraw: trainGen });
    loss = l;
    nParams = ae.autoencoderParameters().reduce((a, p) => a + p.size, 0);
  }
  ae.train();
  const data = opts.data ?? await buildDataFromConfig(config, { onWarning: (m) => emit({ type: 'warn', message: m }) });
  if (!data.train) throw new ConfigError("config: 'data.params.train' is required for training");
  const heldOut = data.validation ?? data.test ?? data.train;
  const loader = new DataLoader(data.train, { batchSize: s.batchSize, seed: s.seed });
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'));
  // both optimizers' moments under the parameters' state-dict names
  const byId = new Map(ae.namedParameters().map(([n, p]) => [p.id, n]));
  const optList: ['optAe' | 'optDisc', Adam][] = [['optAe', optimizers.optAe], ['optDisc', optimizers.optDisc]];
  const namesOf = (o: Adam): string[] => o.params.map((p, i) => byId.get(p.id) ?? `param.${i}`);
  let step = 0;
  if (resumed) {
    ae.loadStateDict(resumed.stateDict, true, join(resumed.dir, resumed.sidecar.model));
    const st = autoencoderState(resumed.sidecar.state, join(resumed.dir, 'last.json'));
    for (const [key, o] of optList) {
      const names = namesOf(o);
      const m = names.map((n) => resumed.optimizer.get(`exp_avg.${n}`));
      const v = names.map((n) => resumed.optimizer.get(`exp_avg_sq.${n}`));
      const missing = names.filter((_, i) => !m[i] || !v[i]);
      if (missing.length > 0) throw new ConfigError(`resume: the optimizer state lacks ${missing.slice(0, 3).join(', ') || key}`);
      o.loadStateDict({ step: st[key].step, lr: st[key].lr, exp_avg: m.map((t) => t!.f32), exp_avg_sq: v.map((t) => t!.f32) });
    }
    trainGen.setState(st.trainGen);
    initGenerator().setState(st.initGen);
    loader.setState(st.loader);
    step = resumed.sidecar.step;
    metrics.truncate(step);
  } else {
    metrics.truncate(0);
  }
  writeTextFile(join(out, 'config.yaml'), dumpConfig(config));
  emit({
    type: 'start', step, maxSteps: s.maxSteps, parameters: nParams, learningRate: s.learningRate, dataset: data.train.name,
    examples: data.train.length, outDir: out, resumed: resumed !== null, batchSize: s.batchSize,
  });
  emit({ type: 'info', message: `autoencoder: ${nParams} trainable parameters, discriminator ${loss.discriminator.parameters().reduce((a, p) => a + p.size, 0)}; GAN term from step ${loss.discriminatorIterStart}` });

  const saveWeights = (path: string, step: number): void => {
    saveModelFile(path, ae.stateDict(), config, { step: String(step), ema: 'false' });
  };
  const ckptDir = join(out, 'checkpoints');
  const saveCheckpoint = (): void => {
    const moments = new Map<string, Tensor>();
    const state: Partial<AutoencoderTrainerState> = { trainGen: trainGen.getState(), initGen: initGenerator().getState(), loader: loader.getState() };
    for (const [key, o] of optList) {
      const sd = o.stateDict();
      state[key] = { step: sd.step, lr: sd.lr };
      namesOf(o).forEach((n, i) => {
        moments.set(`exp_avg.${n}`, new TensorClass(sd.exp_avg[i]!, o.params[i]!.shape));
        moments.set(`exp_avg_sq.${n}`, new TensorClass(sd.exp_avg_sq[i]!, o.params[i]!.shape));
      });
    }
    const side = saveTrainingCheckpoint(ckptDir, ae.stateDict(), moments, { step, config, state: state as Record<string, unknown> }, s.keepCheckpoints);
    emit({ type: 'checkpoint', step, path: join(ckptDir, side.model) });
  };
  const valRows = (step: number): ReconstructionReport => {
    ae.eval();
    try {
      const r = reconstructionError(ae, heldOut);
      metrics.append({ step, 'val/rec_l1': r.l1, 'val/rec_mse': r.mse, 'val/psnr': r.psnr });
      emit({ type: 'val', step, values: { 'val/rec_l1': r.l1, 'val/rec_mse': r.mse, 'val/psnr': r.psnr } });
      return r;
    } finally {
      ae.train();
    }
  };
  const images = async (step: number): Promise<void> => {
    const p = join(out, 'images', `reconstructions_${stepTag(step)}.png`);
    ae.eval();
    try {
      await reconstructionGrid(ae, heldOut, p);
    } finally {
      ae.train();
    }
    emit({ type: 'images', step, paths: [p] });
  };

  const losses: number[] = [];
  let ema = 0, emaN = 0;
  let lastCkptStep = resumed ? step : -1;
  let reason: AutoencoderTrainResult['reason'] = 'finished';
  let lastVal: ReconstructionReport | null = null;
  while (step < s.maxSteps) {
    const ts = performance.now();
    const batch = loader.next();
    const r = stepFn({ [ae.imageKey]: batch.image }, step);
    const l = r.aeloss.item();
    if (s.nanGuard && !Number.isFinite(l)) throw new ConfigError(`training stopped at step ${step + 1}: the autoencoder loss is ${l}; lower base_learning_rate`);
    step += 1;
    losses.push(l);
    const dt = (performance.now() - ts) / 1000;
    ema = emaN++ === 0 ? dt : 0.9 * ema + 0.1 * dt;
    if (step % s.logEvery === 0 || step === s.maxSteps) {
      const row: MetricsRow = { step, loss: l, disc_loss: r.discloss.item(), lr: s.learningRate, epoch: loader.currentEpoch, img_per_s: +(s.batchSize / ema).toFixed(2) };
      for (const [k, v] of Object.entries(r.log)) row[k] = v.item();
      metrics.append(row);
    }
    emit({ type: 'step', step, maxSteps: s.maxSteps, loss: l, lr: s.learningRate, itPerSec: 1 / ema, imgPerSec: s.batchSize / ema, etaSec: ema * (s.maxSteps - step), epoch: loader.currentEpoch });
    if (opts.killAfterSteps !== undefined && losses.length >= opts.killAfterSteps) { reason = 'killed'; break; }
    // Ctrl-C: stop now (validation and pictures skipped), the checkpoint is written below (the
    // event loop runs the SIGINT handler once per step)
    if (opts.shouldStop) await new Promise<void>((r) => setImmediate(r));
    if (opts.shouldStop?.()) { reason = 'stopped'; break; }
    if (step % s.checkpointEvery === 0) {
      saveCheckpoint();
      lastCkptStep = step;
    }
    if (s.valEvery && step % s.valEvery === 0) lastVal = valRows(step);
    if (s.imageEvery && step % s.imageEvery === 0) {
      await images(step);
      await writeCurve(metrics, out);
    }
  }
  let modelPath: string | null = null;
  if (reason !== 'killed' && lastCkptStep !== step) saveCheckpoint();
  if (reason === 'finished') {
    if (!s.valEvery || step % s.valEvery !== 0) lastVal = valRows(step);
    if (!s.imageEvery || step % s.imageEvery !== 0) await images(step);
    modelPath = join(out, 'model.safetensors');
    saveWeights(modelPath, step);
    await writeCurve(metrics, out);
    if (lastVal) {
      emit({ type: 'info', message: `held-out reconstruction (${lastVal.n} test images, posterior mode): L1 ${lastVal.l1.toFixed(4)}, MSE ${lastVal.mse.toFixed(5)}, PSNR ${lastVal.psnr.toFixed(2)} dB` });
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const imgPerSec = ema > 0 ? s.batchSize / ema : 0;
  emit({ type: 'done', step, reason, modelPath, seconds, imgPerSec });
  return { kind: 'autoencoder', step, reason, model: ae, losses, modelPath, imgPerSec, reconstruction: lastVal };
}

async function writeCurve(metrics: MetricsLog, out: string): Promise<void> {
  const rows = metrics.read().filter((r) => typeof r['loss'] === 'number');
  if (rows.length < 2) return;
  await writePng(join(out, 'loss.png'), drawCurve(rows.map((r) => r.step), rows.map((r) => Math.max(1e-6, r['loss'] as number)), { logScale: true, title: 'autoencoder loss (reconstruction + KL or codebook + GAN)' }));
}


/** What a training checkpoint's sidecar holds for an autoencoder run. */
interface AutoencoderTrainerState {
  optAe: { step: number; lr: number };
  optDisc: { step: number; lr: number };
  trainGen: GeneratorState;
  initGen: GeneratorState;
  loader: LoaderState;
}

/** The sidecar's autoencoder state, checked field by field (train/state.ts). */
function autoencoderState(v: Readonly<Record<string, unknown>>, where: string): AutoencoderTrainerState {
  const r = sidecarState(v, where);
  return { optAe: r.optimizer('optAe'), optDisc: r.optimizer('optDisc'), trainGen: r.generator('trainGen'), initGen: r.generator('initGen'), loader: r.loader('loader') };
}

function getPathSafe(config: ConfigTree): unknown {
  const m = config['model'];
  return m && typeof m === 'object' ? (m as Record<string, unknown>)['target'] : undefined;
}
