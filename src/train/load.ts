// Loading a trained model for sampling and evaluation: a shipped model by name (models/
// registry.json), an ldm.ts model file or run folder (config in the file's metadata or the
// checkpoint sidecar), or an official .ckpt with its YAML config. EMA weights, when the file has
// them, are swapped in (the official `ema_scope` default for sampling) unless asked otherwise.

import { ConfigError } from '../util/index.ts';
import type { SamplerName } from '../diffusion/index.ts';
import type { DDPM } from '../models/index.ts';
import { diffusionModelFromWeights, loadDiffusionModel, resolveModel, samplingDefaults, type ConfigTree, type LoadedWeights, type SamplingDefaults } from '../io/index.ts';
import { conditioningSettings } from './settings.ts';
import { classConditioning, type ClassCond } from './sampling.ts';

export interface LoadedModel {
  model: DDPM;
  config: ConfigTree;
  cls: ClassCond | null;
  /** the weights file actually read */
  path: string;
  /** what was used: 'ema', 'raw' */
  weights: 'ema' | 'raw';
  /** keys missing in / not used from the file (official checkpoints) */
  missing: string[];
  unexpected: string[];
  /** the shipped model's default guidance scale (models/registry.json), when loaded by name */
  guidance?: number;
  /** the shipped model's default sampler and steps (models/registry.json), when loaded by name */
  sampler?: SamplerName;
  steps?: number;
}


export interface LoadModelOptions {
  /** a weights file or run folder; absent: the shipped model `name` */
  checkpoint?: string | undefined;
  /** shipped model name (default 'mnist-ddpm') */
  name?: string | undefined;
  /** YAML config (needed for official .ckpt files) */
  config?: string | undefined;
  /** use the raw (non-EMA) weights of a checkpoint that has both */
  noEma?: boolean | undefined;
}

export function loadModel(opts: LoadModelOptions): LoadedModel {
  let path = opts.checkpoint;
  let configPath = opts.config;
  let defaults: SamplingDefaults = {};
  if (!path) {
    const e = resolveModel(opts.name ?? 'mnist-ddpm');
    if (e.kind !== undefined && e.kind !== 'ddpm' && e.kind !== 'ldm') throw new ConfigError(`'${e.name}' is a ${e.kind}, not a diffusion model`);
    if (!e.available) {
      throw new ConfigError(`the shipped model '${e.name}' has no weights yet (${e.checkpointPath}); train it with ` +
        '`ldm train configs/mnist-ddpm.yaml --out runs/mnist` and copy runs/mnist/model.safetensors there, or pass a checkpoint');
    }
    path = e.checkpointPath;
    configPath ??= e.configPath ?? undefined;
    defaults = samplingDefaults(opts);
  }
  // the model of the weights, as io/ builds it for every consumer (an LDM's first_stage ckpt_path
  // is not read: the model file carries first_stage_model.*)
  const m = loadDiffusionModel({ checkpoint: path, config: configPath, noEma: opts.noEma });
  return { ...m, cls: classConditioning(m.model, conditioningSettings(m.config)), ...defaults };
}

/** The model of weights read elsewhere (the browser build fetches model files as bytes). */
export function modelFromWeights(w: LoadedWeights, config: ConfigTree, noEma?: boolean): LoadedModel {
  const m = diffusionModelFromWeights(w, config, noEma);
  return { ...m, cls: classConditioning(m.model, conditioningSettings(m.config)) };
}
