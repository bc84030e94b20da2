// Writes test/fixtures/hostile/: the regression corpus of worst-case inputs (memory bombs, values
// that broke message building, unbounded echoes, quadratic and deep YAML, a renamed text file).
// Run by hand (`npx tsx scripts/make-hostile-corpus.ts`), never by CI; the files are committed and
// checked by test/cli/corpus.test.ts (`ldm inspect` / `ldm train` on each: one line or a correct
// summary, bounded memory and time). Each file is kept well under 1 MB.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors } from '../src/formats/index.ts';
import { G, K, PROTO2, S, concat, makeZip, pk, storageRef, torchZip } from '../test/formats/builders.ts';

const OUT = join(import.meta.dirname, '..', 'test', 'fixtures', 'hostile');
mkdirSync(OUT, { recursive: true });
const put = (name: string, bytes: Uint8Array | string): void => {
  writeFileSync(join(OUT, name), bytes);
  console.log(`${name}: ${typeof bytes === 'string' ? bytes.length : bytes.byteLength} bytes`);
};

const L1 = (n: bigint): number[] => {
  const b: number[] = [];
  let v = n;
  do { b.push(Number(v & 0xffn)); v >>= 8n; } while (v !== 0n && v !== -1n);
  if ((b[b.length - 1]! & 0x80) !== 0 && n >= 0n) b.push(0);
  return [0x8a, b.length, ...b];
};
const intTuple = (xs: (number | bigint)[]): Uint8Array => pk('(', ...xs.map((x) => (typeof x === 'bigint' || x >= 256 ? L1(BigInt(x)) : K(x))), 't');
const tensorPickle = (numel: number, size: (number | bigint)[], stride: (number | bigint)[], cls: [string, string] = ['torch', 'FloatStorage']): Uint8Array =>
  pk(PROTO2, '}', S('w'), G('torch._utils', '_rebuild_tensor_v2'), '(', storageRef(cls, '0', numel),
    K(0), intTuple(size), intTuple(stride), [0x89], G('collections', 'OrderedDict'), ')R', 't', 'R', 's', '.');
const u64le = (n: bigint): Uint8Array => Uint8Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const st = (header: string, data = new Uint8Array(4)): Uint8Array => concat([u64le(BigInt(header.length)), new TextEncoder().encode(header), data]);

