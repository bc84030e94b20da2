// The trainer on the two LatentDiffusion families: an AutoencoderKL config (both optimizers step,
// reconstruction metrics and grids, a checkpoint under the official keys) and LatentDiffusion
// configs with class (ClassEmbedder) and text (BERTEmbedder, vocabulary built from the captions)
// conditioning on that autoencoder (first_stage ckpt_path loaded by the trainer), then sampling.
// Tiny data and step counts on the shipped configs' shapes (28x28 -> 7x7x3 latents).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModelFromConfig, getPath, loadConfig, readMetrics, readWeights } from '../../src/io/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';
import { loadModel, sampleImages, train, type TrainEvent } from '../../src/train/index.ts';

const cfg = (name: string): string => join(import.meta.dirname, `../../configs/${name}.yaml`);
const SMALL_DATA = ['data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8'];
const SMALL_LDM = [
  ...SMALL_DATA, 'lightning.trainer.max_steps=3', 'lightning.trainer.val_check_interval=3', 'lightning.trainer.limit_val_batches=1',
  'lightning.modelcheckpoint.params.every_n_train_steps=3', 'lightning.callbacks.image_logger.params.batch_frequency=3',
  'lightning.callbacks.image_logger.params.sample_steps=2', 'lightning.callbacks.image_logger.params.max_images=10',
  'lightning.callbacks.image_logger.params.strip_t=[500]',
  'model.params.unet_config.params.model_channels=32', 'model.params.unet_config.params.num_res_blocks=1',
  'model.params.unet_config.params.context_dim=32',
];

test('autoencoder + class / text latent diffusion: train 3 steps each, checkpoint keys, sampling', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-latent-'));
  try {
    // 1. AutoencoderKL: GAN term from step 0 so that both optimizers see gradients
    const aeCfg = loadConfig(cfg('mnist-autoencoder'), [...SMALL_DATA, 'lightning.trainer.max_steps=3', 'lightning.trainer.val_check_interval=3',
      'lightning.modelcheckpoint.params.every_n_train_steps=3', 'lightning.callbacks.image_logger.params.batch_frequency=3',
      'model.params.lossconfig.params.disc_start=0']);
    const aeDir = join(root, 'ae');
    const events: TrainEvent[] = [];
    const r = await train({ config: aeCfg, outDir: aeDir, onEvent: (e) => events.push(e) });
    assert.equal(r.reason, 'finished');
    const w = readWeights(join(aeDir, 'model.safetensors'));
    for (const p of ['encoder.', 'decoder.', 'quant_conv.', 'post_quant_conv.', 'loss.discriminator.', 'loss.logvar']) {
      assert.ok([...w.tensors.keys()].some((k) => k.startsWith(p)), p);
    }
    setInitSeed(23);
    const fresh = buildModelFromConfig(aeCfg) as { stateDict(): Map<string, { f32: Float32Array }> };
    const init = fresh.stateDict();
    const changed = (k: string): boolean => init.get(k)!.f32.some((v, i) => v !== w.tensors.get(k)!.f32[i]);
    assert.ok(changed('encoder.conv_in.weight'), 'optimizer 0 stepped');
    assert.ok(changed('loss.discriminator.main.0.weight'), 'optimizer 1 stepped');
    assert.ok(!changed('loss.logvar'), 'logvar is in neither optimizer');
    const rows = readMetrics(join(aeDir, 'metrics.jsonl'));
    assert.ok(rows.some((x) => typeof x['val/psnr'] === 'number' && typeof x['val/rec_l1'] === 'number'));
    assert.ok(existsSync(join(aeDir, 'images/reconstructions_step-000003.png')) && existsSync(join(aeDir, 'loss.png')));
    assert.ok(existsSync(join(aeDir, 'checkpoints/step-000003.safetensors')));

    // 2. LatentDiffusion, class- and text-conditional, on that first stage
    for (const [name, extra] of [['mnist-ldm', ['model.params.cond_stage_config.params.embed_dim=32']],
      ['mnist-ldm-text', ['model.params.cond_stage_config.params.n_embed=32', 'model.params.cond_stage_config.params.n_layer=1']]] as const) {
      const c = loadConfig(cfg(name), [...SMALL_LDM, ...extra, `model.params.first_stage_config.params.ckpt_path=${join(aeDir, 'model.safetensors')}`]);
      const dir = join(root, name);
      const ev: TrainEvent[] = [];
      const lr = await train({ config: c, outDir: dir, onEvent: (e) => ev.push(e) });
      assert.equal(lr.reason, 'finished', name);
      assert.ok(lr.losses.length === 3 && lr.losses.every(Number.isFinite), name);
      assert.ok(ev.some((e) => e.type === 'info' && e.message.startsWith('scale_by_std')), name);
      for (const f of ['model.safetensors', 'images/samples_step-000003.png', 'images/strip_step-000003.png']) assert.ok(existsSync(join(dir, f)), `${name}: ${f}`);
      const mw = readWeights(join(dir, 'model.safetensors'));
      // the first stage travels in the file, equal to the autoencoder's weights; no ckpt_path in its config
      assert.deepEqual([...mw.tensors.get('first_stage_model.decoder.conv_out.weight')!.f32], [...w.tensors.get('decoder.conv_out.weight')!.f32]);
      assert.equal(getPath(mw.config, 'model.params.first_stage_config.params.ckpt_path'), undefined);
      const m = loadModel({ checkpoint: dir });
      assert.ok(m.cls);
      if (name === 'mnist-ldm-text') {
        assert.ok(Array.isArray(getPath(mw.config, 'model.params.cond_stage_config.params.vocab')));
        const s = sampleImages(m.model, m.cls, { n: 2, sampler: 'ddim', steps: 2, guidance: 3, seed: 1, prompts: ['a handwritten seven', 'a handwritten one'] });
        assert.deepEqual(s.samples.shape, [2, 1, 28, 28]);
      } else {
        assert.deepEqual(m.cls, { numClasses: 10, nullLabel: 10 });
        const s = sampleImages(m.model, m.cls, { n: 2, sampler: 'ddim', steps: 2, guidance: 3, seed: 1, labels: [7, 1] });
        assert.deepEqual(s.samples.shape, [2, 1, 28, 28]);
        assert.ok(s.samples.f32.every((v) => v >= -1 && v <= 1));
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
