// Tests of src/formats/torch-pickle.ts (and pickle.ts, zip.ts through it): checkpoints written by
// PyTorch 1.13 (scripts/make-format-fixtures.py) against their expected tensors, hostile pickles
// rejected without running anything, and hand-made edge cases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/formats/errors.ts';
import { unpickle } from '../../src/formats/pickle.ts';
import { parseSafetensors, type RawTensor } from '../../src/formats/safetensors.ts';
import { extractStateDict, resolveTorchGlobal } from '../../src/formats/torch-pickle.ts';
import { readTorchCheckpoint } from '../../src/formats/torch-checkpoint.ts';
import { crc32, crc32Js, readZipDirectory, readZipEntry, type ZipEntry } from '../../src/formats/zip.ts';
import { G, J, K, makeZip, NEWFALSE, PROTO2, pk, S, storageRef, torchZip, TUPLE1 } from './builders.ts';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'formats');
const read = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const values = (t: RawTensor) => Array.from(t.data as ArrayLike<number | bigint>);

function throwsFormat(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

const expected = parseSafetensors(read('lightning.expected.safetensors'), 'lightning.expected.safetensors');

for (const file of ['lightning.ckpt', 'lightning-p4.ckpt', 'lightning-p5.ckpt', 'lightning-deflate.ckpt']) {
  test(`${file}: Lightning checkpoint read as PyTorch wrote it`, () => {
    const tree = readTorchCheckpoint(read(file), file) as Record<string, unknown>;
    assert.equal(tree['global_step'], 3);
    assert.equal(tree['epoch'], 1);
    assert.equal(tree['pytorch-lightning_version'], '1.4.2');
    assert.deepEqual(tree['hyper_parameters'], {
      lr: 1e-4, betas: [0.9, 0.999], flag: true, off: false, none: null, big: 2n ** 70n, neg: -5,
      i32: -70000, name: 'ünï', ints: { 1: 'a', 2: 'b' }, raw: new Uint8Array([0, 255]), set: [3],
      nested: [[1, 2], { k: 'v' }],
    });
    const sd = extractStateDict(tree, '', file);
    assert.deepEqual([...sd.keys()], JSON.parse(expected.metadata['keys'] as string));
    for (const [k, want] of expected.tensors) {
      const got = sd.get(k) as RawTensor;
      assert.equal(got.dtype, want.dtype, k);
      assert.deepEqual(got.shape, want.shape, k);
      assert.equal(got.data.constructor, want.data.constructor, k);
      assert.deepEqual(values(got), values(want), k);
    }
  });
}

test('non-contiguous and shared-storage tensors come out contiguous with the right values', () => {
  const sd = extractStateDict(readTorchCheckpoint(read('lightning.ckpt'), 'lightning.ckpt'), 'model.');
  const w = values(sd.get('w') as RawTensor) as number[]; // [2, 3]
  const t = sd.get('t') as RawTensor; // w.t(): [3, 2]
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual(values(t), [w[0], w[3], w[1], w[4], w[2], w[5]]);
  const base = values(sd.get('base') as RawTensor); // [4, 4]
  assert.deepEqual(values(sd.get('rows') as RawTensor), base.slice(4, 12));
  assert.deepEqual(values(sd.get('col') as RawTensor), [base[1], base[5], base[9], base[13]]);
  const nc3 = sd.get('nc3') as RawTensor; // arange(24).reshape(2, 3, 4).permute(2, 0, 1): [4, 2, 3]
  assert.deepEqual(nc3.shape, [4, 2, 3]);
  const want: number[] = [];
  for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) want.push(i * 12 + j * 4 + k);
  assert.deepEqual(values(nc3), want);
  assert.deepEqual((sd.get('s') as RawTensor).shape, []);
  assert.deepEqual(values(sd.get('s') as RawTensor), [3.25]);
  assert.deepEqual((sd.get('e') as RawTensor).shape, [0, 3]);
  assert.deepEqual(values(sd.get('i') as RawTensor), [-2n, 0n, 2n ** 40n]);
});

