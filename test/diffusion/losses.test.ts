// Tests of src/diffusion/losses.ts: normal KL, the discretized Gaussian likelihood, bits/dim of a
// perfect vs a bad denoiser, LDM's loss assembly (DDPM and LatentDiffusion forms) and the
// lucidrains / min-SNR loss weights.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator } from '../../src/util/index.ts';
import { backward, div, full, indexSelect, mul, randn, sub, tanh, tensor, zeros } from '../../src/tensor/index.ts';
import {
  GaussianDiffusion, approxStandardNormalCdf, calcBpd, discretizedGaussianLogLikelihood, ldmLoss, lucidrainsBuffers,
  makeBetaSchedule, normalKl, priorBpd, registerSchedule, simpleLoss, snrLossWeights, type Denoiser,
} from '../../src/diffusion/index.ts';

const close = (a: number, b: number, tol: number, what = ''): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('KL of equal Gaussians is 0; against N(0,1) it is the closed form', () => {
  const g = new Generator(1);
  const m = randn([5], g), lv = randn([5], g);
  assert.ok(normalKl(m, lv, m, lv).toArray().every((v) => Math.abs(v) < 1e-7));
  const kl = normalKl(m, lv, 0, 0).toArray();
  kl.forEach((v, i) => {
    const mu = m.data[i]!, l = lv.data[i]!;
    close(v, 0.5 * (-1 - l + Math.exp(l) + mu * mu), 1e-5, 'kl');
  });
});

test('approximate normal CDF and the discretized likelihood (bins sum to 1)', () => {
  close(approxStandardNormalCdf(tensor([0])).data[0]!, 0.5, 1e-7);
  close(approxStandardNormalCdf(tensor([1.96])).data[0]!, 0.975, 1e-3);
  // 256 bin centres of [-1, 1]: the probabilities of one Gaussian sum to 1
  const xs = tensor(Array.from({ length: 256 }, (_, i) => -1 + (2 * i) / 255));
  const ll = discretizedGaussianLogLikelihood(xs, full([256], 0.1), full([256], Math.log(0.3)));
  const total = ll.toArray().reduce((s, v) => s + Math.exp(v), 0);
  close(total, 1, 1e-4, 'sum of bin probabilities');
});

test('bits/dim: a perfect denoiser of a point mass is finite and beats a bad one', () => {
  const T = 20;
  const d = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', T, 1e-3, 0.4));
  const ac = tensor(Float32Array.from(registerSchedule(makeBetaSchedule('linear', T, 1e-3, 0.4)).alphas_cumprod));
  // data: one image on the 8-bit grid of [-1, 1]
  const g = new Generator(2);
  const x0 = tensor(Array.from(tanh(randn([2 * 1 * 4 * 4], g)).data, (v) => Math.round(((v + 1) / 2) * 255) / 127.5 - 1), [2, 1, 4, 4]);
  const perfect: Denoiser = (x, t) => {
    const a = indexSelect(ac, 0, t).reshape(t.shape[0]!, 1, 1, 1);
    return div(sub(x, mul(a.sqrt(), x0)), sub(1, a).sqrt());
  };
  const bad: Denoiser = (x) => zeros(x.shape);
  const good = calcBpd(perfect, d, x0, { gen: new Generator(3) });
  const poor = calcBpd(bad, d, x0, { gen: new Generator(3) });
  assert.deepEqual(good.vb.shape, [2, T]);
  for (let b = 0; b < 2; b++) {
    const gb = good.totalBpd.data[b]!, pb = poor.totalBpd.data[b]!;
    assert.ok(Number.isFinite(gb) && gb >= 0, `perfect bpd ${gb}`);
    assert.ok(gb < pb, `perfect ${gb} vs bad ${pb}`);
    // the perfect model's only cost is the prior term L_T
    close(gb, good.priorBpd.data[b]!, 1e-3, 'perfect = prior');
  }
  assert.ok(good.mse.toArray().every((v) => v < 1e-3));
  assert.ok(priorBpd(d, x0).toArray().every((v) => v > 0));
});

test('ldmLoss: DDPM form, LatentDiffusion logvar form and the log keys', () => {
  const g = new Generator(4);
  const T = 10;
  const pred = randn([3, 2, 2, 2], g), target = randn([3, 2, 2, 2], g);
  const t = tensor([0, 4, 9], [3], 'int64');
  const lvlb = tensor(Array.from({ length: T }, (_, i) => 0.1 * (i + 1)));
  const per = simpleLoss(pred, target, 'l2').toArray();
  const mean = per.reduce((a, b) => a + b, 0) / 3;
  const vlb = (0.1 * per[0]! + 0.5 * per[1]! + 1.0 * per[2]!) / 3;
  const a = ldmLoss({ modelOutput: pred, target, t, lossType: 'l2', lvlbWeights: lvlb, originalElboWeight: 0.5, lSimpleWeight: 2, prefix: 'val' });
  close(a.loss.item(), 2 * mean + 0.5 * vlb, 1e-5, 'ddpm loss');
  assert.deepEqual([...a.lossDict.keys()], ['val/loss_simple', 'val/loss_vlb', 'val/loss']);
  // logvar = 0 gives the same number; learned logvar: l / exp(lv) + lv and gradients reach logvar
  const logvar = full([T], 0.3).requireGrad();
  const b = ldmLoss({ modelOutput: pred, target, t, lossType: 'l2', lvlbWeights: lvlb, logvar, learnLogvar: true, prefix: 'train' });
  const expect = per.reduce((s, l) => s + l / Math.exp(0.3) + 0.3, 0) / 3;
  close(b.loss.item(), expect, 1e-5, 'logvar loss');
  assert.deepEqual([...b.lossDict.keys()], ['train/loss_simple', 'train/loss_gamma', 'logvar', 'train/loss_vlb', 'train/loss']);
  close(b.lossDict.get('train/loss_simple')!.item(), mean, 1e-6, 'loss_simple before the division');
  backward(b.loss);
  assert.ok(logvar.grad !== null);
  close(logvar.grad!.data[4]!, (1 - per[1]! / Math.exp(0.3)) / 3, 1e-5, 'd loss / d logvar[4]');
  assert.equal(logvar.grad!.data[1], 0);
  const l1 = ldmLoss({ modelOutput: pred, target, t, lossType: 'l1', lvlbWeights: lvlb, prefix: 'val' });
  close(l1.loss.item(), sub(pred, target).abs().mean().item(), 1e-6, 'l1');
});

test('min-SNR loss weights match the lucidrains buffers', () => {
  const betas = makeBetaSchedule('linear', 100);
  const ac = registerSchedule(betas).alphas_cumprod;
  for (const [obj, target] of [['pred_noise', 'eps'], ['pred_x0', 'x0'], ['pred_v', 'v']] as const) {
    const ref = lucidrainsBuffers(betas, { objective: obj, minSnrLossWeight: true, minSnrGamma: 5 }).loss_weight;
    const ours = snrLossWeights(ac, target, 5);
    ours.forEach((v, i) => close(v, ref[i]!, 1e-12 * Math.max(1, Math.abs(ref[i]!)), `${obj}[${i}]`));
    const plain = lucidrainsBuffers(betas, { objective: obj }).loss_weight;
    snrLossWeights(ac, target).forEach((v, i) => close(v, plain[i]!, 1e-9 * Math.max(1, Math.abs(plain[i]!)), `${obj} plain`));
  }
});
