// Property-based fuzzing of every reader of outside files (fast-check, seeded): safetensors, torch
// zip checkpoints, legacy torch.save files, pickles (with the torch allow-list), YAML configs, and
// images of a folder data set. Inputs are valid seeds (built here or the committed fixtures) under
// random mutations (bit flips, truncation, splices, interesting integers over length fields) and
// structured generators (random headers, opcode streams, hostile globals, deep nesting).
// Properties checked on every input:
//   - only our error classes (LdmError) escape; every message names the file and is at most 600
//     characters;
//   - memory: ArrayBuffer growth beyond the tensors a file honestly declares stays under a fixed
//     multiple of its size (64x) plus 16 MiB; the whole run's peak RSS stays under 1.5 GB;
//   - time: no input takes more than 2 s;
//   - a marker file that hostile pickles try to create (os.system, exec, subprocess, open) never appears.
// LDM_FUZZ_RUNS (default 10000 per format) and LDM_FUZZ_SEED reproduce a run; the counts, the time
// and the worst memory ratio are printed as test diagnostics. Worst cases found are kept as
// regression files in test/fixtures/hostile (checked by test/cli/corpus.test.ts).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import { LdmError } from '../../src/util/index.ts';
import {
  isRawTensor, parseSafetensors, readTorchCheckpoint, resolveTorchGlobal, serializeSafetensors, serializeTorchCheckpoint, unpickle, type RawTensor,
} from '../../src/formats/index.ts';
import { loadImageFolder, parseConfigText, validateConfig } from '../../src/io/index.ts';
import { G, K, PROTO2, S, concat, pk, storageRef, torchZip } from '../formats/builders.ts';

const RUNS = Number(process.env['LDM_FUZZ_RUNS'] ?? 10_000);
const SEED = Number(process.env['LDM_FUZZ_SEED'] ?? 20261203);
const ROOT = join(import.meta.dirname, '../..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'formats');
const WORK = mkdtempSync(join(tmpdir(), 'ldm-fuzz-'));
const MARKER = join(WORK, 'PWNED');
test.after(() => rmSync(WORK, { recursive: true, force: true }));

/** Per input: CPU time of this process (independent of other load on the machine), and wall time. */
const MAX_CPU_MS = 2000;
const MAX_WALL_MS = 20_000;
const MAX_MESSAGE = 600;
const MEM_FACTOR = 64;
const MEM_SLACK = 16 * 1024 * 1024;

interface Stats { name: string; inputs: number; errors: number; ok: number; maxMs: number; worstRatio: number; worstBytes: number; ms: number; cpuMs: number }
const ALL: Stats[] = [];
const rssStart = process.resourceUsage().maxRSS;

/** Bytes of the tensors in a result tree (what the file honestly declares and we hand back). */
function declaredBytes(v: unknown, seen = new Set<unknown>(), depth = 0): number {
  if (typeof v !== 'object' || v === null || seen.has(v) || depth > 64) return 0;
  seen.add(v);
  if (isRawTensor(v)) return v.data.byteLength;
  if (v instanceof Map) { let s = 0; for (const x of v.values()) s += declaredBytes(x, seen, depth + 1); return s; }
  if (ArrayBuffer.isView(v)) return v.byteLength;
  let s = 0;
  for (const x of Object.values(v as object)) s += declaredBytes(x, seen, depth + 1);
  return s;
}

function newStats(name: string): Stats {
  const s: Stats = { name, inputs: 0, errors: 0, ok: 0, maxMs: 0, worstRatio: 0, worstBytes: 0, ms: 0, cpuMs: 0 };
  ALL.push(s);
  return s;
}

/** Run each seed once unmeasured: lazy caches (the F16 table, zlib state) and the JIT are not the input's cost. */
function warmUp(read: (b: Uint8Array) => unknown, seeds: readonly Uint8Array[]): void {
  for (const s of seeds) { try { read(s); } catch { /* seeds may be hostile */ } }
}

/** Run one input through a reader and check the properties. */
function check(st: Stats, source: string, size: number, read: () => unknown): void {
  const before = process.memoryUsage().arrayBuffers;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let result: unknown;
  let error: unknown = null;
  try {
    result = read();
  } catch (e) {
    error = e;
  }
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  const grew = Math.max(0, process.memoryUsage().arrayBuffers - before - (error === null ? declaredBytes(result) : 0));
  st.inputs++;
  st.maxMs = Math.max(st.maxMs, ms);
  const ratio = grew / Math.max(1, size);
  if (ratio > st.worstRatio) { st.worstRatio = ratio; st.worstBytes = grew; }
  if (error !== null) {
    st.errors++;
    if (!(error instanceof LdmError)) {
      throw new Error(`${st.name}: ${source} (${size} bytes) raised ${(error as Error)?.name}: ${String((error as Error)?.message ?? error).slice(0, 300)}`);
    }
    assert.ok(error.message.includes(source), `${st.name}: message does not name the file: ${error.message.slice(0, 200)}`);
    assert.ok(error.message.length <= MAX_MESSAGE, `${st.name}: message of ${error.message.length} characters: ${error.message.slice(0, 200)}…`);
  } else {
    st.ok++;
  }
  assert.ok(ms < MAX_CPU_MS && wall < MAX_WALL_MS, `${st.name}: ${source} took ${ms.toFixed(0)} ms of CPU, ${wall.toFixed(0)} ms wall`);
  assert.ok(grew <= MEM_FACTOR * size + MEM_SLACK, `${st.name}: ${source} of ${size} bytes grew ArrayBuffers by ${grew}`);
  assert.ok(!existsSync(MARKER), 'a hostile pickle created the marker file');
}

// ---- mutations ---------------------------------------------------------------------------------

const INTERESTING = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
type Mutation =
  | { k: 'flip'; at: number; bit: number } | { k: 'byte'; at: number; v: number } | { k: 'cut'; at: number }
  | { k: 'insert'; at: number; bytes: Uint8Array } | { k: 'u32'; at: number; v: number } | { k: 'u64'; at: number; v: bigint }
  | { k: 'dup'; at: number; len: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ k: fc.constant('byte' as const), at: fc.nat(), v: fc.nat(255) }),
  fc.record({ k: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({ k: fc.constant('u32' as const), at: fc.nat(), v: fc.constantFrom(...INTERESTING) }),
  fc.record({ k: fc.constant('u64' as const), at: fc.nat(), v: fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n) }),
  fc.record({ k: fc.constant('dup' as const), at: fc.nat(), len: fc.nat(64) }),
);

