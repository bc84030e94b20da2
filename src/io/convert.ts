// Weight conversion between the official PyTorch checkpoints and ours (`ldm convert`): official
// `.ckpt` / `.pth` / `.pt` (torch zip or legacy), `.safetensors` with official keys (our model
// files and training checkpoints are such files, with the config in the metadata or the
// sidecar), and run folders. Everything stays raw ({dtype, shape, bytes}): names, order, dtypes,
// shapes and bytes of every tensor pass through unchanged, so a round trip is byte-exact.
// The output format follows OUT's extension: `.ckpt` / `.pth` / `.pt` → a torch.save zip
// `{'state_dict': …, 'global_step': N}` that `torch.load(weights_only=True)` and the official
// `LatentDiffusion(ckpt_path=…)` read; `.safetensors` → tensors in the source's order, plus our
// model-file metadata (format, config, step) when the config is known.
// What it is not: no model is built here (the key check against a config is the caller's).

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ConfigError, InputFileError } from '../util/index.ts';
import {
  extractStateDict, parseSafetensors, readTorchCheckpoint, serializeSafetensors, serializeTorchCheckpoint, type RawTensor,
} from '../formats/index.ts';
import { checkpointDir, MODEL_FORMAT, type CheckpointSidecar } from './checkpoint.ts';
import { writeFileAtomic } from './tensors.ts';

export type WeightsFormat = 'torch' | 'safetensors';

/** Weights as raw records, with what the file says about them. */
export interface RawWeights {
  /** tensors in file order */
  tensors: Map<string, RawTensor>;
  /** the config stored with the weights (ldm.ts files and runs), if any */
  config: Record<string, unknown> | null;
  /** training step (`global_step` of a .ckpt, `step` of ours), if known */
  step: number | null;
  /** safetensors metadata (empty for torch files) */
  metadata: Record<string, string>;
  /** the file actually read */
  path: string;
  format: WeightsFormat;
}

const TORCH_EXT = /\.(ckpt|pth|pt|bin)$/i;

/** The format a file name asks for, by extension (null when it names none we write). */
export function weightsFormatOf(path: string): WeightsFormat | null {
  if (TORCH_EXT.test(path) && !/\.bin$/i.test(path)) return 'torch';
  if (/\.safetensors$/i.test(path)) return 'safetensors';
  return null;
}

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new InputFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

const stepOf = (v: unknown): number | null =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : null;

/**
 * Read weights raw: a .safetensors file (ours: config and step from the metadata or, for a
 * training checkpoint, its last.json), an official .ckpt / .pth / .pt (zip or legacy; its
 * state_dict and global_step), or a run folder (its last training checkpoint: raw and EMA weights
 * under the official keys; else its model.safetensors).
 */
export function readRawWeights(path: string): RawWeights {
  if (!existsSync(path)) throw new InputFileError(`${path} does not exist`);
  if (statSync(path).isDirectory()) {
    // the full training state (raw and EMA weights, as the official checkpoints hold them) first
    const side = join(checkpointDir(path), 'last.json');
    const model = join(path, 'model.safetensors');
    if (!existsSync(side) && existsSync(model)) return readRawWeights(model);
    if (!existsSync(side)) throw new InputFileError(`${path}: a folder without checkpoints/last.json or model.safetensors is not a run`);
    let sidecar: CheckpointSidecar;
    try {
      sidecar = JSON.parse(readFileSync(side, 'utf8')) as CheckpointSidecar;
    } catch (e) {
      throw new InputFileError(`${side}: not a valid checkpoint sidecar: ${(e as Error).message}`);
    }
    if (typeof sidecar.model !== 'string') throw new InputFileError(`${side}: no model file named`);
    const w = readRawWeights(join(dirname(side), sidecar.model));
    return { ...w, config: w.config ?? sidecar.config ?? null, step: w.step ?? stepOf(sidecar.step) };
  }
  const bytes = readBytes(path);
  const zipOrPickle = (bytes[0] === 0x50 && bytes[1] === 0x4b) || bytes[0] === 0x80;
  if (TORCH_EXT.test(path) || (zipOrPickle && !/\.safetensors$/i.test(path))) {
    // Lightning checkpoints also pickle callback objects: read them as inert stubs (nothing runs).
    const tree = readTorchCheckpoint(bytes, path, { unknownGlobals: 'stub' });
    const step = typeof tree === 'object' && tree !== null ? stepOf((tree as Record<string, unknown>)['global_step']) : null;
    return { tensors: extractStateDict(tree, '', path), config: null, step, metadata: {}, path, format: 'torch' };
  }
  const f = parseSafetensors(bytes, path);
  let config: Record<string, unknown> | null = null;
  const metaConfig = f.metadata['config'];
  if (metaConfig !== undefined) {
    try {
      config = JSON.parse(metaConfig) as Record<string, unknown>;
    } catch {
      throw new InputFileError(`${path}: the 'config' metadata is not valid JSON`);
    }
  }
  let step = stepOf(f.metadata['step']);
  if (config === null && basename(path).startsWith('step-')) {
    const side = join(dirname(path), 'last.json');
    if (existsSync(side)) {
      const s = JSON.parse(readFileSync(side, 'utf8')) as Partial<CheckpointSidecar>;
      config = s.config ?? null;
      step ??= stepOf(s.step);
    }
  }
  return { tensors: f.tensors, config, step, metadata: f.metadata, path, format: 'safetensors' };
}

