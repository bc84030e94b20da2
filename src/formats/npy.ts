// NumPy `.npy` (format versions 1.0 - 3.0) for integer and float arrays: magic "\x93NUMPY",
// version, a little-endian header length, a Python-literal dict {'descr', 'fortran_order',
// 'shape'}, then the raw data. Used for the index lists taming's VectorQuantizer2 `remap` names.
// Not here: object arrays (pickles are never run), big-endian data, file I/O (io/ reads the file).

import { FormatError } from './errors.ts';

export interface NpyArray {
  /** the numpy dtype string, e.g. '<i8' */
  descr: string;
  shape: number[];
  /** the values as numbers (int64 beyond 2^53 is refused) */
  data: Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parse the bytes of a .npy file. */
export function parseNpy(bytes: Uint8Array, source = '<bytes>'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new FormatError(source, 'not a .npy file (no \\x93NUMPY magic)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, start: number;
  if (major === 1) { headerLen = view.getUint16(8, true); start = 10; }
  else if (major === 2 || major === 3) { headerLen = view.getUint32(8, true); start = 12; }
  else throw new FormatError(source, `unsupported .npy format version ${major}.${bytes[7]}`);
  if (start + headerLen > bytes.length) throw new FormatError(source, `header of ${headerLen} bytes runs past the end of the file (${bytes.length} bytes)`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new FormatError(source, `header is not a {'descr', 'fortran_order', 'shape'} dict: ${header.slice(0, 120)}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new FormatError(source, `bad shape (${shapeText})`);
  const n = shape.reduce((a, d) => a * d, 1);
  if (fortran === 'True' && shape.filter((d) => d > 1).length > 1) throw new FormatError(source, 'Fortran-ordered arrays of more than one dimension are not supported');
  const m = /^([<|=])([iuf])(\d)$/.exec(descr);
  if (!m) throw new FormatError(source, `dtype '${descr}' is not supported (little-endian integers or floats only)`);
  const kind = m[2]!, size = Number(m[3]);
  const off = start + headerLen;
  if (off + n * size > bytes.length) throw new FormatError(source, `data of ${n} x ${size} bytes runs past the end of the file`);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = off + i * size;
    let v: number;
    if (kind === 'f') {
      if (size === 4) v = view.getFloat32(p, true);
      else if (size === 8) v = view.getFloat64(p, true);
      else throw new FormatError(source, `float size ${size} is not supported`);
    } else if (size === 1) v = kind === 'i' ? view.getInt8(p) : view.getUint8(p);
    else if (size === 2) v = kind === 'i' ? view.getInt16(p, true) : view.getUint16(p, true);
    else if (size === 4) v = kind === 'i' ? view.getInt32(p, true) : view.getUint32(p, true);
    else if (size === 8) {
      const b = kind === 'i' ? view.getBigInt64(p, true) : view.getBigUint64(p, true);
      if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < -BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(source, `element ${i} (${b}) exceeds 2^53`);
      v = Number(b);
    } else throw new FormatError(source, `integer size ${size} is not supported`);
    data[i] = v;
  }
  return { descr, shape, data };
}
