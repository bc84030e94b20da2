// `ldm convert` and the torch zip writer, with no Python: the archive we write is checked
// structurally (zip entries in torch's order, 64-byte aligned stored data, the pickle's opcodes and
// globals limited to what `torch.load(weights_only=True)` accepts), read back by our own reader,
// and every tensor compared byte for byte with its source through round trips
// .ckpt (zip / legacy) -> .safetensors -> .ckpt. Torch itself reading these files is proven by
// scripts/fixtures/check-torch-convert.py (run by hand).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseSafetensors, readTorchCheckpoint, extractStateDict, serializeTorchCheckpoint, readZipDirectory, readZipEntry, type RawTensor,
} from '../../src/formats/index.ts';
import { convertWeights, emaAsModelWeights, readRawWeights } from '../../src/io/index.ts';

const ROOT = join(import.meta.dirname, '../..');
const FORMATS = join(ROOT, 'test/fixtures/formats');
const PARITY = join(ROOT, 'test/fixtures/parity');
const bytesOf = (t: RawTensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function sameTensors(got: ReadonlyMap<string, RawTensor>, want: ReadonlyMap<string, RawTensor>, what: string): void {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: names and order`);
  for (const [k, w] of want) {
    const g = got.get(k)!;
    assert.deepEqual([g.dtype, g.shape], [w.dtype, w.shape], `${what}: ${k}`);
    assert.ok(Buffer.from(bytesOf(g)).equals(Buffer.from(bytesOf(w))), `${what}: ${k} bytes differ`);
  }
}

/** Walk a protocol-2 pickle: the opcodes and GLOBAL names it uses (fails on any other opcode). */
function pickleOps(p: Uint8Array): { ops: Set<string>; globals: Set<string> } {
  const ops = new Set<string>(), globals = new Set<string>();
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const args: Record<number, (at: number) => number> = {
    0x80: () => 1, 0x4b: () => 1, 0x4d: () => 2, 0x4a: () => 4, 0x8a: (at) => 1 + p[at]!,
    0x58: (at) => 4 + dv.getUint32(at, true),
    0x63: (at) => { const a = p.indexOf(10, at), b = p.indexOf(10, a + 1); globals.add(`${Buffer.from(p.subarray(at, a)).toString()}.${Buffer.from(p.subarray(a + 1, b)).toString()}`); return b + 1 - at; },
  };
  const names: Record<number, string> = {
    0x80: 'PROTO', 0x7d: 'EMPTY_DICT', 0x28: 'MARK', 0x58: 'BINUNICODE', 0x63: 'GLOBAL', 0x29: 'EMPTY_TUPLE', 0x52: 'REDUCE',
    0x74: 'TUPLE', 0x51: 'BINPERSID', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x4a: 'BININT', 0x8a: 'LONG1', 0x89: 'NEWFALSE',
    0x88: 'NEWTRUE', 0x4e: 'NONE', 0x75: 'SETITEMS', 0x2e: 'STOP',
  };
  for (let at = 0; at < p.byteLength;) {
    const op = p[at++]!;
    const name = names[op];
    assert.ok(name !== undefined, `opcode 0x${op.toString(16)} at ${at - 1} is outside the weights-only set`);
    ops.add(name);
    at += args[op]?.(at) ?? 0;
    if (op === 0x2e) assert.equal(at, p.byteLength, 'STOP ends the pickle');
  }
  return { ops, globals };
}

const lightning = (): Map<string, RawTensor> => {
  const f = parseSafetensors(new Uint8Array(readFileSync(join(FORMATS, 'lightning.expected.safetensors'))));
  return new Map((JSON.parse(f.metadata['keys']!) as string[]).map((k) => [k, f.tensors.get(k)!]));
};

test('serializeTorchCheckpoint: torch zip layout, weights-only pickle, tensors read back byte-exact', () => {
  const src = lightning(); // F32 F64 I64 F16 BF16 I32 U8 I8 BOOL, 0-d and empty tensors
  const bytes = serializeTorchCheckpoint(src, { global_step: 1234, big: 2n ** 40n });
  const dir = readZipDirectory(bytes, 'w.ckpt');
  assert.deepEqual([...dir.keys()], ['archive/data.pkl', 'archive/byteorder', ...[...src.keys()].map((_, k) => `archive/data/${k}`), 'archive/version']);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  for (const e of dir.values()) {
    assert.equal(e.method, 0, `${e.name} stored`);
    const start = e.localHeaderOffset + 30 + dv.getUint16(e.localHeaderOffset + 26, true) + dv.getUint16(e.localHeaderOffset + 28, true);
    assert.equal(start % 64, 0, `${e.name} data aligned to 64 bytes`);
  }
  assert.equal(Buffer.from(readZipEntry(bytes, dir.get('archive/version')!)).toString(), '3\n');
  assert.equal(Buffer.from(readZipEntry(bytes, dir.get('archive/byteorder')!)).toString(), 'little');
  const { ops, globals } = pickleOps(readZipEntry(bytes, dir.get('archive/data.pkl')!));
  assert.ok(!ops.has('BINFLOAT'));
  assert.deepEqual([...globals].sort(), ['collections.OrderedDict', 'torch.BFloat16Storage', 'torch.BoolStorage', 'torch.ByteStorage',
    'torch.CharStorage', 'torch.DoubleStorage', 'torch.FloatStorage', 'torch.HalfStorage', 'torch.IntStorage', 'torch.LongStorage',
    'torch._utils._rebuild_tensor_v2']);
  const tree = readTorchCheckpoint(bytes, 'w.ckpt') as Record<string, unknown>;
  assert.deepEqual(Object.keys(tree), ['state_dict', 'global_step', 'big']);
  assert.equal(tree['global_step'], 1234);
  assert.equal(tree['big'], 2 ** 40);
  sameTensors(extractStateDict(tree), src, 'read back');
});

test('convert round trips: zip and legacy .ckpt -> .safetensors -> .ckpt, byte-exact, deterministic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-convert-'));
  try {
    const src = readRawWeights(join(FORMATS, 'lightning.ckpt'));
    assert.equal(src.step, 3);
    const a = convertWeights(join(FORMATS, 'lightning.ckpt'), join(dir, 'a.safetensors'));
    assert.deepEqual([a.format, a.tensors, a.step], ['safetensors', src.tensors.size, 3]);
    convertWeights(join(dir, 'a.safetensors'), join(dir, 'b.ckpt'));
    convertWeights(join(dir, 'b.ckpt'), join(dir, 'c.safetensors'));
    convertWeights(join(FORMATS, 'lightning-legacy.ckpt'), join(dir, 'd.pth'));
    for (const f of ['a.safetensors', 'b.ckpt', 'c.safetensors', 'd.pth']) {
      const w = readRawWeights(join(dir, f));
      sameTensors(w.tensors, src.tensors, f);
      assert.equal(w.step, 3, `${f} step`);
    }
    assert.ok(readFileSync(join(dir, 'a.safetensors')).equals(readFileSync(join(dir, 'c.safetensors'))), 'safetensors written twice identically');
    assert.ok(readFileSync(join(dir, 'b.ckpt')).equals(readFileSync(join(dir, 'd.pth'))), 'the same tensors give the same archive from zip and legacy sources');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--ema: model.* take their model_ema.* shadows (official LitEma names); clear errors', () => {
  const t = (v: number): RawTensor => ({ dtype: 'F32', shape: [2], data: new Float32Array([v, v]) });
  const src = new Map([['model.diffusion_model.out.0.weight', t(1)], ['model_ema.diffusion_modelout0weight', t(2)], ['betas', t(3)],
    ['model_ema.num_updates', { dtype: 'I32', shape: [], data: new Int32Array([5]) } as RawTensor]]);
  const r = emaAsModelWeights(src, 'x');
  assert.equal(r.replaced, 1);
  assert.deepEqual([...r.tensors.keys()], [...src.keys()]);
  assert.deepEqual([...r.tensors.get('model.diffusion_model.out.0.weight')!.data as Float32Array], [2, 2]);
  assert.throws(() => emaAsModelWeights(new Map([['model.a', t(1)]]), 'plain.ckpt'), /plain\.ckpt: --ema: no model_ema\.\* weights/);
  const bad = new Map([['model.a', t(1)], ['model_ema.a', { dtype: 'F32', shape: [3], data: new Float32Array(3) } as RawTensor]]);
  assert.throws(() => emaAsModelWeights(bad, 'b.ckpt'), /b\.ckpt: EMA tensor model_ema\.a is F32 \[3\], model\.a is F32 \[2\]/);
});

test('ldm convert: official checkpoint checked against its YAML, EMA, errors in one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-convert-cli-'));
  const ldm = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/ldm.js'), ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '' } });
  try {
    const yaml = join(PARITY, 'ldm_ckpt_sample.yaml');
    const r = ldm('convert', join(PARITY, 'ldm_ckpt_sample_legacy.ckpt'), join(dir, 'x.safetensors'), '--config', yaml);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /safetensors model file \(config in the metadata\), 444 tensors, step 1234/);
    assert.match(r.stdout, /444 of 444 present, shapes equal$/m);
    // our model file now carries the config: back to .ckpt without --config, checked against the stored config
    const b = ldm('convert', join(dir, 'x.safetensors'), join(dir, 'x.ckpt'), '--ema');
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stdout, /EMA weights as the model weights \(\d+ tensors\)/);
    assert.match(b.stdout, /keys checked against the model of the stored config: 444 of 444 present/);
    const ema = readRawWeights(join(dir, 'x.ckpt')).tensors;
    const orig = readRawWeights(join(PARITY, 'ldm_ckpt_sample.ckpt')).tensors;
    const k = 'model.diffusion_model.out.2.weight';
    assert.ok(Buffer.from(bytesOf(ema.get(k)!)).equals(Buffer.from(bytesOf(orig.get('model_ema.diffusion_modelout2weight')!))));
    for (const [args, msg] of [
      [[join(PARITY, 'ldm_ckpt_sample.ckpt'), join(dir, 'x.npz')], /output extension must be \.ckpt, \.pth, \.pt \(PyTorch\) or \.safetensors/],
      [[join(dir, 'x.ckpt'), join(dir, 'x.ckpt')], /input and output are the same file/],
      [[join(FORMATS, 'vgg.pth'), join(dir, 'v.ckpt'), '--ema'], /--ema: no model_ema\.\* weights/],
      [[join(FORMATS, 'vgg.pth'), join(dir, 'v.ckpt'), '--config', yaml], /no tensor of the input matches the model of the config \(input has features\.0\.weight/],
    ] as [string[], RegExp][]) {
      const e = ldm('convert', ...args);
      assert.equal(e.status, 1, e.stderr);
      assert.match(e.stderr, /^ldm: error: /);
      assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
      assert.match(e.stderr, msg);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
