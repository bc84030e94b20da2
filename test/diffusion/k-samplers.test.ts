// Tests of the k-diffusion samplers, schedules and the CompVisDenoiser wrapping on analytic
// denoisers (parity with k-diffusion itself is in the ksampler_* parity fixtures):
//  - Gaussian data N(0, s_d^2 I): the exact denoiser is D(x, sigma) = x s_d^2 / (s_d^2 + sigma^2) and the
//    probability-flow ODE maps x(sigma_max) to x(0) = x(sigma_max) s_d / sqrt(s_d^2 + sigma_max^2), so every
//    deterministic sampler must land there; the stochastic ones must give samples of std s_d;
//  - sigma <-> t round trips, schedule shapes, LMS coefficients, UniPC's steps-many model calls.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator } from '../../src/util/index.ts';
import { Tensor, mul, randn, sub } from '../../src/tensor/index.ts';
import {
  DiscreteSigmas, GaussianDiffusion, K_SAMPLERS, getSampler, img2imgStart, K_SAMPLER_NAMES, SIGMA_SCHEDULES, asFloat32, kSample, karrasSigmas, lmsCoeff,
  makeBetaSchedule, registerSchedule, sigmaSchedule, type Denoiser, type SigmaDenoiser,
} from '../../src/diffusion/index.ts';

const SD = 0.5;
const gaussD: SigmaDenoiser = (x, s) => mul(x, (SD * SD) / (SD * SD + s * s));
const ac = asFloat32(registerSchedule(makeBetaSchedule('linear', 1000, 0.00085, 0.012))).alphas_cumprod;
const sched = new DiscreteSigmas(ac);

const maxAbs = (t: Tensor): number => { let m = 0; for (const v of t.data) m = Math.max(m, Math.abs(v)); return m; };
const std = (t: Tensor): number => { let s = 0; for (const v of t.data) s += v * v; return Math.sqrt(s / t.size); };

test('deterministic k-samplers solve the Gaussian probability-flow ODE', () => {
  const sigmas = karrasSigmas(30, 0.03, 20);
  const gen = new Generator(3);
  const xT = randn([2, 2, 8, 8], gen);
  const x = mul(xT, sigmas[0]!);
  const exact = mul(x, SD / Math.sqrt(SD * SD + sigmas[0]! * sigmas[0]!));
  const tol: Record<string, number> = { euler: 0.1, lms: 0.01, heun: 0.01, dpm2: 0.01, dpmpp_2m: 0.01, unipc: 0.01 };
  for (const name of ['euler', 'heun', 'dpm2', 'dpmpp_2m', 'lms', 'unipc'] as const) {
    const out = K_SAMPLERS[name](gaussD, x, sigmas, { noise: () => randn(x.shape, gen) });
    const err = maxAbs(sub(out, exact)) / maxAbs(exact);
    assert.ok(err < tol[name]!, `${name}: relative error ${err}`);
  }
});

test('stochastic k-samplers draw samples of the data std; eta 0 makes the SDE samplers deterministic', () => {
  const sigmas = karrasSigmas(40, 0.03, 20);
  for (const name of ['euler_a', 'dpmpp_2s_a', 'dpmpp_2m_sde', 'dpmpp_3m_sde'] as const) {
    const gen = new Generator(11);
    const x = mul(randn([4, 1, 32, 32], gen), sigmas[0]!);
    const out = K_SAMPLERS[name](gaussD, x, sigmas, { noise: () => randn(x.shape, gen) });
    assert.ok(Math.abs(std(out) - SD) < (name === 'euler_a' ? 0.1 : 0.03), `${name}: std ${std(out)} vs ${SD}`);
  }
  const x = mul(randn([1, 1, 8, 8], new Generator(1)), 20);
  let draws = 0;
  K_SAMPLERS.dpmpp_2m_sde(gaussD, x, sigmas, { eta: 0, noise: () => { draws++; return x; } });
  assert.equal(draws, 0);
});

test('sigma <-> t: grid levels map to their index, interpolation is monotone, schedules have n + 1 entries ending in 0', () => {
  for (const t of [0, 1, 17, 500, 998, 999]) assert.ok(Math.abs(sched.sigmaToT(sched.sigmas[t]!) - t) < 1e-3, `t=${t}`);
  assert.equal(sched.sigmaToT(sched.sigmas[321]! * 1.0001, true), 321);
  assert.ok(Math.abs(sched.tToSigma(sched.sigmaToT(3.3)) - 3.3) / 3.3 < 1e-5);
  assert.equal(sched.sigmaToT(1e-9), 0);
  assert.equal(sched.sigmaToT(1e9), 999);
  for (const name of SIGMA_SCHEDULES) {
    const s = sigmaSchedule(name, 12, sched);
    assert.equal(s.length, 13, name);
    assert.equal(s[12], 0, name);
    for (let i = 1; i < 12; i++) assert.ok(s[i]! < s[i - 1]!, `${name} decreasing at ${i}`);
    assert.ok(Math.abs(s[0]! - sched.sigmaMax) / sched.sigmaMax < 1e-6, `${name} starts at sigma_max`);
  }
});

