// Config + weights → a diffusion model ready to sample: the one path `ldm sample CKPT --config
// YAML`, `ldm eval`, `ldm convert --config` and the parity runner's checkpoint fixtures share.
// 1. read the weights (ldm.ts model file / training checkpoint / run folder, official .ckpt /
//    .pth zip or legacy); 2. the config: the given YAML, else the one stored with the weights;
// 3. build model.target with its ckpt_paths removed (the weights given here are what is loaded:
//    `model.params.ckpt_path` and the first stage's `ckpt_path` are the official code's way to
//    initialise from files, not read again); 4. load the state dict non-strictly (the official
//    `init_from_ckpt` is non-strict too); 5. swap in the EMA weights when the file has them (the
//    official `ema_scope` default for sampling) unless `noEma`.
// What it is not: no sampling, no class-conditioning settings (train/ adds those).

import { ConfigError } from '../util/index.ts';
import { DDPM } from '../models/index.ts';
import { buildModelFromConfig, getPath, readConfigFile, validateModelConfig, type ConfigTree } from './config.ts';
import { loadWeightsInto, readWeights, type LoadedWeights } from './checkpoint.ts';

export interface LoadedDiffusionModel {
  model: DDPM;
  config: ConfigTree;
  /** the weights file actually read */
  path: string;
  /** what was used: 'ema', 'raw' */
  weights: 'ema' | 'raw';
  /** model keys absent from the file (EMA shadows and logvar left out) / file keys the model lacks */
  missing: string[];
  unexpected: string[];
}

export interface LoadDiffusionModelOptions {
  /** a weights file or run folder */
  checkpoint: string;
  /** YAML config (needed for official .ckpt files) */
  config?: string | undefined;
  /** use the raw (non-EMA) weights of a checkpoint that has both */
  noEma?: boolean | undefined;
}

/** The config a model is built from for given weights: no `ckpt_path` of the model or its first stage. */
export function withoutCkptPaths(config: ConfigTree): ConfigTree {
  const paths = ['model.params', 'model.params.first_stage_config.params', 'model.params.cond_stage_config.params'];
  if (!paths.some((p) => { const o = getPath(config, p); return typeof o === 'object' && o !== null && 'ckpt_path' in o; })) return config;
  const cfg = structuredClone(config);
  for (const p of paths) {
    const o = getPath(cfg, p);
    if (typeof o === 'object' && o !== null) delete (o as Record<string, unknown>)['ckpt_path'];
  }
  return cfg;
}

/** Steps 1-5 of the file header. */
export function loadDiffusionModel(opts: LoadDiffusionModelOptions): LoadedDiffusionModel {
  const w = readWeights(opts.checkpoint);
  const config: ConfigTree | null = opts.config ? readConfigFile(opts.config) : (w.config as ConfigTree | null);
  if (!config) throw new ConfigError(`${opts.checkpoint} carries no config: pass --config CONFIG.yaml (the model's YAML)`);
  return diffusionModelFromWeights(w, config, opts.noEma);
}

/** Steps 3-5 for weights read elsewhere (the browser build fetches model files as bytes). */
export function diffusionModelFromWeights(w: LoadedWeights, config: ConfigTree, noEma?: boolean): LoadedDiffusionModel {
  validateModelConfig(config); // data / lightning are for training: they never stop sampling
  const built = buildModelFromConfig(withoutCkptPaths(config));
  if (!(built instanceof DDPM)) throw new ConfigError(`${w.path}: model.target must be a DDPM-family model`);
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
  return { model, config, path: w.path, weights, missing: r.missing.filter((k) => !ignorable(k)), unexpected: r.unexpected };
}
