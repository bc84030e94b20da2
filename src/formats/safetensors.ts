// safetensors: parse and serialize the format (https://github.com/huggingface/safetensors),
// bytes 0-7 little-endian u64 N; N bytes of JSON header; then raw little-endian C-order data.
// It produces plain records ({dtype, shape, data}) and converts them to float / integer arrays.
// It is not file I/O (io/ reads the file and calls parseSafetensors) and never builds a Tensor.
//
// Parsed tensors are views into the given bytes when their offset is aligned to the item size
// (no copy), and aligned copies otherwise; do not mutate the input while the result is in use.

import { clip, describe } from '../util/index.ts';
import { FormatError } from './errors.ts';

export type StDtype = 'F32' | 'F64' | 'I64' | 'I32' | 'F16' | 'BF16' | 'U8' | 'I8' | 'BOOL';
export type RawData =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array;
export interface RawTensor {
  dtype: StDtype;
  shape: number[];
  /** C-order contiguous elements; F16 and BF16 are raw 16-bit patterns, BOOL is 0/1 bytes. */
  data: RawData;
}
export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/** Largest header accepted (same limit as the reference Rust implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

interface DtypeInfo {
  size: number;
  make: (buf: ArrayBuffer, byteOffset: number, length: number) => RawData;
  ctor: Function;
}
export const ST_DTYPES: Readonly<Record<StDtype, DtypeInfo>> = {
  F32: { size: 4, make: (b, o, n) => new Float32Array(b, o, n), ctor: Float32Array },
  F64: { size: 8, make: (b, o, n) => new Float64Array(b, o, n), ctor: Float64Array },
  I64: { size: 8, make: (b, o, n) => new BigInt64Array(b, o, n), ctor: BigInt64Array },
  I32: { size: 4, make: (b, o, n) => new Int32Array(b, o, n), ctor: Int32Array },
  F16: { size: 2, make: (b, o, n) => new Uint16Array(b, o, n), ctor: Uint16Array },
  BF16: { size: 2, make: (b, o, n) => new Uint16Array(b, o, n), ctor: Uint16Array },
  U8: { size: 1, make: (b, o, n) => new Uint8Array(b, o, n), ctor: Uint8Array },
  I8: { size: 1, make: (b, o, n) => new Int8Array(b, o, n), ctor: Int8Array },
  BOOL: { size: 1, make: (b, o, n) => new Uint8Array(b, o, n), ctor: Uint8Array },
} satisfies Record<StDtype, DtypeInfo>;

export function isStDtype(s: unknown): s is StDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ST_DTYPES, s);
}

/** Item size in bytes of a dtype. */
export function dtypeSize(dtype: StDtype): number {
  return ST_DTYPES[dtype].size;
}

