// Configs: official structure, typed overrides, errors that name the key path and suggest the
// closest valid key, building through the registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  CONFIG_TARGETS, applyOverrides, buildModel, buildModelFromConfig, getPath, loadConfig, parseOverride, readConfigFile, validateConfig,
} from '../../src/io/index.ts';
import { DDPM } from '../../src/models/index.ts';
import { ConfigError } from '../../src/util/index.ts';

const CONFIGS = join(import.meta.dirname, '../../configs');
const DEBUG = join(CONFIGS, 'debug.yaml');

test('overrides are YAML-typed: numbers, booleans, lists, strings', () => {
  assert.deepEqual(parseOverride('a.b=3'), { path: ['a', 'b'], value: 3 });
  assert.deepEqual(parseOverride('x=1.5e-4').value, 1.5e-4);
  assert.equal(parseOverride('x=true').value, true);
  assert.deepEqual(parseOverride('x=[1, 2,4]').value, [1, 2, 4]);
  assert.equal(parseOverride('x=ddim').value, 'ddim');
  assert.equal(parseOverride('x=a=b').value, 'a=b');
  const c = loadConfig(DEBUG, ['lightning.trainer.max_steps=7', 'model.params.unet_config.params.channel_mult=[1,2,2]', 'model.params.use_ema=false']);
  assert.equal(getPath(c, 'lightning.trainer.max_steps'), 7);
  assert.deepEqual(getPath(c, 'model.params.unet_config.params.channel_mult'), [1, 2, 2]);
  assert.equal(getPath(c, 'model.params.use_ema'), false);
  // the file itself is untouched
  assert.equal(getPath(readConfigFile(DEBUG), 'lightning.trainer.max_steps'), 40);
});

test('a bad key is named with its path and the closest valid key', () => {
  assert.throws(() => loadConfig(DEBUG, ['lightning.trainer.max_step=5']),
    (e: Error) => e instanceof ConfigError && /unknown key 'lightning\.trainer\.max_step' \(did you mean 'lightning\.trainer\.max_steps'\?\)/.test(e.message));
  assert.throws(() => loadConfig(DEBUG, ['model.parms.timesteps=10']), /'model\.parms' does not exist \(did you mean 'model\.params'\?\)/);
  assert.throws(() => loadConfig(DEBUG, ['data.params.batch_size=abc']), /'data\.params\.batch_size' must be an integer/);
  assert.throws(() => loadConfig(DEBUG, ['model.target=ldm.models.diffusion.ddpm.DDPMM']), /unknown class 'ldm\.models\.diffusion\.ddpm\.DDPMM' \(did you mean 'ldm\.models\.diffusion\.ddpm\.DDPM'\?\)/);
  assert.throws(() => loadConfig(DEBUG, ['data.params.train.target=ldm.data.mnist.MNST']), /did you mean 'ldm\.data\.mnist\.MNIST'/);
  assert.throws(() => loadConfig(DEBUG, ['lightning.trainer.max_steps']), /not of the form key\.path=value/);
});

test('model.params are checked by the model class, reported at their config path', () => {
  const c = loadConfig(DEBUG, ['model.params.timestep=10']);
  assert.throws(() => buildModelFromConfig(c),
    (e: Error) => e instanceof ConfigError && /unknown key 'model\.params\.timestep' \(did you mean 'model\.params\.timesteps'\?\)/.test(e.message));
  const c2 = loadConfig(DEBUG, ['model.params.unet_config.params.num_res_block=2']);
  assert.throws(() => buildModelFromConfig(c2), /unknown key 'model\.params\.unet_config\.params\.num_res_block' \(did you mean 'model\.params\.unet_config\.params\.num_res_blocks'\?\)/);
  // the key and its suggestion are data on the error (no parsing of messages)
  assert.throws(() => buildModelFromConfig(c2), (e: Error) => e instanceof ConfigError && e.issue?.kind === 'unknown' &&
    e.issue.key === 'model.params.unet_config.params.num_res_block' && e.issue.suggestion === 'model.params.unet_config.params.num_res_blocks');
  const bad = loadConfig(DEBUG, ['model.params.clip_denoised=3']);
  assert.throws(() => buildModelFromConfig(bad), (e: Error) => e instanceof ConfigError && e.issue?.kind === 'invalid' &&
    e.issue.key === 'model.params.clip_denoised' && /'clip_denoised' must be a boolean, got 3/.test(e.message));
  // nested options (an autoencoder's ddconfig) are read key by key by the target's schema
  const ae = (dd: Record<string, unknown>): unknown => buildModel({ target: 'ldm.models.autoencoder.AutoencoderKL', params: {
    embed_dim: 2, lossconfig: { target: 'torch.nn.Identity' },
    ddconfig: { double_z: true, z_channels: 2, resolution: 8, in_channels: 1, out_ch: 1, ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [], ...dd },
  } });
  assert.throws(() => ae({ z_chanels: 2 }), (e: Error) => e instanceof ConfigError && e.issue?.kind === 'unknown' &&
    e.issue.key === 'model.params.ddconfig.z_chanels' && e.issue.suggestion === 'model.params.ddconfig.z_channels');
  assert.throws(() => ae({ ch_mult: 'wide' }), (e: Error) => e instanceof ConfigError && e.issue?.kind === 'invalid' &&
    e.issue.key === 'model.params.ddconfig.ch_mult' && /'ddconfig\.ch_mult' must be a list of integers, got "wide"/.test(e.message));
  const c3 = loadConfig(DEBUG, ['model.params.unet_config.params.model_channels=16']);
  assert.throws(() => buildModelFromConfig(c3), /config: model\.params\.unet_config: GroupNorm: 32 groups do not divide 16 channels/);
});

test('the shipped configs validate and build; the registry holds models and data sets', () => {
  assert.equal(CONFIG_TARGETS['ldm.models.diffusion.ddpm.DDPM'], 'model');
  assert.equal(CONFIG_TARGETS['ldm.data.mnist.MNIST'], 'data');
  assert.equal(CONFIG_TARGETS['main.DataModuleFromConfig'], 'data-module');
  for (const f of ['debug.yaml', 'mnist-ddpm.yaml', 'mnist-demo.yaml', 'cifar10-ddpm.yaml']) {
    const c = readConfigFile(join(CONFIGS, f));
    validateConfig(c);
    if (f !== 'cifar10-ddpm.yaml') assert.ok(buildModelFromConfig(c) instanceof DDPM, f);
  }
  const tree = applyOverrides({ a: { b: [1, 2] } }, ['a.b.1=5']);
  assert.deepEqual(tree, { a: { b: [1, 5] } });
});
