// PNG tEXt chunks (PNG spec 11.3.4.3): keyword (1-79 Latin-1 bytes), a NUL, the text (Latin-1),
// inserted right after IHDR, and read back. The generation parameters of a sample go into a
// `parameters` chunk as AUTOMATIC1111's web UI writes them. What it is not: no image codec (sharp
// encodes the pixels), no zTXt / iTXt.

import { FormatError } from './errors.ts';

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC) of bytes, as PNG chunks use it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function latin1(s: string, what: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c < 256 ? c : 63; // '?' for characters outside Latin-1
    if (what === 'keyword' && (c === 0 || c > 255)) throw new FormatError('<png>', `PNG tEXt keyword '${s}' must be Latin-1 without NUL`);
  }
  return out;
}

function checkSignature(png: Uint8Array): void {
  if (png.length < 33 || SIGNATURE.some((b, i) => png[i] !== b)) throw new FormatError('<png>', 'not a PNG file (bad signature)');
}

/** The PNG with a tEXt chunk `keyword` = `text` inserted after IHDR. */
export function addPngText(png: Uint8Array, keyword: string, text: string): Uint8Array {
  checkSignature(png);
  if (keyword.length < 1 || keyword.length > 79) throw new FormatError('<png>', `PNG tEXt keyword must have 1-79 characters, got ${keyword.length}`);
  const ihdrLen = new DataView(png.buffer, png.byteOffset + 8, 4).getUint32(0);
  const at = 8 + 12 + ihdrLen; // signature + IHDR (length, type, data, crc)
  const k = latin1(keyword, 'keyword'), t = latin1(text, 'text');
  const body = new Uint8Array(4 + k.length + 1 + t.length);
  body.set([0x74, 0x45, 0x58, 0x74], 0); // 'tEXt'
  body.set(k, 4);
  body.set(t, 4 + k.length + 1);
  const chunk = new Uint8Array(4 + body.length + 4);
  const dv = new DataView(chunk.buffer);
  dv.setUint32(0, body.length - 4);
  chunk.set(body, 4);
  dv.setUint32(4 + body.length, crc32(body));
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, at), 0);
  out.set(chunk, at);
  out.set(png.subarray(at), at + chunk.length);
  return out;
}

/** Every tEXt chunk of a PNG as keyword -> text (CRCs checked). */
export function readPngText(png: Uint8Array): Map<string, string> {
  checkSignature(png);
  const out = new Map<string, string>();
  const dv = new DataView(png.buffer, png.byteOffset, png.length);
  let p = 8;
  while (p + 12 <= png.length) {
    const len = dv.getUint32(p);
    if (p + 12 + len > png.length) throw new FormatError('<png>', `PNG chunk at byte ${p} runs past the end of the file`);
    const type = String.fromCharCode(...png.subarray(p + 4, p + 8));
    if (type === 'tEXt') {
      const body = png.subarray(p + 4, p + 8 + len);
      if (crc32(body) !== dv.getUint32(p + 8 + len)) throw new FormatError('<png>', `PNG tEXt chunk at byte ${p} has a bad CRC`);
      const data = png.subarray(p + 8, p + 8 + len);
      const nul = data.indexOf(0);
      if (nul < 1) throw new FormatError('<png>', `PNG tEXt chunk at byte ${p} has no keyword`);
      const dec = (b: Uint8Array): string => String.fromCharCode(...b);
      out.set(dec(data.subarray(0, nul)), dec(data.subarray(nul + 1)));
    }
    if (type === 'IEND') break;
    p += 12 + len;
  }
  return out;
}
