// Tests of src/diffusion/gaussian.ts: q(x_t|x_0) and posterior identities, the eps <-> x0 <-> v
// <-> x_{t-1} round trips, p_mean_variance variants and the p_sample noise mask at t == 0.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator } from '../../src/util/index.ts';
import { Tensor, randn, tensor, zeros } from '../../src/tensor/index.ts';
import { GaussianDiffusion, fullT, makeBetaSchedule, registerSchedule, type Denoiser } from '../../src/diffusion/index.ts';

const gen = (): Generator => new Generator(1234);
const maxAbs = (a: Tensor, b: Tensor): number => {
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
};
const ts = (vals: number[]): Tensor => tensor(vals, [vals.length], 'int64');

const diffusion = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', 1000));

test('extract gives [B, 1, 1, 1] and the buffer entries', () => {
  const t = ts([0, 10, 999]);
  const e = diffusion.extract(diffusion.buf('alphas_cumprod'), t, [3, 2, 4, 4]);
  assert.deepEqual(e.shape, [3, 1, 1, 1]);
  const sched = registerSchedule(makeBetaSchedule('linear', 1000));
  [0, 10, 999].forEach((ti, i) => assert.equal(e.data[i], Math.fround(sched.alphas_cumprod[ti]!)));
});

test('q_sample = mean + sqrt(variance) * noise (q_mean_variance)', () => {
  const g = gen();
  const x0 = randn([3, 2, 4, 4], g), noise = randn([3, 2, 4, 4], g);
  const t = ts([1, 400, 998]);
  const xt = diffusion.qSample(x0, t, noise);
  const { mean, variance, logVariance } = diffusion.qMeanVariance(x0, t);
  assert.ok(maxAbs(xt, mean.add(variance.sqrt().mul(noise))) < 1e-5);
  assert.ok(maxAbs(logVariance.exp(), variance) < 1e-5);
});

test('eps <-> x0 <-> v round trips', () => {
  const g = gen();
  const x0 = randn([2, 3, 4, 4], g), eps = randn([2, 3, 4, 4], g);
  const t = ts([5, 700]);
  const xt = diffusion.qSample(x0, t, eps);
  assert.ok(maxAbs(diffusion.predictStartFromNoise(xt, t, eps), x0) < 2e-3);
  assert.ok(maxAbs(diffusion.predictEpsFromStart(xt, t, x0), eps) < 2e-3);
  const v = diffusion.getV(x0, eps, t);
  assert.ok(maxAbs(diffusion.predictStartFromV(xt, t, v), x0) < 1e-5);
  assert.ok(maxAbs(diffusion.predictEpsFromV(xt, t, v), eps) < 1e-5);
  assert.ok(maxAbs(diffusion.predictXstart(v, xt, t, 'v'), x0) < 1e-5);
  assert.ok(maxAbs(diffusion.predictEps(x0, xt, t, 'x0'), eps) < 2e-3);
});

test('x_{t-1} <-> x0 through the posterior mean', () => {
  const g = gen();
  const x0 = randn([2, 1, 3, 3], g), xt = randn([2, 1, 3, 3], g);
  const t = ts([3, 50]);
  const post = diffusion.qPosterior(x0, xt, t);
  assert.ok(maxAbs(diffusion.predictXstartFromXprev(xt, t, post.mean), x0) < 1e-3);
});

test('posterior: beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), mean of x_t = sqrt(abar_t) x0 is consistent', () => {
  const sched = registerSchedule(makeBetaSchedule('cosine', 100));
  const d = new GaussianDiffusion(sched);
  const x0 = tensor([0.3, -0.7], [2, 1, 1, 1]);
  const t = ts([10, 60]);
  // noise-free x_t: the posterior mean must be sqrt(abar_{t-1}) x0 (the chain stays on the mean)
  const xt = d.qSample(x0, t, zeros([2, 1, 1, 1]));
  const post = d.qPosterior(x0, xt, t);
  [10, 60].forEach((ti, i) => {
    assert.ok(Math.abs(post.mean.data[i]! - Math.sqrt(sched.alphas_cumprod_prev[ti]!) * x0.data[i]!) < 1e-5);
    const bt = (sched.betas[ti]! * (1 - sched.alphas_cumprod_prev[ti]!)) / (1 - sched.alphas_cumprod[ti]!);
    assert.ok(Math.abs(post.variance.data[i]! - bt) < 1e-6 * Math.max(1, bt));
  });
  assert.equal(d.buf('posterior_log_variance_clipped').data[0], Math.fround(Math.log(1e-20)));
});

