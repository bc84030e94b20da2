// Tests of the samplers (src/diffusion/samplers/*) and guidance on an analytic denoiser: when
// the data distribution is a single point x*, the exact eps of x_t is
// (x_t - sqrt(abar_t) x*) / sqrt(1 - abar_t), so every deterministic sampler must land on x*
// (up to the sigma of its final timestep), in few steps.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Generator } from '../../src/util/index.ts';
import { Tensor, add, div, indexSelect, mul, randn, sub, tanh, tensor, toFloat } from '../../src/tensor/index.ts';
import {
  GaussianDiffusion, SAMPLERS, SAMPLER_NAMES, asFloat32, cfgDenoiser, dpmSolverSample, dpmSolverTimesteps, getSampler,
  makeBetaSchedule, registerSchedule, type Cond, type Denoiser, type Parameterization,
} from '../../src/diffusion/index.ts';

const { ddpm: ancestralSample, ddim: ddimSample, plms: plmsSample } = SAMPLERS;

const SHAPE = [2, 3, 4, 4] as const;
const sched = asFloat32(registerSchedule(makeBetaSchedule('linear', 1000, 0.00085, 0.012)));
const AC = sched.alphas_cumprod;
const BETAS = makeBetaSchedule('linear', 1000, 0.00085, 0.012);
/** The schedule the samplers read, for a denoiser predicting `p`. */
const schedule = (p: Parameterization = 'eps'): GaussianDiffusion => GaussianDiffusion.fromBetas(BETAS, { parameterization: p });
const model = schedule();
const acT = tensor(sched.alphas_cumprod);
const xStar = mul(tanh(randn([...SHAPE], new Generator(7))), 0.8); // the single data point, in (-0.8, 0.8)

// abar at t, linearly interpolated for the fractional timesteps of the k-diffusion rows
const bcast = (t: Tensor): Tensor => {
  if (t.dtype === 'int64') return indexSelect(acT, 0, t).reshape(t.shape[0]!, 1, 1, 1);
  const v = Array.from(t.data, (tv) => { const lo = Math.floor(tv), w = tv - lo; return AC[lo]! * (1 - w) + AC[Math.min(AC.length - 1, lo + 1)]! * w; });
  return tensor(v).reshape(t.shape[0]!, 1, 1, 1);
};

/** The exact eps / x0 / v of a point-mass data distribution. */
function analytic(kind: 'eps' | 'x0' | 'v'): Denoiser {
  return (x, t) => {
    const a = bcast(t), sa = a.sqrt(), s1 = sub(1, a).sqrt();
    const eps = div(sub(x, mul(sa, xStar)), s1);
    if (kind === 'eps') return eps;
    if (kind === 'x0') return mul(xStar, add(mul(a, 0), 1));
    return sub(mul(sa, eps), mul(s1, xStar)); // v = sqrt(abar) eps - sqrt(1 - abar) x0
  };
}

const maxDiff = (a: Tensor, b: Tensor): number => {
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
};
const xT = (): Tensor => randn([...SHAPE], new Generator(99));

test('DDIM with eta 0 is deterministic (noise draws do not matter), eta 1 is not', () => {
  const nonlinear: Denoiser = (x, t) => tanh(mul(x, div(toFloat(t).reshape(t.shape[0]!, 1, 1, 1), 1000)));
  const a = ddimSample(nonlinear, model, { steps: 8, shape: SHAPE, xT: xT(), gen: new Generator(1) });
  const b = ddimSample(nonlinear, model, { steps: 8, shape: SHAPE, xT: xT(), gen: new Generator(2) });
  assert.equal(maxDiff(a.samples, b.samples), 0);
  const c = ddimSample(nonlinear, model, { steps: 8, shape: SHAPE, eta: 1, xT: xT(), gen: new Generator(1) });
  const d = ddimSample(nonlinear, model, { steps: 8, shape: SHAPE, eta: 1, xT: xT(), gen: new Generator(2) });
  assert.ok(maxDiff(c.samples, d.samples) > 1e-3);
  // intermediates: x_T plus one entry per step with log_every_t = 1; timesteps shifted by +1
  const e = ddimSample(nonlinear, model, { steps: 10, shape: SHAPE, xT: xT(), logEvery: 1 });
  assert.equal(e.intermediates.x_inter.length, 11);
  assert.deepEqual(Array.from(model.ddimSchedule(10).ddim_timesteps), [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]);
});

