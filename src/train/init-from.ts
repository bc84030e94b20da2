// `ldm train CONFIG --init-from MODEL`: start a new run (step 0, fresh optimizer and schedule) from
// trained weights instead of the seed's initialisation, e.g. to train a shipped model longer with
// a new learning-rate cycle. What the official `init_from_ckpt` does for `model.params.ckpt_path`,
// done here because ldm.ts models do no file I/O:
//  - MODEL is a model file (RUN/model.safetensors, models/*.safetensors: the EMA weights as the
//    model weights, no model_ema.*), a run checkpoint (with model_ema.*) or a run folder;
//  - every tensor of the built model must be in the file, except the EMA shadows: when the file
//    has none, they start as copies of the loaded weights (so the EMA continues from the model
//    that was shipped, not from the seed's random weights);
//  - a LatentDiffusion keeps the file's scale_factor (scale_by_std does not re-measure it), and a
//    BERTEmbedder's vocabulary must be the file's (token ids index the embedding rows): a config
//    without one takes the file's (initVocab) instead of building one from the captions.

import { ConfigError } from '../util/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { DDPM, LatentDiffusion } from '../models/index.ts';
import { emaKeyOf, getPath, readWeights, type ConfigTree } from '../io/index.ts';

const vocabOf = (config: ConfigTree | null | undefined): unknown =>
  config ? getPath(config, 'model.params.cond_stage_config.params.vocab') : undefined;

/** The config with the cond stage vocabulary of MODEL's saved config when it has none of its own. */
export function initVocab(config: ConfigTree, path: string): ConfigTree {
  const cs = getPath(config, 'model.params.cond_stage_config') as { params?: Record<string, unknown> } | undefined;
  if (!cs || typeof cs !== 'object' || (cs.params && cs.params['vocab'] !== undefined && cs.params['vocab'] !== null)) return config;
  const w = readWeights(path);
  const vocab = vocabOf(w.config as ConfigTree | undefined);
  if (!Array.isArray(vocab)) return config;
  const cfg = structuredClone(config);
  const p = ((getPath(cfg, 'model.params.cond_stage_config') as { params?: Record<string, unknown> }).params ??= {});
  p['vocab'] = vocab;
  const size = getPath(w.config as ConfigTree, 'model.params.cond_stage_config.params.vocab_size');
  if (p['vocab_size'] === undefined && typeof size === 'number') p['vocab_size'] = size;
  return cfg;
}

/** Load MODEL's weights into a freshly built `model` (built from `config`); returns what was loaded. */
export function initFromWeights(model: DDPM, config: ConfigTree, path: string): { loaded: number; emaFromWeights: boolean } {
  const w = readWeights(path);
  const own = model.stateDict();
  const fileVocab = vocabOf(w.config as ConfigTree | undefined), ourVocab = vocabOf(config);
  if (Array.isArray(fileVocab) && Array.isArray(ourVocab) && JSON.stringify(fileVocab) !== JSON.stringify(ourVocab)) {
    throw new ConfigError(`--init-from ${path}: its BERTEmbedder vocabulary (${fileVocab.length} tokens) differs from the config's ` +
      `(${ourVocab.length}); token ids would index the wrong embedding rows`);
  }
  const tensors = new Map<string, Tensor>(w.tensors);
  const hasEma = [...tensors.keys()].some((k) => k.startsWith('model_ema.') && k !== 'model_ema.decay' && k !== 'model_ema.num_updates');
  let emaFromWeights = false;
  if (model.model_ema && !hasEma) {
    for (const [n, p] of model.model.namedParameters()) {
      const t = tensors.get(`model.${n}`);
      if (p.requiresGrad && t) tensors.set(emaKeyOf(`model.${n}`)!, t); // `model.` keys always have an EMA name
    }
    emaFromWeights = true;
  }
  // decay and num_updates of the EMA start as in a fresh run (the file's, if it is a checkpoint)
  const optional = (k: string): boolean => k === 'model_ema.decay' || k === 'model_ema.num_updates';
  const missing = [...own.keys()].filter((k) => !tensors.has(k) && !optional(k));
  if (missing.length > 0) {
    throw new ConfigError(`--init-from ${path}: the file lacks ${missing.length} tensor(s) of the config's model: ` +
      `${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', …' : ''} (is it a model of this config?)`);
  }
  if (!hasEma) { tensors.delete('model_ema.decay'); tensors.delete('model_ema.num_updates'); }
  model.loadStateDict(tensors, false, path);
  if (model instanceof LatentDiffusion) model.restartedFromCkpt = true; // keep the file's scale_factor
  return { loaded: [...own.keys()].filter((k) => tensors.has(k)).length, emaFromWeights };
}
