// Unit tests of the first stage (src/models/autoencoder): official key sets, encode/decode shapes
// for f=4 and f=8 configs, the posterior (KL of N(0, I), seeded sampling), constructor errors,
// the registry targets, and a finite-difference gradient check through a tiny Encoder.
// Numbers against the official PyTorch code are checked by the parity fixtures, not here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { Module, setInitSeed } from '../../src/nn/index.ts';
import { readTensorFile } from '../../src/io/index.ts';
import { AutoencoderKL, DiagonalGaussianDistribution, Decoder, Encoder, IdentityFirstStage, autoencoderTargets, type DDConfig, type TargetConfig } from '../../src/models/index.ts';
import { LinAttnBlock, ResnetBlock, getTimestepEmbedding } from '../../src/models/autoencoder/blocks.ts';
import { assertClose, gradcheck, rnd } from '../helpers/check.ts';

const build = (cfg: TargetConfig, where: string): unknown => {
  const f = (autoencoderTargets as Record<string, ((p: Record<string, unknown>, b: typeof build) => unknown) | undefined>)[cfg.target];
  if (!f) throw new ConfigError(`${where}: target '${cfg.target}' is not registered`);
  return f(cfg.params ?? {}, build);
};

const dd = (over: Partial<DDConfig> = {}): DDConfig => ({
  double_z: true, z_channels: 4, resolution: 32, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
  num_res_blocks: 1, attn_resolutions: [], dropout: 0.0, ...over,
});

const identityLoss = { target: 'torch.nn.Identity' };

test('AutoencoderKL key set equals the official state_dict keys of the fixture configuration', () => {
  const path = fileURLToPath(new URL('../fixtures/parity/ldm_autoencoder_kl.safetensors', import.meta.url));
  const f = readTensorFile(path);
  const cfg = JSON.parse(f.metadata['config']!) as { class: string; init: Record<string, unknown> };
  const official = JSON.parse(f.metadata['state_dict_keys']!) as string[];
  const m = build({ target: cfg.class, params: cfg.init }, 'test') as AutoencoderKL;
  assert.deepEqual([...m.stateDict().keys()], official);
});

test('tiny AutoencoderKL: official key names (shortcut, resamplers, reversed up levels, no temb_proj)', () => {
  const m = new AutoencoderKL({ ddconfig: dd({ attn_resolutions: [16] }), lossconfig: identityLoss, embed_dim: 3 }, build);
  const keys = new Set(m.stateDict().keys());
  for (const k of [
    'encoder.conv_in.weight', 'encoder.down.0.block.0.norm1.weight', 'encoder.down.0.downsample.conv.weight',
    'encoder.down.1.block.0.nin_shortcut.weight', 'encoder.down.1.attn.0.q.weight', 'encoder.mid.block_1.conv1.weight',
    'encoder.mid.attn_1.proj_out.bias', 'encoder.mid.block_2.norm2.bias', 'encoder.norm_out.weight', 'encoder.conv_out.bias',
    'decoder.conv_in.weight', 'decoder.up.1.upsample.conv.weight', 'decoder.up.1.block.1.conv2.weight',
    'decoder.up.1.attn.1.k.weight', 'decoder.up.0.block.0.nin_shortcut.weight', 'decoder.norm_out.bias',
    'quant_conv.weight', 'post_quant_conv.bias',
  ]) assert.ok(keys.has(k), `missing ${k}`);
  for (const k of keys) assert.ok(!k.includes('temb_proj') && !k.startsWith('loss.') && !k.includes('up.0.upsample') && !k.includes('down.1.downsample'), `unexpected ${k}`);
  // up.0 is the highest resolution: ch * ch_mult[0] channels; up.1 (run first) has ch * ch_mult[1].
  assert.deepEqual([...m.stateDict().get('decoder.up.0.block.1.conv1.weight')!.shape], [32, 32, 3, 3]);
  assert.deepEqual([...m.stateDict().get('decoder.up.1.block.0.conv1.weight')!.shape], [64, 64, 3, 3]);
  assert.deepEqual([...m.stateDict().get('quant_conv.weight')!.shape], [6, 8, 1, 1]);
  assert.deepEqual([...m.stateDict().get('post_quant_conv.weight')!.shape], [4, 3, 1, 1]);
  assert.equal(m.get_last_layer(), m.stateDict().get('decoder.conv_out.weight'));
});