test('DDIM converges to the data point in 10 steps (eps, x0 and v models)', () => {
  for (const kind of ['eps', 'x0', 'v'] as const) {
    const r = ddimSample(analytic(kind), schedule(kind), { steps: 10, shape: SHAPE, xT: xT() });
    // the last step ends at abar_0 (not 1): x = sqrt(abar_0) x* + sqrt(1 - abar_0) eps
    assert.ok(maxDiff(r.samples, xStar) < 0.1, `${kind}: ${maxDiff(r.samples, xStar)}`);
    assert.ok(maxDiff(r.intermediates.pred_x0.at(-1)!, xStar) < 1e-3, `${kind} pred_x0`);
  }
});

test('PLMS (eta 0 only) converges in few steps, with the pseudo improved-Euler first step', () => {
  let calls = 0;
  const counting: Denoiser = (x, t, c) => { calls++; return analytic('eps')(x, t, c); };
  const r = plmsSample(counting, model, { steps: 5, shape: SHAPE, xT: xT() });
  assert.equal(calls, 6); // 5 steps + the second call of the first step
  assert.ok(maxDiff(r.samples, xStar) < 0.1);
  assert.ok(maxDiff(r.intermediates.pred_x0.at(-1)!, xStar) < 1e-3);
  assert.throws(() => plmsSample(counting, model, { steps: 6, shape: SHAPE, eta: 0.5 }), /eta must be 0/);
});

test('DPM-Solver++(2M) converges in few steps; denoise_to_zero lands on x*', () => {
  for (const kind of ['eps', 'v'] as const) {
    const r = SAMPLERS['dpm-solver++'](analytic(kind), schedule(kind), { steps: 8, shape: SHAPE, xT: xT() });
    assert.ok(maxDiff(r.samples, xStar) < 0.1, `${kind}: ${maxDiff(r.samples, xStar)}`);
    const z = dpmSolverSample(analytic(kind), schedule(kind), { steps: 8, shape: SHAPE, xT: xT(), denoiseToZero: true });
    assert.ok(maxDiff(z.samples, xStar) < 1e-3, `${kind} denoise_to_zero: ${maxDiff(z.samples, xStar)}`);
  }
  const ts = dpmSolverTimesteps(AC, 5, 'logSNR');
  assert.equal(ts.length, 6);
  assert.equal(ts[0], 999);
  assert.equal(ts[5], 0);
  assert.deepEqual(dpmSolverTimesteps(AC, 4, 'time_uniform'), [999, 749, 500, 250, 0]);
});

test('DPM-Solver++ 2nd order beats 1st order on a non-trivial data distribution', () => {
  // Gaussian data N(x*, s^2) per element: E[x0 | x_t] = x* + s^2 sqrt(a) (x_t - sqrt(a) x*) / (a s^2 + 1 - a)
  const s2 = 0.25;
  const gaussData: Denoiser = (x, t) => {
    const a = bcast(t), sa = a.sqrt();
    const x0 = add(xStar, div(mul(mul(sa, s2), sub(x, mul(sa, xStar))), add(mul(a, s2), sub(1, a))));
    return div(sub(x, mul(sa, x0)), sub(1, a).sqrt());
  };
  // the probability-flow ODE maps x_T to sqrt(a) x* + sqrt(a s^2 + 1 - a) z exactly (Gaussian data)
  const aT = AC[999]!, a0 = AC[0]!;
  const z = div(sub(xT(), mul(xStar, Math.sqrt(aT))), Math.sqrt(aT * s2 + 1 - aT));
  const exact = add(mul(xStar, Math.sqrt(a0)), mul(z, Math.sqrt(a0 * s2 + 1 - a0)));
  const run = (steps: number, order: 1 | 2): Tensor =>
    dpmSolverSample(gaussData, model, { steps, order, shape: SHAPE, xT: xT(), lowerOrderFinal: false, skipType: 'logSNR' }).samples;
  const e1 = maxDiff(run(10, 1), exact);
  const e2 = maxDiff(run(10, 2), exact);
  assert.ok(e2 < e1 / 3, `2nd order ${e2} vs 1st order ${e1}`);
  assert.ok(maxDiff(run(200, 2), exact) < 2e-3);
});

