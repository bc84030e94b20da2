// Tests of src/models/ddpm.ts (LDM DDPM + DiffusionWrapper) on a tiny UNet: kwargs checking,
// official state-dict keys (buffers, model.diffusion_model.*, model_ema.*, logvar), get_input,
// p_losses / forward log keys and gradients, conditioning routes, sampling and the Denoiser.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, Generator } from '../../src/util/index.ts';
import { backward, randn, tensor } from '../../src/tensor/index.ts';
import { DDPM, MODEL_TARGETS, type BuildFn } from '../../src/models/index.ts';
import { SAMPLERS } from '../../src/diffusion/index.ts';

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: unknown target ${cfg.target}`);
  return f(cfg.params ?? {}, build);
};
const unet = (inC: number, extra: Record<string, unknown> = {}) => ({
  target: 'ldm.modules.diffusionmodules.openaimodel.UNetModel',
  params: { image_size: 8, in_channels: inC, model_channels: 32, out_channels: 2, num_res_blocks: 1, attention_resolutions: [], channel_mult: [1], num_heads: 1, ...extra },
});
const make = (params: Record<string, unknown>): DDPM => {
  const m = build({ target: 'ldm.models.diffusion.ddpm.DDPM', params: { timesteps: 20, image_size: 8, channels: 2, ...params } }, 'test');
  assert.ok(m instanceof DDPM);
  return m;
};

test('DDPM state dict: schedule buffers, model.diffusion_model.*, model_ema.*, logvar only when learned', () => {
  const m = make({ unet_config: unet(2) });
  const keys = [...m.stateDict().keys()];
  for (const k of ['betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'posterior_log_variance_clipped', 'posterior_mean_coef2']) assert.ok(keys.includes(k), k);
  assert.ok(keys.includes('model.diffusion_model.input_blocks.0.0.weight'));
  assert.ok(keys.includes('model_ema.decay') && keys.includes('model_ema.num_updates'));
  assert.ok(keys.includes('model_ema.diffusion_modelinput_blocks00weight'));
  assert.ok(!keys.includes('lvlb_weights') && !keys.includes('logvar'));
  assert.equal(m.numTimesteps, 20);
  const l = make({ unet_config: unet(2), use_ema: false, learn_logvar: true, logvar_init: 0.5 });
  const lk = [...l.stateDict().keys()];
  assert.ok(lk.includes('logvar') && !lk.some((k) => k.startsWith('model_ema')));
  assert.equal(l.trainableParameters().at(-1), l.logvar);
});

test('DDPM kwargs: unknown keys are rejected with a suggestion; ckpt_path is refused', () => {
  assert.throws(() => make({ unet_config: unet(2), linear_strat: 1e-4 }), /unknown parameter 'linear_strat'.*linear_start/);
  assert.throws(() => make({ unet_config: unet(2), ckpt_path: 'x.ckpt' }), /ckpt_path/);
  assert.throws(() => make({ unet_config: unet(2), parameterization: 'mu' }), /parameterization/);
  assert.throws(() => make({ unet_config: unet(2), conditioning_key: 'film' }), /conditioning_key/);
  const gb = make({ unet_config: unet(2), given_betas: [0.1, 0.2, 0.3] });
  assert.equal(gb.numTimesteps, 3);
});

test('get_input, forward / p_losses log keys, gradients, EMA update', () => {
  const m = make({ unet_config: unet(2) });
  const g = new Generator(5);
  const batch = { image: randn([2, 8, 8, 2], g) };
  const x = m.getInput(batch, 'image');
  assert.deepEqual(x.shape, [2, 2, 8, 8]);
  assert.equal(x.data[1], batch.image.data[2]); // x[0, 0, 0, 1] = image[0, 0, 1, 0]
  const r = m.sharedStep(batch, { gen: g });
  assert.deepEqual([...r.lossDict.keys()], ['train/loss_simple', 'train/loss_vlb', 'train/loss']);
  assert.ok(Number.isFinite(r.loss.item()));
  backward(r.loss);
  const w = m.model.diffusion_model.namedParameters().find(([k]) => k === 'input_blocks.0.0.weight')![1];
  assert.ok(w.grad !== null);
  m.onTrainBatchEnd();
  assert.equal(m.model_ema!.getBuffer('num_updates').item(), 1);
  m.eval();
  const v = m.pLosses(x, tensor([0, 19], [2], 'int64'), randn(x.shape, g));
  assert.ok(v.lossDict.has('val/loss'));
});

test('conditioning routes: concat widens the UNet input, crossattn feeds the context', () => {
  const g = new Generator(6);
  const cc = make({ unet_config: unet(3), conditioning_key: 'concat', use_ema: false });
  const x = randn([1, 2, 8, 8], g);
  const t = tensor([3], [1], 'int64');
  assert.deepEqual(cc.applyModel(x, t, randn([1, 1, 8, 8], g)).shape, [1, 2, 8, 8]);
  const ca = make({
    unet_config: unet(2, { attention_resolutions: [1], use_spatial_transformer: true, context_dim: 8, num_head_channels: 16, legacy: false }),
    conditioning_key: 'crossattn', use_ema: false,
  });
  const c = randn([1, 3, 8], g);
  const out = ca.applyModel(x, t, c);
  assert.deepEqual(out.shape, [1, 2, 8, 8]);
  const out2 = ca.applyModel(x, t, { c_crossattn: [c] });
  assert.deepEqual(out.toArray(), out2.toArray());
  assert.throws(() => ca.applyModel(x, t), /c_crossattn/);
});

test('sampling: p_sample_loop intermediates, DDIM through the Denoiser', () => {
  const m = make({ unet_config: unet(2), use_ema: false, log_every_t: 5 });
  m.eval();
  const r = m.sample(1, { gen: new Generator(7) });
  assert.deepEqual(r.sample.shape, [1, 2, 8, 8]);
  assert.equal(r.intermediates.length, 1 + 5); // x_T, t = 19, 15, 10, 5, 0
  const d = SAMPLERS.ddim(m.denoiser(), m.diffusion, { steps: 4, shape: [1, 2, 8, 8], gen: new Generator(8) });
  assert.deepEqual(d.samples.shape, [1, 2, 8, 8]);
});
