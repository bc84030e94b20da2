// Kill tests (issue: hardening): `ldm train` of a diffusion, a latent diffusion and an autoencoder
// config is killed with SIGKILL and interrupted with SIGINT at seeded random moments after its first
// checkpoint; `ldm train --resume` then ends with exactly the weights of an uninterrupted run. SIGINT
// must write its checkpoint promptly and exit 130. A disk that fills during a checkpoint write (a
// small tmpfs mounted for the test; where mounting is impossible, ENOSPC injected into the writer
// instead, said in the test's diagnostic) leaves the previous checkpoint loadable, no temp files,
// and the run resumable to the same weights. Tiny models and few steps: the whole file runs in about
// a minute on 2 cores.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadTrainingCheckpoint, readMetrics, readWeights, saveTrainingCheckpoint, writeFileAtomic } from '../../src/io/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { OutputFileError } from '../../src/util/index.ts';
import { train } from '../../src/train/index.ts';
import { TINY } from './tiny.ts';

const ROOT = join(import.meta.dirname, '../..');
/** node:fs as its CommonJS object: assignable, and syncBuiltinESMExports() carries a change to every ESM importer. */
const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
const BIN = join(ROOT, 'bin', 'ldm.js');
const cfg = (name: string): string => join(ROOT, 'configs', `${name}.yaml`);
const SEED = Number(process.env['LDM_KILL_SEED'] ?? 20261203);

/** mulberry32: the seeded "random points" of the kills (LDM_KILL_SEED reproduces a run). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SMALL_DATA = ['data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8'];
const RUN = ['lightning.trainer.val_check_interval=100', 'lightning.trainer.limit_val_batches=1', 'lightning.modelcheckpoint.params.every_n_train_steps=2',
  'lightning.callbacks.image_logger.params.disabled=true'];
const CONFIGS: { name: string; file: string; overrides: string[] }[] = [
  { name: 'diffusion', file: cfg('debug'), overrides: [...TINY, 'lightning.trainer.max_steps=16', 'lightning.trainer.val_check_interval=100'] },
  {
    name: 'latent diffusion', file: cfg('mnist-ldm'), overrides: [...SMALL_DATA, ...RUN, 'lightning.trainer.max_steps=12',
      'model.params.unet_config.params.model_channels=32', 'model.params.unet_config.params.context_dim=32',
      'model.params.cond_stage_config.params.embed_dim=32',
      `model.params.first_stage_config.params.ckpt_path=${join(ROOT, 'models', 'mnist-autoencoder.safetensors')}`],
  },
  {
    name: 'autoencoder', file: cfg('mnist-autoencoder'), overrides: [...SMALL_DATA, ...RUN, 'lightning.trainer.max_steps=12',
      'model.params.lossconfig.params.disc_start=0'],
  },
];

const trainArgs = (c: (typeof CONFIGS)[number], out: string): string[] => [BIN, 'train', c.file, ...c.overrides, '--out', out, '-q'];

/** Same tensors, bit for bit. */
function sameWeights(a: string, b: string, what: string): void {
  const wa = readWeights(a).tensors, wb = readWeights(b).tensors;
  assert.deepEqual([...wb.keys()].sort(), [...wa.keys()].sort(), what);
  for (const [k, t] of wa) assert.deepEqual(wb.get(k)!.data, t.data, `${what}: ${k}`);
}

const losses = (dir: string): unknown[] => readMetrics(join(dir, 'metrics.jsonl')).filter((r) => 'loss' in r).map((r) => r['loss']);

/** Start a run, wait for its first checkpoint plus a seeded random delay, send `signal`; resolves with the exit. */
async function interrupt(args: string[], out: string, signal: 'SIGKILL' | 'SIGINT', delayMs: number): Promise<{ code: number | null; signal: string | null; stderr: string; afterSignalMs: number }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('exit', (code, sig) => res({ code, signal: sig })));
  let done: { code: number | null; signal: string | null } | null = null;
  void exited.then((e) => { done = e; });
  while (!existsSync(join(out, 'checkpoints', 'last.json')) && done === null) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, delayMs));
  const t0 = Date.now();
  child.kill(signal);
  const e = await exited;
  return { ...e, stderr, afterSignalMs: Date.now() - t0 };
}

