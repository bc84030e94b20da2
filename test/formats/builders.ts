// Test helpers for test/formats: a tiny zip writer (stored / deflate entries, torch.save layout)
// and a pickle byte builder, to craft malformed and hostile inputs by hand. Not a test file and
// not product code (the product never writes zip or pickle).

import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/formats/zip.ts';

const enc = new TextEncoder();

export interface ZipInput {
  name: string;
  data: Uint8Array | string;
  deflate?: boolean;
}

/** A zip archive of the entries (no ZIP64, no comment). */
export function makeZip(entries: ZipInput[]): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const data = typeof e.data === 'string' ? enc.encode(e.data) : e.data;
    const body = e.deflate ? new Uint8Array(deflateRawSync(data)) : data;
    const crc = crc32(data);
    const local = new Uint8Array(30 + name.byteLength + body.byteLength);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, e.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.byteLength, true);
    lv.setUint32(22, data.byteLength, true);
    lv.setUint16(26, name.byteLength, true);
    local.set(name, 30);
    local.set(body, 30 + name.byteLength);
    const central = new Uint8Array(46 + name.byteLength);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, e.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.byteLength, true);
    cv.setUint32(24, data.byteLength, true);
    cv.setUint16(28, name.byteLength, true);
    cv.setUint32(42, offset, true);
    central.set(name, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.byteLength;
  }
  const cdSize = centrals.reduce((a, c) => a + c.byteLength, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concat([...locals, ...centrals, eocd]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let p = 0;
  for (const x of parts) {
    out.set(x, p);
    p += x.byteLength;
  }
  return out;
}

type Part = string | number[] | Uint8Array;

/** Pickle bytes: strings are raw opcode characters (latin1), arrays / Uint8Arrays raw bytes. */
export function pk(...parts: Part[]): Uint8Array {
  return concat(parts.map((p) => (typeof p === 'string' ? Uint8Array.from(p, (c) => c.charCodeAt(0)) : Uint8Array.from(p))));
}

const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
/** BINUNICODE. */
export const S = (s: string): Uint8Array => {
  const b = enc.encode(s);
  return pk('X', u32(b.byteLength), b);
};
/** GLOBAL. */
export const G = (module: string, name: string): string => `c${module}\n${name}\n`;
/** BININT1. */
export const K = (n: number): number[] => [0x4b, n];
/** BININT. */
export const J = (n: number): number[] => [0x4a, ...u32(n >>> 0)];
export const PROTO2 = [0x80, 2];
export const TUPLE1 = [0x85];
export const TUPLE2 = [0x86];
export const NEWFALSE = [0x89];

/** A torch.save-shaped zip: `archive/data.pkl` plus `archive/data/<key>` storages. */
export function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array> = {}, extra: ZipInput[] = []): Uint8Array {
  return makeZip([
    { name: 'archive/data.pkl', data: pickle },
    ...Object.entries(storages).map(([k, v]) => ({ name: `archive/data/${k}`, data: v })),
    { name: 'archive/version', data: '3\n' },
    ...extra,
  ]);
}

/** Persistent id tuple of a storage, then BINPERSID. */
export const storageRef = (cls: [string, string], key: string, numel: number): Uint8Array =>
  pk('(', S('storage'), G(...cls), S(key), S('cpu'), J(numel), 't', 'Q');
