// Tests of the first-stage losses (src/models/losses/*, src/models/autoencoder/training.ts,
// src/io/pretrained.ts): LPIPS keys = torchvision VGG16 slicing, loading the standard pretrained
// layouts (a real torch.save file for the heads, a Map in torchvision's layout for the VGG),
// LPIPS(x, x) = 0, the official weights_init (statistics, and bit-for-bit against the official
// init stored in tm_nlayer_disc_bn), adopt_weight boundaries, the GAN losses, ActNorm's
// data-dependent init, and the AutoencoderKL training / validation steps with the two optimisers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { BatchNorm2d, Conv2d, Module, setInitSeed } from '../../src/nn/index.ts';
import {
  ActNorm, AutoencoderKL, LPIPS, LPIPSWithDiscriminator, MODEL_TARGETS, NLayerDiscriminator, adoptWeight,
  autoencoderOptimizationStep, autoencoderValidationStep, configureAutoencoderOptimizers, hingeDLoss,
  lpipsStateDictFromPretrained, normalizeTensor, vanillaDLoss, weightsInit, type TargetConfig,
} from '../../src/models/index.ts';
import { readTensorFile } from '../../src/io/index.ts';
import { loadLpipsPretrained } from '../../src/io/pretrained.ts';
import { assertClose, rnd } from '../helpers/check.ts';

const here = dirname(fileURLToPath(import.meta.url));
const FIX = join(here, '..', 'fixtures');

/** torchvision vgg16().features: index -> conv [cout, cin] or null (ReLU / MaxPool), from cfg 'D'. */
function torchvisionVgg16Convs(): Map<number, [number, number]> {
  const cfg: (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];
  const convs = new Map<number, [number, number]>();
  let idx = 0, cin = 3;
  for (const v of cfg) {
    if (v === 'M') { idx += 1; continue; }
    convs.set(idx, [v, cin]);
    idx += 2; // Conv2d, ReLU(inplace=True)
    cin = v;
  }
  return convs;
}

/** Cheap deterministic pseudo-random values (a full VGG16 holds 14.7M weights). */
function hashFill(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return a;
}

/** Random weights in torchvision's key layout (features.N.*) plus a classifier key LPIPS drops. */
function randomTorchvisionVgg(seed: number): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (const [i, [co, ci]] of torchvisionVgg16Convs()) {
    sd.set(`features.${i}.weight`, new Tensor(hashFill(co * ci * 9, seed + i, Math.sqrt(6 / (ci * 9))), [co, ci, 3, 3]));
    sd.set(`features.${i}.bias`, new Tensor(hashFill(co, seed + 100 + i, 0.01), [co]));
  }
  sd.set('classifier.6.bias', T.zeros([10]));
  return sd;
}

test('LPIPS state-dict keys are torchvision VGG16 features[0:30] cut at 4, 9, 16, 23, 30', () => {
  const convs = torchvisionVgg16Convs();
  const bounds = [0, 4, 9, 16, 23, 30];
  const expected: [string, number[]][] = [['scaling_layer.shift', [1, 3, 1, 1]], ['scaling_layer.scale', [1, 3, 1, 1]]];
  for (const [i, [co, ci]] of convs) {
    if (i >= 30) continue;
    const s = bounds.findIndex((b) => i < b);
    expected.push([`net.slice${s}.${i}.weight`, [co, ci, 3, 3]], [`net.slice${s}.${i}.bias`, [co]]);
  }
  [64, 128, 256, 512, 512].forEach((c, k) => expected.push([`lin${k}.model.1.weight`, [1, c, 1, 1]]));
  const sd = new LPIPS().stateDict();
  assert.deepEqual([...sd.keys()], expected.map(([k]) => k));
  for (const [k, shape] of expected) assert.deepEqual([...sd.get(k)!.shape], shape, k);
  // use_dropout=False drops the Dropout, so the conv is model.0
  assert.ok(new LPIPS({ use_dropout: false }).stateDict().has('lin0.model.0.weight'));
  assert.throws(() => MODEL_TARGETS['taming.modules.losses.lpips.LPIPS']!({ use_dropot: true }, () => null), ConfigError);
});