function mutate(seed: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b: Uint8Array = seed.slice();
  for (const m of ms) {
    const n = b.length;
    if (n === 0) break;
    const at = m.at % n;
    switch (m.k) {
      case 'flip': b[at] = b[at]! ^ (1 << m.bit); break;
      case 'byte': b[at] = m.v; break;
      case 'cut': b = b.slice(0, at); break;
      case 'insert': b = concat([b.subarray(0, at), m.bytes, b.subarray(at)]); break;
      case 'u32': if (at + 4 <= n) new DataView(b.buffer, b.byteOffset).setUint32(at, m.v >>> 0, true); break;
      case 'u64': if (at + 8 <= n) new DataView(b.buffer, b.byteOffset).setBigUint64(at, m.v & (2n ** 64n - 1n), true); break;
      case 'dup': b = concat([b.subarray(0, at), b.subarray(at, at + m.len), b.subarray(at)]); break;
    }
  }
  return b;
}

const mutated = (seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.nat(seeds.length - 1), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([i, ms]) => mutate(seeds[i]!, ms));

const ENC = new TextEncoder();
const runs = (share: number): number => Math.max(1, Math.round(RUNS * share));

function report(t: TestContext, st: Stats): void {
  t.diagnostic(`${st.name}: ${st.inputs} inputs (${st.errors} refused with one of our errors, ${st.ok} read) in ${(st.ms / 1000).toFixed(1)} s ` +
    `(${(st.cpuMs / 1000).toFixed(1)} s CPU); slowest ${st.maxMs.toFixed(1)} ms CPU; worst memory ratio ${st.worstRatio.toFixed(2)}x (${st.worstBytes} bytes beyond declared tensors)`);
  assert.ok(st.inputs >= RUNS, `${st.name}: ${st.inputs} inputs < ${RUNS}`);
}

function timed(st: Stats, f: () => void): void {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  try { f(); } finally {
    st.ms += performance.now() - t0;
    const c = process.cpuUsage(c0);
    st.cpuMs += (c.user + c.system) / 1000;
  }
}

// ---- safetensors -------------------------------------------------------------------------------

