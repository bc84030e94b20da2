// Evaluation: bits/dim (the exact sum equals diffusion/'s calc_bpd_loop; the strided estimate is
// close), class accuracy of samples, and the shipped MNIST classifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildModelFromConfig, loadConfig, loadMnist, loadWeightsInto, makeBatch, readWeights } from '../../src/io/index.ts';
import { calcBpd } from '../../src/diffusion/index.ts';
import { permute } from '../../src/tensor/index.ts';
import { Generator } from '../../src/util/index.ts';
import type { DDPM } from '../../src/models/index.ts';
import { MnistClassifier, classConditioning, classifierAccuracy, evalBitsPerDim, evalClassAccuracy, resolveSettings } from '../../src/train/index.ts';
import { TINY } from './tiny.ts';

const CONFIG = join(import.meta.dirname, '../../configs/debug.yaml');

test('bits/dim: the exact sum matches calc_bpd_loop (but L_0); a strided estimate is close', () => {
  const config = loadConfig(CONFIG, [...TINY, 'model.params.timesteps=40']);
  const model = buildModelFromConfig(config) as DDPM;
  model.eval();
  const cls = classConditioning(model, resolveSettings(config));
  const ds = loadMnist({ split: 'test', limit: 3 });
  const exact = evalBitsPerDim(model, cls, ds, { n: 3, seed: 5, stride: 1 });
  const b = makeBatch(ds, [0, 1, 2]);
  const ref = calcBpd(model.denoiser(), model.diffusion, permute(b.image, [0, 3, 1, 2]), { gen: new Generator(5), cond: { y: b.class_label } });
  // the same terms L_1..L_T-1 and L_T (L_0 differs on purpose: improved DDPM's decoder variance)
  const vb = ref.vb.toArray();
  const refMean = ref.totalBpd.toArray().reduce((a, v, i) => a + v - vb[i * 40]!, 0) / 3;
  const ours = exact.bitsPerDim - exact.decoderBpd;
  assert.ok(Math.abs(ours - refMean) < 1e-4 * refMean, `${ours} vs ${refMean}`);
  assert.ok(exact.bitsPerDim > 0 && exact.conditional);
  const est = evalBitsPerDim(model, cls, ds, { n: 3, seed: 5, stride: 4 });
  assert.equal(est.stride, 4);
  assert.ok(Math.abs(est.bitsPerDim - exact.bitsPerDim) < 0.5 * exact.bitsPerDim);
  assert.equal(est.decoderBpd > 0, true);
});

test('class accuracy of samples and the shipped classifier (>= 98% on MNIST test)', () => {
  const path = join(import.meta.dirname, '../../models/mnist-classifier.safetensors');
  const c = new MnistClassifier();
  loadWeightsInto(c, readWeights(path).tensors, path, true);
  c.eval();
  assert.ok(c.numParameters() * 4 <= 1_000_000);
  const acc = classifierAccuracy(c, loadMnist({ split: 'test', limit: 1000 }));
  assert.ok(acc >= 0.98, `classifier accuracy ${acc}`);
  const config = loadConfig(CONFIG, TINY);
  const model = buildModelFromConfig(config) as DDPM;
  model.eval();
  const cls = classConditioning(model, resolveSettings(config))!;
  const r = evalClassAccuracy(model, cls, c, { perClass: 1, sampler: 'dpm-solver++', steps: 2, guidance: 2, seed: 0 });
  assert.equal(r.n, 10);
  assert.deepEqual(r.labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(r.confusion.flat().reduce((a, v) => a + v, 0), 10);
  assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
});
