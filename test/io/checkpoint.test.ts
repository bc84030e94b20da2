// Checkpoints: the official state-dict keys round trip through safetensors, training checkpoints
// (model + optimizer + sidecar) are complete and atomic, official .ckpt files load, inspect lists
// tensors of both formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildModelFromConfig, inspectFile, loadConfig, loadTrainingCheckpoint, loadWeightsInto, readWeights, saveModelFile,
  saveTrainingCheckpoint,
} from '../../src/io/index.ts';
import { DDPM } from '../../src/models/index.ts';
import { Tensor } from '../../src/tensor/index.ts';

const DEBUG = join(import.meta.dirname, '../../configs/debug.yaml');
const FORMATS = join(import.meta.dirname, '../fixtures/formats');

test('a DDPM state dict round trips under the official keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-ckpt-'));
  try {
    const config = loadConfig(DEBUG);
    const model = buildModelFromConfig(config) as DDPM;
    const sd = model.stateDict();
    const keys = [...sd.keys()];
    for (const k of ['betas', 'alphas_cumprod', 'posterior_mean_coef2', 'model.diffusion_model.time_embed.0.weight',
      'model.diffusion_model.label_emb.weight', 'model.diffusion_model.out.2.weight', 'model_ema.decay', 'model_ema.num_updates',
      'model_ema.diffusion_modeltime_embed0weight']) assert.ok(keys.includes(k), k);
    const path = join(dir, 'm.safetensors');
    saveModelFile(path, sd, config);
    const w = readWeights(path);
    assert.deepEqual(w.config, config);
    const other = buildModelFromConfig(loadConfig(DEBUG, ['seed=99'])) as DDPM;
    // perturb, then load back
    const p = other.model.diffusion_model.parameters()[0]!;
    p.data = new Float32Array(p.size).fill(7);
    const r = loadWeightsInto(other, w.tensors, path, true);
    assert.deepEqual(r, { missing: [], unexpected: [] });
    for (const [k, t] of other.stateDict()) assert.deepEqual(t.data, sd.get(k)!.data, k);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('training checkpoints: model, optimizer moments and sidecar; older ones pruned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-ckpt-'));
  try {
    const sd = new Map([['model.diffusion_model.w', new Tensor(Float32Array.of(1, 2, 3), [3])], ['betas', new Tensor(Float32Array.of(0.1), [1])]]);
    const opt = new Map([['exp_avg.model.diffusion_model.w', new Tensor(Float32Array.of(4, 5, 6), [3])]]);
    for (const step of [1, 2, 3]) saveTrainingCheckpoint(dir, sd, opt, { step, config: { seed: step }, state: { rng: [step] } }, 2);
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['last.json', 'step-000002.optim.safetensors', 'step-000002.safetensors', 'step-000003.optim.safetensors', 'step-000003.safetensors']);
    const ck = loadTrainingCheckpoint(dir);
    assert.equal(ck.sidecar.step, 3);
    assert.deepEqual(ck.sidecar.config, { seed: 3 });
    assert.deepEqual(ck.sidecar.state, { rng: [3] });
    assert.deepEqual(Array.from(ck.stateDict.get('model.diffusion_model.w')!.data), [1, 2, 3]);
    assert.deepEqual(Array.from(ck.optimizer.get('exp_avg.model.diffusion_model.w')!.data), [4, 5, 6]);
    assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')));
    assert.throws(() => loadTrainingCheckpoint(join(dir, 'nothing')), /no checkpoint to resume/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('official .ckpt files: read as weights and inspected', () => {
  const path = join(FORMATS, 'lightning.ckpt');
  const w = readWeights(path);
  assert.ok(w.tensors.size > 0);
  const r = inspectFile(path);
  assert.equal(r.kind, 'torch');
  assert.equal(r.entries.length, w.tensors.size);
  const e = r.entries[0]!;
  assert.deepEqual([...w.tensors.get(e.name)!.shape], e.shape);
  const s = inspectFile(join(FORMATS, 'lightning.expected.safetensors'));
  assert.equal(s.kind, 'safetensors');
  assert.ok(s.entries.every((x) => typeof x.dtype === 'string' && Array.isArray(x.shape)));
  assert.ok(existsSync(path));
});