test('p_mean_variance: eps model clips x0; fixedlarge and learned_range variances', () => {
  const g = gen();
  const x = randn([2, 2, 3, 3], g);
  const t = ts([0, 500]);
  const out = randn([2, 2, 3, 3], g).mul(5);
  const pm = diffusion.pMeanVariance(out, x, t);
  assert.ok(pm.predXstart.toArray().every((v) => v >= -1 && v <= 1));
  assert.deepEqual(pm.variance.shape, [2, 1, 1, 1]);
  const large = new GaussianDiffusion(registerSchedule(makeBetaSchedule('linear', 1000)), { varianceType: 'fixedlarge' });
  const pl = large.pMeanVariance(out, x, t);
  const sched = registerSchedule(makeBetaSchedule('linear', 1000));
  assert.ok(Math.abs(pl.variance.data[0]! - sched.posterior_variance[1]!) < 1e-9);
  assert.ok(Math.abs(pl.variance.data[1]! - sched.betas[500]!) < 1e-9);
  const lr = new GaussianDiffusion(sched, { varianceType: 'learned_range' });
  const twoC = randn([2, 4, 3, 3], g);
  const pr = lr.pMeanVariance(twoC, x, t);
  assert.deepEqual(pr.logVariance.shape, [2, 2, 3, 3]);
  // frac = (v + 1) / 2 in [0, 1] keeps log sigma^2 between log beta~ and log beta
  const hi = Math.log(sched.betas[500]!), lo = Math.log(sched.posterior_variance[500]!);
  const vals = pr.logVariance.toArray().slice(18); // sample 1
  const v1 = twoC.toArray().slice(36 + 18);
  vals.forEach((lv, i) => {
    const frac = (v1[i]! + 1) / 2;
    assert.ok(Math.abs(lv - (frac * hi + (1 - frac) * lo)) < 1e-4);
  });
  const xp = new GaussianDiffusion(sched, { parameterization: 'xprev' });
  assert.equal(xp.pMeanVariance(out, x, t, { clipDenoised: false }).mean, out);
});

test('p_sample adds no noise where t == 0 and sigma z elsewhere', () => {
  const g = gen();
  const x = randn([2, 1, 2, 2], g);
  const noise = randn([2, 1, 2, 2], g);
  const zero: Denoiser = (xx) => zeros(xx.shape);
  const t = ts([0, 300]);
  const withNoise = diffusion.pSample(zero, x, t, { noise }).sample;
  const without = diffusion.pSample(zero, x, t, { noise: zeros([2, 1, 2, 2]) }).sample;
  for (let i = 0; i < 4; i++) assert.equal(withNoise.data[i], without.data[i]);
  const sigma = Math.sqrt(registerSchedule(makeBetaSchedule('linear', 1000)).posterior_variance[300]!);
  for (let i = 4; i < 8; i++) assert.ok(Math.abs(withNoise.data[i]! - without.data[i]! - sigma * noise.data[i]!) < 1e-5);
});

test('p_sample_loop logs x_T and every log_every_t step; progressive_denoising logs x0', () => {
  const d = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', 20, 1e-3, 0.2));
  const zero: Denoiser = (xx) => zeros(xx.shape);
  const r = d.pSampleLoop(zero, [1, 1, 2, 2], { gen: gen(), logEveryT: 5 });
  // x_T, t = 19 (T-1), 15, 10, 5, 0
  assert.equal(r.intermediates.length, 6);
  const p = d.progressiveDenoising(zero, [1, 1, 2, 2], { gen: gen(), logEveryT: 5 });
  assert.equal(p.intermediates.length, 5);
  assert.equal(fullT(3, 7).dtype, 'int64');
});
