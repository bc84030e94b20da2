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
import { concat } from './builders.ts';

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
