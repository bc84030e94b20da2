// The trainer: the files of a run (metrics, loss curve, sample grid, denoising strip, model file),
// classifier-free-guidance dropout, and the NaN guard that stops with a clear message and keeps
// the last good checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, readImageRaw, readMetrics, readWeights } from '../../src/io/index.ts';
import { TRAINERS, TrainingStopped, loadModel, sampleImages, train, type TrainEvent } from '../../src/train/index.ts';
import { TINY } from './tiny.ts';

const CONFIG = join(import.meta.dirname, '../../configs/debug.yaml');

test('a short run writes metrics, pictures, checkpoints and a model that samples', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-train-'));
  try {
    const config = loadConfig(CONFIG, [...TINY, 'lightning.callbacks.image_logger.params.disabled=false',
      'lightning.callbacks.image_logger.params.batch_frequency=6', 'lightning.callbacks.image_logger.params.sample_steps=5',
      'lightning.callbacks.image_logger.params.max_images=10']);
    const events: TrainEvent[] = [];
    const r = await train({ config, outDir: root, onEvent: (e) => events.push(e) });
    assert.equal(r.reason, 'finished');
    assert.ok(r.losses.every(Number.isFinite));
    const rows = readMetrics(join(root, 'metrics.jsonl'));
    assert.deepEqual(rows.filter((x) => 'loss' in x).map((x) => x.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(rows.filter((x) => 'val/loss' in x).map((x) => x.step), [3, 6]);
    assert.ok(typeof rows[0]!['train/loss_simple'] === 'number' && typeof rows[0]!['lr'] === 'number');
    for (const f of ['config.yaml', 'loss.png', 'model.safetensors', 'images/samples_step-000006.png', 'images/strip_step-000006.png']) {
      assert.ok(existsSync(join(root, f)), f);
    }
    const strip = await readImageRaw(join(root, 'images/strip_step-000006.png'));
    assert.equal(strip.width, 7 * 30 + 2); // x0 + 3 x (x_t, x0_hat) columns of 28 px + padding
    assert.ok(events.some((e) => e.type === 'val'));
    assert.deepEqual(readdirSync(join(root, 'checkpoints')).filter((f) => f.endsWith('.json')), ['last.json']);
    const w = readWeights(join(root, 'model.safetensors'));
    assert.ok(![...w.tensors.keys()].some((k) => k.startsWith('model_ema.')));
    const m = loadModel({ checkpoint: root });
    assert.deepEqual(m.cls, { numClasses: 10, nullLabel: 10 });
    const s = sampleImages(m.model, m.cls, { n: 3, sampler: 'dpm-solver++', steps: 3, guidance: 2, seed: 1, labels: [7, 7, 1] });
    assert.deepEqual([...s.samples.shape], [3, 1, 28, 28]);
    assert.ok(s.samples.f32.every((v) => v >= -1 && v <= 1));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the NaN guard stops the run, naming the step and the last good checkpoint', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-nan-'));
  try {
    // an absurd learning rate without clipping: the weights blow up after the first step
    const config = loadConfig(CONFIG, [...TINY, 'model.base_learning_rate=1.0e+12', 'scale_lr=false', 'model.params.scheduler_config=null',
      'lightning.trainer.gradient_clip_val=0', 'lightning.modelcheckpoint.params.every_n_train_steps=1', 'lightning.trainer.max_steps=20']);
    await assert.rejects(train({ config, outDir: root }), (e: Error) => {
      assert.ok(e instanceof TrainingStopped, String(e));
      assert.match(e.message, /training stopped at step \d+: the (loss|gradient norm) is (NaN|Infinity|-Infinity)/);
      assert.match(e.message, /last good checkpoint is .*step-0000\d\d\.safetensors/);
      return true;
    });
    assert.ok(existsSync(join(root, 'checkpoints', 'last.json')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the trainer registry picks a trainer by model.target and names the trainable targets otherwise', async () => {
  const config = { model: { target: 'ldm.models.diffusion.ddpm.DDPN', params: {} } };
  await assert.rejects(train({ config, outDir: join(tmpdir(), 'ldm-no-trainer') }),
    /no trainer for model.target "ldm.models.diffusion.ddpm.DDPN" \(did you mean 'ldm.models.diffusion.ddpm.DDPM'\?\); trainable: .*AutoencoderKL/);
  assert.deepEqual(Object.keys(TRAINERS).sort(), [
    'ldm.models.autoencoder.AutoencoderKL', 'ldm.models.autoencoder.VQModel', 'ldm.models.diffusion.ddpm.DDPM',
    'ldm.models.diffusion.ddpm.LatentDiffusion', 'taming.models.vqgan.VQModel',
  ]);
});
