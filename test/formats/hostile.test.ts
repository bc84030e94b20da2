// Hostile and careless files that must stay harmless and cheap (issue: hardening): memory bombs
// (stride-0 expansion, zip entries that claim more than deflate can produce, quadratic pickles),
// NaN / unsafe element counts, values that break message building (cycles, BigInts, 100k-deep
// lists, a `toString` key), unbounded echoes, I64 past 2^53, and text that is not safetensors.
// Each test names the case it guards; every one failed before the fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, parseSafetensors, readTorchCheckpoint, serializeSafetensors } from '../../src/formats/index.ts';
import { unpickle } from '../../src/formats/pickle.ts';
import { readZipDirectory, readZipEntry } from '../../src/formats/zip.ts';
import { describe } from '../../src/util/index.ts';
import { readTensorFile } from '../../src/io/index.ts';
import { G, J, K, PROTO2, S, TUPLE2, concat, makeZip, pk, storageRef, torchZip } from './builders.ts';

const FLOAT_STORAGE: [string, string] = ['torch', 'FloatStorage'];
const u64le = (n: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
/** LONG1 of a (possibly huge) integer. */
const L1 = (n: bigint): number[] => {
  const bytes: number[] = [];
  let v = n;
  do { bytes.push(Number(v & 0xffn)); v >>= 8n; } while (v !== 0n && v !== -1n);
  if ((bytes[bytes.length - 1]! & 0x80) !== 0 && n >= 0n) bytes.push(0);
  return [0x8a, bytes.length, ...bytes];
};
/** (int, int, ...) as a MARK ... TUPLE. */
const intTuple = (xs: (number | bigint)[]): Uint8Array => pk('(', ...xs.map((x) => (typeof x === 'bigint' ? L1(x) : x < 256 ? K(x) : L1(BigInt(x)))), 't');

/** _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) as a state dict {w: tensor}. */
function tensorPickle(numel: number, size: (number | bigint)[], stride: (number | bigint)[]): Uint8Array {
  return pk(PROTO2, '}', S('w'), G('torch._utils', '_rebuild_tensor_v2'), '(', storageRef(FLOAT_STORAGE, '0', numel),
    K(0), intTuple(size), intTuple(stride), [0x89], G('collections', 'OrderedDict'), ')R', 't', 'R', 's', '.');
}

function formatError(fn: () => unknown, ...parts: RegExp[]): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FormatError, `expected a FormatError, got ${caught instanceof Error ? `${caught.name}: ${caught.message.slice(0, 200)}` : String(caught)}`);
  assert.ok(caught.message.length <= 900, `message of ${caught.message.length} characters`);
  for (const p of parts) assert.match(caught.message, p);
  return caught;
}

/** CPU milliseconds of this process since `c0` (wall time on a shared machine measures the other jobs too). */
const cpuMs = (c0: NodeJS.CpuUsage): number => { const c = process.cpuUsage(c0); return (c.user + c.system) / 1000; };

/** Bytes of ArrayBuffers allocated (and still alive or not yet collected) while fn runs. */
function arrayBufferGrowth(fn: () => void): number {
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  try {
    fn();
  } catch { /* the error is checked elsewhere */ }
  peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  return peak - before;
}

test('memory bomb: a [16384, 16384] stride [0, 0] tensor over a one-element storage is refused without allocating', () => {
  const file = torchZip(tensorPickle(1, [16384, 16384], [0, 0]), { 0: new Uint8Array(4) });
  assert.ok(file.byteLength < 1000);
  const c0 = process.cpuUsage();
  const grew = arrayBufferGrowth(() => formatError(() => readTorchCheckpoint(file, 'bomb.ckpt'), /^bomb\.ckpt: /, /expands storage "0" of 1 elements into 268435456/, /stride-0/));
  assert.ok(cpuMs(c0) < 1000);
  assert.ok(grew < 16e6, `${grew} bytes allocated`);
  // [65536, 65536] (16 GiB when gathered) likewise
  formatError(() => readTorchCheckpoint(torchZip(tensorPickle(1, [65536, 65536], [0, 0]), { 0: new Uint8Array(4) }), 'bomb.ckpt'), /expands/);
  // a small expansion (a broadcast bias) is still read
  const ok = readTorchCheckpoint(torchZip(tensorPickle(1, [3], [0]), { 0: new Uint8Array(new Float32Array([2.5]).buffer) })) as Record<string, { data: Float32Array }>;
  assert.deepEqual(Array.from(ok['w']!.data), [2.5, 2.5, 2.5]);
});

