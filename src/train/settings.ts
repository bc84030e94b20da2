// The training settings of a config, resolved once with the official defaults and rules:
// learning rate = base_learning_rate, times accumulate_grad_batches * n_gpus(1) * batch_size when
// scale_lr (main.py, default true); AdamW as `configure_optimizers` makes it (torch defaults:
// weight_decay 0.01, betas (0.9, 0.999), eps 1e-8); steps from lightning.trainer; image logging
// from lightning.callbacks.image_logger; checkpoints from lightning.modelcheckpoint; conditioning
// dropout for classifier-free guidance from model.params.ucg_training (Stability's ddpm.py form
// `{key: {p, val}}`), which also gives the null label of a class-conditional DDPM.

import { ConfigError } from '../util/index.ts';
import { SAMPLER_NAMES, isSamplerName, type SamplerName } from '../diffusion/index.ts';
import { getPath, type ConfigTree } from '../io/index.ts';

export interface UcgEntry {
  /** batch key, e.g. 'class_label' or 'caption' */
  key: string;
  p: number;
  /** the unconditional value (null label, empty caption) */
  val: number | string;
}

export interface TrainSettings {
  seed: number;
  baseLearningRate: number;
  scaleLr: boolean;
  learningRate: number;
  batchSize: number;
  accumulate: number;
  maxSteps: number;
  gradientClip: number | null;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  logEvery: number;
  valEvery: number | null;
  valBatches: number;
  imageEvery: number | null;
  maxImages: number;
  sampler: SamplerName;
  sampleSteps: number;
  eta: number;
  guidanceScale: number;
  stripT: number[];
  checkpointEvery: number;
  keepCheckpoints: number;
  nanGuard: boolean;
  /** batch key of class labels for an 'adm' DDPM (cond_stage_key, default class_label) */
  condKey: string;
  ucg: UcgEntry[];
}

const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);

export function resolveSettings(tree: ConfigTree): TrainSettings {
  const g = (p: string): unknown => getPath(tree, p);
  const base = g('model.base_learning_rate');
  if (typeof base !== 'number' || !(base > 0)) throw new ConfigError(`config: 'model.base_learning_rate' must be a positive number, got ${JSON.stringify(base)}`);
  const batchSize = g('data.params.batch_size');
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`config: 'data.params.batch_size' must be a positive integer, got ${JSON.stringify(batchSize)}`);
  }
  const tr = 'lightning.trainer.';
  const accumulate = num(g(`${tr}accumulate_grad_batches`), 1);
  const scaleLr = g('scale_lr') !== false;
  const learningRate = scaleLr ? accumulate * 1 * batchSize * base : base;
  let maxSteps = g(`${tr}max_steps`);
  if (maxSteps === undefined || maxSteps === null || maxSteps === -1) {
    throw new ConfigError("config: set 'lightning.trainer.max_steps' (the number of optimizer steps to train for)");
  }
  maxSteps = Number(maxSteps);
  if (!Number.isInteger(maxSteps) || (maxSteps as number) < 1) throw new ConfigError(`config: 'lightning.trainer.max_steps' must be a positive integer`);
  const betas = g(`${tr}adam_betas`) ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number')) {
    throw new ConfigError(`config: 'lightning.trainer.adam_betas' must be a list of two numbers`);
  }
  const il = 'lightning.callbacks.image_logger.params.';
  const samplerName = String(g(`${il}sampler`) ?? 'ddim');
  if (!isSamplerName(samplerName)) throw new ConfigError(`config: '${il}sampler' must be one of ${SAMPLER_NAMES.join(', ')}, got '${samplerName}'`);
  const sampler: SamplerName = samplerName;
  const imgEvery = g(`${il}batch_frequency`);
  const disabled = g(`${il}disabled`) === true;
  const stripT = (g(`${il}strip_t`) ?? [200, 500, 900]) as unknown[];
  if (!stripT.every((t) => typeof t === 'number' && Number.isInteger(t))) throw new ConfigError(`config: '${il}strip_t' must be a list of integer timesteps`);

  const { ucg, condKey } = conditioningSettings(tree);
  const mc = 'lightning.modelcheckpoint.params.';
  return {
    seed: num(g('seed'), 23),
    baseLearningRate: base,
    scaleLr,
    learningRate,
    batchSize,
    accumulate,
    maxSteps: maxSteps as number,
    gradientClip: typeof g(`${tr}gradient_clip_val`) === 'number' && (g(`${tr}gradient_clip_val`) as number) > 0 ? (g(`${tr}gradient_clip_val`) as number) : null,
    weightDecay: num(g(`${tr}weight_decay`), 0.01),
    betas: betas as [number, number],
    eps: num(g(`${tr}adam_eps`), 1e-8),
    logEvery: Math.max(1, num(g(`${tr}log_every_n_steps`), 1)),
    valEvery: typeof g(`${tr}val_check_interval`) === 'number' ? (g(`${tr}val_check_interval`) as number) : null,
    valBatches: num(g(`${tr}limit_val_batches`), 4),
    imageEvery: disabled || typeof imgEvery !== 'number' || imgEvery <= 0 ? null : imgEvery,
    maxImages: num(g(`${il}max_images`), 64),
    sampler,
    sampleSteps: num(g(`${il}sample_steps`), 50),
    eta: num(g(`${il}eta`), 0),
    guidanceScale: num(g(`${il}guidance_scale`), 1),
    stripT: stripT as number[],
    checkpointEvery: Math.max(1, num(g(`${mc}every_n_train_steps`), 500)),
    keepCheckpoints: Math.max(1, num(g(`${mc}save_top_k`), 2)),
    nanGuard: g(`${tr}nan_guard`) !== false,
    condKey,
    ucg,
  };
}

/** Only the conditioning part (for sampling a trained model: the null label of guidance). */
export function conditioningSettings(tree: ConfigTree): Pick<TrainSettings, 'ucg' | 'condKey'> {
  const ucg: UcgEntry[] = [];
  const u = getPath(tree, 'model.params.ucg_training');
  if (u !== undefined && u !== null) {
    if (typeof u !== 'object' || Array.isArray(u)) throw new ConfigError(`config: 'model.params.ucg_training' must map batch keys to {p, val}`);
    for (const [key, e] of Object.entries(u as Record<string, unknown>)) {
      const p = (e as { p?: unknown })?.p, val = (e as { val?: unknown })?.val;
      if (typeof p !== 'number' || p < 0 || p > 1) throw new ConfigError(`config: 'model.params.ucg_training.${key}.p' must be a probability, got ${JSON.stringify(p)}`);
      if (typeof val !== 'number' && typeof val !== 'string' && val !== null && val !== undefined) {
        throw new ConfigError(`config: 'model.params.ucg_training.${key}.val' must be a number (null label) or a string (empty caption)`);
      }
      ucg.push({ key, p, val: val ?? '' });
    }
  }
  const ck = getPath(tree, 'model.params.cond_stage_key');
  return { ucg, condKey: typeof ck === 'string' ? ck : 'class_label' };
}
