// YAML configs in the official structure (`model: {base_learning_rate, target, params: {unet_config,
// first_stage_config, cond_stage_config, ...}}`, `data: {target: main.DataModuleFromConfig,
// params: {batch_size, train, validation}}`, `lightning: {trainer, callbacks, modelcheckpoint}`),
// command-line overrides `key.path=value` (the value parsed as YAML: numbers, booleans, lists),
// validation that names the bad key path and suggests the closest valid one, and building models
// and data sets through ONE explicit registry: CONFIG_TARGETS = MODEL_TARGETS (models/index.ts)
// + DATA_TARGETS (io/datasets). ldm.ts additions (documented in configs/README.md): top-level
// `seed`, `scale_lr` (main.py's --seed / --scale_lr), trainer settings under lightning.trainer,
// and `model.params.ucg_training` / `cond_stage_key` read by the trainer for class-conditional
// DDPMs (the DDPM class itself does not take them).

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML, { isMap as isYamlMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { ConfigError, InputFileError, LdmError, clip, closest, describe } from '../util/index.ts';
import { MODEL_TARGETS, type TargetConfig } from '../models/index.ts';
import { parseNpy } from '../formats/index.ts';
import { DATA_MODULE_KEYS, DATA_MODULE_TARGET, DATA_TARGETS, type DataBuildContext, type DataModule } from './datasets/index.ts';

export type ConfigTree = Record<string, unknown>;

/** Every class path a config may name, with what it builds. */
export const CONFIG_TARGETS: Readonly<Record<string, 'model' | 'data' | 'data-module'>> = {
  ...Object.fromEntries(Object.keys(MODEL_TARGETS).map((k) => [k, 'model' as const])),
  ...Object.fromEntries(Object.keys(DATA_TARGETS).map((k) => [k, 'data' as const])),
  [DATA_MODULE_TARGET]: 'data-module',
};

/** Keys of model.params consumed by the trainer rather than the model class. */
export const TRAINER_MODEL_KEYS = ['ucg_training', 'cond_stage_key'] as const;

// ---- schema of the parts we own (model.params and dataset params are checked by their classes) --

type Leaf = 'number' | 'integer' | 'boolean' | 'string' | 'list' | 'any';
interface Node { readonly [key: string]: Node | Leaf | 'free' }

const TARGET_NODE: Node = { target: 'string', params: 'free' };

/** lightning.trainer keys: the Lightning names we honour, plus ldm.ts settings. */
export const TRAINER_KEYS: Readonly<Record<string, Leaf>> = {
  max_steps: 'integer', max_epochs: 'integer', gradient_clip_val: 'number', accumulate_grad_batches: 'integer',
  val_check_interval: 'integer', limit_val_batches: 'integer', log_every_n_steps: 'integer',
  // accepted for compatibility with official configs, no effect on one CPU process
  benchmark: 'boolean', gpus: 'any', accelerator: 'any', devices: 'any', num_nodes: 'integer', precision: 'integer',
  num_sanity_val_steps: 'integer', strategy: 'any',
  // ldm.ts: optimizer
  weight_decay: 'number', adam_betas: 'list', adam_eps: 'number',
  // ldm.ts: stop when the loss is NaN/Inf (keeping the last good checkpoint)
  nan_guard: 'boolean',
};

const SCHEMA: Node = {
  seed: 'integer',
  scale_lr: 'boolean',
  model: { base_learning_rate: 'number', target: 'string', params: 'free' },
  data: {
    target: 'string',
    params: {
      batch_size: 'integer', num_workers: 'integer', wrap: 'boolean', shuffle_val_dataloader: 'boolean',
      use_worker_init_fn: 'boolean', shuffle_test_loader: 'boolean',
      train: TARGET_NODE, validation: TARGET_NODE, test: TARGET_NODE,
    },
  },
  lightning: {
    trainer: TRAINER_KEYS,
    callbacks: {
      image_logger: {
        target: 'string',
        params: {
          batch_frequency: 'integer', max_images: 'integer', increase_log_steps: 'boolean', clamp: 'boolean',
          log_first_step: 'boolean', disabled: 'boolean', rescale: 'boolean', log_images_kwargs: 'free',
          // ldm.ts: how logged samples are drawn, and the denoising strip
          sampler: 'string', sample_steps: 'integer', eta: 'number', guidance_scale: 'number', strip_t: 'list',
        },
      },
      learning_rate_logger: 'free', cuda_callback: 'free', setup_callback: 'free',
    },
    modelcheckpoint: { target: 'string', params: { every_n_train_steps: 'integer', save_top_k: 'integer', save_last: 'boolean', monitor: 'any', filename: 'string', verbose: 'boolean', dirpath: 'string' } },
    logger: 'free',
  },
};

const isMap = (v: unknown): v is ConfigTree => typeof v === 'object' && v !== null && !Array.isArray(v);

function leafOk(kind: Leaf, v: unknown): boolean {
  switch (kind) {
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'string': return typeof v === 'string';
    case 'list': return Array.isArray(v);
    default: return true;
  }
}

function validateNode(v: unknown, schema: Node, path: string): void {
  if (!isMap(v)) throw new ConfigError(`config: '${path}' must be a mapping of keys, got ${describe(v)}`);
  for (const [k, val] of Object.entries(v)) {
    const p = path ? `${path}.${k}` : k;
    const s = schema[k];
    if (s === undefined) {
      const c = closest(k, Object.keys(schema));
      throw new ConfigError(`config: unknown key '${clip(p, 120)}'${c ? ` (did you mean '${path ? `${path}.` : ''}${c}'?)` : ''}; valid keys here: ${Object.keys(schema).join(', ')}`);
    }
    if (s === 'free' || val === null) continue;
    if (typeof s === 'string') {
      if (!leafOk(s, val)) throw new ConfigError(`config: '${p}' must be ${s === 'integer' ? 'an integer' : s === 'list' ? 'a list' : `a ${s}`}, got ${describe(val)}`);
    } else {
      validateNode(val, s, p);
    }
  }
}

/** Check the structure and the types of the parts of a config that ldm.ts owns (for training:
 *  model, data and lightning). */
export function validateConfig(tree: ConfigTree, source?: string): void {
  if (source !== undefined) {
    // the same checks, each message prefixed with the file it is about
    try {
      validateConfig(tree);
    } catch (e) {
      if (e instanceof ConfigError && !e.message.startsWith(source)) throw new ConfigError(`${source}: ${e.message}`);
      throw e;
    }
    return;
  }
  validateNode(tree, SCHEMA, '');
  validateModelConfig(tree);
  const data = tree['data'];
  if (isMap(data)) {
    if (data['target'] !== undefined) checkTarget(typeof data['target'] === 'string' ? data['target'] : describe(data['target']), 'data.target', 'data-module');
    const dp = data['params'];
    if (isMap(dp)) {
      for (const split of ['train', 'validation', 'test']) {
        const n = dp[split];
        if (isMap(n)) checkTarget(typeof n['target'] === 'string' ? n['target'] : describe(n['target']), `data.params.${split}.target`, 'data');
      }
    }
  }
}

/** Check only what building the model needs (`model`, top-level `seed` / `scale_lr`): inspecting
 *  and sampling never stop on the `data` or `lightning` sections, which only training reads. */
export function validateModelConfig(tree: ConfigTree): void {
  const { data: _d, lightning: _l, ...rest } = tree;
  validateNode(rest, SCHEMA, '');
  const model = tree['model'];
  if (!isMap(model) || typeof model['target'] !== 'string') throw new ConfigError("config: 'model.target' (the model class path) is required");
  checkTarget(model['target'], 'model.target', 'model');
}

function checkTarget(target: string, path: string, kind: 'model' | 'data' | 'data-module'): void {
  if (CONFIG_TARGETS[target] === kind) return;
  const names = Object.entries(CONFIG_TARGETS).filter(([, k]) => k === kind).map(([n]) => n);
  if (Object.prototype.hasOwnProperty.call(CONFIG_TARGETS, target)) throw new ConfigError(`config: '${path}' names '${target}', which is a ${CONFIG_TARGETS[target]} class, not a ${kind} class`);
  const c = closest(target, names) ?? (target.length <= 1000 ? names.find((n) => n.endsWith(`.${target.split('.').pop()}`)) : undefined);
  throw new ConfigError(`config: '${path}': unknown class '${clip(target, 120)}'${c ? ` (did you mean '${c}'?)` : ''}; known: ${clip(names.join(', '), 280)}`);
}

// ---- reading and overriding -------------------------------------------------------------------

/** Largest config text read (official configs are a few KiB). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** Deepest flow nesting ([ { ) accepted; the YAML parser recurses per level. */
export const MAX_CONFIG_DEPTH = 200;

/** Deepest run of '[' / '{' (or '- ' sequence entries on one line) outside quotes and comments. */
function flowDepth(text: string): number {
  let depth = 0, max = 0, quote = '', comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (comment) { if (c === '\n') comment = false; continue; }
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#') comment = i === 0 || /\s/.test(text[i - 1]!);
    else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
    else if (c === '-' && text[i + 1] === ' ' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\n')) {
      // compact nested block sequences: "- - - - 1" nest one level per dash
      let k = i, n = 0;
      while (text[k] === '-' && text[k + 1] === ' ') { n++; k += 2; }
      max = Math.max(max, depth + n);
      i = k - 1;
    }
  }
  return max;
}