test('memory bomb: a deflated zip entry claiming 4 GiB is refused before inflating', () => {
  const zeros = new Uint8Array(32 << 20); // 32 MiB of zeros deflate to ~32 KiB
  const zip = makeZip([{ name: 'archive/data/0', data: zeros, deflate: true }]);
  // rewrite the central directory's uncompressed size to 0xfffffffe (4 GiB)
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const cd = dv.getUint32(zip.byteLength - 6, true);
  dv.setUint32(cd + 24, 0xfffffffe, true);
  const e = readZipDirectory(zip, 'big.ckpt').get('archive/data/0')!;
  const c0 = process.cpuUsage();
  const grew = arrayBufferGrowth(() => formatError(() => readZipEntry(zip, e, 'big.ckpt'), /^big\.ckpt: /, /claims 4294967294 bytes from \d+ deflated bytes/));
  assert.ok(cpuMs(c0) < 500);
  assert.ok(grew < 4e6, `${grew} bytes allocated`);
});

test('memory bomb: a storage whose entry is larger than the pickle declares is refused before it is inflated', () => {
  const big = new Uint8Array(8 << 20); // 8 MiB of zeros, deflated to a few KiB
  const pkl = tensorPickle(1, [1], [1]); // declares a one-element storage
  const file = makeZip([
    { name: 'archive/data.pkl', data: pkl }, { name: 'archive/data/0', data: big, deflate: true }, { name: 'archive/version', data: '3\n' },
  ]);
  assert.ok(file.byteLength < 64 * 1024);
  const grew = arrayBufferGrowth(() => formatError(() => readTorchCheckpoint(file, 'lie.ckpt'), /storage "0": the pickle declares 1 F32 elements, its entry holds 8388608 bytes/));
  assert.ok(grew < 4e6, `${grew} bytes allocated`);
});

test('memory bomb: repeated set() / OrderedDict calls over a memoised list stay within the pickle budget', () => {
  // a 40k-item list, then 40k calls set(list): 1.6e9 item copies without a budget
  const n = 40_000;
  const body: (string | number[] | Uint8Array)[] = [PROTO2, ']', [0x71, 0], '('];
  for (let i = 0; i < n; i++) body.push(K(1));
  body.push('e', '0', G('builtins', 'set'), [0x71, 1], '0', '(');
  for (let i = 0; i < n; i++) body.push([0x68, 1], [0x68, 0], [0x85], 'R');
  body.push('l', '.');
  const data = concat(body.map((b) => pk(b)));
  const c0 = process.cpuUsage();
  formatError(() => unpickle(data, 'sets.pkl', { resolveGlobal: (m, nm) => (m === 'builtins' && nm === 'set' ? { call: (a, ctx) => { ctx.charge((a[0] as unknown[]).length * 16, 'set()'); return (a[0] as unknown[]).slice(); } } : undefined) }),
    /set\(\) would take the allocations of this pickle past \d+ bytes/);
  assert.ok(cpuMs(c0) < 2000);
  // the torch allow-list charges its own set()
  const tz = torchZip(data);
  formatError(() => readTorchCheckpoint(tz, 'sets.ckpt'), /set\(\)/);
});

test('NaN element count: a size of 2^53-1 entries times 0 is refused (numel NaN), as are counts past 2^53', () => {
  const m = 2 ** 53 - 1;
  const size = [...new Array<number>(40).fill(m), 0];
  const file = torchZip(tensorPickle(1, size, new Array<number>(41).fill(1)), { 0: new Uint8Array(4) });
  formatError(() => readTorchCheckpoint(file, 'nan.ckpt'), /^nan\.ckpt:archive\/data\.pkl: /, /element count NaN is not an integer below 2\^53/);
  formatError(() => readTorchCheckpoint(torchZip(tensorPickle(1, [2 ** 30, 2 ** 30], [0, 0]), { 0: new Uint8Array(4) }), 'big.ckpt'), /element count 1152921504606847000 is not an integer below 2\^53/);
});

