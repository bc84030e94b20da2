// zip: a minimal reader for the zip archives PyTorch's torch.save writes (and plain zip tools):
// central directory (with ZIP64 records), stored entries as zero-copy views, deflated entries
// through node:zlib inflateRawSync, CRC-32 checked (every entry with node:zlib's crc32, entries
// up to 64 MiB with the JS fallback on Node versions that lack it).
// It is not a writer, nor a general archiver: no encryption, no multi-disk archives, no methods
// other than stored (0) and deflate (8). It does no file I/O: it reads bytes held in memory.

import * as zlib from 'node:zlib';
import { clip } from '../util/index.ts';
import { FormatError } from './errors.ts';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

/** Without node:zlib crc32 (Node < 20.15), larger entries are not CRC-checked (JS: ~4 s/GiB). */
export const ZIP_CRC_CHECK_LIMIT = 64 * 1024 * 1024;
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

/** True when the bytes begin like a zip archive (a local header or an empty archive). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

function u64(dv: DataView, off: number, source: string, what: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(source, `zip: ${what} ${v} is too large`);
  return Number(v);
}

/** Read the central directory: entry name → entry. Throws FormatError on any inconsistency. */
export function readZipDirectory(bytes: Uint8Array, source = '<bytes>'): Map<string, ZipEntry> {
  const fail = (msg: string): never => {
    throw new FormatError(source, `zip: ${msg}`);
  };
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  // 1. End of central directory: 22 bytes plus a comment of at most 65535 bytes, at the very end.
  let eocd = -1;
  for (let p = len - 22; p >= Math.max(0, len - 22 - 65535); p--) {
    if (dv.getUint32(p, true) === SIG_EOCD && p + 22 + dv.getUint16(p + 20, true) === len) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) return fail('end of central directory not found (truncated or not a zip archive)');
  if (dv.getUint16(eocd + 4, true) !== 0 || dv.getUint16(eocd + 6, true) !== 0) {
    return fail('multi-disk archives are not supported');
  }
  let count = dv.getUint16(eocd + 10, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  // 2. ZIP64 end of central directory (PyTorch always writes one), found through its locator.
  const loc = eocd - 20;
  if (loc >= 0 && dv.getUint32(loc, true) === SIG_EOCD64_LOCATOR) {
    const e64 = u64(dv, loc + 8, source, 'ZIP64 record offset');
    if (e64 + 56 > loc || dv.getUint32(e64, true) !== SIG_EOCD64) {
      return fail(`ZIP64 end of central directory expected at offset ${e64}, not found`);
    }
    count = u64(dv, e64 + 32, source, 'entry count');
    cdSize = u64(dv, e64 + 40, source, 'central directory size');
    cdOffset = u64(dv, e64 + 48, source, 'central directory offset');
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    return fail('archive needs ZIP64 records but has none');
  }
  if (cdOffset + cdSize > len) {
    return fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the ${len}-byte file`);
  }
  // 3. Central directory entries.
  const entries = new Map<string, ZipEntry>();
  const names = new TextDecoder('utf-8');
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || dv.getUint32(p, true) !== SIG_CENTRAL) {
      return fail(`central directory entry ${i} at offset ${p} is malformed`);
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc32 = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localHeaderOffset = dv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdOffset + cdSize) return fail(`central directory entry ${i} at offset ${p} runs past the directory`);
    const name = names.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: the 64-bit values present are those whose 32-bit field is full.
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen;) {
      const id = dv.getUint16(x, true);
      const sz = dv.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        const take = (what: string): number => {
          if (q + 8 > x + 4 + sz) fail(`entry "${name}": ZIP64 extra field lacks the ${what}`);
          const v = u64(dv, q, source, `entry "${name}" ${what}`);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      x += 4 + sz;
    }
    if (flags & 1) fail(`entry "${name}" is encrypted`);
    if (entries.has(name)) fail(`entry "${clip(name, 100)}" appears twice`);
    entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
    p = end;
  }
  return entries;
}

/** Deflate emits at most 258 bytes per 2 bits of input: about 1032 bytes out per byte in. */
const DEFLATE_MAX_RATIO = 1032;

/** The most bytes an entry can honestly inflate to (its size for stored entries). */
export function maxInflatedSize(e: ZipEntry): number {
  return e.method === 8 ? e.compressedSize * DEFLATE_MAX_RATIO + 64 : e.compressedSize;
}

let crcTable: Int32Array | undefined;
/** CRC-32 (IEEE 802.3, as zip uses) of the bytes. */
export function crc32(bytes: Uint8Array): number {
  return nativeCrc32 !== undefined ? nativeCrc32(bytes) >>> 0 : crc32Js(bytes);
}

/** The table-driven fallback of crc32 (exported for tests). */
export function crc32Js(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = (t[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * The uncompressed bytes of an entry: a view into `bytes` for stored entries (no copy), a new
 * buffer for deflated ones.
 */
export function readZipEntry(bytes: Uint8Array, entry: ZipEntry, source = '<bytes>'): Uint8Array {
  const fail = (msg: string): never => {
    throw new FormatError(source, `zip: entry "${clip(entry.name, 100)}": ${msg}`);
  };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.localHeaderOffset;
  if (h + 30 > bytes.byteLength || dv.getUint32(h, true) !== SIG_LOCAL) {
    return fail(`local header expected at offset ${h}, not found`);
  }
  const start = h + 30 + dv.getUint16(h + 26, true) + dv.getUint16(h + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.byteLength) {
    return fail(`data [${start}, ${end}) runs past the end of the ${bytes.byteLength}-byte file (truncated?)`);
  }
  const raw = bytes.subarray(start, end);
  let out: Uint8Array;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) fail(`stored entry sizes differ (${entry.compressedSize} vs ${entry.size})`);
    out = raw;
  } else if (entry.method === 8) {
    // a size that deflate cannot reach from these bytes is refused before inflating anything
    if (entry.size > maxInflatedSize(entry)) {
      fail(`claims ${entry.size} bytes from ${entry.compressedSize} deflated bytes, more than deflate can produce (corrupt or hostile archive)`);
    }
    try {
      const b = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      out = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      return fail(`deflate data is corrupt (${(e as Error).message})`);
    }
    if (out.byteLength !== entry.size) fail(`inflated to ${out.byteLength} bytes, directory says ${entry.size}`);
  } else {
    return fail(`compression method ${entry.method} is not supported (only stored and deflate)`);
  }
  if (nativeCrc32 !== undefined || out.byteLength <= ZIP_CRC_CHECK_LIMIT) {
    const c = crc32(out);
    if (c !== entry.crc32) fail(`CRC-32 mismatch (${c.toString(16)} vs ${entry.crc32.toString(16)}): the file is corrupt`);
  }
  return out;
}