const DTYPES = ['F32', 'F64', 'I64', 'I32', 'F16', 'BF16', 'U8', 'I8', 'BOOL'] as const;
const SIZES: Record<string, number> = { F32: 4, F64: 8, I64: 8, I32: 4, F16: 2, BF16: 2, U8: 1, I8: 1, BOOL: 1 };
const CTORS: Record<string, new (n: number) => RawTensor['data']> = {
  F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array, F16: Uint16Array, BF16: Uint16Array, U8: Uint8Array, I8: Int8Array, BOOL: Uint8Array,
};
const validTensor = fc.record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }) })
  .map(({ dtype, shape }) => ({ dtype, shape, data: new CTORS[dtype]!(shape.reduce((a, b) => a * b, 1)) }) as RawTensor);
const validSafetensors = fc.dictionary(fc.string({ maxLength: 12 }), validTensor, { maxKeys: 4 })
  .map((d) => serializeSafetensors(new Map(Object.entries(d).filter(([k]) => k !== '__metadata__'))));
const weirdNumber = fc.oneof(fc.integer({ min: -3, max: 64 }), fc.constantFrom(2 ** 53 - 1, 2 ** 53, 2 ** 64, -1, 0.5, 1e308, -0), fc.double());
const weirdValue = fc.oneof(weirdNumber, fc.string({ maxLength: 8 }), fc.constant(null), fc.boolean(),
  fc.array(weirdNumber, { maxLength: 6 }), fc.constantFrom(...DTYPES), fc.jsonValue({ maxDepth: 3 }));
const headerEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom(...DTYPES), weirdValue),
  shape: fc.oneof(fc.array(weirdNumber, { maxLength: 5 }), weirdValue),
  data_offsets: fc.oneof(fc.tuple(weirdNumber, weirdNumber), weirdValue),
}, { requiredKeys: [] });
const randomSafetensors = fc.tuple(
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(headerEntry, weirdValue), { maxKeys: 4 }),
  fc.option(fc.dictionary(fc.string({ maxLength: 6 }), weirdValue, { maxKeys: 3 })),
  fc.nat(256), fc.option(fc.constantFrom(0n, 1n, 2n ** 40n, 2n ** 64n - 1n)),
).map(([h, meta, dataLen, len]) => {
  const json = ENC.encode(JSON.stringify(meta === null ? h : { ...h, __metadata__: meta }));
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
});

test(`fuzz safetensors: ${RUNS} inputs, only FormatErrors naming the file, bounded memory and time`, (t) => {
  const st = newStats('safetensors');
  const seeds = fc.sample(validSafetensors, { seed: SEED, numRuns: 32 });
  const arb = fc.oneof({ arbitrary: mutated(seeds), weight: 3 }, { arbitrary: randomSafetensors, weight: 2 }, { arbitrary: validSafetensors, weight: 1 });
  warmUp((b) => parseSafetensors(b), seeds);
  timed(st, () => fc.assert(fc.property(arb, (bytes) => check(st, 'fuzz.safetensors', bytes.length, () => parseSafetensors(bytes, 'fuzz.safetensors'))),
    { seed: SEED, numRuns: RUNS }));
  report(t, st);
});

// ---- pickles: opcode streams with the torch allow-list and hostile globals ---------------------

const HOSTILE: [string, string][] = [['os', 'system'], ['posix', 'system'], ['builtins', 'exec'], ['builtins', 'eval'], ['subprocess', 'Popen'],
  ['builtins', 'open'], ['__builtin__', 'eval'], ['nt', 'system'], ['builtins', 'getattr'], ['torch', 'load']];
const TORCH_GLOBALS: [string, string][] = [['collections', 'OrderedDict'], ['torch._utils', '_rebuild_tensor_v2'], ['torch._utils', '_rebuild_parameter'],
  ['torch', 'FloatStorage'], ['torch', 'float32'], ['builtins', 'set'], ['_codecs', 'encode'], ['torch._utils', '_rebuild_tensor_v3'],
  ['torch._tensor', '_rebuild_from_type_v2'], ['torch', 'Tensor']];