/** Number of elements of a shape (1 for a 0-d shape). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** True for a value shaped like a RawTensor (used to find tensor leaves in unpickled trees). */
export function isRawTensor(v: unknown): v is RawTensor {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<RawTensor>;
  return isStDtype(r.dtype) && Array.isArray(r.shape) && ArrayBuffer.isView(r.data);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function assertLittleEndianHost(): void {
  if (!LITTLE_ENDIAN) throw new Error('formats/safetensors: big-endian hosts are not supported');
}

/**
 * Typed view of `length` elements at absolute byte offset `start` of `bytes`: a view when aligned,
 * otherwise an aligned copy. Shared with the torch reader.
 */
export function typedAt(bytes: Uint8Array, start: number, dtype: StDtype, length: number): RawData {
  const { size, make } = ST_DTYPES[dtype];
  const abs = bytes.byteOffset + start;
  if (abs % size === 0) return make(bytes.buffer as ArrayBuffer, abs, length);
  const copy = new Uint8Array(length * size);
  copy.set(bytes.subarray(start, start + length * size));
  return make(copy.buffer, 0, length);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse a whole safetensors file held in memory. `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = '<bytes>'): SafetensorsFile {
  assertLittleEndianHost();
  const fail = (msg: string): never => {
    throw new FormatError(source, `safetensors: ${msg}`);
  };
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  // a safetensors file opens with the header length then '{': anything else (text, a zip, a
  // PNG renamed .safetensors) is named as such rather than as an absurd header length
  if ((n64 < 2n || n64 > BigInt(bytes.byteLength - 8)) && bytes[8] !== 0x7b) {
    fail(`not a safetensors file (it should open with an 8-byte header length and a JSON header '{...}'; ` +
      `it opens with ${describe(new TextDecoder('latin1').decode(bytes.subarray(0, 16)), 60)})`);
  }
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const n = Number(n64);
  if (n > bytes.byteLength - 8) {
    fail(`header length ${n} exceeds the ${bytes.byteLength - 8} bytes after the length field (truncated file?)`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${clip((e as Error).message, 120)})`);
  }
  if (!isPlainObject(header)) return fail('header JSON is not an object');

  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: StDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__[${describe(k, 80)}] must be a string, got ${v === null ? 'null' : `${typeof v} ${describe(v, 60)}`}`);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const at = `tensor ${describe(name, 100)}`;
    if (!isPlainObject(info)) return fail(`${at}: entry must be an object with dtype, shape, data_offsets`);
    const { dtype, shape, data_offsets: offs } = info;
    if (!isStDtype(dtype)) {
      return fail(`${at}: unknown dtype ${describe(dtype, 40)} (known: ${Object.keys(ST_DTYPES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return fail(`${at}: shape must be an array of non-negative integers, got ${describe(shape, 100)}`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]
    ) {
      return fail(`${at}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${describe(offs, 100)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) {
      fail(`${at}: data_offsets [${begin}, ${end}] run past the data section of ${dataLen} bytes (truncated file?)`);
    }
    const numel = numelOf(shape as number[]);
    const want = numel * ST_DTYPES[dtype].size;
    if (!Number.isSafeInteger(want) || end - begin !== want) {
      fail(`${at}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape ` +
        `${describe(shape, 100)} of ${dtype} needs ${Number.isSafeInteger(want) ? want : 'more than 2^53'}`);
    }
    entries.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  // File order (by offset); empty tensors may share an offset with anything.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : 1));
  let prev: (typeof entries)[number] | undefined;
  for (const e of entries) {
    if (e.begin === e.end) continue;
    if (prev !== undefined && e.begin < prev.end) {
      fail(`tensor ${describe(e.name, 80)} data_offsets [${e.begin}, ${e.end}] overlap tensor ${describe(prev.name, 80)} [${prev.begin}, ${prev.end}]`);
    }
    prev = e;
  }

  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    const numel = numelOf(e.shape);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typedAt(bytes, dataStart + e.begin, e.dtype, numel) });
  }
  return { tensors, metadata };
}

/**
 * Serialize tensors (written in sorted-name order, or in the given order with `keepOrder`: the
 * reader returns tensors in file order, so a checkpoint's key order survives a round trip) and
 * string metadata. The JSON header is space-padded so that the data section starts at a multiple of 8.
 */
export function serializeSafetensors(
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
  keepOrder = false,
): Uint8Array {
  assertLittleEndianHost();
  const src = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const names = keepOrder ? [...src.keys()] : [...src.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  if (metadata !== undefined) {
    const meta: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new TypeError(`serializeSafetensors: metadata["${k}"] must be a string, got ${v === null ? 'null' : typeof v}`);
      }
      meta.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    if (meta.length > 0) parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const name of names) {
    const t = src.get(name) as RawTensor;
    const at = `serializeSafetensors: tensor "${name}"`;
    if (name === '__metadata__') throw new TypeError(`${at}: the name is reserved`);
    if (!isStDtype(t.dtype)) throw new TypeError(`${at}: unknown dtype ${JSON.stringify(t.dtype)}`);
    const info = ST_DTYPES[t.dtype];
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(`${at}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    if (!(t.data instanceof info.ctor)) {
      throw new TypeError(`${at}: dtype ${t.dtype} needs a ${info.ctor.name}, got ${t.data.constructor.name}`);
    }
    const numel = numelOf(t.shape);
    if (t.data.length !== numel) {
      throw new TypeError(`${at}: shape [${t.shape.join(', ')}] has ${numel} elements, data has ${t.data.length}`);
    }
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],` +
      `"data_offsets":[${offset},${offset + bytes.byteLength}]}`);
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + n);
  let p = 8 + n;
  for (const c of chunks) {
    out.set(c, p);
    p += c.byteLength;
  }
  return out;
}

// ---- conversions --------------------------------------------------------------------------

let f16Table: Float32Array | undefined;
/** Float value of every IEEE half bit pattern (built once, 256 KiB). */
function halfTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      f16Table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m !== 0 ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return f16Table;
}

function bf16ToF32(d: Uint16Array): Float32Array {
  const bits = new Uint32Array(d.length);
  for (let i = 0; i < d.length; i++) bits[i] = (d[i] as number) << 16;
  return new Float32Array(bits.buffer);
}

/** Float32 values of a tensor: F32 returned as is (no copy), other dtypes converted. */
export function toFloat32(t: RawTensor, name: string): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F16': {
      const tab = halfTable();
      const d = t.data as Uint16Array;
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = tab[d[i] as number] as number;
      return out;
    }
    case 'BF16':
      return bf16ToF32(t.data as Uint16Array);
    default:
      return Float32Array.from(toFloat64(t, name));
  }
}

/** Float64 values of a tensor (always a new array unless the tensor is F64). */
export function toFloat64(t: RawTensor, name: string): Float64Array {
  switch (t.dtype) {
    case 'F64':
      return t.data as Float64Array;
    case 'F32':
    case 'I32':
    case 'U8':
    case 'I8':
    case 'BOOL':
      return Float64Array.from(t.data as Float32Array | Int32Array | Uint8Array | Int8Array);
    case 'F16':
    case 'BF16':
      return Float64Array.from(toFloat32(t, name));
    case 'I64': {
      const d = t.data as BigInt64Array;
      const out = new Float64Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
      return out;
    }
    default:
      throw new TypeError(`toFloat64: tensor "${name}" has unknown dtype ${String((t as RawTensor).dtype)}`);
  }
}

/**
 * Integer values of a tensor as exact doubles. Throws FormatError (with `name` as the source)
 * when a value is not an integer (float dtypes) or its magnitude exceeds 2^53 - 1 (I64).
 */
export function toInt(t: RawTensor, name: string): Float64Array {
  if (t.dtype === 'I64') {
    const d = t.data as BigInt64Array;
    const out = new Float64Array(d.length);
    const lim = BigInt(Number.MAX_SAFE_INTEGER);
    for (let i = 0; i < d.length; i++) {
      const v = d[i] as bigint;
      if (v > lim || v < -lim) {
        throw new FormatError(name, `I64 element ${i} = ${v} is beyond 2^53 and cannot be held exactly`);
      }
      out[i] = Number(v);
    }
    return out;
  }
  const out = toFloat64(t, name);
  if (t.dtype === 'F32' || t.dtype === 'F64' || t.dtype === 'F16' || t.dtype === 'BF16') {
    const copy = t.dtype === 'F64' ? Float64Array.from(out) : out;
    for (let i = 0; i < copy.length; i++) {
      if (!Number.isSafeInteger(copy[i])) {
        throw new FormatError(name, `${t.dtype} element ${i} = ${copy[i]} is not an integer within 2^53`);
      }
    }
    return copy;
  }
  return out;
}
