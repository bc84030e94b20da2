// Image-to-image and inpainting through sampleImages on tiny random LatentDiffusion models: the
// kept region of an inpainted sample equals the input (latent masked sampling, pasted in pixels),
// a concat-conditioned inpainting model gets the scripts/inpaint.py conditioning, img2img runs
// the last strength * steps steps, negative classes reach the unconditional branch.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as T from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';
import { LatentDiffusion, MODEL_TARGETS, type BuildFn } from '../../src/models/index.ts';
import { classConditioning, sampleImages } from '../../src/train/index.ts';

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: unknown target ${cfg.target}`);
  return f(cfg.params ?? {}, build);
};
const AE = {
  target: 'ldm.models.autoencoder.AutoencoderKL',
  params: {
    embed_dim: 3, lossconfig: { target: 'torch.nn.Identity' },
    ddconfig: { double_z: true, z_channels: 4, resolution: 8, in_channels: 1, out_ch: 1, ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
  },
};
const UNET = (extra: Record<string, unknown> = {}) => ({
  target: 'ldm.modules.diffusionmodules.openaimodel.UNetModel',
  params: {
    image_size: 4, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1, attention_resolutions: [1], channel_mult: [1],
    num_head_channels: 16, use_spatial_transformer: true, transformer_depth: 1, context_dim: 16, legacy: false, ...extra,
  },
});
function make(over: Record<string, unknown> = {}): LatentDiffusion {
  setInitSeed(5);
  const m = build({
    target: 'ldm.models.diffusion.ddpm.LatentDiffusion',
    params: {
      timesteps: 100, linear_start: 0.0015, linear_end: 0.0195, image_size: 4, channels: 3, first_stage_key: 'image',
      cond_stage_key: 'class_label', conditioning_key: 'crossattn', cond_stage_trainable: true, unet_config: UNET(), first_stage_config: AE,
      cond_stage_config: { target: 'ldm.modules.encoders.modules.ClassEmbedder', params: { embed_dim: 16, n_classes: 11, key: 'class_label' } },
      ...over,
    },
  }, 'test');
  assert.ok(m instanceof LatentDiffusion);
  // the official zero-initialised output layers would make the conditioning inert: perturb every weight
  const g = new Generator(9);
  for (const p of m.parameters()) { const z = g.randn(p.size); for (let i = 0; i < p.size; i++) p.data[i]! += 0.05 * z[i]!; }
  m.eval();
  return m;
}

const image = T.clamp(T.randn([1, 1, 8, 8], new Generator(3)), -1, 1);
const hole = new T.Tensor(Float32Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)), [1, 1, 8, 8]); // bottom half regenerated

test('latent inpainting (k-sampler and ddim): the kept half equals the input; img2img runs strength * steps', () => {
  const m = make();
  const cls = classConditioning(m);
  assert.ok(cls);
  for (const sampler of ['euler', 'ddim'] as const) {
    const r = sampleImages(m, cls, { n: 2, sampler, steps: 4, seed: 1, labels: [3, 4], guidance: 2, init: image, mask: hole });
    assert.deepEqual(r.samples.shape, [2, 1, 8, 8]);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 32; i++) assert.equal(r.samples.data[b * 64 + i], image.data[i], `${sampler} kept pixel ${i}`);
    let changed = 0;
    for (let i = 32; i < 64; i++) if (r.samples.data[i] !== image.data[i]) changed++;
    assert.ok(changed > 16, `${sampler} regenerates the hole`);
  }
  const steps: number[] = [];
  sampleImages(m, cls, { n: 1, sampler: 'dpmpp_2m', steps: 10, seed: 1, labels: [3], init: image, strength: 0.3, onStep: (i) => steps.push(i) });
  assert.equal(steps.length, 3, 'strength 0.3 of 10 steps');
  assert.throws(() => sampleImages(m, cls, { n: 1, sampler: 'plms', steps: 10, seed: 1, labels: [3], init: image, strength: 0.3 }), /no partial start/);
  // a negative class replaces the null class in the unconditional branch: a different sample
  const a = sampleImages(m, cls, { n: 1, sampler: 'euler', steps: 3, seed: 1, labels: [3], guidance: 3 });
  const b = sampleImages(m, cls, { n: 1, sampler: 'euler', steps: 3, seed: 1, labels: [3], guidance: 3, negativeLabels: [8] });
  assert.ok(T.maxAll(T.abs(T.sub(a.samples, b.samples))).item() > 1e-4);
  // --class none: the null class is a valid label
  assert.equal(sampleImages(m, cls, { n: 1, sampler: 'euler', steps: 2, seed: 1, labels: [10] }).labels![0], 10);
});

test('concat inpainting model: c = cat([encode((1 - mask) image), nearest(mask)]), the kept half equals the input', () => {
  const m = make({
    conditioning_key: 'concat', cond_stage_config: '__is_first_stage__', cond_stage_trainable: false, cond_stage_key: 'masked_image',
    unet_config: UNET({ in_channels: 7, use_spatial_transformer: false, attention_resolutions: [], context_dim: null }),
  });
  const r = sampleImages(m, null, { n: 2, sampler: 'ddim', steps: 4, seed: 2, init: image, mask: hole });
  assert.deepEqual(r.samples.shape, [2, 1, 8, 8]);
  for (let i = 0; i < 32; i++) assert.equal(r.samples.data[64 + i], image.data[i], `kept pixel ${i}`);
  assert.throws(() => sampleImages(m, null, { n: 1, sampler: 'ddim', steps: 4, seed: 2 }), /conditional/);
});
