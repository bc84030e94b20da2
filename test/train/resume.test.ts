// Resume equality: a run stopped after a checkpoint (as if killed: no final save) and resumed
// with --resume reproduces the uninterrupted run's losses and weights exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, readMetrics, readWeights } from '../../src/io/index.ts';
import { train } from '../../src/train/index.ts';

const CONFIG = join(import.meta.dirname, '../../configs/debug.yaml');
export const TINY = [
  'model.params.unet_config.params.channel_mult=[1]', 'model.params.unet_config.params.attention_resolutions=[]',
  'data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8',
  'lightning.trainer.max_steps=6', 'lightning.trainer.val_check_interval=3', 'lightning.trainer.limit_val_batches=1',
  'lightning.modelcheckpoint.params.every_n_train_steps=2', 'lightning.callbacks.image_logger.params.disabled=true',
  'model.params.unet_config.params.dropout=0.1',
];

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
    const la = readMetrics(join(root, 'a', 'metrics.jsonl')).map((r) => r['loss']);
    const lb = readMetrics(join(root, 'b', 'metrics.jsonl')).map((r) => r['loss']);
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
