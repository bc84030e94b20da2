// torch-write: write PyTorch checkpoints — a `torch.save` zip archive holding
// `{'state_dict': OrderedDict(name -> tensor), <scalar entries>}` — so the official code
// (`torch.load`, `LatentDiffusion(ckpt_path=...)`) reads weights trained here. Layout as torch ≥ 1.6
// writes it: `archive/data.pkl` (pickle protocol 2), `archive/byteorder` ("little"),
// `archive/data/<k>` (one storage per tensor, raw little-endian C-order bytes, each entry's data
// aligned to 64 bytes with an "FB" padding extra field as torch does), `archive/version` ("3\n");
// stored (uncompressed) entries, ZIP64 records where sizes or offsets need them.
// The pickle uses only the opcodes and globals `torch.load(..., weights_only=True)` accepts
// (PROTO, EMPTY_DICT, MARK, SETITEMS, GLOBAL collections.OrderedDict / torch._utils._rebuild_tensor_v2
// / torch.<Dtype>Storage, REDUCE, BINPERSID, TUPLE*, BININT*, LONG1, BINUNICODE, NEWFALSE, NONE).
// Tensors keep their dtype, shape and bytes exactly. It is not a general pickler: values are
// tensors, ints, strings, booleans, None and floats (BINFLOAT: not accepted by the weights-only
// loader of torch 1.13).

import { FormatError } from './errors.ts';
import { ST_DTYPES, numelOf, type RawTensor, type StDtype } from './safetensors.ts';
import { crc32 } from './zip.ts';

/** A top-level entry next to the state dict (e.g. `global_step`). */
export type TorchScalar = number | bigint | string | boolean | null;

const STORAGE_CLASS: Record<StDtype, string> = {
  F32: 'FloatStorage', F64: 'DoubleStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', I64: 'LongStorage',
  I32: 'IntStorage', U8: 'ByteStorage', I8: 'CharStorage', BOOL: 'BoolStorage',
};

// ---- pickle (protocol 2) -----------------------------------------------------------------------

class Bytes {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(4096);
  private n = 0;
  length = 0;
  byte(...b: number[]): this {
    for (const x of b) {
      if (this.n === this.cur.length) this.flush();
      this.cur[this.n++] = x;
      this.length++;
    }
    return this;
  }
  bytes(b: Uint8Array): this {
    this.flush();
    this.chunks.push(b);
    this.length += b.byteLength;
    return this;
  }
  u16(v: number): this { return this.byte(v & 0xff, (v >>> 8) & 0xff); }
  u32(v: number): this { return this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); }
  u64(v: number): this { return this.u32(v % 0x100000000).u32(Math.floor(v / 0x100000000)); }
  private flush(): void {
    if (this.n > 0) this.chunks.push(this.cur.slice(0, this.n));
    this.cur = new Uint8Array(4096);
    this.n = 0;
  }
  done(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let p = 0;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.byteLength;
    }
    return out;
  }
}

const utf8 = new TextEncoder();
const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

function pickleString(b: Bytes, s: string): void {
  const e = utf8.encode(s);
  b.byte(0x58).u32(e.byteLength).bytes(e); // BINUNICODE
}

function pickleInt(b: Bytes, v: number | bigint): void {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`pickleInt: ${v} is not an integer`);
  const big = BigInt(v);
  if (big >= 0n && big < 256n) b.byte(0x4b, Number(big)); // BININT1
  else if (big >= 0n && big < 65536n) b.byte(0x4d).u16(Number(big)); // BININT2
  else if (big >= -(2n ** 31n) && big < 2n ** 31n) b.byte(0x4a).u32(Number(BigInt.asUintN(32, big))); // BININT
  else { // LONG1: little-endian two's complement, shortest form
    const out: number[] = [];
    let x = big;
    for (;;) {
      out.push(Number(x & 0xffn));
      x >>= 8n;
      const sign = ((out[out.length - 1] as number) & 0x80) !== 0;
      if ((x === 0n && !sign) || (x === -1n && sign)) break;
    }
    b.byte(0x8a, out.length, ...out);
  }
}

function pickleScalar(b: Bytes, v: TorchScalar, where: string): void {
  if (v === null) b.byte(0x4e);
  else if (typeof v === 'boolean') b.byte(v ? 0x88 : 0x89);
  else if (typeof v === 'string') pickleString(b, v);
  else if (typeof v === 'bigint' || Number.isSafeInteger(v)) pickleInt(b, v);
  else if (typeof v === 'number') {
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, v, false);
    b.byte(0x47).bytes(new Uint8Array(f.buffer)); // BINFLOAT (big-endian)
  } else throw new Error(`${where}: cannot pickle a ${typeof v}`);
}

const global = (b: Bytes, module: string, name: string): Bytes => b.byte(0x63, ...ascii(`${module}\n${name}\n`)); // GLOBAL