for (const c of CONFIGS) {
  test(`kill -9 and SIGINT at random points of \`ldm train\` (${c.name}), then --resume: the weights of an uninterrupted run`, async (t: TestContext) => {
    const root = mkdtempSync(join(tmpdir(), 'ldm-killtest-'));
    const draw = rng(SEED + c.name.length);
    try {
      // the reference: one uninterrupted run (in-process: the same trainer the CLI calls)
      const ref = join(root, 'ref');
      const r = await train({ config: loadConfig(c.file, c.overrides), outDir: ref });
      assert.equal(r.reason, 'finished');
      const steps = losses(ref).length;
      for (const signal of ['SIGKILL', 'SIGINT'] as const) {
        const out = join(root, signal);
        const delay = Math.floor(draw() * 300);
        const k = await interrupt(trainArgs(c, out), out, signal, delay);
        const stoppedAt = losses(out).length;
        t.diagnostic(`${c.name}: ${signal} ${delay} ms after the first checkpoint (seed ${SEED}); stopped at step ${stoppedAt}/${steps}, exit ${k.code ?? k.signal} after ${k.afterSignalMs} ms`);
        if (stoppedAt >= steps && k.code === 0) continue; // the run finished before the signal: nothing to resume
        if (signal === 'SIGINT') {
          // the convention: finish the checkpoint promptly, exit 130
          assert.equal(k.code, 130, k.stderr);
          assert.ok(k.afterSignalMs < 20_000, `SIGINT took ${k.afterSignalMs} ms`);
          assert.equal(loadTrainingCheckpoint(out).sidecar.step, stoppedAt, 'the checkpoint is of the step it stopped at');
        } else {
          assert.equal(k.signal, 'SIGKILL');
        }
        const res = spawnSync(process.execPath, [BIN, 'train', '--resume', out, '-q'], { encoding: 'utf8' });
        assert.equal(res.status, 0, res.stderr);
        assert.deepEqual(losses(out), losses(ref), `${signal}: losses`);
        sameWeights(join(ref, 'model.safetensors'), join(out, 'model.safetensors'), `${c.name} after ${signal} + --resume`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

/** Bytes a file takes on tmpfs (whole pages). */
const pages = (n: number): number => Math.ceil(n / 4096) * 4096;

test('a disk that fills during a checkpoint write keeps the previous checkpoint loadable; --resume then gives the uninterrupted weights', async (t: TestContext) => {
  const c = CONFIGS[0]!;
  const root = mkdtempSync(join(tmpdir(), 'ldm-diskfull-'));
  const mnt = join(root, 'tmpfs');
  mkdirSync(mnt);
  let mounted = false;
  try {
    const ref = join(root, 'ref');
    await train({ config: loadConfig(c.file, c.overrides), outDir: ref });
    // room for everything of the run up to its first checkpoint, plus half the second one
    const ck = join(ref, 'checkpoints');
    const model = statSync(join(ck, readdirSync(ck).find((f) => /^step-\d+\.safetensors$/.test(f))!)).size;
    const optim = statSync(join(ck, readdirSync(ck).find((f) => f.endsWith('.optim.safetensors'))!)).size;
    const size = pages(model) + pages(optim) + pages(model) + pages(optim / 2) + 4 * 4096 + 8 * 4096;
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' });
    mounted = m.status === 0;
    if (mounted) {
      t.diagnostic(`tmpfs of ${size} bytes (checkpoint: model ${model} + optimizer ${optim} bytes)`);
      const out = join(mnt, 'run');
      const r = spawnSync(process.execPath, trainArgs(c, out), { encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      // the progress line of the start, then exactly one error line
      const lines = r.stderr.trim().split('\n').filter((l) => !/^(training|warning)/.test(l));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^ldm: error: checkpoint of step 4 not written: cannot write .*step-000004\.optim\.safetensors: the disk is full \(ENOSPC\); the last complete checkpoint \(.*last\.json\) is unchanged$/);
      assert.deepEqual(readdirSync(join(out, 'checkpoints')).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
      assert.equal(loadTrainingCheckpoint(out).sidecar.step, 2, 'the step-2 checkpoint loads');
      // the disk is freed (here: the run is copied off the full tmpfs), the run resumes to the same weights
      const moved = join(root, 'run');
      cpSync(out, moved, { recursive: true });
      const res = spawnSync(process.execPath, [BIN, 'train', '--resume', moved, '-q'], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      sameWeights(join(ref, 'model.safetensors'), join(moved, 'model.safetensors'), 'after a full disk and --resume');
    } else {
      t.diagnostic(`tmpfs cannot be mounted here (${m.stderr.trim() || m.error?.message}): ENOSPC is injected into the writer instead`);
      await injectedDiskFull(root, ref);
    }
  } finally {
    if (mounted) spawnSync('umount', [mnt]);
    rmSync(root, { recursive: true, force: true });
  }
});

/** The fallback: fs.writeSync fails with ENOSPC after a byte budget (Node's builtin ESM exports resynced). */
async function injectedDiskFull(root: string, ref: string): Promise<void> {
  const dir = join(root, 'ck');
  const ck = loadTrainingCheckpoint(ref);
  saveTrainingCheckpoint(dir, ck.stateDict, ck.optimizer, { step: 2, config: ck.sidecar.config, state: ck.sidecar.state });
  const real = fs.writeSync;
  let budget = 1000;
  (fs as { writeSync: unknown }).writeSync = (fd: number, buf: Uint8Array, off?: number, len?: number): number => {
    const n = Math.min(len ?? buf.length, budget);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    budget -= n;
    return real(fd, buf, off ?? 0, n);
  };
  syncBuiltinESMExports();
  try {
    assert.throws(() => saveTrainingCheckpoint(dir, ck.stateDict, ck.optimizer, { step: 4, config: ck.sidecar.config, state: ck.sidecar.state }),
      (e: unknown) => e instanceof OutputFileError && /checkpoint of step 4 not written: .*disk is full \(ENOSPC\); the last complete checkpoint/.test(e.message));
  } finally {
    (fs as { writeSync: unknown }).writeSync = real;
    syncBuiltinESMExports();
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  assert.equal(loadTrainingCheckpoint(dir).sidecar.step, 2);
}

test('atomic writes: a write failing half-way (ENOSPC injected) leaves the previous file and no temp file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-atomic-'));
  try {
    const p = join(dir, 'model.safetensors');
    writeFileSync(p, 'previous');
    const real = fs.writeSync;
    let budget = 10;
    (fs as { writeSync: unknown }).writeSync = (fd: number, buf: Uint8Array, off?: number, len?: number): number => {
      const n = Math.min(len ?? buf.length, budget);
      if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      budget -= n;
      return real(fd, buf, off ?? 0, n);
    };
    syncBuiltinESMExports();
    try {
      assert.throws(() => writeFileAtomic(p, new Uint8Array(4096)), (e: unknown) => e instanceof OutputFileError &&
        e.message === `cannot write ${p}: the disk is full (ENOSPC)`);
      budget = 10;
      assert.throws(() => saveTrainingCheckpoint(dir, new Map([['w', new Tensor(new Float32Array(1000), [1000])]]), null, { step: 1, config: {}, state: {} }),
        /checkpoint of step 1 not written: cannot write .*step-000001\.safetensors: the disk is full \(ENOSPC\); no earlier checkpoint exists/);
    } finally {
      (fs as { writeSync: unknown }).writeSync = real;
      syncBuiltinESMExports();
    }
    assert.deepEqual(readdirSync(dir).sort(), ['model.safetensors'], 'temp files removed');
    assert.equal(fs.readFileSync(p, 'utf8'), 'previous');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
