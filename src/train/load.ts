// Loading a trained model for sampling and evaluation: a shipped model by name (models/
// registry.json), an ldm.ts model file or run folder (config in the file's metadata or the
// checkpoint sidecar), or an official .ckpt with its YAML config. EMA weights, when the file has
// them, are swapped in (the official `ema_scope` default for sampling) unless asked otherwise.

import { ConfigError } from '../util/index.ts';
import { DDPM } from '../models/index.ts';
import {
  buildModelFromConfig, loadWeightsInto, readConfigFile, readWeights, resolveModel, validateConfig, type ConfigTree, type LoadedWeights,
} from '../io/index.ts';
import { conditioningSettings } from './settings.ts';
import { classConditioning, type ClassCond } from './sampling.ts';
import { stripFirstStageCkpt } from './latent.ts';

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
  if (!path) {
    const e = resolveModel(opts.name ?? 'mnist-ddpm');
    if (e.kind !== undefined && e.kind !== 'ddpm' && e.kind !== 'ldm') throw new ConfigError(`'${e.name}' is a ${e.kind}, not a diffusion model`);
    if (!e.available) {
      throw new ConfigError(`the shipped model '${e.name}' has no weights yet (${e.checkpointPath}); train it with ` +
        '`ldm train configs/mnist-ddpm.yaml --out runs/mnist` and copy runs/mnist/model.safetensors there, or pass a checkpoint');
    }
    path = e.checkpointPath;
    configPath ??= e.configPath ?? undefined;
  }
  const w = readWeights(path);
  const config: ConfigTree | null = configPath ? readConfigFile(configPath) : (w.config as ConfigTree | null);
  if (!config) throw new ConfigError(`${path} carries no config: pass --config CONFIG.yaml (the model's YAML)`);
  return modelFromWeights(w, config, opts.noEma);
}

/** Build the model of `config` and load weights read elsewhere (the browser build fetches them). */
export function modelFromWeights(w: LoadedWeights, config: ConfigTree, noEma?: boolean): LoadedModel {
  const path = w.path;
  validateConfig(config);
  // an LDM's first_stage ckpt_path is not read here: the model file carries first_stage_model.*
  const built = buildModelFromConfig(stripFirstStageCkpt(config));
  if (!(built instanceof DDPM)) throw new ConfigError(`${path}: model.target must be a DDPM-family model`);
  const model = built;
  const r = loadWeightsInto(model, w.tensors, w.path, false);
  const hasEma = model.model_ema !== null && [...w.tensors.keys()].some((k) => k.startsWith('model_ema.'));
  let weights: 'ema' | 'raw' = 'raw';
  if (hasEma && !noEma) {
    model.model_ema!.copyTo();
    weights = 'ema';
  } else if (w.metadata['ema'] === 'true') {
    weights = 'ema'; // an exported model file: the EMA weights are the model weights
  }
  const ignorable = (k: string): boolean => k.startsWith('model_ema.') || k === 'logvar';
  model.eval();
  return {
    model, config, cls: classConditioning(model, conditioningSettings(config)), path: w.path, weights,
    missing: r.missing.filter((k) => !ignorable(k)), unexpected: r.unexpected,
  };
}