/**
 * The official LitEma name of a model parameter: `model.<name>` is shadowed by
 * `model_ema.<name without dots>` (ldm/modules/ema.py).
 */
export const emaKeyOf = (key: string): string | null => (key.startsWith('model.') ? `model_ema.${key.slice(6).replaceAll('.', '')}` : null);

/**
 * The EMA weights as the model weights: every `model.*` tensor with a `model_ema.*` shadow takes
 * the shadow's value (the `model_ema.*` entries stay, so the official model still finds them).
 * Throws when there is no shadow at all, or when a shadow's dtype or shape differs.
 */
export function emaAsModelWeights(tensors: ReadonlyMap<string, RawTensor>, source: string): { tensors: Map<string, RawTensor>; replaced: number } {
  const out = new Map<string, RawTensor>();
  let replaced = 0;
  for (const [k, t] of tensors) {
    const ek = emaKeyOf(k);
    const e = ek !== null ? tensors.get(ek) : undefined;
    if (e === undefined) {
      out.set(k, t);
      continue;
    }
    if (e.dtype !== t.dtype || e.shape.join() !== t.shape.join()) {
      throw new InputFileError(`${source}: EMA tensor ${ek} is ${e.dtype} [${e.shape.join(', ')}], ${k} is ${t.dtype} [${t.shape.join(', ')}]`);
    }
    out.set(k, e);
    replaced++;
  }
  if (replaced === 0) throw new ConfigError(`${source}: --ema: no model_ema.* weights in the file (it has ${tensors.size} tensors, none an EMA shadow of a model.* key)`);
  return { tensors: out, replaced };
}

export interface WriteWeightsOptions {
  /** the model config to store (safetensors) */
  config?: Record<string, unknown> | null;
  step?: number | null;
  /** extra safetensors metadata (e.g. ema: 'true') */
  metadata?: Record<string, string>;
}

/** Write weights in the format OUT's extension names (see file header). Atomic. */
export function writeRawWeights(path: string, tensors: ReadonlyMap<string, RawTensor>, o: WriteWeightsOptions = {}): WeightsFormat {
  const format = weightsFormatOf(path);
  if (format === null) throw new ConfigError(`${path}: the output extension must be .ckpt, .pth, .pt (PyTorch) or .safetensors`);
  mkdirSync(dirname(resolve(path)), { recursive: true });
  if (format === 'torch') {
    writeFileAtomic(path, serializeTorchCheckpoint(tensors, { global_step: o.step ?? 0 }, path));
  } else {
    const meta: Record<string, string> = { ...(o.metadata ?? {}) };
    if (o.config) {
      meta['format'] = MODEL_FORMAT;
      meta['config'] = JSON.stringify(o.config);
    }
    if (o.step !== null && o.step !== undefined) meta['step'] = String(o.step);
    writeFileAtomic(path, serializeSafetensors(new Map(tensors), meta, true));
  }
  return format;
}

export interface ConvertOptions {
  /** the model config (else the one stored with the input, if any) */
  config?: Record<string, unknown> | null;
  /** write the EMA weights as the model weights */
  ema?: boolean;
  /** called with the tensors about to be written (e.g. a key check against a model); may throw */
  check?: (tensors: ReadonlyMap<string, RawTensor>, config: Record<string, unknown> | null) => void;
}

export interface ConvertReport {
  input: string;
  output: string;
  format: WeightsFormat;
  tensors: number;
  step: number | null;
  /** model.* tensors replaced by their EMA shadow (--ema) */
  emaReplaced: number;
  config: Record<string, unknown> | null;
}

/** Convert `input` to `output` (format by OUT's extension), tensors unchanged unless `ema`. */
export function convertWeights(input: string, output: string, o: ConvertOptions = {}): ConvertReport {
  if (weightsFormatOf(output) === null) {
    throw new ConfigError(`${output}: the output extension must be .ckpt, .pth, .pt (PyTorch) or .safetensors (got '${extname(output) || 'none'}')`);
  }
  if (resolve(input) === resolve(output)) throw new ConfigError(`convert: input and output are the same file (${input})`);
  const w = readRawWeights(input);
  let tensors = w.tensors;
  let emaReplaced = 0;
  if (o.ema) ({ tensors, replaced: emaReplaced } = emaAsModelWeights(tensors, w.path));
  const config = o.config ?? w.config;
  o.check?.(tensors, config);
  const metadata: Record<string, string> = {};
  if (o.ema || w.metadata['ema'] === 'true') metadata['ema'] = 'true';
  const format = writeRawWeights(output, tensors, { config, step: w.step, metadata });
  return { input: w.path, output, format, tensors: tensors.size, step: w.step, emaReplaced, config };
}