/** Duplicate keys of every mapping (a Set per mapping: linear, where the YAML library's check is quadratic). */
function checkUniqueKeys(root: unknown, source: string): void {
  const stack: { node: unknown; path: string }[] = [{ node: root, path: '' }];
  while (stack.length > 0) {
    const { node, path } = stack.pop()!;
    if (isYamlMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (pair.key !== null && !isScalar(pair.key)) {
          // a mapping or a list used as a key: YAML allows it, no config means it
          throw new ConfigError(`${source}: invalid YAML: a mapping or list used as a key under '${clip(path || '(root)', 120)}' (at character ${(pair.key as YamlNode).range?.[0] ?? '?'})`);
        }
        const k = isScalar(pair.key) ? String(pair.key.value) : 'null';
        const p = path ? `${path}.${k}` : k;
        {
          if (seen.has(k)) {
            const line = (pair.key as YamlNode | null)?.range?.[0];
            throw new ConfigError(`${source}: invalid YAML: duplicate key '${clip(p, 120)}'${line !== undefined ? ` (at character ${line})` : ''}; each key may appear once per mapping`);
          }
          seen.add(k);
        }
        stack.push({ node: pair.value, path: p });
      }
    } else if (isSeq(node)) {
      node.items.forEach((v, i) => stack.push({ node: v, path: `${path}.${i}` }));
    }
  }
}