test('attention variants: linear (to_qkv without bias, to_out) and none (no keys); conv_shortcut', () => {
  const lin = new Encoder(dd({ use_linear_attn: true, attn_resolutions: [16] }));
  const lk = [...lin.stateDict().keys()].filter((k) => k.includes('attn'));
  assert.deepEqual(lk, ['down.1.attn.0.to_qkv.weight', 'down.1.attn.0.to_out.weight', 'down.1.attn.0.to_out.bias',
    'mid.attn_1.to_qkv.weight', 'mid.attn_1.to_out.weight', 'mid.attn_1.to_out.bias']);
  assert.deepEqual([...lin.stateDict().get('mid.attn_1.to_qkv.weight')!.shape], [192, 64, 1, 1]);
  const none = new Decoder(dd({ attn_type: 'none', attn_resolutions: [16, 32] }));
  assert.ok([...none.stateDict().keys()].every((k) => !k.includes('attn')));
  const rb = new ResnetBlock({ in_channels: 32, out_channels: 64, conv_shortcut: true, dropout: 0, temb_channels: 0 });
  assert.deepEqual([...rb.stateDict().get('conv_shortcut.weight')!.shape], [64, 32, 3, 3]);
  const y = T.noGrad(() => new LinAttnBlock(32).forward(rnd([1, 32, 3, 3], 4)));
  assert.deepEqual([...y.shape], [1, 32, 3, 3]);
});

function shapes(over: Partial<DDConfig>, h: number, latent: number[], out: number[], viaForward = false): void {
  setInitSeed(1);
  const m = new AutoencoderKL({ ddconfig: dd(over), lossconfig: identityLoss, embed_dim: 3 }, build).eval();
  T.noGrad(() => {
    const x = rnd([1, 3, h, h], 2);
    if (viaForward) {
      const [rec, post] = m.forward(x, true, new Generator(3));
      assert.deepEqual([...post.mean.shape], [1, 3, ...latent]);
      assert.deepEqual([...rec.shape], [1, 3, ...out]);
      return;
    }
    const post = m.encode(x);
    assert.deepEqual([...post.parameters.shape], [1, 6, ...latent]);
    assert.deepEqual([...post.mean.shape], [1, 3, ...latent]);
    assert.deepEqual([...m.decode(post.mode()).shape], [1, 3, ...out]);
  });
}

test('f=4 (ch_mult [1,2,4]): 28x28 -> 7x7 latents -> 28x28; 32x32 -> 8x8 -> 32x32', () => {
  shapes({ ch_mult: [1, 2, 4], resolution: 28 }, 28, [7, 7], [28, 28]);
  shapes({ ch_mult: [1, 2, 4], resolution: 32 }, 32, [8, 8], [32, 32], true);
});

test('f=8 (ch_mult [1,1,2,2]): 32x32 -> 4x4 -> 32x32; 28x28 -> 3x3 -> 24x24 as the official padding gives', () => {
  shapes({ ch_mult: [1, 1, 2, 2], resolution: 32 }, 32, [4, 4], [32, 32]);
  shapes({ ch_mult: [1, 1, 2, 2], resolution: 28 }, 28, [3, 3], [24, 24]);
});

test('Decoder give_pre_end returns the features before norm_out; tanh_out bounds the output', () => {
  setInitSeed(2);
  const z = rnd([1, 4, 4, 4], 5, 3);
  const pre = T.noGrad(() => new Decoder(dd({ give_pre_end: true })).forward(z));
  assert.deepEqual([...pre.shape], [1, 32, 8, 8]);
  const th = T.noGrad(() => new Decoder(dd({ tanh_out: true })).forward(z));
  assert.ok(th.toArray().every((v) => Math.abs(v) <= 1));
});

test('DiagonalGaussianDistribution: KL of N(0, I) is 0, clamping, deterministic, seeded sampling', () => {
  const std = new DiagonalGaussianDistribution(T.zeros([2, 6, 3, 3]));
  assert.deepEqual(std.kl().toArray(), [0, 0]);
  assert.deepEqual(std.kl(std).toArray(), [0, 0]);
  const params = rnd([2, 6, 3, 3], 9);
  const d = new DiagonalGaussianDistribution(params);
  const a = d.sample(new Generator(7)), b = d.sample(new Generator(7));
  assert.deepEqual(a.toArray(), b.toArray());
  assertClose(a, T.add(d.mean, T.mul(d.std, T.randn([2, 3, 3, 3], new Generator(7)))), 1e-6, 'sample');
  assert.notDeepEqual(a.toArray(), d.sample(new Generator(8)).toArray());
  assert.deepEqual(d.mode(), d.mean);
  const big = new DiagonalGaussianDistribution(T.cat([T.zeros([1, 1, 1, 2]), T.tensor([-50, 40], [1, 1, 1, 2])], 1));
  assert.deepEqual(big.logvar.toArray(), [-30, 20]);
  const det = new DiagonalGaussianDistribution(params, true);
  assert.deepEqual(det.kl().toArray(), [0]);
  assert.deepEqual(det.nll(a).toArray(), [0]);
  assert.ok(det.std.toArray().every((v) => v === 0));
  // nll of the mean under N(mean, 1): 0.5 * C*H*W * log(2 pi)
  const nll = new DiagonalGaussianDistribution(T.zeros([1, 2, 2, 2])).nll(T.zeros([1, 1, 2, 2]));
  assertClose(nll, [0.5 * 4 * Math.log(2 * Math.PI)], 1e-6, 'nll');
});

