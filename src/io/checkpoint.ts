// Checkpoints. A training checkpoint is three files in RUN/checkpoints/:
//   step-000400.safetensors        the model state dict under the official keys
//                                  (`model.diffusion_model.*`, `model_ema.*`, `betas`, ...), so the
//                                  PyTorch code loads it after a safetensors -> state_dict step;
//   step-000400.optim.safetensors  AdamW moments `exp_avg.<param key>`, `exp_avg_sq.<param key>`;
//   last.json                      the sidecar: step, optimizer scalars, RNG states, data loader
//                                  position, the resolved config, and the two file names.
// Each file is written atomically (temp + rename) and last.json last, so a run killed at any
// moment (even kill -9) leaves the previous complete checkpoint in place. Also: an inference
// model file (EMA weights as the model weights, config in the metadata), reading official
// `.ckpt` files, the shipped-model registry (models/registry.json) and `inspect`.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, InputFileError, OutputFileError, StateDictError } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';
import type { Module } from '../nn/index.ts';
import { extractStateDict, parseSafetensors, readTorchCheckpoint, type RawTensor } from '../formats/index.ts';
import { SAMPLER_NAMES, isSamplerName, type SamplerName } from '../diffusion/index.ts';
import { ensureDir, parseTensorFile, readTensorFile, writeFileAtomic, writeTensorFile, type TensorFile } from './tensors.ts';

export const CHECKPOINT_FORMAT = 'ldm.ts/checkpoint/1';
export const MODEL_FORMAT = 'ldm.ts/model/1';

/** What last.json holds (the trainer fills `state`). */
export interface CheckpointSidecar {
  format: string;
  step: number;
  /** file names relative to the checkpoints folder */
  model: string;
  optimizer: string | null;
  /** the resolved config tree */
  config: Record<string, unknown>;
  /** trainer state: optimizer scalars, RNG states, loader position, ... (JSON) */
  state: Record<string, unknown>;
  time: string;
}

export interface TrainingCheckpoint {
  sidecar: CheckpointSidecar;
  stateDict: Map<string, Tensor>;
  /** optimizer moments by name (`exp_avg.<key>`, `exp_avg_sq.<key>`), empty when none */
  optimizer: Map<string, Tensor>;
  dir: string;
}

const stepName = (step: number): string => `step-${String(step).padStart(6, '0')}`;

/**
 * Write a training checkpoint into `dir` (created if needed): model file, optimizer file, then
 * last.json. Keeps the newest `keep` checkpoints and removes older ones (after last.json moved on).
 */
export function saveTrainingCheckpoint(dir: string, stateDict: ReadonlyMap<string, Tensor>, optimizer: ReadonlyMap<string, Tensor> | null,
  sidecar: Omit<CheckpointSidecar, 'format' | 'model' | 'optimizer' | 'time'>, keep = 2): CheckpointSidecar {
  ensureDir(dir);
  const base = stepName(sidecar.step);
  const meta = { format: CHECKPOINT_FORMAT, step: String(sidecar.step) };
  const full: CheckpointSidecar = {
    format: CHECKPOINT_FORMAT, step: sidecar.step, model: `${base}.safetensors`, optimizer: optimizer ? `${base}.optim.safetensors` : null,
    config: sidecar.config, state: sidecar.state, time: new Date().toISOString(),
  };
  try {
    writeTensorFile(join(dir, `${base}.safetensors`), stateDict, meta);
    if (optimizer) writeTensorFile(join(dir, `${base}.optim.safetensors`), optimizer, meta);
    writeFileAtomic(join(dir, 'last.json'), `${JSON.stringify(full)}\n`);
  } catch (e) {
    // last.json still names the previous complete checkpoint (its files are only pruned after)
    if (!(e instanceof OutputFileError)) throw e;
    const prev = existsSync(join(dir, 'last.json')) ? `the last complete checkpoint (${join(dir, 'last.json')}) is unchanged` : 'no earlier checkpoint exists';
    throw new OutputFileError(`checkpoint of step ${sidecar.step} not written: ${e.message}; ${prev}`);
  }
  pruneCheckpoints(dir, keep, base);
  return full;
}

function pruneCheckpoints(dir: string, keep: number, current: string): void {
  const steps = readdirSync(dir).map((f) => /^step-(\d+)\.safetensors$/.exec(f)?.[1]).filter((s): s is string => s !== undefined).sort();
  const drop = steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)));
  for (const s of drop) {
    if (`step-${s}` === current) continue;
    rmSync(join(dir, `step-${s}.safetensors`), { force: true });
    rmSync(join(dir, `step-${s}.optim.safetensors`), { force: true });
  }
}

/** The checkpoints folder of a run folder, a checkpoints folder, or a last.json path. */
export function checkpointDir(path: string): string {
  if (path.endsWith('.json')) return dirname(path);
  if (existsSync(join(path, 'checkpoints', 'last.json'))) return join(path, 'checkpoints');
  return path;
}

/** Whether a run folder (or checkpoints folder) holds a complete checkpoint. */
export function hasCheckpoint(path: string): boolean {
  return existsSync(join(checkpointDir(path), 'last.json'));
}