/** C-order strides as torch computes them for a contiguous tensor (sizes 0 count as 1). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= Math.max(1, shape[d] as number);
  }
  return s;
}

const tuple = (b: Bytes, items: readonly number[]): void => {
  if (items.length === 0) b.byte(0x29); // EMPTY_TUPLE
  else {
    b.byte(0x28); // MARK
    for (const x of items) pickleInt(b, x);
    b.byte(0x74); // TUPLE
  }
};

/** The data.pkl of `{'state_dict': OrderedDict(...), **extra}`; storage k is the k-th tensor. */
function checkpointPickle(tensors: readonly [string, RawTensor][], extra: Readonly<Record<string, TorchScalar>>): Uint8Array {
  const b = new Bytes();
  b.byte(0x80, 2); // PROTO 2
  b.byte(0x7d, 0x28); // EMPTY_DICT, MARK
  pickleString(b, 'state_dict');
  global(b, 'collections', 'OrderedDict').byte(0x29, 0x52); // OrderedDict()
  b.byte(0x28); // MARK (the state_dict items)
  tensors.forEach(([name, t], k) => {
    pickleString(b, name);
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
    global(b, 'torch._utils', '_rebuild_tensor_v2').byte(0x28);
    // persistent id ('storage', torch.<Dtype>Storage, key, location, numel)
    b.byte(0x28);
    pickleString(b, 'storage');
    global(b, 'torch', STORAGE_CLASS[t.dtype]);
    pickleString(b, String(k));
    pickleString(b, 'cpu');
    pickleInt(b, numelOf(t.shape));
    b.byte(0x74, 0x51); // TUPLE, BINPERSID
    pickleInt(b, 0);
    tuple(b, t.shape);
    tuple(b, contiguousStrides(t.shape));
    b.byte(0x89); // requires_grad False
    global(b, 'collections', 'OrderedDict').byte(0x29, 0x52); // backward_hooks
    b.byte(0x74, 0x52); // TUPLE, REDUCE
  });
  b.byte(0x75); // SETITEMS (state_dict)
  for (const [k, v] of Object.entries(extra)) {
    pickleString(b, k);
    pickleScalar(b, v, `checkpoint entry "${k}"`);
  }
  b.byte(0x75, 0x2e); // SETITEMS, STOP
  return b.done();
}

// ---- zip (stored entries, torch's 64-byte data alignment) ----------------------------------------

const ALIGN = 64;
const FULL32 = 0xffffffff;

/** A stored zip archive of the entries, in order. */
export function writeStoredZip(entries: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const out = new Bytes();
  const central = new Bytes();
  for (const e of entries) {
    const name = utf8.encode(e.name);
    const offset = out.length;
    const crc = crc32(e.data);
    const size = e.data.byteLength;
    const big = size >= FULL32;
    // local header: the data starts at offset + 30 + name + extra; pad the extra to reach ALIGN
    const zip64Local = big ? 20 : 0;
    const base = offset + 30 + name.byteLength + zip64Local;
    let pad = (ALIGN - ((base + 4) % ALIGN)) % ALIGN;
    const extraLen = zip64Local + 4 + pad;
    out.u32(0x04034b50).u16(big ? 45 : 20).u16(0x0800).u16(0).u16(0).u16(0x0021) // sig, version, flags (utf-8), stored, time, date 1980-01-01
      .u32(crc).u32(big ? FULL32 : size).u32(big ? FULL32 : size).u16(name.byteLength).u16(extraLen).bytes(name);
    if (big) out.u16(0x0001).u16(16).u64(size).u64(size);
    out.byte(0x46, 0x42).u16(pad); // "FB" padding field, as torch writes
    while (pad-- > 0) out.byte(0x5a);
    out.bytes(e.data);
    // central directory entry
    const off64 = offset >= FULL32;
    const z64: number[] = [];
    if (big) z64.push(size, size);
    if (off64) z64.push(offset);
    central.u32(0x02014b50).u16(z64.length > 0 ? 45 : 20).u16(z64.length > 0 ? 45 : 20).u16(0x0800).u16(0).u16(0).u16(0x0021)
      .u32(crc).u32(big ? FULL32 : size).u32(big ? FULL32 : size).u16(name.byteLength).u16(z64.length > 0 ? 4 + 8 * z64.length : 0)
      .u16(0).u16(0).u16(0).u32(0).u32(off64 ? FULL32 : offset).bytes(name);
    if (z64.length > 0) {
      central.u16(0x0001).u16(8 * z64.length);
      for (const v of z64) central.u64(v);
    }
  }
  const cdOffset = out.length;
  const cd = central.done();
  out.bytes(cd);
  const eocd64 = out.length;
  // ZIP64 end of central directory record + locator (torch writes them always)
  out.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(entries.length).u64(entries.length).u64(cd.byteLength).u64(cdOffset);
  out.u32(0x07064b50).u32(0).u64(eocd64).u32(1);
  const n16 = Math.min(entries.length, 0xffff);
  out.u32(0x06054b50).u16(0).u16(0).u16(n16).u16(n16).u32(Math.min(cd.byteLength, FULL32)).u32(Math.min(cdOffset, FULL32)).u16(0);
  return out.done();
}

// ---- checkpoints ------------------------------------------------------------------------------

/**
 * The bytes of a torch.save zip checkpoint `{'state_dict': OrderedDict(tensors), **extra}` (key
 * order kept; each tensor its own storage, its bytes unchanged). `source` names the output in
 * errors.
 */
export function serializeTorchCheckpoint(tensors: ReadonlyMap<string, RawTensor>, extra: Readonly<Record<string, TorchScalar>> = {},
  source = '<checkpoint>'): Uint8Array {
  if (Object.prototype.hasOwnProperty.call(extra, 'state_dict')) throw new FormatError(source, 'extra entries cannot be named "state_dict"');
  const list = [...tensors];
  const storages: { name: string; data: Uint8Array }[] = [];
  list.forEach(([name, t], k) => {
    const n = numelOf(t.shape);
    const want = n * ST_DTYPES[t.dtype].size;
    if (!Number.isSafeInteger(n) || t.data.byteLength !== want) {
      throw new FormatError(source, `tensor "${name}": ${t.data.byteLength} bytes for shape [${t.shape.join(', ')}] ${t.dtype} (expected ${want})`);
    }
    storages.push({ name: `archive/data/${k}`, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
  });
  return writeStoredZip([
    { name: 'archive/data.pkl', data: checkpointPickle(list, extra) },
    { name: 'archive/byteorder', data: utf8.encode('little') },
    ...storages,
    { name: 'archive/version', data: utf8.encode('3\n') },
  ]);
}
