// The IDX file format of MNIST and Fashion-MNIST (LeCun's `train-images-idx3-ubyte` etc.), plain
// or gzip-compressed: a big-endian header (magic 0x0000 <type> <ndim>, then ndim uint32 sizes)
// followed by the raw data. Only unsigned bytes (type 0x08) are read, which is what both data
// sets use. What it is not: no dataset logic (mnist.ts), no tensors.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputFileError } from '../../util/index.ts';

export interface IdxArray {
  /** sizes of each axis, e.g. [60000, 28, 28] */
  shape: number[];
  /** the values, C order */
  data: Uint8Array;
}

/** Parse IDX bytes (already decompressed). `name` is used in error messages. */
export function parseIdx(bytes: Uint8Array, name: string): IdxArray {
  if (bytes.length < 4) throw new InputFileError(`${name}: not an IDX file (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const type = (magic >>> 8) & 0xff;
  const ndim = magic & 0xff;
  if (magic >>> 16 !== 0 || ndim === 0 || ndim > 4) {
    throw new InputFileError(`${name}: not an IDX file (magic 0x${magic.toString(16).padStart(8, '0')})`);
  }
  if (type !== 0x08) throw new InputFileError(`${name}: IDX element type 0x${type.toString(16)} is not supported (only unsigned bytes, 0x08)`);
  const head = 4 + 4 * ndim;
  if (bytes.length < head) throw new InputFileError(`${name}: truncated IDX header`);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const n = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - head < n) {
    throw new InputFileError(`${name}: truncated IDX data: header says [${shape.join(', ')}] (${n} bytes), file has ${bytes.length - head}`);
  }
  return { shape, data: bytes.subarray(head, head + n) };
}

/** Read an IDX file from disk; a `.gz` file (or gzip magic) is decompressed first. */
export function readIdx(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new InputFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (e) {
      throw new InputFileError(`${path}: corrupt gzip data: ${(e as Error).message}`);
    }
  }
  return parseIdx(bytes, path);
}
