// Tests of src/formats/torch-legacy.ts: files PyTorch 1.13 wrote with
// `torch.save(..., _use_new_zipfile_serialization=False)` (scripts/make-format-fixtures.py) read to
// the same tensors as the zip format; a hostile legacy pickle is refused and runs nothing; every
// malformed part of the layout (magic, protocol, sys_info, storage list, counts, data) is one line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/formats/errors.ts';
import { unpickleAt } from '../../src/formats/pickle.ts';
import { parseSafetensors, type RawTensor } from '../../src/formats/safetensors.ts';
import { extractStateDict } from '../../src/formats/torch-pickle.ts';
import { readTorchCheckpoint } from '../../src/formats/torch-checkpoint.ts';
import { looksLikeLegacyTorch } from '../../src/formats/torch-legacy.ts';
import { concat, G, J, K, NEWFALSE, pk, PROTO2, S } from './builders.ts';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'formats');
const read = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const values = (t: RawTensor) => Array.from(t.data as ArrayLike<number | bigint>);

function throwsFormat(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

const expected = parseSafetensors(read('lightning.expected.safetensors'), 'lightning.expected.safetensors');

for (const file of ['lightning-legacy.ckpt', 'lightning-legacy-p4.ckpt']) {
  test(`${file}: the legacy format reads to the same tree as the zip format`, () => {
    const bytes = read(file);
    assert.ok(looksLikeLegacyTorch(bytes));
    const tree = readTorchCheckpoint(bytes, file) as Record<string, unknown>;
    const zip = readTorchCheckpoint(read('lightning.ckpt'), 'lightning.ckpt') as Record<string, unknown>;
    for (const k of ['global_step', 'epoch', 'pytorch-lightning_version', 'hyper_parameters']) assert.deepEqual(tree[k], zip[k], k);
    const sd = extractStateDict(tree, '', file);
    assert.deepEqual([...sd.keys()], JSON.parse(expected.metadata['keys'] as string));
    for (const [k, want] of expected.tensors) {
      const got = sd.get(k) as RawTensor;
      assert.deepEqual([got.dtype, got.shape, got.data.constructor], [want.dtype, want.shape, want.data.constructor], k);
      assert.deepEqual(values(got), values(want), k);
    }
  });
}

test('legacy.pth: a plain state dict', () => {
  const sd = extractStateDict(readTorchCheckpoint(read('legacy.pth'), 'legacy.pth'));
  assert.deepEqual([...sd.keys()], ['w']);
  assert.deepEqual(values(sd.get('w') as RawTensor), [1, 1]);
});

test('a hostile legacy pickle is refused by name and nothing runs', () => {
  const marker = '/tmp/ldm-formats-pwned';
  const before = existsSync(marker);
  throwsFormat(() => readTorchCheckpoint(read('malicious-legacy.pth'), 'malicious-legacy.pth'),
    'malicious-legacy.pth', 'global "__builtin__.eval" is not allowed'); // protocol 2 names
  const stub = readTorchCheckpoint(read('malicious-legacy.pth'), 'm', { unknownGlobals: 'stub' }) as Record<string, unknown>;
  assert.deepEqual((stub['x'] as { __global__: string }).__global__, '__builtin__.eval');
  assert.equal(existsSync(marker), before);
});

/** Offsets of the parts of a legacy file: [magic end, protocol end, sys_info end, object end, key list end]. */
function parts(bytes: Uint8Array): number[] {
  const ends: number[] = [];
  let at = 0;
  for (let i = 0; i < 5; i++) {
    // the object pickle needs its loader; skip it by the offsets the reader itself validates
    if (i === 3) {
      const keysAt = findKeyList(bytes, at);
      ends.push(keysAt);
      at = keysAt;
      continue;
    }
    at = unpickleAt(bytes, at, 'x').end;
    ends.push(at);
  }
  return ends;
}
/** The last PROTO opcode before the storage data starts: the key-list pickle. */
function findKeyList(bytes: Uint8Array, from: number): number {
  for (let p = bytes.byteLength - 1; p > from; p--) {
    if (bytes[p] !== 0x80 || bytes[p + 1] !== 2 || bytes[p - 1] !== 0x2e) continue;
    try {
      const r = unpickleAt(bytes, p, 'x');
      if (Array.isArray(r.value) && r.value.every((k) => typeof k === 'string')) return p;
    } catch { /* not a pickle start */ }
  }
  throw new Error('no key list');
}

test('malformed legacy files: each defect is one clear line naming the file', () => {
  const good = read('lightning-legacy.ckpt');
  const [magicEnd, protoEnd, , objEnd, keysEnd] = parts(good) as [number, number, number, number, number];
  const edit = (at: number, f: (dv: DataView) => void): Uint8Array => {
    const b = good.slice();
    f(new DataView(b.buffer, at));
    return b;
  };
  throwsFormat(() => readTorchCheckpoint(edit(4, (d) => d.setUint8(0, 0x6d)), 'magic.ckpt'), 'magic.ckpt', 'magic number is wrong');
  // protocol version: BININT2 1001 -> 1002
  const pv = good.indexOf(0xe9, magicEnd);
  assert.ok(pv > 0 && pv < protoEnd);
  throwsFormat(() => readTorchCheckpoint(edit(pv, (d) => d.setUint8(0, 0xea)), 'proto.ckpt'), 'proto.ckpt', 'protocol version 1002 is not 1001');
  // sys_info little_endian True -> False
  const le = Buffer.from(good).indexOf('little_endian') + 'little_endian'.length + 2;
  assert.equal(good[le], 0x88);
  throwsFormat(() => readTorchCheckpoint(edit(le, (d) => d.setUint8(0, 0x89)), 'be.ckpt'), 'be.ckpt', 'big-endian');
  // storage element count
  throwsFormat(() => readTorchCheckpoint(edit(keysEnd, (d) => d.setBigInt64(0, 12345n, true)), 'count.ckpt'),
    'count.ckpt', 'holds 12345 elements, its tensors declare');
  // truncated data, trailing data, cut pickles
  throwsFormat(() => readTorchCheckpoint(good.subarray(0, good.byteLength - 3), 'cut.ckpt'), 'cut.ckpt', 'truncated?');
  throwsFormat(() => readTorchCheckpoint(concat([good, new Uint8Array(5)]), 'tail.ckpt'), 'tail.ckpt', '5 unexpected bytes after the last storage');
  throwsFormat(() => readTorchCheckpoint(good.subarray(0, objEnd + 3), 'obj.ckpt'), 'obj.ckpt', 'truncated pickle');
  throwsFormat(() => readTorchCheckpoint(good.subarray(0, protoEnd), 'sys.ckpt'), 'sys.ckpt', 'file ends before the sys_info');
  // the tar format of PyTorch < 1.0
  const tar = new Uint8Array(600);
  tar[0] = 0x80;
  tar.set(new TextEncoder().encode('ustar'), 257);
  throwsFormat(() => readTorchCheckpoint(tar, 'old.tar'), 'old.tar', 'tar torch.save format is not supported');
  // a pickle that is not a torch file
  throwsFormat(() => readTorchCheckpoint(Uint8Array.from([0x80, 2, 0x4b, 7, 0x2e]), 'seven.pkl'), 'seven.pkl', 'magic number is wrong');
});

/** A legacy file built by hand: header pickles, `obj` (the object pickle), keys, raw storages. */
function legacyFile(obj: Uint8Array, keys: string[], storages: [bigint, Uint8Array][]): Uint8Array {
  const magic = pk(PROTO2, [0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], '.');
  const proto = pk(PROTO2, 'M', [0xe9, 0x03], '.');
  const sys = pk(PROTO2, '}', S('little_endian'), [0x88], 's.');
  const keyList = pk(PROTO2, '(', ...keys.map(S), 'l.');
  const data = storages.map(([n, b]) => {
    const c = new Uint8Array(8);
    new DataView(c.buffer).setBigInt64(0, n, true);
    return concat([c, b]);
  });
  return concat([magic, proto, sys, obj, keyList, ...data]);
}
/** ('storage', torch.FloatStorage, key, 'cpu', numel, view) BINPERSID */
const legacyRef = (key: string, numel: number, view: Uint8Array | null = null): Uint8Array =>
  pk('(', S('storage'), G('torch', 'FloatStorage'), S(key), S('cpu'), J(numel), view ?? 'N', 't', 'Q');
const v2 = (ref: Uint8Array, offset: number, size: number[], stride: number[]): Uint8Array => pk(
  G('torch._utils', '_rebuild_tensor_v2'), '(', ref, K(offset), '(', ...size.map(K), 't', '(', ...stride.map(K), 't', NEWFALSE,
  G('collections', 'OrderedDict'), ')R', 't', 'R');
const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

test('hand-made legacy files: storage views (pre-1.x view_metadata), shared storages, bad ids', () => {
  // {'a': tensor over the whole storage, 'b': tensor over the view [2, 4) of the same root}
  const view = pk('(', S('v1'), K(2), K(2), 't');
  const obj = pk(PROTO2, '}(', S('a'), v2(legacyRef('r', 4), 0, [2, 2], [2, 1]), S('b'), v2(legacyRef('r', 4, view), 0, [2], [1]), 'u.');
  const tree = readTorchCheckpoint(legacyFile(obj, ['r'], [[4n, f32(1, 2, 3, 4)]]), 'views.pt') as Record<string, RawTensor>;
  assert.deepEqual(values(tree['a'] as RawTensor), [1, 2, 3, 4]);
  assert.deepEqual(values(tree['b'] as RawTensor), [3, 4]);
  const outside = pk(PROTO2, v2(legacyRef('r', 4, pk('(', S('v'), K(3), K(2), 't')), 0, [2], [1]), '.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(outside, ['r'], [[4n, f32(1, 2, 3, 4)]]), 'vo.pt'), 'vo.pt', 'storage view "v" [3, 5) lies outside');
  const one = pk(PROTO2, v2(legacyRef('r', 2), 0, [2], [1]), '.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(one, [], []), 'nodata.pt'), 'nodata.pt', 'storage "r" is referenced but its data is not in the file');
  throwsFormat(() => readTorchCheckpoint(legacyFile(one, ['r', 'x'], [[2n, f32(1, 2)]]), 'extra.pt'), 'extra.pt', 'storage "x" is listed but no tensor refers to it');
  throwsFormat(() => readTorchCheckpoint(legacyFile(one, ['r'], [[2n, f32(1)]]), 'short.pt'), 'short.pt', 'needs 8 bytes', 'truncated?');
  const twice = pk(PROTO2, '(', v2(legacyRef('r', 2), 0, [2], [1]), v2(legacyRef('r', 3), 0, [2], [1]), 'l.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(twice, ['r'], [[2n, f32(1, 2)]]), 'twice.pt'), 'declared twice with different types or sizes');
  const mod = pk(PROTO2, '(', S('module'), 'N', 'N', 'N', 't', 'Q.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(mod, [], []), 'module.pt'), 'module.pt', 'pickles a whole nn.Module');
  const neg = pk(PROTO2, v2(legacyRef('r', 2), 0, [2], [1]), '.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(neg, ['r'], [[-1n, f32(1, 2)]]), 'neg.pt'), 'holds -1 elements, its tensors declare 2');
  // a huge declared count does not allocate: it is checked against the bytes the file has
  const huge = pk(PROTO2, v2(legacyRef('r', 0x7fffffff), 0, [2], [1]), '.');
  throwsFormat(() => readTorchCheckpoint(legacyFile(huge, ['r'], [[0x7fffffffn, f32(1, 2)]]), 'huge.pt'), 'huge.pt', 'truncated?');
});