test('vgg.pth: torch.save(model.state_dict()) with features.N keys; prefix filtering', () => {
  const want = parseSafetensors(read('vgg.expected.safetensors'));
  const tree = readTorchCheckpoint(read('vgg.pth'), 'vgg.pth');
  const sd = extractStateDict(tree);
  assert.deepEqual([...sd.keys()].sort(), [...want.tensors.keys()].sort());
  assert.deepEqual((sd.get('features.0.weight') as RawTensor).shape, [4, 3, 3, 3]);
  for (const [k, t] of want.tensors) assert.deepEqual(values(sd.get(k) as RawTensor), values(t), k);
  const features = extractStateDict(tree, 'features.');
  assert.deepEqual([...features.keys()].slice(0, 2), ['0.weight', '0.bias']);
  assert.equal(features.size, 9);
  throwsFormat(() => extractStateDict(tree, 'model.', 'vgg.pth'), 'vgg.pth', 'no state_dict key starts with "model."');
});

test('malicious pickles are rejected by name and nothing runs', () => {
  const marker = '/tmp/ldm-formats-pwned';
  const before = existsSync(marker);
  throwsFormat(() => readTorchCheckpoint(read('malicious-os-system.ckpt'), 'malicious-os-system.ckpt'),
    'malicious-os-system.ckpt', 'global "os.system" is not allowed');
  throwsFormat(() => readTorchCheckpoint(read('malicious-eval.ckpt'), 'malicious-eval.ckpt'),
    'malicious-eval.ckpt', 'global "builtins.eval" is not allowed');
  // Even in stub mode the call is only recorded.
  const stubbed = readTorchCheckpoint(read('malicious-os-system.ckpt'), 'x', { unknownGlobals: 'stub' });
  assert.deepEqual(stubbed, { __global__: 'os.system', args: ['touch /tmp/ldm-formats-pwned'] });
  for (const [m, n] of [['builtins', 'getattr'], ['__builtin__', 'eval'], ['subprocess', 'Popen'], ['torch', 'load'],
    ['torch._utils', '_rebuild_device_tensor_from_numpy'], ['collections', 'Counter'], ['torch', 'constructor']]) {
    throwsFormat(() => unpickle(pk(PROTO2, G(m as string, n as string), ')R.'), 'evil.pkl', { resolveGlobal: resolveTorchGlobal }),
      'evil.pkl', `global "${m}.${n}" is not allowed`);
  }
  // STACK_GLOBAL (protocol 4) goes through the same allow-list.
  throwsFormat(() => unpickle(pk([0x80, 4], S('os'), S('system'), [0x93], S('id'), TUPLE1, 'R.'), 'p4', { resolveGlobal: resolveTorchGlobal }), 'global "os.system"');
  assert.equal(existsSync(marker), before);
});

test('globals outside the allow-list: error by default, inert stubs on request', () => {
  throwsFormat(() => readTorchCheckpoint(read('callbacks.ckpt'), 'callbacks.ckpt'),
    'callbacks.ckpt', 'global "__main__.UserCallback" is not allowed', 'unknownGlobals');
  const tree = readTorchCheckpoint(read('callbacks.ckpt'), 'callbacks.ckpt', { unknownGlobals: 'stub' }) as
    { callbacks: { cb: { __global__: string; state: { monitor: string; best: { __global__: string } } } } };
  assert.deepEqual(values(extractStateDict(tree).get('w') as RawTensor), [1, 1]);
  assert.equal(tree.callbacks.cb.__global__, '__main__.UserCallback');
  assert.equal(tree.callbacks.cb.state.monitor, 'val/loss');
  assert.equal(tree.callbacks.cb.state.best.__global__, 'numpy.core.multiarray.scalar');
});