test('classifier-free guidance: batch [uncond, cond], e = e_u + s (e_c - e_u)', () => {
  const g = new Generator(3);
  const c: Cond = { c_crossattn: [randn([2, 1, 4], g)] };
  const uc: Cond = { c_crossattn: [randn([2, 1, 4], g)] };
  const seen: Tensor[] = [];
  // output = x * 0.5 + mean of the context per sample
  const base: Denoiser = (x, _t, cond) => {
    const ctx = cond!.c_crossattn![0]!;
    seen.push(ctx);
    return add(mul(x, 0.5), ctx.mean([1, 2], true).reshape(ctx.shape[0]!, 1, 1, 1));
  };
  const x = randn([...SHAPE], g);
  const t = tensor([5, 5], [2], 'int64');
  const guided = cfgDenoiser(base, { uncond: uc, scale: 3 });
  const out = guided(x, t, c);
  assert.deepEqual(seen[0]!.shape, [4, 1, 4]);
  assert.deepEqual(seen[0]!.toArray().slice(0, 8), uc.c_crossattn![0]!.toArray()); // unconditional first
  const eU = base(x, t, uc), eC = base(x, t, c);
  assert.ok(maxDiff(out, add(eU, mul(sub(eC, eU), 3))) < 1e-5);
  assert.equal(cfgDenoiser(base, { uncond: uc, scale: 1 }), base);
  // guidance flows into the samplers: model_out batch is 2B
  let batch = 0;
  const probe: Denoiser = (xx, tt, cc) => { batch = xx.shape[0]!; return base(xx, tt, cc); };
  ddimSample(probe, model, { steps: 2, shape: SHAPE, cond: c, uncond: uc, guidance: 2, xT: x });
  assert.equal(batch, 4);
});

test('ancestral DDPM sampling on the analytic denoiser ends near x* (short chain)', () => {
  const d = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', 50, 1e-3, 0.3));
  const ac = tensor(Float32Array.from(registerSchedule(makeBetaSchedule('linear', 50, 1e-3, 0.3)).alphas_cumprod));
  const eps: Denoiser = (x, t) => {
    const a = indexSelect(ac, 0, t).reshape(t.shape[0]!, 1, 1, 1);
    return div(sub(x, mul(a.sqrt(), xStar)), sub(1, a).sqrt());
  };
  const r = ancestralSample(eps, d, { shape: SHAPE, gen: new Generator(5), logEvery: 10 });
  assert.ok(maxDiff(r.samples, xStar) < 1e-3);
  assert.equal(r.intermediates.x_inter.length, 1 + 6); // x_T, t = 49, 40, 30, 20, 10, 0
  assert.equal(r.intermediates.pred_x0.length, 1 + 6);
});

test('the sampler table: one signature for every row, lookup by name with a suggestion', () => {
  for (const name of SAMPLER_NAMES) {
    let calls = 0;
    const counting: Denoiser = (x, t, c) => { calls++; return analytic('eps')(x, t, c); };
    const steps: number[] = [];
    const r = getSampler(name)(counting, model, { shape: SHAPE, steps: 4, xT: xT(), gen: new Generator(1), onStep: (s) => steps.push(s.i) });
    assert.deepEqual(r.samples.shape, [...SHAPE], name);
    assert.ok(calls >= 4, `${name}: ${calls} model calls`);
    assert.equal(steps[0], 0, name);
    assert.equal(steps.length, name === 'ddpm' ? 1000 : 4, name);
  }
  assert.throws(() => getSampler('ddin'), /unknown sampler 'ddin' \(did you mean 'ddim'\?\)/);
});

test('img2img (tStart) runs the last steps only; inpainting keeps the known region', () => {
  let calls = 0;
  const counting: Denoiser = (x, t, c) => { calls++; return analytic('eps')(x, t, c); };
  const full = ddimSample(counting, model, { steps: 10, shape: SHAPE, xT: xT() });
  calls = 0;
  const same = ddimSample(counting, model, { steps: 10, shape: SHAPE, xT: xT(), tStart: 10 });
  assert.equal(calls, 10);
  assert.equal(maxDiff(full.samples, same.samples), 0);
  calls = 0;
  ddimSample(counting, model, { steps: 10, shape: SHAPE, xT: xT(), tStart: 3 });
  assert.equal(calls, 3);
  assert.throws(() => ddimSample(counting, model, { steps: 10, shape: SHAPE, tStart: 11 }), /tStart/);
  const short = GaussianDiffusion.fromBetas(makeBetaSchedule('linear', 50, 1e-3, 0.3));
  calls = 0;
  ancestralSample(counting, short, { shape: SHAPE, xT: xT(), tStart: 7 });
  assert.equal(calls, 7);
  // a mask of ones: every step re-imposes q_sample(x0, t), so the result is x0 up to the last noise level
  const ones = add(mul(xStar, 0), 1);
  const inp = ddimSample(analytic('eps'), model, { steps: 10, shape: SHAPE, xT: xT(), mask: ones, x0: xStar, gen: new Generator(2) });
  assert.ok(maxDiff(inp.samples, xStar) < 0.1);
  assert.throws(() => SAMPLERS['dpm-solver++'](counting, model, { shape: SHAPE, mask: ones, x0: xStar }), /masks/);
});