export function parseConfigText(text: string, source: string): ConfigTree {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfigError(`${source}: the config is ${text.length} characters; configs are at most ${MAX_CONFIG_BYTES} (is this the right file?)`);
  }
  const depth = flowDepth(text);
  if (depth > MAX_CONFIG_DEPTH) throw new ConfigError(`${source}: invalid YAML: nesting ${depth} levels deep (at most ${MAX_CONFIG_DEPTH})`);
  let tree: unknown;
  try {
    // uniqueKeys: false and our own linear check (the library's is quadratic in the keys of a mapping)
    const doc = YAML.parseDocument(text, { uniqueKeys: false });
    const err = doc.errors[0];
    if (err !== undefined) throw err;
    checkUniqueKeys(doc.contents, source);
    tree = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`${source}: invalid YAML: ${clip((e as Error).message.split('\n')[0] ?? '', 200)}`);
  }
  if (!isMap(tree)) throw new ConfigError(`${source}: a config must be a YAML mapping (with model, data, lightning)`);
  return tree;
}

/** Read a YAML config. Relative `ckpt_path`s under `model` are resolved against the config
 *  file's folder (not the working directory), so a config finds its checkpoints from anywhere;
 *  command-line overrides applied afterwards stay relative to the working directory. */
export function readConfigFile(path: string): ConfigTree {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputFileError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  const tree = parseConfigText(text, path);
  if (isMap(tree['model'])) resolveCkptPaths(tree['model'], dirname(resolve(path)));
  return tree;
}

/** Every string `ckpt_path` in a config subtree made absolute against `base` (in place). */
export function resolveCkptPaths(node: unknown, base: string): void {
  if (Array.isArray(node)) { for (const v of node) resolveCkptPaths(v, base); return; }
  if (!isMap(node)) return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'ckpt_path' && typeof v === 'string' && v !== '' && !isAbsolute(v)) node[k] = resolve(base, v);
    else resolveCkptPaths(v, base);
  }
}

/** Every `ckpt_path` in a config subtree, with its dotted key path. */
export function listCkptPaths(node: unknown, path: string): { key: string; path: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => listCkptPaths(v, `${path}.${i}`));
  if (!isMap(node)) return [];
  return Object.entries(node).flatMap(([k, v]) => (k === 'ckpt_path' && typeof v === 'string'
    ? [{ key: `${path}.${k}`, path: v }] : listCkptPaths(v, `${path}.${k}`)));
}

/** A copy of a config subtree without any `ckpt_path` (building never reads checkpoints). */
export function stripCkptPaths<T>(node: T): T {
  if (Array.isArray(node)) return node.map(stripCkptPaths) as T;
  if (!isMap(node)) return node;
  return Object.fromEntries(Object.entries(node).filter(([k]) => k !== 'ckpt_path').map(([k, v]) => [k, stripCkptPaths(v)])) as T;
}