test('foreign formats raise clear errors (legacy torch.save: torch-legacy.test.ts)', () => {
  throwsFormat(() => readTorchCheckpoint(new TextEncoder().encode('hello world'), 'x.ckpt'), 'x.ckpt', 'not a PyTorch checkpoint');
  throwsFormat(() => readTorchCheckpoint(read('lightning.expected.safetensors'), 'y.ckpt'), 'y.ckpt', 'not a PyTorch checkpoint');
  throwsFormat(() => readTorchCheckpoint(torchZip(pk('N.')).subarray(0, 40), 'cut.ckpt'), 'cut.ckpt', 'end of central directory not found');
  const ts = torchZip(pk('N.'), {}, [{ name: 'archive/constants.pkl', data: 'x' }, { name: 'b/data.pkl', data: 'N.' }]);
  throwsFormat(() => readTorchCheckpoint(ts, 'ts.pt'), 'found 2', 'TorchScript');
  const big = torchZip(pk('N.'), {}, [{ name: 'archive/byteorder', data: 'big' }]);
  throwsFormat(() => readTorchCheckpoint(big, 'be.ckpt'), 'byteorder "big" is not supported');
});

test('zip layer: CRC mismatch, data past the end, deflate entries, bad directory', () => {
  const bytes = read('lightning.ckpt').slice();
  const e = readZipDirectory(bytes, 'x').get('lightning/data/0') as ZipEntry;
  const dv = new DataView(bytes.buffer);
  const start = e.localHeaderOffset + 30 + dv.getUint16(e.localHeaderOffset + 26, true) + dv.getUint16(e.localHeaderOffset + 28, true);
  bytes[start] = (bytes[start] as number) ^ 0xff;
  throwsFormat(() => readTorchCheckpoint(bytes, 'flip.ckpt'), 'flip.ckpt', 'entry "lightning/data/0"', 'CRC-32 mismatch');
  assert.equal(readZipEntry(bytes, { ...e, crc32: crc32(bytes.subarray(start, start + e.size)) }, 'x').byteLength, e.size);
  throwsFormat(() => readZipEntry(bytes, { ...e, compressedSize: 1e9, size: 1e9 }, 'big.ckpt'), 'big.ckpt', 'runs past the end', 'truncated');
  throwsFormat(() => readZipEntry(bytes, { ...e, method: 12 }, 'bz.ckpt'), 'compression method 12 is not supported');
  throwsFormat(() => readZipEntry(bytes, { ...e, localHeaderOffset: 3 }, 'lh.ckpt'), 'local header expected at offset 3');
  // deflated pickle and storage
  const pkl = pk(PROTO2, '}', S('a'), V2([4], [1]), 's.');
  const z = makeZip([{ name: 'm/data.pkl', data: pkl, deflate: true },
    { name: 'm/data/0', data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), deflate: true }]);
  assert.deepEqual(values((readTorchCheckpoint(z, 'z') as { a: RawTensor }).a), [1, 2, 3, 4]);
  const corrupt = z.slice();
  corrupt[40] = (corrupt[40] as number) ^ 0x55;
  throwsFormat(() => readTorchCheckpoint(corrupt, 'c.ckpt'), 'c.ckpt', 'm/data.pkl');
  // central directory pointing outside the file
  const cd = torchZip(pk('N.')).slice();
  new DataView(cd.buffer).setUint32(cd.byteLength - 6, 1e6, true);
  throwsFormat(() => readZipDirectory(cd, 'cd.zip'), 'cd.zip', 'central directory [1000000');
  const check = new TextEncoder().encode('123456789');
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(crc32Js(check), 0xcbf43926);
  const rnd = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
  assert.equal(crc32Js(rnd), crc32(rnd));
});

/** A zip with one F32 storage "0" holding `vals`, and the given pickle. */
const withStorage = (pickle: Uint8Array, vals: number[]) =>
  torchZip(pickle, { '0': new Uint8Array(new Float32Array(vals).buffer) });