// memory bombs
put('stride0-16k.ckpt', torchZip(tensorPickle(1, [16384, 16384], [0, 0]), { 0: new Uint8Array(4) }));
put('stride0-64k.ckpt', torchZip(tensorPickle(1, [65536, 65536], [0, 0]), { 0: new Uint8Array(4) }));
{
  const zip = makeZip([{ name: 'archive/data.pkl', data: tensorPickle(1, [1], [1]) }, { name: 'archive/data/0', data: new Uint8Array(64 << 20), deflate: true },
    { name: 'archive/version', data: '3\n' }]);
  // the storage entry claims 4 GiB (central directory size field)
  const dv = new DataView(zip.buffer);
  const cd = dv.getUint32(zip.byteLength - 6, true);
  let p = cd;
  for (let i = 0; i < 3; i++) {
    const nameLen = dv.getUint16(p + 28, true);
    const name = new TextDecoder().decode(zip.subarray(p + 46, p + 46 + nameLen));
    if (name === 'archive/data/0') dv.setUint32(p + 24, 0xfffffffe, true);
    p += 46 + nameLen;
  }
  put('zip-claims-4gib.ckpt', zip);
}
put('storage-larger-than-declared.ckpt', makeZip([{ name: 'archive/data.pkl', data: tensorPickle(1, [1], [1]) },
  { name: 'archive/data/0', data: new Uint8Array(32 << 20), deflate: true }, { name: 'archive/version', data: '3\n' }]));
{
  const n = 20_000;
  const body: Uint8Array[] = [pk(PROTO2, ']', [0x71, 0], '(')];
  for (let i = 0; i < n; i++) body.push(pk(K(1)));
  body.push(pk('e', '0', G('builtins', 'set'), [0x71, 1], '0', '}', S('w'), '('));
  for (let i = 0; i < n; i++) body.push(pk([0x68, 1], [0x68, 0], [0x85], 'R'));
  body.push(pk('l', 's', '.'));
  put('quadratic-set.ckpt', torchZip(concat(body)));
}
// NaN and unsafe element counts
put('numel-nan.ckpt', torchZip(tensorPickle(1, [...new Array<number>(40).fill(2 ** 53 - 1), 0], new Array<number>(41).fill(1)), { 0: new Uint8Array(4) }));
put('numel-2e60.ckpt', torchZip(tensorPickle(1, [2 ** 30, 2 ** 30], [0, 0]), { 0: new Uint8Array(4) }));
// values that broke message building
put('pid-cyclic.ckpt', torchZip(pk(PROTO2, ']', [0x71, 0], [0x68, 0], 'a', 'Q', '.')));
put('pid-bigint.ckpt', torchZip(pk(PROTO2, '(', S('x'), L1(2n ** 70n), 't', 'Q', '.')));
put('pid-deep.ckpt', torchZip(concat([pk(PROTO2), pk(...new Array<string>(100_000).fill(']')), pk(...new Array<string>(99_999).fill('a')), pk('Q', '.')])));
put('dtype-tostring.ckpt', torchZip(pk(PROTO2, '}', S('w'), G('torch._utils', '_rebuild_tensor_v3'), '(', storageRef(['torch', 'UntypedStorage'], '0', 4),
  K(0), intTuple([1]), intTuple([1]), [0x89], G('collections', 'OrderedDict'), ')R', '}', S('toString'), K(1), 's', 't', 'R', 's', '.'), { 0: new Uint8Array(4) }));
put('os-system.ckpt', torchZip(pk(PROTO2, G('os', 'system'), '(', S('touch /tmp/ldm-hostile-marker'), 't', 'R', '.')));
put('header-deep.safetensors', st(`{"w":{"dtype":${'['.repeat(100_000)}${']'.repeat(100_000)},"shape":[1],"data_offsets":[0,4]}}`));
// unbounded echoes (the 5 MB / 1M cases of the issue, cut to stay under 1 MB: the bound is the same)
put('dtype-400k.safetensors', st(`{"w":{"dtype":"${'x'.repeat(400_000)}","shape":[1],"data_offsets":[0,4]}}`));
put('shape-150k.safetensors', st(`{"w":{"dtype":"F32","shape":[${new Array(150_000).fill(1).join(',')},-1],"data_offsets":[0,4]}}`));
put('i64-beyond-2p53.safetensors', serializeSafetensors({ ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 60n]) } }));
put('text-renamed.safetensors', 'These are my notes about the model I trained last week. It samples sevens well.\n');
// YAML
put('yaml-keys-30k.yaml', Array.from({ length: 30_000 }, (_, i) => `k${i}: ${i}`).join('\n'));
put('yaml-params-25k.yaml', `model:\n  base_learning_rate: 1.0e-4\n  target: ldm.models.diffusion.ddpm.DDPM\n  params:\n${Array.from({ length: 25_000 }, (_, i) => `    k${i}: ${i}`).join('\n')}\ndata:\n  params:\n    batch_size: 1\nlightning:\n  trainer:\n    max_steps: 1\n`);
put('yaml-target-400k.yaml', `model:\n  target: ldm.models.${'x'.repeat(400_000)}\n`);
put('yaml-deep-flow.yaml', `model: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
put('yaml-deep-dash.yaml', `model:\n  ${'- '.repeat(100_000)}1\n`);
put('yaml-duplicate.yaml', 'model:\n  target: ldm.models.diffusion.ddpm.DDPM\n  target: ldm.models.autoencoder.AutoencoderKL\n');