test('LPIPS loads torchvision / LPIPS layouts; refuses to run on placeholders; LPIPS(x, x) = 0', () => {
  const lp = new LPIPS().eval();
  assert.deepEqual(lp.loaded, { vgg: false, lin: false });
  const x = rnd([1, 3, 16, 16], 3, 0.5); // 16x16: the smallest size all five slices accept
  assert.throws(() => lp.forward(x, x), /not loaded/);

  // the LPIPS heads from a real torch.save file (vgg.pth layout)
  assert.deepEqual(loadLpipsPretrained(lp, { lin: join(FIX, 'losses', 'lpips_vgg.pth') }), { vgg: false, lin: true });
  const expectedHeads = readTensorFile(join(FIX, 'losses', 'lpips_vgg.expected.safetensors')).tensors;
  const sd = lp.stateDict();
  for (const [k, t] of expectedHeads) assertClose(sd.get(k)!, t, 0, k);

  // the VGG in torchvision's layout
  const vgg = randomTorchvisionVgg(11);
  const mapped = lpipsStateDictFromPretrained(vgg);
  assert.equal(mapped.size, 26);
  assert.ok(!mapped.has('classifier.6.bias'));
  lp.loadPretrained(vgg);
  assert.deepEqual(lp.loaded, { vgg: true, lin: true });
  assertClose(lp.stateDict().get('net.slice3.12.weight')!, vgg.get('features.12.weight')!, 0, 'features.12 -> slice3');
  assertClose(lp.stateDict().get('net.slice5.28.bias')!, vgg.get('features.28.bias')!, 0, 'features.28 -> slice5');
  assert.throws(() => lpipsStateDictFromPretrained(new Map([['features.30.weight', T.zeros([1])]])), /outside/);
  assert.throws(() => lpipsStateDictFromPretrained(new Map([['model.lin0.weight', T.zeros([1])]])), /unexpected key/);

  const same = lp.forward(x, x);
  assert.deepEqual([...same.shape], [1, 1, 1, 1]);
  assert.deepEqual([...same.data], [0]);
  // a different image: positive, and gradients reach the image but not the frozen weights
  const y = rnd([1, 3, 16, 16], 4, 0.5).requireGrad();
  const d = lp.forward(x, y);
  assert.ok(d.f32.every((v) => v > 0));
  const [gy] = T.grad(T.sum(d), [y]);
  assert.ok(gy && gy.f32.some((v) => v !== 0));
  assert.ok(lp.parameters().every((p) => !p.requiresGrad));
});

test('normalize_tensor keeps eps outside the sqrt (an all-zero vector stays 0)', () => {
  const x = T.tensor([3, 0, 4, 0], [1, 2, 2, 1]); // channel vectors (3, 4) and (0, 0)
  const n = normalizeTensor(x);
  assertClose(n, T.tensor([0.6, 0, 0.8, 0], [1, 2, 2, 1]), 1e-7, 'normalize');
});

test('weights_init: N(0, 0.02) conv weights, N(1, 0.02) BatchNorm weights, 0 BatchNorm bias (10k draws)', () => {
  class Holder extends Module {
    conv = this.child('conv', new Conv2d(100, 25, 2)); // 10k weights
    bn = this.child('bn', new BatchNorm2d(10000));
  }
  const h = new Holder();
  const convBias = h.conv.bias!.f32.slice();
  weightsInit(h, new Generator(0));
  const stats = (a: Float32Array): [number, number] => {
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    return [m, Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / (a.length - 1))];
  };
  const [cm, cs] = stats(h.conv.weight.f32);
  assert.ok(Math.abs(cm) < 1e-3 && Math.abs(cs - 0.02) < 0.001, `conv weight mean ${cm} std ${cs}`);
  const [bm, bs] = stats(h.bn.weight.f32);
  assert.ok(Math.abs(bm - 1) < 1e-3 && Math.abs(bs - 0.02) < 0.001, `bn weight mean ${bm} std ${bs}`);
  assert.ok(h.bn.bias.f32.every((v) => v === 0));
  assert.deepEqual([...h.conv.bias!.f32], [...convBias], 'conv bias keeps its default init');
});