const V2 = (size: number[], stride: number[], offset = 0) => pk(
  G('torch._utils', '_rebuild_tensor_v2'), '(', storageRef(['torch', 'FloatStorage'], '0', 4), K(offset),
  '(', ...size.map(K), 't', '(', ...stride.map(K), 't', NEWFALSE, G('collections', 'OrderedDict'), ')R', 't', 'R');

test('hand-made tensor pickles: v2 strides, bounds, _rebuild_from_type_v2, v3 with dtype', () => {
  const t = readTorchCheckpoint(withStorage(pk(PROTO2, V2([2, 2], [1, 2]), '.'), [1, 2, 3, 4]), 'a') as RawTensor;
  assert.deepEqual([t.shape, values(t)], [[2, 2], [1, 3, 2, 4]]);
  const o = readTorchCheckpoint(withStorage(pk(PROTO2, V2([2], [1], 2), '.'), [1, 2, 3, 4]), 'a') as RawTensor;
  assert.deepEqual(values(o), [3, 4]);
  const bc = readTorchCheckpoint(withStorage(pk(PROTO2, V2([3, 2], [0, 1], 1), '.'), [1, 2, 3, 4]), 'a') as RawTensor;
  assert.deepEqual(values(bc), [2, 3, 2, 3, 2, 3]); // stride 0 (expand)
  throwsFormat(() => readTorchCheckpoint(withStorage(pk(PROTO2, V2([5], [1]), '.'), [1, 2, 3, 4]), 'oob.ckpt'),
    'oob.ckpt', 'reaches element 4 of storage "0" which holds 4 F32 elements');
  throwsFormat(() => readTorchCheckpoint(torchZip(pk(PROTO2, V2([1], [1]), '.')), 'nostore.ckpt'), 'storage "0" has no entry "archive/data/0"');
  // _rebuild_from_type_v2(_rebuild_tensor_v3, torch.Tensor, (untyped storage, ..., torch.float32), {})
  const v3 = pk(PROTO2, G('torch._tensor', '_rebuild_from_type_v2'), '(', G('torch._utils', '_rebuild_tensor_v3'), G('torch', 'Tensor'),
    '(', storageRef(['torch.storage', 'UntypedStorage'], '0', 16), K(1), '(', K(2), 't', '(', K(1), 't', NEWFALSE,
    G('collections', 'OrderedDict'), ')R', G('torch', 'float32'), 't', '}', 't', 'R.');
  const r = readTorchCheckpoint(withStorage(v3, [1, 2, 3, 4]), 'v3') as RawTensor;
  assert.deepEqual([r.dtype, r.shape, values(r)], ['F32', [2], [2, 3]]);
  const sub = pk(PROTO2, G('torch._tensor', '_rebuild_from_type_v2'), '(', G('torch._utils', '_rebuild_parameter'), G('torch', 'Tensor'), ')}tR.');
  throwsFormat(() => readTorchCheckpoint(torchZip(sub), 'p'), 'parameter rebuild: argument is not a tensor');
});