/** `a.b.c=value` -> path and value (YAML-parsed: 3 -> number, true -> boolean, [1,2] -> list). */
export function parseOverride(s: string): { path: string[]; value: unknown } {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new ConfigError(`override '${s}' is not of the form key.path=value`);
  const key = s.slice(0, eq).trim();
  const raw = s.slice(eq + 1);
  const path = key.split('.');
  if (path.some((p) => p === '')) throw new ConfigError(`override '${s}': empty key in '${key}'`);
  let value: unknown;
  try {
    value = raw.trim() === '' ? '' : YAML.parse(raw);
  } catch {
    value = raw;
  }
  return { path, value };
}

/** Apply overrides to a deep copy. A missing intermediate mapping is an error naming the nearest key. */
export function applyOverrides(tree: ConfigTree, overrides: readonly string[]): ConfigTree {
  const out = structuredClone(tree);
  for (const o of overrides) {
    const { path, value } = parseOverride(o);
    let node: unknown = out;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i]!;
      const here = path.slice(0, i).join('.');
      if (Array.isArray(node)) {
        const idx = Number(k);
        if (!Number.isInteger(idx) || idx < 0 || idx >= node.length) throw new ConfigError(`override '${o}': '${here}' is a list of ${node.length}; '${k}' is not an index`);
        node = node[idx];
        continue;
      }
      if (!isMap(node)) throw new ConfigError(`override '${o}': '${here}' is not a mapping`);
      if (!(k in node)) {
        // Creating a whole sub-tree is allowed only where the schema knows it (e.g. lightning.trainer).
        const schemaAt = schemaNode(path.slice(0, i + 1));
        if (schemaAt && typeof schemaAt === 'object') {
          node[k] = {};
        } else {
          const c = closest(k, Object.keys(node));
          throw new ConfigError(`override '${o}': '${here ? `${here}.` : ''}${k}' does not exist${c ? ` (did you mean '${here ? `${here}.` : ''}${c}'?)` : ''}`);
        }
      }
      node = node[k];
    }
    const last = path[path.length - 1]!;
    if (Array.isArray(node)) {
      const idx = Number(last);
      if (!Number.isInteger(idx) || idx < 0 || idx >= node.length) throw new ConfigError(`override '${o}': '${path.slice(0, -1).join('.')}' is a list of ${node.length}; '${last}' is not an index`);
      node[idx] = value;
    } else if (isMap(node)) {
      node[last] = value;
    } else {
      throw new ConfigError(`override '${o}': '${path.slice(0, -1).join('.')}' is not a mapping`);
    }
  }
  return out;
}

function schemaNode(path: readonly string[]): Node | Leaf | 'free' | undefined {
  let s: Node | Leaf | 'free' | undefined = SCHEMA;
  for (const k of path) {
    if (typeof s !== 'object') return undefined;
    s = s[k];
  }
  return s;
}

export function loadConfig(path: string, overrides: readonly string[] = []): ConfigTree {
  const tree = applyOverrides(readConfigFile(path), overrides);
  validateConfig(tree, path);
  return tree;
}

export function dumpConfig(tree: ConfigTree): string {
  return YAML.stringify(tree);
}

/** Read a value at a dotted path (undefined when absent). */
export function getPath(tree: unknown, path: string): unknown {
  let node = tree;
  for (const k of path.split('.')) {
    if (!isMap(node)) return undefined;
    node = node[k];
  }
  return node;
}

// ---- building -----------------------------------------------------------------------------------

/** Re-address a constructor's ConfigError to the config path of its key (the issue is data). */
function withPath(e: unknown, path: string): never {
  if (!(e instanceof LdmError) || e.message.startsWith('config: ')) throw e;
  if (e instanceof ConfigError && e.issue?.kind === 'unknown') {
    const { key, suggestion } = e.issue;
    throw new ConfigError(`config: unknown key '${path}.params.${key}'${suggestion ? ` (did you mean '${path}.params.${suggestion}'?)` : ''} — ${e.message}`,
      { kind: 'unknown', key: `${path}.params.${key}`, suggestion: suggestion && `${path}.params.${suggestion}` });
  }
  if (e instanceof ConfigError && e.issue) throw new ConfigError(`config: ${path}: ${e.message}`, { ...e.issue, key: `${path}.params.${e.issue.key}` });
  throw new ConfigError(`config: ${path}: ${e.message}`);
}