test('raw JS errors in messages: a cyclic pickled list, a BigInt and a 100k-deep list as persistent ids give FormatErrors', () => {
  const load = (pid: Uint8Array): unknown => readTorchCheckpoint(torchZip(pk(PROTO2, pid, 'Q', '.')), 'pid.ckpt');
  // cyclic: l = []; l.append(l)
  formatError(() => load(pk(']', [0x71, 0], [0x68, 0], 'a')), /persistent id \[\[cycle\]\] is not a storage reference/);
  // a BigInt inside a tuple
  formatError(() => load(pk('(', S('x'), L1(2n ** 70n), 't')), /persistent id \["x", 1180591620717411303424\]/);
  // 100k-deep list
  const depth = 100_000;
  const deep = concat([pk(...new Array<string>(depth).fill(']')), pk(...new Array<string>(depth - 1).fill('a'))]);
  formatError(() => load(deep), /persistent id \[\[\[\[/);
  // a BigInt dict key inside a tuple key
  const d = readTorchCheckpoint(torchZip(pk(PROTO2, '}', '(', L1(2n ** 64n), K(1), 't', K(5), 's', '.')), 'k.ckpt') as Record<string, unknown>;
  assert.deepEqual(Object.keys(d), ['[18446744073709551616,1]']);
});

test('raw JS errors in messages: String() of a pickled dict with a toString key gives a FormatError', () => {
  // _rebuild_tensor_v3(storage, 0, (1,), (1,), False, OrderedDict(), {"toString": 1})
  const pkl = pk(PROTO2, '}', S('w'), G('torch._utils', '_rebuild_tensor_v3'), '(', storageRef(['torch', 'UntypedStorage'], '0', 4),
    K(0), intTuple([1]), intTuple([1]), [0x89], G('collections', 'OrderedDict'), ')R', '}', S('toString'), K(1), 's', 't', 'R', 's', '.');
  formatError(() => readTorchCheckpoint(torchZip(pkl, { 0: new Uint8Array(4) }), 'ts.ckpt'), /unsupported dtype \{"toString": 1\}/);
});

test('raw JS errors in messages: a 100k-deep safetensors header value gives a FormatError', () => {
  const depth = 100_000;
  const dtype = '['.repeat(depth) + ']'.repeat(depth);
  const header = `{"w":{"dtype":${dtype},"shape":[1],"data_offsets":[0,4]}}`;
  const bytes = concat([Uint8Array.from(u64le(BigInt(header.length))), new TextEncoder().encode(header), new Uint8Array(4)]);
  formatError(() => parseSafetensors(bytes, 'deep.safetensors'), /^deep\.safetensors: /, /unknown dtype \[\[\[/);
});

test('unbounded messages: a 5 MB dtype string and a 1M-entry shape are echoed in at most a few hundred characters', () => {
  const hdr = (entry: string): Uint8Array => {
    const h = `{"w":${entry}}`;
    return concat([Uint8Array.from(u64le(BigInt(h.length))), new TextEncoder().encode(h), new Uint8Array(4)]);
  };
  const e1 = formatError(() => parseSafetensors(hdr(`{"dtype":"${'x'.repeat(5_000_000)}","shape":[1],"data_offsets":[0,4]}`), 'a.safetensors'), /unknown dtype "xxx/);
  assert.ok(e1.message.length < 400, `${e1.message.length}`);
  const shape = `[${new Array(1_000_000).fill(1).join(',')},-1]`;
  const e2 = formatError(() => parseSafetensors(hdr(`{"dtype":"F32","shape":${shape},"data_offsets":[0,4]}`), 'b.safetensors'), /shape must be an array/);
  assert.ok(e2.message.length < 400, `${e2.message.length}`);
  const e3 = formatError(() => parseSafetensors(hdr(`{"dtype":"F32","shape":${shape.replace(',-1', ',2')},"data_offsets":[0,4]}`), 'c.safetensors'), /needs 8/);
  assert.ok(e3.message.length < 400, `${e3.message.length}`);
  // a 5 MB tensor name
  const name = 'n'.repeat(5_000_000);
  const h = `{"${name}":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}`;
  const e4 = formatError(() => parseSafetensors(concat([Uint8Array.from(u64le(BigInt(h.length))), new TextEncoder().encode(h), new Uint8Array(4)]), 'd.safetensors'), /tensor "nnnn/);
  assert.ok(e4.message.length < 400, `${e4.message.length}`);
});

test('I64 past 2^53 in a tensor file is a FormatError naming the file and the tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-i64-'));
  try {
    const p = join(dir, 'ids.safetensors');
    writeFileSync(p, serializeSafetensors({ ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 60n]) } }));
    formatError(() => readTensorFile(p), new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:ids: I64 element 1 = 1152921504606846976 is beyond 2\\^53`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a text file named .safetensors says "not a safetensors file" (not an absurd header length)', () => {
  const text = new TextEncoder().encode('hello, this is a README that was renamed\n');
  formatError(() => parseSafetensors(text, 'notes.safetensors'), /^notes\.safetensors: safetensors: not a safetensors file/);
  const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  formatError(() => parseSafetensors(png, 'img.safetensors'), /not a safetensors file/);
});

test('describe(): never throws, bounded, for cycles, BigInts, deep lists, toString keys, getters and proxies', () => {
  const cyc: unknown[] = [];
  cyc.push(cyc);
  assert.equal(describe(cyc), '[[cycle]]');
  assert.equal(describe(2n ** 80n), '1208925819614629174706176');
  let deep: unknown = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.ok(describe(deep).length <= 200);
  assert.equal(describe({ toString: 1, valueOf: 2 }), '{"toString": 1, "valueOf": 2}');
  assert.equal(describe(Object.defineProperty({}, 'x', { get: () => { throw new Error('no'); }, enumerable: true })), '{"x": "[getter]"}');
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  assert.equal(describe(proxy), '<object>');
  assert.ok(describe('x'.repeat(5_000_000)).length <= 200);
  assert.ok(describe(new Array(1_000_000).fill(7)).length <= 200);
  assert.equal(describe(new Float32Array(3)), '<Float32Array of 3 elements>');
  assert.equal(describe(['a', 1, null, true]), '["a", 1, null, true]');
  void TUPLE2; void J;
});