test('pickle VM: values, memo, prototype safety, and malformed streams', () => {
  const up = (...p: Parameters<typeof pk>) => unpickle(pk(...p), 't.pkl', { resolveGlobal: resolveTorchGlobal });
  // protocol 0 text opcodes
  assert.deepEqual(up('(lp0\nI1\naI01\naL-123456789012345678901L\naF1.5\naI-3\na.'), [1, true, -123456789012345678901n, 1.5, -3]);
  // LONG1, BINFLOAT (big-endian), BININT2, SHORT_BINUNICODE, BINBYTES, EMPTY_SET / ADDITEMS, DICT, memo
  const f = new Uint8Array(8);
  new DataView(f.buffer).setFloat64(0, -0.1, false);
  const r = up([0x80, 4], ']', [0x94], '(', [0x8a, 2, 0x00, 0x80], [0x8a, 1, 0xff], [0x8a, 0], 'G', f, 'M', [0x34, 0x12],
    [0x8c, 2], 'hi', 'C', [2, 7, 8], [0x8f], '(', K(5), [0x90], '(', S('k'), 'N', 'd', 'h', [0], 'e.') as unknown[];
  assert.equal(r.pop(), r); // memo 0 is the list itself: a cycle, as in Python
  assert.deepEqual(r, [-32768, -1, 0, -0.1, 0x1234, 'hi', new Uint8Array([7, 8]), [5], { k: null }]);
  // a "__proto__" key becomes an own property; Object.prototype is untouched
  const o = up(PROTO2, '}', S('__proto__'), '}', S('polluted'), [0x88], 's', 's.') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(o, '__proto__')?.value, { polluted: true });
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  // non-string keys as Python prints them
  assert.deepEqual(up(PROTO2, '}(', K(1), S('a'), 'N', S('b'), [0x88], S('c'), 'u.'), { 1: 'a', None: 'b', True: 'c' });
  // OrderedDict state (state_dict _metadata) is dropped; OrderedDict([(k, v)]) works
  assert.deepEqual(up(PROTO2, G('collections', 'OrderedDict'), ')R', '}', S('_metadata'), K(1), 's', 'b.'), {});
  assert.deepEqual(up(PROTO2, G('collections', 'OrderedDict'), ']', '(', S('x'), K(2), 't', 'a', TUPLE1, 'R.'), { x: 2 });
  // malformed
  throwsFormat(() => up(PROTO2, '}', S('a')), 't.pkl', 'truncated pickle');
  throwsFormat(() => up(PROTO2, J(1).slice(0, 3)), 'truncated pickle');
  throwsFormat(() => up(PROTO2, 't.'), 'no MARK on the stack');
  throwsFormat(() => up(PROTO2, '(R.'), 'stack underflow');
  throwsFormat(() => up(PROTO2, 'h', [5], '.'), 'memo key 5 is not defined');
  throwsFormat(() => up(PROTO2, 'N', 'N.'), 'STOP with an unbalanced stack');
  throwsFormat(() => up(PROTO2, '(i__main__\nX\n.'), 'opcode INST is not supported');
  throwsFormat(() => up(PROTO2, [0x82, 1], '.'), 'opcode EXT1 is not supported');
  throwsFormat(() => up([0x80, 6], 'N.'), 'pickle protocol 6 is not supported');
  throwsFormat(() => up(PROTO2, 'N', S('k'), K(1), 's.'), 'SETITEM(S) on a value that is not a dict');
  throwsFormat(() => up(PROTO2, ']', 'N', 'b.'), 'BUILD on a value that has no state');
  throwsFormat(() => up(PROTO2, S('x'), ')R.'), 'call of a value that is not a global');
  throwsFormat(() => up(PROTO2, G('torch', 'Tensor'), ')R.'), 'global "torch.Tensor" is not callable here');
  throwsFormat(() => up(PROTO2, 'X', [2, 0, 0, 0], [0xff, 0xfe], '.'), 'string is not valid UTF-8');
  throwsFormat(() => up(PROTO2, '(', S('storage'), 't', 'Q.'), 'persistent id without a loader');
  throwsFormat(() => up([0x95, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 'N.'), 'exceeds the pickle size');
});

test('extractStateDict: top-level mappings, Lightning state_dict, clear errors', () => {
  const t: RawTensor = { dtype: 'F32', shape: [1], data: new Float32Array([1]) };
  assert.deepEqual([...extractStateDict({ a: t, b: t }).keys()], ['a', 'b']);
  assert.deepEqual([...extractStateDict({ state_dict: { 'model.a': t }, epoch: 1 }, 'model.').keys()], ['a']);
  throwsFormat(() => extractStateDict({ net_model: { a: t }, step: 3 }, '', 'ckpt.pt'), 'ckpt.pt', 'no state_dict found', '{net_model, step}');
  throwsFormat(() => extractStateDict([t]), 'no state_dict found');
  throwsFormat(() => extractStateDict({ state_dict: { a: t, b: 3 } }), 'state_dict entry "b" is not a tensor');
});