test('LMS coefficients integrate the Lagrange basis exactly', () => {
  const t = [10, 6, 3.5, 2, 1.1, 0.5];
  for (let i = 3; i < 5; i++) {
    let sum = 0;
    for (let j = 0; j < 4; j++) sum += lmsCoeff(4, t, i, j);
    assert.ok(Math.abs(sum - (t[i + 1]! - t[i]!)) < 1e-12, 'the basis sums to 1');
  }
  assert.throws(() => lmsCoeff(4, t, 1, 0), /order 4 too high/);
});

test('kSample: CompVisDenoiser of an eps model, guidance, img2img and inpainting keep what they must', () => {
  // eps of a point mass x* at t: (x_t - sqrt(abar) x*) / sqrt(1 - abar), with fractional t interpolated
  const xStar = mul(randn([1, 1, 6, 6], new Generator(5)), 0.5);
  const abar = (t: number): number => { const lo = Math.floor(t), w = t - lo; return ac[lo]! * (1 - w) + ac[Math.min(999, lo + 1)]! * w; };
  let calls = 0;
  const eps: Denoiser = (x, t) => {
    calls++;
    const a = abar(t.data[0]!);
    return mul(sub(x, mul(xStar, Math.sqrt(a))), 1 / Math.sqrt(1 - a));
  };
  for (const sampler of K_SAMPLER_NAMES) {
    const r = kSample(eps, ac, { sampler, scheduler: 'karras', steps: 12, shape: [1, 1, 6, 6], gen: new Generator(2), eta: 0 });
    assert.ok(maxAbs(sub(r.samples, xStar)) < 0.02, `${sampler} lands on the point mass (${maxAbs(sub(r.samples, xStar))})`);
    assert.equal(r.denoised.length, 12, `${sampler}: one denoised per step`);
  }
  calls = 0;
  kSample(eps, ac, { sampler: 'unipc', steps: 9, shape: [1, 1, 6, 6], gen: new Generator(2) });
  assert.equal(calls, 9, 'unipc: steps model calls');
  const x0 = mul(randn([1, 1, 6, 6], new Generator(8)), 0.3);
  const half = kSample(eps, ac, { sampler: 'euler', steps: 10, tStart: 5, xT: x0, shape: [1, 1, 6, 6], gen: new Generator(2) });
  assert.equal(half.sigmas.length, 6, 'tStart 5 of 10 runs half the steps');
  const mask = new Tensor(Float32Array.from({ length: 36 }, (_, i) => (i < 18 ? 1 : 0)), [1, 1, 6, 6]);
  const inp = kSample(eps, ac, { sampler: 'dpmpp_2m', steps: 10, x0, mask, shape: [1, 1, 6, 6], gen: new Generator(2) });
  for (let i = 0; i < 18; i++) assert.equal(inp.samples.data[i], x0.data[i], 'the kept region equals the input');
  assert.throws(() => kSample(eps, ac, { sampler: 'euler', steps: 4, tStart: 2, shape: [1, 1, 6, 6] }), /needs xT/);
});

test('the table rows: every k-sampler and img2img start through getSampler', () => {
  const diffusion = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', 1000, 0.00085, 0.012));
  const xStar = mul(randn([1, 1, 6, 6], new Generator(5)), 0.5);
  const acT = diffusion.alphasCumprod;
  const eps: Denoiser = (x, t) => {
    const tv = t.data[0]!, lo = Math.floor(tv), w = tv - lo;
    const a = acT[lo]! * (1 - w) + acT[Math.min(999, lo + 1)]! * w;
    return mul(sub(x, mul(xStar, Math.sqrt(a))), 1 / Math.sqrt(1 - a));
  };
  for (const name of ['ddim', 'ddpm', 'euler', 'dpmpp_2m', 'unipc'] as const) {
    const st = img2imgStart(name, diffusion, { steps: 10 }, xStar, 0.5, randn([1, 1, 6, 6], new Generator(4)));
    const steps: number[] = [];
    const r = getSampler(name)(eps, diffusion, { shape: [1, 1, 6, 6], steps: 10, xT: st.xT, tStart: st.tStart, gen: new Generator(1), clipDenoised: false, onStep: (i) => steps.push(i.i) });
    assert.ok(maxAbs(sub(r.samples, xStar)) < (name === 'ddim' ? 0.15 : 0.03), `${name} img2img of the point mass stays there (${maxAbs(sub(r.samples, xStar))})`);
    assert.equal(steps.length, name === 'ddpm' ? 500 : 5, `${name}: steps run`);
  }
  assert.throws(() => img2imgStart('plms', diffusion, { steps: 10 }, xStar, 0.5, xStar), /no partial start/);
  assert.throws(() => getSampler('euler')(eps, diffusion, { shape: [1, 1, 6, 6], eta: 0.5 }), /euler has no eta/);
});