test('torch.manual_seed(s); NLayerDiscriminator(...).apply(weights_init) reproduced bit for bit (tm_nlayer_disc_bn)', () => {
  const f = readTensorFile(join(FIX, 'parity', 'tm_nlayer_disc_bn.safetensors'));
  const cfg = JSON.parse(f.metadata['config']!) as { init: Record<string, unknown>; seed: number };
  setInitSeed(cfg.seed);
  const d = weightsInit(new NLayerDiscriminator(cfg.init));
  const ours = d.stateDict();
  const keys = JSON.parse(f.metadata['state_dict_keys']!) as string[];
  assert.deepEqual([...ours.keys()], keys);
  for (const k of keys) assertClose(ours.get(k)!, f.tensors.get(k)!, 1e-7, k);
  setInitSeed(0);
});

test('adopt_weight is strict <; hinge and vanilla d losses', () => {
  assert.equal(adoptWeight(1, 9, 10), 0);
  assert.equal(adoptWeight(1, 10, 10), 1);
  assert.equal(adoptWeight(1, 11, 10), 1);
  assert.equal(adoptWeight(0.5, 0), 0.5);
  assert.equal(adoptWeight(1, 3, 10, 0.25), 0.25);
  const real = T.tensor([2, 0.5]), fake = T.tensor([-3, 0]);
  // 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake))) = 0.5 * (0.25 + 0.5)
  assertClose(hingeDLoss(real, fake), T.scalar(0.375), 1e-7, 'hinge');
  const sp = (v: number): number => Math.log1p(Math.exp(v));
  const van = 0.5 * ((sp(-2) + sp(-0.5)) / 2 + (sp(-3) + sp(0)) / 2);
  assertClose(vanillaDLoss(real, fake), T.scalar(van), 1e-6, 'vanilla');
});

test('ActNorm initialises from the first train-mode batch only', () => {
  const x = rnd([4, 3, 5, 5], 7, 2, 1.5);
  const a = new ActNorm(3);
  a.eval();
  assertClose(a.forward(x), x, 0, 'eval before init is the identity');
  assert.equal(a.initialized, false);
  a.train();
  const y = a.forward(x);
  assert.equal(a.initialized, true);
  assert.equal(a.stateDict().get('initialized')!.item(), 1);
  // per channel over (N, H, W): mean 0, unbiased std 1 (up to the 1e-6 eps)
  const flat = T.reshape(T.permute(y, [1, 0, 2, 3]), [3, -1]);
  assertClose(T.mean(flat, 1), T.zeros([3]), 1e-5, 'mean');
  assertClose(T.std(flat, 1), T.ones([3]), 1e-5, 'std');
  const loc = a.loc.f32.slice();
  a.forward(rnd([4, 3, 5, 5], 8)); // no re-initialisation
  assert.deepEqual([...a.loc.f32], [...loc]);
  // a loaded `initialized` = 1 prevents the init
  const b = new ActNorm(3);
  b.loadStateDict(a.stateDict());
  b.train();
  assertClose(b.forward(x), y, 1e-6, 'loaded state');
  assertClose(b.reverse(y), x, 1e-5, 'reverse');
  assert.throws(() => new ActNorm(3).train().reverse(x), /reverse direction/);
});

