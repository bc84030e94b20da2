// Tensor files: safetensors (and official .ckpt/.pth) on disk <-> Map<name, Tensor>.
// Float tensors become float32, integer tensors int64; F64 data (schedules in fixtures) is kept
// alongside as float64 arrays for the comparisons that need it. Writes are atomic (temp + rename)
// so a crash never leaves a half-written file where a good one was.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { InputFileError } from '../util/index.ts';
import { parseSafetensors, serializeSafetensors, toFloat32, toFloat64, toInt, readTorchCheckpoint, extractStateDict,
  type RawTensor } from '../formats/index.ts';
import { Tensor } from '../tensor/index.ts';

export interface TensorFile {
  tensors: Map<string, Tensor>;
  /** Float64 copies of F64 entries (exact values for float64 comparisons). */
  float64: Map<string, Float64Array>;
  metadata: Record<string, string>;
  path: string;
}

export function rawToTensor(r: RawTensor, name: string): Tensor {
  const isInt = r.dtype === 'I64' || r.dtype === 'I32' || r.dtype === 'U8' || r.dtype === 'I8' || r.dtype === 'BOOL';
  return isInt ? new Tensor(toInt(r, name), r.shape, 'int64') : new Tensor(Float32Array.from(toFloat32(r, name)), r.shape);
}

export function tensorToRaw(t: Tensor): RawTensor {
  return t.dtype === 'float32'
    ? { dtype: 'F32', shape: [...t.shape], data: t.f32 }
    : { dtype: 'I64', shape: [...t.shape], data: BigInt64Array.from(t.data, (v) => BigInt(v)) };
}

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new InputFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Read a .safetensors file, or an official PyTorch .ckpt/.pth (its state_dict) by extension. */
export function readTensorFile(path: string): TensorFile {
  const bytes = readBytes(path);
  if (/\.(ckpt|pth|pt|bin)$/i.test(path)) {
    // Lightning checkpoints also pickle callback objects: read them as inert stubs (nothing runs).
    const tree = readTorchCheckpoint(bytes, path, { unknownGlobals: 'stub' });
    const sd = extractStateDict(tree);
    const tensors = new Map<string, Tensor>();
    const float64 = new Map<string, Float64Array>();
    for (const [k, r] of sd) {
      tensors.set(k, rawToTensor(r, `${path}:${k}`));
      if (r.dtype === 'F64') float64.set(k, toFloat64(r, k));
    }
    return { tensors, float64, metadata: {}, path };
  }
  return parseTensorFile(bytes, path);
}

/** A .safetensors file from its bytes (no file system: the browser build fetches them). */
export function parseTensorFile(bytes: Uint8Array, path: string): TensorFile {
  const f = parseSafetensors(bytes, path);
  const tensors = new Map<string, Tensor>();
  const float64 = new Map<string, Float64Array>();
  for (const [k, r] of f.tensors) {
    tensors.set(k, rawToTensor(r, `${path}:${k}`));
    if (r.dtype === 'F64') float64.set(k, toFloat64(r, k));
  }
  return { tensors, float64, metadata: f.metadata, path };
}

/** Write bytes atomically: a temp file in the same folder, fsync, then rename over the target. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function writeTensorFile(path: string, tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): void {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of tensors) raw.set(k, tensorToRaw(t));
  writeFileAtomic(path, serializeSafetensors(raw, metadata));
}
