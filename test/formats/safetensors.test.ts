// Tests of src/formats/safetensors.ts: round trips, layout of what we write, files written by
// other writers (the shared parity fixtures, a Python writer), conversions, and every malformed
// header raising a FormatError that names the file and the tensor.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/formats/errors.ts';
import {
  parseSafetensors, serializeSafetensors, toFloat32, toFloat64, toInt, type RawTensor,
} from '../../src/formats/safetensors.ts';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'formats');
// The parity fixtures: the repository's copy, and the shared originals where this checkout has them.
const PARITY_DIRS = [join(import.meta.dirname, '..', 'fixtures', 'parity'), '/work/shared/fixtures'].filter((d) => existsSync(d));

/** A file from a raw header object and data section (for malformed cases). */
function rawFile(header: unknown, data = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

function rejects(bytes: Uint8Array, ...parts: (string | RegExp)[]): void {
  assert.throws(() => parseSafetensors(bytes, 'bad.safetensors'), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, /^bad\.safetensors: /);
    for (const p of parts) assert.match(e.message, typeof p === 'string' ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : p);
    return true;
  });
}

const ALL: Record<string, RawTensor> = {
  'b.f32': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) },
  'a.f64': { dtype: 'F64', shape: [3], data: new Float64Array([1 / 3, -1e300, Math.PI]) },
  'i64': { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 2n ** 40n]) },
  'i32': { dtype: 'I32', shape: [1, 2], data: new Int32Array([-7, 2 ** 31 - 1]) },
  'f16': { dtype: 'F16', shape: [4], data: new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]) },
  'bf16': { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc060]) },
  'u8': { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
  'i8': { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
  'bool': { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
  'scalar': { dtype: 'F32', shape: [], data: new Float32Array([2.5]) },
  'empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  '0': { dtype: 'F64', shape: [1], data: new Float64Array([9]) },
};

test('round trip of every dtype, 0-d and empty tensors, and metadata', () => {
  const meta = { fixture: 'x', config: '{"a": [1, 2]}', 'ünï': 'çødé' };
  const bytes = serializeSafetensors(ALL, meta);
  const back = parseSafetensors(bytes, 'rt.safetensors');
  assert.deepEqual(back.metadata, meta);
  assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(ALL).sort());
  for (const [name, t] of Object.entries(ALL)) {
    const b = back.tensors.get(name) as RawTensor;
    assert.equal(b.dtype, t.dtype, name);
    assert.deepEqual(b.shape, t.shape, name);
    assert.equal(b.data.constructor, t.data.constructor, name);
    assert.deepEqual(Array.from(b.data as ArrayLike<unknown>), Array.from(t.data as ArrayLike<unknown>), name);
  }
  // A Map serializes the same as a record, and a second round trip is byte-identical.
  assert.deepEqual(serializeSafetensors(new Map(Object.entries(ALL)), meta), bytes);
  assert.deepEqual(serializeSafetensors(back.tensors, back.metadata), bytes);
});

test('written layout: padded header, data at a multiple of 8, sorted names, metadata first', () => {
  for (const n of [0, 1, 2, 3, 5, 8, 13]) {
    const t: Record<string, RawTensor> = {};
    for (let i = 0; i < n; i++) t[`t${'x'.repeat(i)}`] = { dtype: 'U8', shape: [i], data: new Uint8Array(i).fill(i) };
    const bytes = serializeSafetensors(t, n % 2 ? { k: 'v'.repeat(n) } : undefined);
    const hn = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + hn) % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + hn));
    assert.match(text, /^\{.*\} *$/);
    if (n % 2) assert.ok(text.startsWith('{"__metadata__":'));
    const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
    const names = Object.keys(t).sort();
    let off = 0;
    for (const name of names) {
      assert.deepEqual(header[name]?.data_offsets, [off, off + (t[name] as RawTensor).data.byteLength]);
      off += (t[name] as RawTensor).data.byteLength;
    }
    assert.equal(bytes.byteLength, 8 + hn + off);
  }
  // Integer-like names keep sorted order in the header text (not JS object key order).
  const text = new TextDecoder().decode(serializeSafetensors({ b: ALL['0'] as RawTensor, '10': ALL['0'] as RawTensor, '9': ALL['0'] as RawTensor }));
  assert.ok(text.indexOf('"10"') < text.indexOf('"9"') && text.indexOf('"9"') < text.indexOf('"b"'));
});