/** Build a {target, params} model config (and its nested configs) through MODEL_TARGETS. */
export function buildModel(cfg: TargetConfig, path = 'model'): unknown {
  const stack: string[] = [path];
  const build = (c: TargetConfig, where: string): unknown => {
    const parent = stack[stack.length - 1]!;
    const key = where.split('.').pop() ?? where;
    const p = stack.length === 1 && where === path ? path : `${parent}.params.${key}`;
    if (!isMap(c) || typeof c.target !== 'string') throw new ConfigError(`config: '${p}' must be a {target, params} mapping`);
    const make = (MODEL_TARGETS as Record<string, (params: Record<string, unknown>, b: typeof build) => unknown>)[c.target];
    if (!make) checkTarget(c.target, `${p}.target`, 'model');
    let params = { ...(c.params ?? {}) } as Record<string, unknown>;
    if (p === path) params = stripTrainerKeys(c.target, params);
    if (REMAP_TARGETS.has(c.target) && typeof params['remap'] === 'string') params = { ...params, remap: readRemapFile(params['remap'], `${p}.params.remap`) };
    stack.push(p);
    try {
      return make!(params, build);
    } catch (e) {
      return withPath(e, p);
    } finally {
      stack.pop();
    }
  };
  return build(cfg, path);
}

/** Targets whose `remap` names a .npy file of used codebook indices (taming's VectorQuantizer2
 *  loads it with np.load in its constructor; models do no file I/O, so it is read here). */
const REMAP_TARGETS = new Set([
  'ldm.models.autoencoder.VQModel', 'ldm.models.autoencoder.VQModelInterface', 'taming.models.vqgan.VQModel',
  'taming.modules.vqvae.quantize.VectorQuantizer2',
]);

/** The index list of a remap .npy file (a path relative to the working directory, as np.load). */
function readRemapFile(path: string, key: string): number[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new InputFileError(`config: '${key}': cannot read ${path}: ${(e as Error).message}`);
  }
  const a = parseNpy(bytes, path);
  if (a.shape.length !== 1) throw new ConfigError(`config: '${key}': ${path} holds an array of shape (${a.shape.join(', ')}); expected a 1-D list of codebook indices`);
  return Array.from(a.data);
}

function stripTrainerKeys(target: string, params: Record<string, unknown>): Record<string, unknown> {
  const out = { ...params };
  delete out['ucg_training'];
  if (target === 'ldm.models.diffusion.ddpm.DDPM') delete out['cond_stage_key'];
  return out;
}

/** The model of a whole config (model.target / model.params). */
export function buildModelFromConfig(tree: ConfigTree): unknown {
  const m = tree['model'];
  if (!isMap(m)) throw new ConfigError("config: 'model' is missing");
  return buildModel({ target: typeof m['target'] === 'string' ? m['target'] : describe(m['target']), params: (m['params'] ?? {}) as Record<string, unknown> }, 'model');
}

/** Build `data` (main.DataModuleFromConfig) and load its data sets. */
export async function buildDataFromConfig(tree: ConfigTree, ctx: DataBuildContext = {}, splits: readonly ('train' | 'validation' | 'test')[] = ['train', 'validation', 'test']): Promise<DataModule> {
  const d = tree['data'];
  if (!isMap(d)) throw new ConfigError("config: 'data' is missing (a main.DataModuleFromConfig with batch_size and train)");
  const target = typeof d['target'] === 'string' ? d['target'] : d['target'] === undefined || d['target'] === null ? DATA_MODULE_TARGET : describe(d['target']);
  checkTarget(target, 'data.target', 'data-module');
  const p = (d['params'] ?? {}) as ConfigTree;
  for (const k of Object.keys(p)) {
    if (!(DATA_MODULE_KEYS as readonly string[]).includes(k)) {
      const c = closest(k, DATA_MODULE_KEYS);
      throw new ConfigError(`config: unknown key 'data.params.${k}'${c ? ` (did you mean 'data.params.${c}'?)` : ''}`);
    }
  }
  const bs = p['batch_size'];
  if (typeof bs !== 'number' || !Number.isInteger(bs) || bs < 1) throw new ConfigError(`config: 'data.params.batch_size' must be a positive integer, got ${describe(bs)}`);
  const load = async (split: 'train' | 'validation' | 'test') => {
    const n = p[split];
    if (!splits.includes(split) || n === undefined || n === null) return null;
    if (!isMap(n) || typeof n['target'] !== 'string') throw new ConfigError(`config: 'data.params.${split}' must be a {target, params} mapping`);
    checkTarget(n['target'], `data.params.${split}.target`, 'data');
    const make = (DATA_TARGETS as Record<string, (p: Record<string, unknown>, c: DataBuildContext) => Promise<DataModule['train']>>)[n['target']]!;
    try {
      return await make((n['params'] ?? {}) as Record<string, unknown>, ctx);
    } catch (e) {
      return withPath(e, `data.params.${split}`);
    }
  };
  return { batchSize: bs, train: await load('train'), validation: await load('validation'), test: await load('test') };
}