const opToken: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.constantFrom(...'(0123}]).tleusbaRQNd'.split('').map((c) => pk(c)), pk([0x85]), pk([0x86]), pk([0x87]), pk([0x88]), pk([0x89]), pk([0x81]), pk([0x93]), pk([0x94]), pk([0x8f]), pk([0x90])), weight: 6 },
  { arbitrary: fc.nat(255).map((n) => pk(K(n))), weight: 2 },
  { arbitrary: fc.string({ maxLength: 8 }).map((s) => S(s)), weight: 2 },
  { arbitrary: fc.tuple(fc.constantFrom(0x71, 0x68), fc.nat(3)).map(([op, i]) => pk([op, i])), weight: 2 }, // BINPUT / BINGET
  { arbitrary: fc.constantFrom(...TORCH_GLOBALS).map(([m, n]) => pk(G(m, n))), weight: 2 },
  { arbitrary: fc.constantFrom(...HOSTILE).map(([m, n]) => pk(G(m, n), '(', S(`touch ${MARKER}`), 't', 'R')), weight: 1 },
  { arbitrary: fc.tuple(fc.nat(3), fc.nat(64)).map(([k, n]) => storageRef(['torch', 'FloatStorage'], String(k), n)), weight: 1 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 9 }), weight: 1 }, // raw bytes: any opcode and its argument
  { arbitrary: fc.constantFrom(pk([0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]), pk('I9007199254740993\n'), pk('L-99999999999999999999L\n'), pk([0x8b, 0xff, 0xff, 0xff, 0x7f])), weight: 1 },
);
const pickleArb = fc.tuple(fc.boolean(), fc.array(opToken, { maxLength: 40 }), fc.boolean())
  .map(([proto, toks, stop]) => concat([proto ? pk(PROTO2) : new Uint8Array(0), ...toks, stop ? pk('.') : new Uint8Array(0)]));
const persistentLoad = (pid: unknown, ctx: { fail: (m: string) => never }): unknown => {
  if (!Array.isArray(pid)) return ctx.fail('bad persistent id');
  return pid;
};

test(`fuzz pickle: ${RUNS} opcode streams (hostile globals included), only FormatErrors, nothing executed`, (t) => {
  const st = newStats('pickle');
  timed(st, () => fc.assert(fc.property(pickleArb, fc.constantFrom('error', 'stub') as fc.Arbitrary<'error' | 'stub'>, (bytes, unknownGlobals) =>
    check(st, 'fuzz.pkl', bytes.length, () => unpickle(bytes, 'fuzz.pkl', { resolveGlobal: resolveTorchGlobal, persistentLoad, unknownGlobals }))),
  { seed: SEED, numRuns: RUNS }));
  report(t, st);
});

// ---- torch zip checkpoints ---------------------------------------------------------------------

