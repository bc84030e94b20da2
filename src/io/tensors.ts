// Tensor files: safetensors (and official .ckpt/.pth) on disk <-> Map<name, Tensor>.
// Float tensors become float32, integer tensors int64; F64 data (schedules in fixtures) is kept
// alongside as float64 arrays for the comparisons that need it. Writes are atomic (temp + rename)
// so a crash never leaves a half-written file where a good one was.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { InputFileError, OutputFileError, clip } from '../util/index.ts';
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

/** The nearest existing ancestor of a path that is not a folder (a file standing where a folder should be). */
function fileInTheWay(dir: string): string | null {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(d)) return statSync(d).isDirectory() ? null : d;
    if (dirname(d) === d) return null;
  }
}

/** One line saying why `path` cannot be written, from a Node fs error (never our temp file's name). */
export function writeError(path: string, e: unknown, what = 'write'): OutputFileError {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? '';
  const p = clip(path, 300);
  const blocker = code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOENT' ? fileInTheWay(what === 'write' ? dirname(path) : path) : null;
  const why = blocker !== null ? `${clip(blocker, 200)} is a file, not a folder`
    : code === 'EISDIR' || (existsSync(path) && statSync(path).isDirectory()) ? 'it is an existing folder; give a file name'
      : code === 'ENOSPC' ? 'the disk is full (ENOSPC)'
        : code === 'EDQUOT' ? 'the disk quota is exhausted (EDQUOT)'
          : code === 'EACCES' || code === 'EPERM' ? `permission denied (${code})`
            : code === 'EROFS' ? 'the file system is read-only (EROFS)'
              : code === 'ENOENT' ? `files cannot be created in ${clip(dirname(path), 200)} (ENOENT)`
                : `${code || (e as Error | null)?.name || 'error'}: ${clip(String((e as Error | null)?.message ?? e).split('\n')[0] ?? '', 120)}`;
  return new OutputFileError(`cannot ${what} ${p}: ${why}`);
}

/**
 * Write bytes atomically: a temp file in the same folder, fsync, then rename over the target.
 * On any failure (disk full half-way, a folder in the way) the temp file is removed, the previous
 * file at `path` is left as it was, and an OutputFileError names `path` and the reason.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) { try { closeSync(fd); } catch { /* already failing */ } }
    try { rmSync(tmp, { force: true }); } catch { /* nothing to clean */ }
    throw writeError(path, e);
  }
}

/** Create a folder (and its parents), or say in one line why it cannot be. */
export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(dir, e, 'create the folder');
  }
  if (!statSync(dir).isDirectory()) throw new OutputFileError(`cannot create the folder ${clip(dir, 300)}: it is a file`);
}

/**
 * Check before long work that `path` can be written: its folder exists or can be created, it is
 * not a folder, and a file can be created beside it (probe written and removed).
 */
export function checkWritable(path: string): void {
  if (existsSync(path) && statSync(path).isDirectory()) throw writeError(path, Object.assign(new Error('is a folder'), { code: 'EISDIR' }));
  const blocker = fileInTheWay(dirname(resolve(path)));
  if (blocker !== null) throw new OutputFileError(`cannot write ${clip(path, 300)}: ${clip(blocker, 200)} is a file, not a folder`);
  const probe = join(dirname(path), `.${basename(path)}.${process.pid}.probe`);
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    closeSync(openSync(probe, 'w'));
    rmSync(probe, { force: true });
  } catch (e) {
    throw writeError(path, e);
  }
}

export function writeTensorFile(path: string, tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): void {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of tensors) raw.set(k, tensorToRaw(t));
  writeFileAtomic(path, serializeSafetensors(raw, metadata));
}