test('parsed tensors are views when aligned and aligned copies when not', () => {
  const bytes = serializeSafetensors({ x: { dtype: 'F64', shape: [2], data: new Float64Array([1.5, -2]) } });
  const aligned = parseSafetensors(bytes).tensors.get('x') as RawTensor;
  assert.equal(aligned.data.buffer, bytes.buffer);
  const shifted = new Uint8Array(bytes.byteLength + 3);
  shifted.set(bytes, 3);
  const view = shifted.subarray(3);
  const x = parseSafetensors(view).tensors.get('x') as RawTensor;
  assert.notEqual(x.data.buffer, shifted.buffer);
  assert.deepEqual(Array.from(x.data as Float64Array), [1.5, -2]);
  assert.equal(toFloat32(x, 'x')[1], -2);
});

test('every parity fixture parses, with string metadata', () => {
  const files = PARITY_DIRS.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.safetensors')).map((f) => join(d, f)));
  assert.ok(files.length > 0);
  for (const f of files) {
    const st = parseSafetensors(readFileSync(f), f);
    assert.ok(st.tensors.size > 0, f);
    for (const [name, t] of st.tensors) {
      assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1), `${f} ${name}`);
      assert.equal(toFloat64(t, name).length, t.data.length);
    }
    for (const v of Object.values(st.metadata)) assert.equal(typeof v, 'string');
  }
});

test('files written by an independent (Python) writer parse, and our re-serialization matches it', () => {
  const bytes = readFileSync(join(FIX, 'vgg.expected.safetensors'));
  const st = parseSafetensors(bytes, 'vgg.expected.safetensors');
  const w = st.tensors.get('features.0.weight') as RawTensor;
  assert.equal(w.dtype, 'F32');
  assert.deepEqual(w.shape, [4, 3, 3, 3]);
  const nbt = st.tensors.get('features.3.num_batches_tracked') as RawTensor;
  assert.deepEqual([nbt.dtype, nbt.shape, Array.from(toInt(nbt, 'nbt'))], ['I64', [], [7]]);
  const ours = parseSafetensors(serializeSafetensors(st.tensors, st.metadata));
  for (const [k, t] of st.tensors) assert.deepEqual(Array.from((ours.tensors.get(k) as RawTensor).data as Float32Array), Array.from(t.data as Float32Array));
});

test('conversions: F16, BF16, I64, I32, BOOL to float; toInt exactness', () => {
  const f16 = toFloat32(ALL['f16'] as RawTensor, 'f16');
  assert.deepEqual(Array.from(f16), [1, -2, 65504, 2 ** -24]);
  const special: RawTensor = { dtype: 'F16', shape: [4], data: new Uint16Array([0x7c00, 0xfc00, 0x7e00, 0x8000]) };
  const s = toFloat64(special, 'special');
  assert.equal(s[0], Infinity);
  assert.equal(s[1], -Infinity);
  assert.ok(Number.isNaN(s[2]));
  assert.ok(Object.is(s[3], -0));
  assert.deepEqual(Array.from(toFloat32(ALL['bf16'] as RawTensor, 'bf16')), [1, -3.5]);
  assert.deepEqual(Array.from(toFloat64(ALL['i64'] as RawTensor, 'i64')), [-(2 ** 62), 2 ** 40]);
  assert.deepEqual(Array.from(toFloat32(ALL['i32'] as RawTensor, 'i32')), [-7, 2 ** 31]);
  assert.deepEqual(Array.from(toFloat64(ALL['bool'] as RawTensor, 'bool')), [1, 0]);
  const f32 = ALL['b.f32'] as RawTensor;
  assert.equal(toFloat32(f32, 'b'), f32.data); // no copy
  assert.deepEqual(Array.from(toInt({ dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 53n) + 1n, 5n]) }, 't')), [-(2 ** 53) + 1, 5]);
  assert.deepEqual(Array.from(toInt({ dtype: 'F32', shape: [2], data: new Float32Array([3, -4]) }, 't')), [3, -4]);
  assert.throws(() => toInt(ALL['i64'] as RawTensor, 'big'), /big: I64 element 0 .* beyond 2\^53/);
  assert.throws(() => toInt({ dtype: 'F64', shape: [2], data: new Float64Array([1, 1.5]) }, 'frac'), /frac: F64 element 1 = 1.5 is not an integer/);
});

