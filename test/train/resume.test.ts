// Resume equality: a run stopped after a checkpoint (as if killed: no final save) and resumed
// with --resume reproduces the uninterrupted run's losses and weights exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, readMetrics, readWeights } from '../../src/io/index.ts';
import { train } from '../../src/train/index.ts';
import { TINY as BASE } from './tiny.ts';

const CONFIG = join(import.meta.dirname, '../../configs/debug.yaml');
const TINY = [...BASE, 'model.params.unet_config.params.dropout=0.1'];

test('a killed and resumed run gives the same losses as an uninterrupted one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-resume-'));
  try {
    const config = loadConfig(CONFIG, TINY);
    const a = await train({ config, outDir: join(root, 'a') });
    assert.equal(a.step, 6);
    // 5 steps, then "killed" (the step-5 state is lost; the step-4 checkpoint survives)
    const b1 = await train({ config, outDir: join(root, 'b'), killAfterSteps: 5 });
    assert.equal(b1.reason, 'killed');
    const b2 = await train({ config, outDir: join(root, 'b'), resume: true });
    assert.equal(b2.step, 6);
    assert.deepEqual(b2.losses, a.losses.slice(4));
    const la = readMetrics(join(root, 'a', 'metrics.jsonl')).filter((r) => 'loss' in r).map((r) => r['loss']);
    const lb = readMetrics(join(root, 'b', 'metrics.jsonl')).filter((r) => 'loss' in r).map((r) => r['loss']);
    assert.equal(la.length, 6);
    assert.deepEqual(lb, la);
    const wa = readWeights(join(root, 'a', 'model.safetensors')).tensors;
    const wb = readWeights(join(root, 'b', 'model.safetensors')).tensors;
    assert.deepEqual([...wb.keys()], [...wa.keys()]);
    for (const [k, t] of wa) assert.deepEqual(wb.get(k)!.data, t.data, k);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('kill -9 during training, then `ldm train --resume`: the same losses as an uninterrupted run', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-kill-'));
  const bin = join(import.meta.dirname, '../../bin/ldm.js');
  const args = (out: string): string[] => [bin, 'train', CONFIG, ...BASE, 'lightning.trainer.max_steps=30', 'lightning.trainer.val_check_interval=100', '--out', out, '-q'];
  try {
    const full = spawnSync(process.execPath, args(join(root, 'a')), { encoding: 'utf8' });
    assert.equal(full.status, 0, full.stderr);
    const b = join(root, 'b');
    const child = spawn(process.execPath, args(b), { stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    // kill as soon as the first checkpoint exists (mid-run, possibly mid-write of the next one)
    while (!existsSync(join(b, 'checkpoints', 'last.json'))) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    const killedAt = readMetrics(join(b, 'metrics.jsonl')).filter((r) => 'loss' in r).length;
    assert.ok(killedAt < 30, `the run finished before it was killed (${killedAt} steps)`);
    const res = spawnSync(process.execPath, [bin, 'train', '--resume', b, '-q'], { encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    const la = readMetrics(join(root, 'a', 'metrics.jsonl')).filter((r) => 'loss' in r).map((r) => r['loss']);
    const lb = readMetrics(join(b, 'metrics.jsonl')).filter((r) => 'loss' in r).map((r) => r['loss']);
    assert.equal(la.length, 30);
    assert.deepEqual(lb, la);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
