// PNG encoding without sharp, synchronous: 8-bit grey, RGB or RGBA, filter 0 (none) on every row,
// zlib deflate from node:zlib. Used where an image must be encoded in the middle of a synchronous
// computation (the server's per-step previews of a sampling run); files written by the CLI and
// the trainer keep going through sharp (io/images.ts). What it is not: no decoder, no palettes.

import { deflateSync } from 'node:zlib';
import { FormatError } from './errors.ts';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

/** PNG bytes of channels-last 8-bit pixels [height, width, channels] (channels 1, 3 or 4). */
export function encodePngSync(data: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  const colorType = ({ 1: 0, 3: 2, 4: 6 } as Record<number, number>)[channels];
  if (colorType === undefined) throw new FormatError('PNG', `${channels} channels are not supported (1, 3 or 4)`);
  if (data.length !== width * height * channels) throw new FormatError('PNG', `${data.length} bytes for ${width}x${height}x${channels}`);
  const stride = width * channels;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, colorType, 0, 0, 0], 8);
  const parts = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
