// The trainer on a VQ first stage: configs/mnist-vq.yaml (ldm VQModel + taming
// VQLPIPSWithDiscriminator) trains a few steps with both optimizers (codebook, encoder and
// discriminator all move; the metrics carry the codebook loss), then a LatentDiffusion with that
// model as its VQModelInterface first stage trains and samples. Tiny data and step counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModelFromConfig, loadConfig, readMetrics, readWeights } from '../../src/io/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';
import { VQModelInterface } from '../../src/models/index.ts';
import { loadModel, sampleImages, train } from '../../src/train/index.ts';

const cfg = (name: string): string => join(import.meta.dirname, `../../configs/${name}.yaml`);
const SMALL_DATA = ['data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8'];

test('VQ autoencoder config trains with both optimizers; an LDM on it as VQModelInterface trains and samples', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-vq-'));
  try {
    const aeCfg = loadConfig(cfg('mnist-vq'), [...SMALL_DATA, 'lightning.trainer.max_steps=3', 'lightning.trainer.val_check_interval=3',
      'lightning.modelcheckpoint.params.every_n_train_steps=3', 'lightning.callbacks.image_logger.params.batch_frequency=3',
      'model.params.lossconfig.params.disc_start=0', 'model.params.lr_g_factor=0.5']);
    const aeDir = join(root, 'vq');
    const r = await train({ config: aeCfg, outDir: aeDir });
    assert.equal(r.reason, 'finished');
    assert.ok(r.losses.length === 3 && r.losses.every(Number.isFinite));
    const w = readWeights(join(aeDir, 'model.safetensors'));
    setInitSeed(23);
    const fresh = buildModelFromConfig(aeCfg) as { stateDict(): Map<string, { f32: Float32Array }> };
    const init = fresh.stateDict();
    assert.deepEqual([...w.tensors.keys()].sort(), [...init.keys()].sort());
    const changed = (k: string): boolean => init.get(k)!.f32.some((v, i) => v !== w.tensors.get(k)!.f32[i]);
    assert.ok(changed('encoder.conv_in.weight'), 'optimizer 0 moved the encoder');
    assert.ok(changed('quantize.embedding.weight'), 'optimizer 0 moved the codebook (codebook loss)');
    assert.ok(changed('loss.discriminator.main.0.weight'), 'optimizer 1 moved the discriminator');
    const rows = readMetrics(join(aeDir, 'metrics.jsonl'));
    const last = rows.filter((x) => typeof x['train/quant_loss'] === 'number').pop();
    assert.ok(last, 'train/quant_loss logged');
    for (const k of ['train/nll_loss', 'train/rec_loss', 'train/p_loss', 'train/d_weight', 'train/g_loss', 'train/disc_loss']) assert.equal(typeof last[k], 'number', k);
    assert.equal(last['train/disc_factor'], 1);
    assert.ok((last['train/d_weight'] as number) > 0, 'adaptive weight computed from last-layer gradients');
    assert.ok(rows.some((x) => typeof x['val/psnr'] === 'number'));
    assert.ok(existsSync(join(aeDir, 'images/reconstructions_step-000003.png')));

    // LatentDiffusion on that first stage (VQModelInterface, official LDM-VQ config shape)
    const ldmCfg = loadConfig(cfg('mnist-ldm'), [...SMALL_DATA, 'lightning.trainer.max_steps=2', 'lightning.trainer.val_check_interval=2',
      'lightning.trainer.limit_val_batches=1', 'lightning.modelcheckpoint.params.every_n_train_steps=2',
      'lightning.callbacks.image_logger.params.batch_frequency=2', 'lightning.callbacks.image_logger.params.sample_steps=2',
      'lightning.callbacks.image_logger.params.max_images=10', 'lightning.callbacks.image_logger.params.strip_t=[500]',
      'model.params.unet_config.params.model_channels=32', 'model.params.unet_config.params.num_res_blocks=1',
      'model.params.unet_config.params.context_dim=32', 'model.params.cond_stage_config.params.embed_dim=32',
      'model.params.first_stage_config.target=ldm.models.autoencoder.VQModelInterface',
      'model.params.first_stage_config.params.n_embed=64', 'model.params.first_stage_config.params.ddconfig.double_z=false',
      `model.params.first_stage_config.params.ckpt_path=${join(aeDir, 'model.safetensors')}`]);
    const dir = join(root, 'ldm');
    const lr = await train({ config: ldmCfg, outDir: dir });
    assert.equal(lr.reason, 'finished');
    assert.ok(lr.losses.every(Number.isFinite));
    const mw = readWeights(join(dir, 'model.safetensors'));
    assert.deepEqual([...mw.tensors.get('first_stage_model.quantize.embedding.weight')!.f32], [...w.tensors.get('quantize.embedding.weight')!.f32]);
    const m = loadModel({ checkpoint: dir });
    assert.ok((m.model as unknown as { first_stage_model: unknown }).first_stage_model instanceof VQModelInterface);
    const s = sampleImages(m.model, m.cls, { n: 2, sampler: 'ddim', steps: 2, guidance: 3, seed: 1, labels: [7, 1] });
    assert.deepEqual(s.samples.shape, [2, 1, 28, 28]);
    assert.ok(s.samples.f32.every((v) => v >= -1 && v <= 1));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
