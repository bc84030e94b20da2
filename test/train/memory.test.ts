// Training without files (what the browser build runs in a Web Worker) reproduces train(): the
// same config and data give the same losses, step for step; and a model file read from bytes
// samples the same images as the one loaded from disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDataFromConfig, loadConfig, mnistFromBytes, mnistDataDir, weightsFromBytes } from '../../src/io/index.ts';
import { loadModel, modelFromWeights, sampleImages, train, trainInMemory } from '../../src/train/index.ts';
import { TINY } from './tiny.ts';

const CONFIG = join(import.meta.dirname, '../../configs/debug.yaml');

test('trainInMemory gives the losses of train() for the same config', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-mem-'));
  try {
    const config = loadConfig(CONFIG, [...TINY, 'lightning.trainer.max_steps=4', 'lightning.trainer.val_check_interval=0']);
    const r1 = await train({ config, outDir: root });
    const data = await buildDataFromConfig(config, {}, ['train']);
    let seen = 0;
    const r2 = await trainInMemory({ config, train: data.train!, onStep: (s) => { seen = s.step; } });
    assert.equal(seen, 4);
    assert.equal(r2.losses.length, 4);
    assert.deepEqual(r2.losses, r1.losses);
    const stopped = await trainInMemory({ config, train: data.train!, steps: 3, shouldStop: () => true });
    assert.equal(stopped.reason, 'stopped');
    assert.deepEqual(stopped.losses, r1.losses.slice(0, 1));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('MNIST from IDX bytes equals the loaded data set; a model from bytes samples as from disk', () => {
  const dir = mnistDataDir();
  const ds = mnistFromBytes(readFileSync(join(dir, 't10k-images-idx3-ubyte')), readFileSync(join(dir, 't10k-labels-idx1-ubyte')), { split: 'test', limit: 5 });
  assert.equal(ds.length, 5);
  assert.equal(ds.label(0), 7); // the first MNIST test digit is a seven
  const disk = loadModel({ name: 'mnist-ddpm' });
  const w = weightsFromBytes(new Uint8Array(readFileSync(disk.path)), 'mnist-ddpm.safetensors');
  const mem = modelFromWeights(w, w.config!);
  const req = { n: 2, sampler: 'ddim' as const, steps: 2, guidance: 2, seed: 3, labels: [1, 8] };
  assert.deepEqual(sampleImages(mem.model, mem.cls, req).samples.toArray(), sampleImages(disk.model, disk.cls, req).samples.toArray());
});