const AE_CONFIG = (lossParams: Record<string, unknown>): TargetConfig => ({
  target: 'ldm.models.autoencoder.AutoencoderKL',
  params: {
    ddconfig: { double_z: true, z_channels: 4, resolution: 8, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
    lossconfig: { target: 'ldm.modules.losses.LPIPSWithDiscriminator', params: lossParams },
    embed_dim: 3,
  },
});

function build(cfg: TargetConfig, where: string): unknown {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: ${cfg.target} not registered`);
  return f(cfg.params ?? {}, build);
}

test('LPIPSWithDiscriminator kwargs are the official ones', () => {
  assert.throws(() => new LPIPSWithDiscriminator({} as never), /disc_start/);
  assert.throws(() => build({ target: 'ldm.modules.losses.LPIPSWithDiscriminator', params: { disc_start: 0, disc_weigth: 1 } }, 't'), /did you mean 'disc_weight'/);
  assert.throws(() => new LPIPSWithDiscriminator({ disc_start: 0, disc_loss: 'wgan' as never }), /hinge/);
  const l = build({ target: 'ldm.modules.losses.contperceptual.LPIPSWithDiscriminator', params: { disc_start: 5, use_actnorm: true, logvar_init: 0.7 } }, 't');
  assert.ok(l instanceof LPIPSWithDiscriminator);
  assert.equal(l.logvar.item(), Math.fround(0.7));
  assert.ok(l.stateDict().has('discriminator.main.3.loc'));
  assert.ok(l.stateDict().has('perceptual_loss.lin4.model.1.weight'));
});

test('AutoencoderKL training: opt_ae / opt_disc alternate; logvar is in neither; validation d_weight 0', () => {
  setInitSeed(3);
  // 8x8 images, disc_num_layers 1: D maps 8 -> 4 -> 3 -> 2
  const ae = build(AE_CONFIG({ disc_start: 1, kl_weight: 1e-6, disc_num_layers: 1, disc_weight: 0.5, perceptual_weight: 0.0 }), 't');
  assert.ok(ae instanceof AutoencoderKL);
  const loss = ae.loss;
  assert.ok(loss instanceof LPIPSWithDiscriminator);
  const opts = configureAutoencoderOptimizers(ae, loss, 1e-3);
  const aeIds = new Set(opts.optAe.params.map((p) => p.id));
  assert.ok(!aeIds.has(loss.logvar.id));
  assert.equal(opts.optAe.params.length, ae.encoder.parameters().length + ae.decoder.parameters().length + 4);
  assert.deepEqual(opts.optDisc.params.map((p) => p.id), loss.discriminator.parameters().map((p) => p.id));
  assert.deepEqual(opts.optAe.betas, [0.5, 0.9]);

  const batch = { image: rnd([1, 8, 8, 3], 9, 0.5) }; // channels-last, as get_input expects
  const enc0 = ae.encoder.conv_in.weight.f32.slice(), disc0 = loss.discriminator.main.at(0).parameters()[0]!.f32.slice();
  ae.train();
  const r = autoencoderOptimizationStep(ae, loss, opts, batch, 1, { noise0: new Generator(1), noise1: new Generator(2) });
  assert.equal(r.log['train/disc_factor']!.item(), 1, 'active at global_step == disc_start');
  assert.ok(r.log['train/d_weight']!.item() > 0);
  assert.ok(r.discloss.item() > 0);
  assert.notDeepEqual([...ae.encoder.conv_in.weight.f32], [...enc0], 'opt_ae stepped the encoder');
  assert.notDeepEqual([...loss.discriminator.main.at(0).parameters()[0]!.f32], [...disc0], 'opt_disc stepped D');
  assert.equal(loss.logvar.item(), 0, 'logvar never trains');
  for (const key of ['total_loss', 'logvar', 'kl_loss', 'nll_loss', 'rec_loss', 'd_weight', 'disc_factor', 'g_loss', 'disc_loss', 'logits_real', 'logits_fake']) {
    assert.ok(r.log[`train/${key}`] instanceof Tensor, key);
  }

  ae.eval();
  const v = autoencoderValidationStep(ae, loss, batch, 0, { noise: new Generator(5) });
  assert.equal(v['val/d_weight']!.item(), 0);
  assert.equal(v['val/disc_factor']!.item(), 0, 'global_step 0 < disc_start 1');
  assert.equal(v['val/disc_loss']!.item(), 0);
  assert.ok(v['val/rec_loss']!.item() > 0);
  setInitSeed(0);
});