/** A state dict pickle {name: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())}. */
function tensorPickle(entries: { key: string; numel: number; offset: number; size: number[]; stride: number[] }[]): Uint8Array {
  const intTuple = (xs: number[]): Uint8Array => pk('(', ...xs.map((x) => (x < 256 ? K(x) : [0x4a, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff])), 't');
  return concat([pk(PROTO2, '}'), ...entries.map((e, i) => pk(S(`w${i}`), G('torch._utils', '_rebuild_tensor_v2'), '(', storageRef(['torch', 'FloatStorage'], e.key, e.numel),
    K(e.offset), intTuple(e.size), intTuple(e.stride), [0x89], G('collections', 'OrderedDict'), ')R', 't', 'R', 's')), pk('.')]);
}
const tensorSpec = fc.record({
  key: fc.constantFrom('0', '1'), numel: fc.integer({ min: 0, max: 16 }), offset: fc.nat(20),
  size: fc.array(fc.oneof(fc.nat(6), fc.constantFrom(16384, 65536, 0x7fffffff)), { maxLength: 3 }),
  stride: fc.array(fc.oneof(fc.nat(6), fc.constantFrom(0, 16384)), { maxLength: 3 }),
});
const torchZipArb = fc.tuple(fc.array(tensorSpec, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([specs, deflate]) => {
  const storages: Record<string, Uint8Array> = {};
  for (const s of specs) storages[s.key] = new Uint8Array(4 * s.numel);
  return torchZip(tensorPickle(specs), storages, deflate ? [{ name: 'archive/extra', data: new Uint8Array(64), deflate: true }] : []);
});
const fixtureSeeds = (re: RegExp): Uint8Array[] => readdirSync(FIXTURES).filter((f) => re.test(f)).map((f) => new Uint8Array(readFileSync(join(FIXTURES, f))));

test(`fuzz torch zip checkpoints: ${RUNS} inputs, only FormatErrors, memory bounded by declared tensors`, (t) => {
  const st = newStats('torch zip');
  const written = serializeTorchCheckpoint(new Map([['a', { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } as RawTensor],
    ['b', { dtype: 'I64', shape: [4], data: new BigInt64Array(4) } as RawTensor]]), { epoch: 3 });
  const seeds = [...fixtureSeeds(/^(lightning(-deflate|-p4|-p5)?|callbacks|malicious-(eval|os-system))\.ckpt$|^vgg\.pth$/), written,
    ...fc.sample(torchZipArb, { seed: SEED, numRuns: 8 })];
  assert.ok(seeds.length >= 10);
  const arb = fc.oneof({ arbitrary: mutated(seeds), weight: 3 }, { arbitrary: torchZipArb, weight: 2 });
  warmUp((b) => readTorchCheckpoint(b, 'warm', { unknownGlobals: 'stub' }), seeds);
  timed(st, () => fc.assert(fc.property(arb, fc.constantFrom('error', 'stub') as fc.Arbitrary<'error' | 'stub'>, (bytes, unknownGlobals) =>
    check(st, 'fuzz.ckpt', bytes.length, () => readTorchCheckpoint(bytes, 'fuzz.ckpt', { unknownGlobals }))), { seed: SEED, numRuns: RUNS }));
  report(t, st);
});

test(`fuzz legacy torch.save files: ${RUNS} inputs, only FormatErrors`, (t) => {
  const st = newStats('legacy torch');
  const seeds = fixtureSeeds(/^(lightning-legacy(-p4)?\.ckpt|legacy\.pth|malicious-legacy\.pth)$/);
  assert.ok(seeds.length >= 3);
  warmUp((b) => readTorchCheckpoint(b, 'warm', { unknownGlobals: 'stub' }), seeds);
  timed(st, () => fc.assert(fc.property(mutated(seeds), fc.constantFrom('error', 'stub') as fc.Arbitrary<'error' | 'stub'>, (bytes, unknownGlobals) =>
    check(st, 'fuzz.pth', bytes.length, () => readTorchCheckpoint(bytes, 'fuzz.pth', { unknownGlobals }))), { seed: SEED, numRuns: RUNS }));
  report(t, st);
});

// ---- YAML configs ------------------------------------------------------------------------------

const YAML_BITS = ['\n', ': ', '- ', '[', ']', '{', '}', ',', '"', "'", '#', '&a ', '*a', '<<: *a', '!!str ', '!!binary ', '|', '>', '?', '  ', '\t',
  'target: ', 'params:', 'model', 'data', 'lightning', 'max_steps: 1e309', 'batch_size: -1', 'toString: 1', '__proto__: {x: 1}', '~', 'null', '0x1F',
  '.inf', '.nan', '%YAML 1.1\n---\n', '---\n', '...\n', 'ldm.models.diffusion.ddpm.DDPM'];
// the shipped configs without their comments (the parser's cost is per character; the structure is what matters)
const configSeeds = readdirSync(join(ROOT, 'configs')).filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(ROOT, 'configs', f), 'utf8').split('\n').filter((l) => !/^\s*#/.test(l)).map((l) => l.replace(/\s+#.*$/, '')).join('\n'));
const yamlEdit = fc.oneof(
  fc.record({ at: fc.nat(), del: fc.nat(40), ins: fc.array(fc.constantFrom(...YAML_BITS), { maxLength: 4 }).map((a) => a.join('')) }),
  fc.record({ at: fc.nat(), del: fc.constant(0), ins: fc.string({ maxLength: 12 }) }),
);
const yamlArb = fc.oneof(
  { arbitrary: fc.tuple(fc.nat(configSeeds.length - 1), fc.array(yamlEdit, { minLength: 1, maxLength: 4 })).map(([i, edits]) => {
    let s = configSeeds[i]!;
    for (const e of edits) { const at = e.at % (s.length + 1); s = s.slice(0, at) + e.ins + s.slice(at + e.del); }
    return s;
  }), weight: 3 },
  { arbitrary: fc.array(fc.constantFrom(...YAML_BITS), { maxLength: 30 }).map((a) => a.join('')), weight: 3 },
  { arbitrary: fc.tuple(fc.constantFrom('[', '{x: ', '- ', '{'), fc.integer({ min: 100, max: 5000 })).map(([o, n]) => `a: ${o.repeat(n)}1`), weight: 1 },
);

test(`fuzz YAML configs: ${RUNS} inputs, only ConfigErrors naming the file, bounded time`, (t) => {
  const st = newStats('YAML config');
  timed(st, () => fc.assert(fc.property(yamlArb, (text) => check(st, 'fuzz.yaml', text.length, () => validateConfig(parseConfigText(text, 'fuzz.yaml'), 'fuzz.yaml'))),
    { seed: SEED, numRuns: RUNS }));
  report(t, st);
});

// ---- images of a folder data set ---------------------------------------------------------------

test(`fuzz folder-dataset images: ${RUNS} corrupt PNG / JPEG / WebP files, each named and skipped (or the load stopped)`, async (t) => {
  const st = newStats('folder images');
  const base = { width: 6, height: 5, channels: 3 as const, background: { r: 200, g: 30, b: 90 } };
  const seeds = [
    await sharp({ create: base }).png().toBuffer(), await sharp({ create: base }).jpeg().toBuffer(), await sharp({ create: base }).webp().toBuffer(),
    await sharp({ create: { ...base, channels: 4 as const, background: { r: 1, g: 2, b: 3, alpha: 0.5 } } }).png().toBuffer(),
  ].map((b) => new Uint8Array(b));
  const files = fc.sample(fc.tuple(fc.nat(seeds.length - 1), fc.array(mutation, { maxLength: 4 })), { seed: SEED, numRuns: RUNS });
  const PER = 500;
  let stopped = 0, stoppedNot = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let f = 0; f < files.length; f += PER) {
    const dir = join(WORK, `images-${f}`);
    mkdirSync(join(dir, 'cls'), { recursive: true });
    const names: string[] = [];
    const part = files.slice(f, f + PER);
    part.forEach(([i, ms], j) => {
      const name = join(dir, 'cls', `img${j}${['.png', '.jpg', '.webp', '.png'][i]}`);
      writeFileSync(name, ms.length > 0 ? mutate(seeds[i]!, ms) : seeds[i]!);
      names.push(name);
    });
    const warnings: string[] = [];
    const skip = (f / PER) % 2 === 0;
    const before = process.memoryUsage().arrayBuffers;
    const ts = performance.now();
    try {
      const ds = await loadImageFolder({ root: dir, size: 4, onError: skip ? 'skip' : 'stop', onWarning: (m) => warnings.push(m) });
      st.ok += ds.length;
      st.errors += ds.skipped.length;
      if (!skip) stoppedNot++;
      assert.equal(ds.length + ds.skipped.length, part.length);
      for (const s of ds.skipped) assert.ok(warnings.some((w) => w.includes(s.file)), `skipped ${s.file} without a warning naming it`);
      assert.ok(warnings.every((w) => w.length <= 1000));
    } catch (e) {
      assert.ok(e instanceof LdmError, `folder images: ${String(e)}`);
      assert.ok(!skip, `on_error skip threw: ${e.message}`);
      assert.match(e.message, /cannot read image .*img\d+\.(png|jpg|webp)/);
      assert.ok(e.message.length <= MAX_MESSAGE + 300);
      stopped++;
    }
    st.inputs += part.length;
    const ms = (performance.now() - ts) / part.length;
    st.maxMs = Math.max(st.maxMs, ms);
    const grew = Math.max(0, process.memoryUsage().arrayBuffers - before - part.length * 4 * 4 * 3);
    const size = part.reduce((a, [i]) => a + seeds[i]!.length, 0);
    st.worstRatio = Math.max(st.worstRatio, grew / size);
    rmSync(dir, { recursive: true, force: true });
  }
  st.ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  st.cpuMs = (c.user + c.system) / 1000; // sharp decodes on libuv threads: counted in this process's CPU time
  t.diagnostic(`folder images: on_error skip (${files.length / PER / 2} folders of ${PER}): ${st.ok} decoded, ${st.errors} skipped, each with a ` +
    `warning naming the file; on_error stop: ${stopped} loads stopped at a named corrupt file, ${stoppedNot} had none`);
  report(t, st);
});

test('fuzz summary: total time, peak memory, the marker file never created', (t) => {
  const total = ALL.reduce((a, s) => a + s.ms, 0);
  const cpu = ALL.reduce((a, s) => a + s.cpuMs, 0);
  const rss = (process.resourceUsage().maxRSS - rssStart) * 1024;
  t.diagnostic(`fuzz total: ${ALL.map((s) => `${s.name} ${s.inputs}`).join(', ')}; ${(total / 1000).toFixed(1)} s wall, ${(cpu / 1000).toFixed(1)} s CPU; ` +
    `worst memory ratio ${Math.max(...ALL.map((s) => s.worstRatio)).toFixed(2)}x; peak RSS growth ${(rss / 1e6).toFixed(0)} MB`);
  assert.ok(!existsSync(MARKER));
  assert.ok(rss < 1.5e9, `peak RSS grew by ${rss} bytes`);
  // the budget is CPU time: wall time on a shared machine measures the other jobs as well
  if (RUNS >= 10_000) assert.ok(cpu < 120_000, `fuzzing took ${cpu.toFixed(0)} ms of CPU (budget 2 minutes)`);
});
