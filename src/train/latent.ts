// LatentDiffusion configs in the trainer and the loader: what the official code does inside
// `instantiate_first_stage` / `init_from_ckpt` and what ldm.ts models refuse to do themselves
// (file I/O), resolved here:
//  - `first_stage_config.params.ckpt_path` (official): removed from the config the model is built
//    from (and from every config we save, so a shipped LDM file is self-contained: it carries
//    first_stage_model.* itself), and the weights it names loaded into the built first stage
//    (an ldm.ts AutoencoderKL model file / checkpoint with encoder.*, decoder.*, quant_conv.*,
//    post_quant_conv.*, or an LDM file with first_stage_model.*; loss.* is ignored);
//  - a BERTEmbedder cond stage without `vocab`: the vocabulary is built from the training set's
//    captions (BERTTokenizer.build) and written into cond_stage_config.params.vocab, so it travels
//    in the saved config.

import { resolve } from 'node:path';
import { ConfigError } from '../util/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { BERTTokenizer, LatentDiffusion } from '../models/index.ts';
import { getPath, loadWeightsInto, readWeights, type ConfigTree, type ImageDataset } from '../io/index.ts';

export const LATENT_DIFFUSION_TARGET = 'ldm.models.diffusion.ddpm.LatentDiffusion';
const BERT_TARGETS = ['ldm.modules.encoders.modules.BERTEmbedder'];

export const isLatentConfig = (config: ConfigTree): boolean => getPath(config, 'model.target') === LATENT_DIFFUSION_TARGET;

export interface PreparedLatentConfig {
  config: ConfigTree;
  /** the first-stage weights to load after building (resolved path), or null */
  firstStageCkpt: string | null;
}

/** Strip first_stage ckpt_path (returned) and fill a BERTEmbedder's vocab from the captions of `train`. */
export function prepareLatentConfig(config: ConfigTree, train: ImageDataset | null): PreparedLatentConfig {
  if (!isLatentConfig(config)) return { config, firstStageCkpt: null };
  const cfg = structuredClone(config);
  const fs = getPath(cfg, 'model.params.first_stage_config.params') as Record<string, unknown> | undefined;
  let ckpt: string | null = null;
  if (fs && fs['ckpt_path'] !== undefined && fs['ckpt_path'] !== null) {
    if (typeof fs['ckpt_path'] !== 'string') throw new ConfigError("config: 'model.params.first_stage_config.params.ckpt_path' must be a path");
    ckpt = resolve(fs['ckpt_path']);
    delete fs['ckpt_path'];
  }
  const cs = getPath(cfg, 'model.params.cond_stage_config') as { target?: unknown; params?: Record<string, unknown> } | undefined;
  if (cs && typeof cs === 'object' && BERT_TARGETS.includes(String(cs.target))) {
    const p = (cs.params ??= {});
    if (p['vocab'] === undefined || p['vocab'] === null) {
      if (!train) throw new ConfigError('config: the BERTEmbedder cond stage has no vocab and there is no training set to build one from');
      const seen = new Set<string>();
      for (let i = 0; i < train.length; i++) seen.add(train.caption(i));
      const maxLength = typeof p['max_seq_len'] === 'number' ? p['max_seq_len'] : 77;
      const tok = BERTTokenizer.build([...seen].sort(), { maxLength, doLowerCase: (p['do_lower_case'] ?? true) as boolean });
      p['vocab'] = [...tok.vocab];
      if (p['vocab_size'] === undefined) p['vocab_size'] = tok.vocabSize;
    }
  }
  return { config: cfg, firstStageCkpt: ckpt };
}

/** Load an autoencoder's weights (or an LDM's first_stage_model.*) into model.first_stage_model. */
export function loadFirstStage(model: LatentDiffusion, path: string): { loaded: number } {
  const w = readWeights(path);
  const fsKeys = [...w.tensors.keys()].filter((k) => k.startsWith('first_stage_model.'));
  const map = new Map<string, Tensor>();
  if (fsKeys.length > 0) {
    for (const k of fsKeys) map.set(k.slice('first_stage_model.'.length), w.tensors.get(k)!);
  } else {
    for (const [k, v] of w.tensors) if (!k.startsWith('loss.')) map.set(k, v);
  }
  const r = loadWeightsInto(model.first_stage_model, map, w.path, false);
  const missing = r.missing.filter((k) => !k.startsWith('loss.'));
  if (missing.length > 0) {
    throw new ConfigError(`first stage ${path}: missing ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', …' : ''} (is it an AutoencoderKL of the same ddconfig?)`);
  }
  return { loaded: map.size - r.unexpected.length };
}

/** A saved LDM config: no ckpt_path (the file carries first_stage_model.*). */
export function stripFirstStageCkpt(config: ConfigTree): ConfigTree {
  const fs = getPath(config, 'model.params.first_stage_config.params') as Record<string, unknown> | undefined;
  if (!fs || !('ckpt_path' in fs)) return config;
  const cfg = structuredClone(config);
  delete (getPath(cfg, 'model.params.first_stage_config.params') as Record<string, unknown>)['ckpt_path'];
  return cfg;
}