test('get_timestep_embedding: [sin, cos] with the half-1 divisor, zero-padded odd dims', () => {
  const e = getTimestepEmbedding(T.tensor([0, 1], [2], 'int64'), 5);
  assert.deepEqual([...e.shape], [2, 5]);
  // dim 5 -> half 2, freqs [1, 1e-4]
  assertClose(e, [0, 0, 1, 1, 0, Math.sin(1), Math.sin(1e-4), Math.cos(1), Math.cos(1e-4), 0], 1e-6, 'embedding');
});

test('constructor errors: unknown kwargs (with suggestion), ckpt_path, double_z false, bad channels', () => {
  assert.throws(() => new Encoder({ ...dd(), ch_mul: [1, 2] } as unknown as DDConfig), /unknown parameter 'ch_mul'.*ch_mult/);
  assert.throws(() => new AutoencoderKL({ ddconfig: dd(), lossconfig: identityLoss, embed_dim: 3, ckpt_path: 'x.ckpt' }, build), /ckpt_path/);
  assert.throws(() => new AutoencoderKL({ ddconfig: dd({ double_z: false }), lossconfig: identityLoss, embed_dim: 3 }, build), /double_z/);
  assert.throws(() => new Encoder(dd({ ch: 16 })), /multiples of 32/);
  assert.throws(() => new Encoder(dd({ attn_type: 'flash' as 'none' })), /attn_type/);
});

test('lossconfig with a target not registered yet: stored, encode/decode work, .loss throws', () => {
  const lossconfig = { target: 'ldm.modules.losses.LPIPSWithDiscriminator', params: { disc_start: 50001 } };
  const m = new AutoencoderKL({ ddconfig: dd(), lossconfig, embed_dim: 3, monitor: 'val/rec_loss', image_key: 'image' }, build);
  assert.equal(m.hasLoss, false);
  assert.deepEqual(m.lossconfig, lossconfig);
  assert.throws(() => m.loss, /LPIPSWithDiscriminator/);
  const y = T.noGrad(() => m.forward(rnd([1, 3, 8, 8], 3), false)[0]);
  assert.deepEqual([...y.shape], [1, 3, 8, 8]);
  const ok = new AutoencoderKL({ ddconfig: dd(), lossconfig: identityLoss, embed_dim: 3 }, build);
  assert.ok(ok.hasLoss && ok.loss instanceof Module);
});

test('registry: torch.nn.Identity and IdentityFirstStage return their input; get_input is channels-last', () => {
  const x = rnd([1, 2, 3, 3], 1);
  const id = build({ target: 'torch.nn.Identity' }, 't') as Module & { forward(x: Tensor): Tensor };
  assert.equal(id.forward(x), x);
  const fs = build({ target: 'ldm.models.autoencoder.IdentityFirstStage', params: { vq_interface: true } }, 't') as IdentityFirstStage;
  assert.equal(fs.encode(x), x);
  assert.equal(fs.decode(x), x);
  assert.deepEqual(fs.quantize(x), [x, null, [null, null, null]]);
  const m = new AutoencoderKL({ ddconfig: dd(), lossconfig: identityLoss, embed_dim: 3 }, build);
  assert.deepEqual([...m.get_input({ image: rnd([2, 8, 8, 3], 1) }).shape], [2, 3, 8, 8]);
});

test('gradient of a tiny Encoder (parameters and input) matches finite differences', () => {
  setInitSeed(3);
  const enc = new Encoder({ ch: 32, out_ch: 2, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [4], in_channels: 2, resolution: 4, z_channels: 1 });
  const x = rnd([1, 2, 4, 4], 11);
  const w = rnd([1, 2, 4, 4], 12);
  for (const key of ['down.0.block.0.conv1.weight', 'down.0.attn.0.q.weight', 'mid.block_1.norm1.weight']) {
    const p = enc.stateDict().get(key)!;
    const lossOf = (): Tensor => T.sum(T.mul(enc.forward(x), w));
    const [g] = T.grad(lossOf(), [p]);
    assert.ok(g, `${key}: no gradient`);
    const eps = 1e-2, step = Math.max(1, Math.floor(p.size / 3));
    for (let i = 0; i < p.size; i += step) {
      const v = p.f32[i]!;
      p.f32[i] = v + eps; const lp = T.noGrad(() => lossOf().item());
      p.f32[i] = v - eps; const lm = T.noGrad(() => lossOf().item());
      p.f32[i] = v;
      const fd = (lp - lm) / (2 * eps);
      assert.ok(Math.abs(fd - g.f32[i]!) <= 2e-2 * Math.max(1, Math.abs(fd)), `${key}[${i}]: finite difference ${fd} vs autograd ${g.f32[i]}`);
    }
  }
  gradcheck((xi) => enc.forward(xi), [x], { probes: 3 });
});
