// `ldm inspect CONFIG.yaml`: the model a YAML config in the official structure builds, described
// by its target, parameter count, state-dict entries and top-level children. The model is built
// through the same registry as training and sampling, shapes only (nn.buildShapesOnly: no values
// drawn, so the 1.5B-parameter txt2img config builds in about a second); no checkpoint is read
// (every `ckpt_path` is listed, resolved against the config's folder, and left out of the build),
// and the `data` / `lightning` sections are not looked at. Counts follow the official code:
// `parameters` = sum(p.numel() for p in model.parameters()) (frozen ones included),
// `state_dict_keys` = len(model.state_dict()) (EMA buffers, LPIPS and discriminator included).

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../util/index.ts';
import { Module, buildShapesOnly } from '../nn/index.ts';
import { buildModelFromConfig, listCkptPaths, readConfigFile, validateModelConfig, stripCkptPaths, type ConfigTree } from './config.ts';

export interface ConfigInspection {
  config: string;
  target: string;
  /** sum of numel over model.parameters() (trainable and frozen) */
  parameters: number;
  /** parameters that receive gradients (requires_grad) */
  trainable_parameters: number;
  /** entries of model.state_dict() (parameters and persistent buffers) */
  state_dict_keys: number;
  buffers: number;
  /** parameters per top-level child module, in registration order */
  children: Record<string, number>;
  /** sha256 of the state dict's "key shape" lines (shape comma-separated), in state_dict order */
  keys_sha256: string;
  /** ckpt_paths of the config (not read), resolved against the config's folder */
  ckpt_paths: { key: string; path: string; exists: boolean }[];
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The "key shape" lines of a state dict, in order (what keys_sha256 hashes). */
export function stateDictLines(model: Module): string[] {
  return [...model.stateDict()].map(([k, t]) => `${k} ${t.shape.join(',')}`);
}

/** Build the model of `tree` (read from `path`) shapes-only and describe it. */
export function inspectConfigTree(tree: ConfigTree, path: string): ConfigInspection {
  validateModelConfig(tree);
  const model = tree['model'] as ConfigTree;
  const built = buildShapesOnly(() => buildModelFromConfig({ model: stripCkptPaths(model) }));
  if (!(built instanceof Module)) throw new ConfigError(`${path}: model.target '${String(model['target'])}' did not build a module`);
  const params = built.namedParameters();
  const sd = built.stateDict();
  const children: Record<string, number> = {};
  for (const [name, child] of built.namedChildren()) children[name] = child.namedParameters().reduce((a, [, p]) => a + p.size, 0);
  return {
    config: path,
    target: String(model['target']),
    parameters: params.reduce((a, [, p]) => a + numel(p.shape), 0),
    trainable_parameters: params.reduce((a, [, p]) => a + (p.requiresGrad ? numel(p.shape) : 0), 0),
    state_dict_keys: sd.size,
    buffers: built.namedBuffers().length,
    children,
    keys_sha256: createHash('sha256').update(stateDictLines(built).join('\n')).digest('hex'),
    ckpt_paths: listCkptPaths(model, 'model').map((c) => ({ ...c, exists: existsSync(c.path) })),
  };
}

export function inspectConfig(path: string): ConfigInspection {
  try {
    return inspectConfigTree(readConfigFile(path), resolve(path));
  } catch (e) {
    // name the file in configuration errors (the message already names the key)
    if (e instanceof ConfigError && !e.message.startsWith(path)) throw new ConfigError(`${path}: ${e.message}`);
    throw e;
  }
}