/** Read the newest complete training checkpoint of a run (see checkpointDir). */
export function loadTrainingCheckpoint(path: string): TrainingCheckpoint {
  const dir = checkpointDir(path);
  const side = join(dir, 'last.json');
  if (!existsSync(side)) {
    const isRunDir = !path.endsWith('.json') && basename(dir) !== 'checkpoints';
    const expected = isRunDir ? join(path, 'checkpoints', 'last.json') : side;
    const what = !existsSync(path) ? `no checkpoint to resume: ${path} does not exist`
      : isRunDir && !existsSync(join(path, 'checkpoints')) ? `no checkpoint to resume: ${path} is not a run folder` : `no checkpoint to resume in ${path}`;
    throw new InputFileError(`${what} (expected ${expected}; a run writes it at its first checkpoint)`);
  }
  let sidecar: CheckpointSidecar;
  try {
    sidecar = JSON.parse(readFileSync(side, 'utf8')) as CheckpointSidecar;
  } catch (e) {
    throw new InputFileError(`${side}: not a valid checkpoint sidecar: ${(e as Error).message}`);
  }
  if (sidecar.format !== CHECKPOINT_FORMAT) throw new InputFileError(`${side}: format '${sidecar.format}' is not ${CHECKPOINT_FORMAT}`);
  const stateDict = readTensorFile(join(dir, sidecar.model)).tensors;
  const optimizer = sidecar.optimizer ? readTensorFile(join(dir, sidecar.optimizer)).tensors : new Map<string, Tensor>();
  return { sidecar, stateDict, optimizer, dir };
}

// ---- inference model files ----------------------------------------------------------------------

/** Write a model file: tensors under official keys + metadata (config as JSON, format, step). */
export function saveModelFile(path: string, stateDict: ReadonlyMap<string, Tensor>, config: Record<string, unknown>,
  extra: Record<string, string> = {}): void {
  ensureDir(dirname(resolve(path)));
  writeTensorFile(path, stateDict, { format: MODEL_FORMAT, config: JSON.stringify(config), ...extra });
}

export interface LoadedWeights {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  /** the config stored with the weights (ldm.ts files), if any */
  config: Record<string, unknown> | null;
  path: string;
}

/**
 * Read weights: an ldm.ts model file or training checkpoint (.safetensors, or a run folder: its
 * model.safetensors, else its last checkpoint), or an official PyTorch .ckpt / .pth.
 */