test('writer validation: metadata strings only, matching data arrays, reserved name', () => {
  assert.throws(() => serializeSafetensors({}, { n: 3 } as unknown as Record<string, string>), /metadata\["n"\] must be a string, got number/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), /tensor "x": shape \[3\] has 3 elements, data has 2/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F64', shape: [2], data: new Float32Array(2) } }), /tensor "x": dtype F64 needs a Float64Array, got Float32Array/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F99', shape: [], data: new Float32Array(1) } as unknown as RawTensor }), /unknown dtype "F99"/);
  assert.throws(() => serializeSafetensors({ __metadata__: ALL['scalar'] as RawTensor }), /reserved/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }), /non-negative integers/);
});

test('malformed files raise a FormatError naming the file and the tensor', () => {
  const good = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
  const d8 = new Uint8Array(8);
  const entry = (o: object) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...o } });

  rejects(good.subarray(0, 5), 'shorter than the 8-byte header length');
  rejects(good.subarray(0, 20), 'header length', 'truncated file');
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  huge[8] = 0x7b;
  rejects(huge, 'exceeds the limit of 100000000 bytes');
  rejects(good.subarray(0, good.byteLength - 1), 'tensor "w"', 'run past the data section', 'truncated');
  rejects(rawFile(null, d8, '{"w": {"dtype": "F32",'), 'not valid JSON');
  rejects(rawFile(null, d8, '[1, 2]'), 'not an object');
  const badUtf8 = rawFile(null, d8, '{"w"}');
  badUtf8[9] = 0xff;
  rejects(badUtf8, 'header is not valid UTF-8');
  rejects(rawFile(entry({ dtype: 'F128' }), d8), 'tensor "w"', 'unknown dtype "F128"');
  rejects(rawFile(entry({ shape: [2.5] }), d8), 'tensor "w"', 'shape must be an array of non-negative integers');
  rejects(rawFile(entry({ shape: [-2] }), d8), 'tensor "w"', 'non-negative integers');
  rejects(rawFile(entry({ data_offsets: [0, 16] }), d8), 'tensor "w"', 'run past the data section of 8 bytes');
  rejects(rawFile(entry({ data_offsets: [8, 0] }), d8), 'tensor "w"', '0 <= begin <= end');
  rejects(rawFile(entry({ data_offsets: [0] }), d8), 'tensor "w"', 'data_offsets must be');
  rejects(rawFile(entry({ shape: [3] }), d8), 'tensor "w"', 'hold 8 bytes, but shape [3] of F32 needs 12');
  rejects(rawFile({ w: 3 }, d8), 'tensor "w"', 'must be an object');
  rejects(rawFile({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, new Uint8Array(12)), /tensor "b" .* overlap tensor "a"/);
  rejects(rawFile({ __metadata__: { n: 3 } }), '__metadata__["n"] must be a string, got number');
  rejects(rawFile({ __metadata__: { n: null } }), 'got null');
  rejects(rawFile({ __metadata__: ['x'] }), '__metadata__ must be an object of strings');
});

test('edge cases that are valid: empty file header, empty tensors sharing offsets, padding, __proto__ keys', () => {
  const e = parseSafetensors(rawFile({}));
  assert.equal(e.tensors.size, 0);
  const st = parseSafetensors(rawFile(null, new Uint8Array(4), '{"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},' +
    '"x":{"dtype":"I32","shape":[],"data_offsets":[0,4]},"e2":{"dtype":"F64","shape":[3,0],"data_offsets":[4,4]},' +
    '"__metadata__":{"__proto__":"p"}}    '));
  assert.deepEqual([...st.tensors.keys()], ['e1', 'x', 'e2']);
  assert.deepEqual((st.tensors.get('e2') as RawTensor).shape, [3, 0]);
  assert.equal(Object.getPrototypeOf(st.metadata), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(st.metadata, '__proto__')?.value, 'p');
});