export function readWeights(path: string): LoadedWeights {
  if (!existsSync(path)) throw new InputFileError(`checkpoint ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    const model = join(path, 'model.safetensors');
    if (existsSync(model)) return readWeights(model);
    const t = loadTrainingCheckpoint(path);
    return { tensors: t.stateDict, metadata: {}, config: t.sidecar.config, path: join(t.dir, t.sidecar.model) };
  }
  const w = weightsOf(readTensorFile(path));
  if (!w.config && basename(path).startsWith('step-')) {
    const side = join(dirname(path), 'last.json');
    if (existsSync(side)) w.config = (JSON.parse(readFileSync(side, 'utf8')) as CheckpointSidecar).config;
  }
  return w;
}

/** Weights of an ldm.ts model file given as bytes (the browser build fetches the shipped files). */
export function weightsFromBytes(bytes: Uint8Array, source: string): LoadedWeights {
  return weightsOf(parseTensorFile(bytes, source));
}

function weightsOf(f: TensorFile): LoadedWeights {
  let config: Record<string, unknown> | null = null;
  if (f.metadata['config']) {
    try {
      config = JSON.parse(f.metadata['config']) as Record<string, unknown>;
    } catch {
      throw new InputFileError(`${f.path}: the 'config' metadata is not valid JSON`);
    }
  }
  return { tensors: f.tensors, metadata: f.metadata, config, path: f.path };
}

/**
 * Load weights into a module. Keys absent from the file are reported (and are an error when
 * `strict`); keys of the file the module lacks (another part of an official checkpoint, EMA weights
 * of a model built without EMA) are reported. No key in common is always an error.
 */
export function loadWeightsInto(module: Module, tensors: ReadonlyMap<string, Tensor>, source: string, strict = false): { missing: string[]; unexpected: string[] } {
  const own = module.stateDict();
  const common = [...own.keys()].filter((k) => tensors.has(k));
  if (common.length === 0) {
    const a = [...tensors.keys()].slice(0, 3).join(', '), b = [...own.keys()].slice(0, 3).join(', ');
    throw new StateDictError(`${source}: no tensor name matches the model (file has ${a}, …; model expects ${b}, …)`);
  }
  return module.loadStateDict(tensors, strict, source);
}

// ---- the shipped-model registry -----------------------------------------------------------------

export interface RegistryEntry {
  name: string;
  /** path of the weights, relative to the models folder */
  checkpoint: string;
  /** optional config file (else the weights' metadata) */
  config?: string;
  description?: string;
  kind?: string;
  /** the classifier-free guidance scale `ldm sample` / `ldm eval` use when --guidance is not given
   *  (chosen by a measured accuracy/FID sweep, docs/) */
  guidance?: number;
  /** the sampler (a name of the sampler table) and its steps used when the request names none,
   *  chosen by the same kind of sweep (README, "Measuring quality") */
  sampler?: string;
  steps?: number;
}

/** The repository's models/ folder. */
export function modelsDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
}

export function readRegistry(dir = modelsDir()): RegistryEntry[] {
  const p = join(dir, 'registry.json');
  if (!existsSync(p)) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new InputFileError(`${p}: invalid JSON: ${(e as Error).message}`);
  }
  const models = (raw as { models?: unknown }).models;
  if (typeof models !== 'object' || models === null) throw new InputFileError(`${p}: expected {"models": {name: {checkpoint, config?, description?}}}`);
  return Object.entries(models as Record<string, Omit<RegistryEntry, 'name'>>).map(([name, e]) => ({ name, ...e }));
}

/** Resolve a shipped model name to absolute paths (error names the known models). */
export function resolveModel(name: string, dir = modelsDir()): RegistryEntry & { checkpointPath: string; configPath: string | null; available: boolean } {
  const reg = readRegistry(dir);
  const e = reg.find((r) => r.name === name);
  if (!e) throw new ConfigError(`unknown model '${name}'; shipped models: ${reg.map((r) => r.name).join(', ') || '(none)'}`);
  const checkpointPath = join(dir, e.checkpoint);
  return { ...e, checkpointPath, configPath: e.config ? join(dir, e.config) : null, available: existsSync(checkpointPath) };
}

/** What a shipped model stores for sampling in models/registry.json (guidance, sampler, steps):
 *  the defaults of `ldm sample`, `ldm eval` and `ldm serve` where the request names none. Empty
 *  for a checkpoint given by path (its own config decides nothing about sampling). */
export interface SamplingDefaults {
  guidance?: number;
  sampler?: SamplerName;
  steps?: number;
}

export function samplingDefaults(opts: { checkpoint?: string | undefined; name?: string | undefined }, dir = modelsDir()): SamplingDefaults {
  if (opts.checkpoint) return {};
  const e = resolveModel(opts.name ?? 'mnist-ddpm', dir);
  const d: SamplingDefaults = {};
  if (e.guidance !== undefined) {
    if (typeof e.guidance !== 'number' || !(e.guidance >= 0)) throw new ConfigError(`models/registry.json: '${e.name}'.guidance must be a number >= 0, got ${JSON.stringify(e.guidance)}`);
    d.guidance = e.guidance;
  }
  if (e.sampler !== undefined) {
    if (typeof e.sampler !== 'string' || !isSamplerName(e.sampler)) throw new ConfigError(`models/registry.json: '${e.name}'.sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(e.sampler)}`);
    d.sampler = e.sampler;
  }
  if (e.steps !== undefined) {
    if (!Number.isInteger(e.steps) || e.steps < 1) throw new ConfigError(`models/registry.json: '${e.name}'.steps must be an integer >= 1, got ${JSON.stringify(e.steps)}`);
    d.steps = e.steps;
  }
  return d;
}

// ---- inspect -------------------------------------------------------------------------------------

export interface InspectEntry {
  name: string;
  dtype: string;
  shape: number[];
}

export interface InspectResult {
  path: string;
  kind: 'safetensors' | 'torch';
  entries: InspectEntry[];
  metadata: Record<string, string>;
  bytes: number;
}

/** Tensor names, dtypes, shapes and metadata of a .safetensors or official .ckpt/.pth file. */
export function inspectFile(path: string): InspectResult {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new InputFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const list = (m: Map<string, RawTensor>): InspectEntry[] => [...m.entries()].map(([name, r]) => ({ name, dtype: r.dtype, shape: [...r.shape] }));
  if (/\.(ckpt|pth|pt|bin)$/i.test(path) || (bytes[0] === 0x50 && bytes[1] === 0x4b)) {
    const tree = readTorchCheckpoint(bytes, path, { unknownGlobals: 'stub' });
    const meta: Record<string, string> = {};
    if (typeof tree === 'object' && tree !== null && !(tree instanceof Map)) {
      for (const [k, v] of Object.entries(tree as Record<string, unknown>)) {
        if (typeof v === 'number' || typeof v === 'string' || typeof v === 'bigint' || typeof v === 'boolean') meta[k] = String(v);
      }
    }
    return { path, kind: 'torch', entries: list(extractStateDict(tree, '', path)), metadata: meta, bytes: bytes.length };
  }
  const f = parseSafetensors(bytes, path);
  return { path, kind: 'safetensors', entries: list(f.tensors), metadata: f.metadata, bytes: bytes.length };
}

/** Named tensors (e.g. optimizer moments) from parallel name/array lists. */
export function tensorMap(names: readonly string[], arrays: readonly Float32Array[], shapes: readonly (readonly number[])[]): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  names.forEach((n, i) => m.set(n, new Tensor(arrays[i]!, shapes[i]!)));
  return m;
}
