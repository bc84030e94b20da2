// Tests of src/diffusion/schedules.ts against the official code's numbers:
//  1. the parity fixtures in ../shared/fixtures (data-driven: every `ldm_ddpm_schedule_*`,
//     `ldm_ddim_schedule_*`, `ddp_schedule_*` file, with the per-output modes of its
//     `__metadata__.checks`), plus the schedule buffers stored in the state dicts of the other
//     DDPM fixtures (pytorch-ddpm, LDM, lucidrains);
//  2. test/fixtures/schedules/reference.json (scripts/gen-schedule-reference.py, torch 1.13):
//     the schedules, options and helpers the parity fixtures do not cover, at tighter tolerances.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseSafetensors, toFloat64, toInt, type SafetensorsFile } from '../../src/formats/index.ts';
import { ConfigError } from '../../src/util/index.ts';
import {
  DIFFUSION_BUFFER_KEYS,
  asFloat32,
  lucidrainsBetaSchedule,
  lucidrainsBuffers,
  lucidrainsDdimTimes,
  makeBetaSchedule,
  makeDdimSchedule,
  makeDdimTimesteps,
  pddpmBetas,
  pddpmModelLogVar,
  pddpmSamplerBuffers,
  pddpmTrainerBuffers,
  registerSchedule,
  torchLinspace,
  type LdmBetaScheduleKind,
  type LdmParameterization,
  type LucidrainsBetaScheduleKind,
  type LucidrainsObjective,
} from '../../src/diffusion/schedules.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = resolve(ROOT, '..', 'shared', 'fixtures');
const REFERENCE = join(ROOT, 'test', 'fixtures', 'schedules', 'reference.json');
const REQUIRED = [
  'ldm_ddpm_schedule_linear',
  'ldm_ddpm_schedule_cosine',
  'ldm_ddim_schedule_S50_eta0',
  'ddp_schedule_sigmoid',
];

// ------------------------------------------------------------------------------------------
// comparison helpers
// ------------------------------------------------------------------------------------------

interface Check {
  mode: 'elementwise' | 'exact' | 'normwise';
  rtol?: number;
  atol?: number;
}

/** Asserts `ours` matches `ref` in the given mode; returns the worst |d|/|ref| (0 for exact). */
function compare(what: string, ours: ArrayLike<number>, ref: ArrayLike<number>, check: Check): number {
  assert.equal(ours.length, ref.length, `${what}: length ${ours.length}, expected ${ref.length}`);
  let worst = 0;
  let refMax = 0;
  for (let i = 0; i < ref.length; i++) if (Number.isFinite(ref[i]!)) refMax = Math.max(refMax, Math.abs(ref[i]!));
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = ours[i]!;
    const r = ref[i]!;
    if (!Number.isFinite(r) || !Number.isFinite(o)) {
      assert.ok(
        Object.is(o, r) || (Number.isNaN(o) && Number.isNaN(r)),
        `${what}[${i}]: ours ${o}, reference ${r} (NaN/Inf must match)`,
      );
      continue;
    }
    const d = Math.abs(o - r);
    maxDiff = Math.max(maxDiff, d);
    if (check.mode === 'exact') {
      assert.ok(o === r, `${what}[${i}]: ours ${o}, reference ${r} (exact)`);
    } else if (check.mode === 'elementwise') {
      const rtol = check.rtol ?? 1e-4;
      const atol = check.atol ?? 1e-30;
      assert.ok(d <= rtol * Math.abs(r) + atol, `${what}[${i}]: ours ${o}, reference ${r}, |d| = ${d} > ${rtol}*|ref| + ${atol}`);
    }
    if (r !== 0) worst = Math.max(worst, d / Math.abs(r));
    else if (d !== 0) worst = Infinity;
  }
  if (check.mode === 'normwise') {
    const rtol = check.rtol ?? 1e-4;
    assert.ok(maxDiff <= rtol * refMax, `${what}: max|d| = ${maxDiff} > ${rtol} * max|ref| = ${rtol * refMax}`);
  }
  return worst;
}

function loadFixture(name: string): SafetensorsFile {
  const path = join(FIXTURES, `${name}.safetensors`);
  return parseSafetensors(new Uint8Array(readFileSync(path)), path);
}

function tensor(file: SafetensorsFile, key: string, source: string): Float64Array {
  const t = file.tensors.get(key);
  assert.ok(t !== undefined, `${source}: tensor "${key}" missing`);
  return t.dtype === 'I64' ? toInt(t, key) : toFloat64(t, key);
}

function json<T>(text: string | undefined, what: string): T {
  assert.ok(text !== undefined, `${what} missing from the metadata`);
  return JSON.parse(text) as T;
}

const fmt = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

// ------------------------------------------------------------------------------------------
// 1. parity fixtures
// ------------------------------------------------------------------------------------------

test('the parity fixture folder ../shared/fixtures exists and holds the schedule fixtures', () => {
  assert.ok(
    existsSync(FIXTURES),
    `fixture folder ${FIXTURES} is missing: the parity fixtures must sit at ../shared/fixtures relative to the repository root`,
  );
  for (const name of REQUIRED) {
    assert.ok(existsSync(join(FIXTURES, `${name}.safetensors`)), `fixture ${name}.safetensors missing from ${FIXTURES}`);
  }
});

const scheduleFixtures = existsSync(FIXTURES)
  ? readdirSync(FIXTURES)
      .filter((f) => /^(ldm_ddpm_schedule_|ldm_ddim_schedule_|ddp_schedule_).*\.safetensors$/.test(f))
      .map((f) => f.slice(0, -'.safetensors'.length))
      .sort()
  : [];

interface LdmInit {
  timesteps?: number;
  beta_schedule?: LdmBetaScheduleKind;
  linear_start?: number;
  linear_end?: number;
  cosine_s?: number;
  parameterization?: LdmParameterization;
  v_posterior?: number;
  given_betas?: number[];
}

function ldmBetas(init: LdmInit): Float64Array {
  if (init.given_betas) return Float64Array.from(init.given_betas);
  return makeBetaSchedule(
    init.beta_schedule ?? 'linear',
    init.timesteps ?? 1000,
    init.linear_start ?? 1e-4,
    init.linear_end ?? 2e-2,
    init.cosine_s ?? 8e-3,
  );
}

/** Our value of one output of a schedule fixture, by its name (without the `out.` prefix). */
function ourOutput(fixture: string, config: Record<string, unknown>, file: SafetensorsFile, name: string): ArrayLike<number> {
  if (fixture.startsWith('ldm_ddpm_schedule_')) {
    const init = config['init'] as LdmInit;
    const betas = ldmBetas(init);
    // out.<param>.lvlb_weights: the same DDPM built with parameterization=<param>
    const variant = /^(eps|x0|v)\.lvlb_weights$/.exec(name);
    const parameterization = (variant?.[1] as LdmParameterization | undefined) ?? init.parameterization ?? 'eps';
    const s = registerSchedule(betas, { parameterization, vPosterior: init.v_posterior ?? 0 });
    const key = variant ? 'lvlb_weights' : name;
    assert.ok(key in s, `${fixture}: output "${name}" is not a buffer we compute`);
    return s[key as keyof typeof s];
  }
  if (fixture.startsWith('ldm_ddim_schedule_')) {
    const ms = config['make_schedule'] as { ddim_num_steps: number; ddim_discretize?: 'uniform' | 'quad'; ddim_eta?: number };
    // the official inputs: the model's float32 buffers
    const model = {
      alphas_cumprod: tensor(file, 'in.alphas_cumprod', fixture),
      alphas_cumprod_prev: tensor(file, 'in.alphas_cumprod_prev', fixture),
    };
    const d = makeDdimSchedule(model, {
      ddimNumSteps: ms.ddim_num_steps,
      ddimDiscretize: ms.ddim_discretize ?? 'uniform',
      ddimEta: ms.ddim_eta ?? 0,
    });
    assert.ok(name in d, `${fixture}: output "${name}" is not a DDIM attribute we compute`);
    return d[name as keyof typeof d];
  }
  if (fixture.startsWith('ddp_schedule_')) {
    const init = config['init'] as {
      timesteps?: number;
      beta_schedule?: LucidrainsBetaScheduleKind;
      schedule_fn_kwargs?: Record<string, number>;
    };
    const betas = lucidrainsBetaSchedule(init.beta_schedule ?? 'sigmoid', init.timesteps ?? 1000, init.schedule_fn_kwargs ?? {});
    const lw = /^loss_weight(?:_min_snr(\d+(?:\.\d+)?))?\.(pred_noise|pred_x0|pred_v)$/.exec(name);
    if (lw) {
      const opts = lw[1] !== undefined
        ? { objective: lw[2] as LucidrainsObjective, minSnrLossWeight: true, minSnrGamma: Number(lw[1]) }
        : { objective: lw[2] as LucidrainsObjective };
      return lucidrainsBuffers(betas, opts).loss_weight;
    }
    const b = lucidrainsBuffers(betas);
    assert.ok(name in b, `${fixture}: output "${name}" is not a buffer we compute`);
    return b[name as keyof typeof b];
  }
  throw new Error(`no rule for fixture ${fixture}`);
}

for (const fixture of scheduleFixtures) {
  test(`parity fixture ${fixture}`, (t) => {
    const file = loadFixture(fixture);
    const config = json<Record<string, unknown>>(file.metadata['config'], `${fixture}: config`);
    const checks = json<Record<string, Check>>(file.metadata['checks'], `${fixture}: checks`);
    const outputs = json<string[]>(file.metadata['output_keys'], `${fixture}: output_keys`);
    assert.ok(outputs.length > 0, `${fixture}: no outputs listed`);
    const report: string[] = [];
    for (const key of outputs) {
      const name = key.replace(/^out\./, '');
      const raw = file.tensors.get(key);
      assert.ok(raw !== undefined, `${fixture}: output tensor ${key} missing`);
      const isInt = raw.dtype === 'I64' || raw.dtype === 'I32';
      const check: Check = checks[name] ?? (isInt ? { mode: 'exact' } : { mode: 'normwise', rtol: 1e-4 });
      const ours = ourOutput(fixture, config, file, name);
      const refv = tensor(file, key, fixture);
      const worst = compare(`${fixture}:${name}`, ours, refv, check);
      let castNote = '';
      if (raw.dtype === 'F32') {
        let same = 0;
        for (let i = 0; i < refv.length; i++) if (Object.is(Math.fround(ours[i]!), refv[i])) same++;
        castNote = `, float32 cast bit-identical ${same}/${refv.length}`;
      }
      report.push(`${name} ${check.mode}${check.rtol !== undefined ? ` rtol=${check.rtol}` : ''} worst rel ${fmt(worst)}${castNote}`);
    }
    for (const line of report) t.diagnostic(line);
  });
}

test('LDM schedule buffers reproduce the float32 inputs of the DDIM fixtures', () => {
  for (const fixture of scheduleFixtures.filter((f) => f.startsWith('ldm_ddim_schedule_'))) {
    const file = loadFixture(fixture);
    const config = json<{ model: { init: LdmInit } }>(file.metadata['config'], `${fixture}: config`);
    const s = registerSchedule(ldmBetas(config.model.init));
    for (const k of ['alphas_cumprod', 'alphas_cumprod_prev'] as const) {
      compare(`${fixture}:in.${k}`, s[k], tensor(file, `in.${k}`, fixture), { mode: 'elementwise', rtol: 1e-6 });
    }
  }
});

// Schedule buffers stored in the state dicts of the other DDPM fixtures (same tolerance as the
// schedule fixtures: elementwise 1e-4; pytorch-ddpm's float64 betas must match exactly).
test('schedule buffers inside the state dicts of the DDPM / LDM / lucidrains / pytorch-ddpm fixtures', (t) => {
  if (!existsSync(FIXTURES)) assert.fail(`fixture folder ${FIXTURES} is missing`);
  const checked: string[] = [];
  for (const f of readdirSync(FIXTURES).filter((x) => x.endsWith('.safetensors')).sort()) {
    const fixture = f.slice(0, -'.safetensors'.length);
    if (scheduleFixtures.includes(fixture)) continue;
    const file = loadFixture(fixture);
    if (!file.tensors.has('betas')) continue;
    const config = json<Record<string, unknown>>(file.metadata['config'], `${fixture}: config`);
    const cls = String(config['class'] ?? '');
    let ours: Record<string, ArrayLike<number>>;
    if (config['repo'] === 'w86763777/pytorch-ddpm') {
      const init = (config['trainer'] as { init: { beta_1: number; beta_T: number; T: number } }).init;
      const betas = pddpmBetas(init.beta_1, init.beta_T, init.T);
      compare(`${fixture}:betas`, betas, tensor(file, 'betas', fixture), { mode: 'exact' });
      ours = { ...pddpmTrainerBuffers(betas), ...pddpmSamplerBuffers(betas) };
    } else if (cls.startsWith('ldm.models.diffusion.ddpm.')) {
      ours = { ...registerSchedule(ldmBetas(config['init'] as LdmInit)) };
    } else if (cls.startsWith('denoising_diffusion_pytorch.')) {
      const init = config['init'] as {
        timesteps?: number; beta_schedule?: LucidrainsBetaScheduleKind; objective?: LucidrainsObjective;
        min_snr_loss_weight?: boolean; min_snr_gamma?: number;
      };
      const betas = lucidrainsBetaSchedule(init.beta_schedule ?? 'sigmoid', init.timesteps ?? 1000);
      ours = {
        ...lucidrainsBuffers(betas, {
          objective: init.objective ?? 'pred_v',
          minSnrLossWeight: init.min_snr_loss_weight ?? false,
          minSnrGamma: init.min_snr_gamma ?? 5,
        }),
      };
    } else {
      continue;
    }
    let worst = 0;
    let n = 0;
    for (const [key, raw] of file.tensors) {
      if (!(key in ours) || raw.dtype === 'I64') continue;
      const check: Check = { mode: 'elementwise', rtol: 1e-4, atol: 1e-30 };
      worst = Math.max(worst, compare(`${fixture}:${key}`, ours[key]!, tensor(file, key, fixture), check));
      n++;
    }
    assert.ok(n >= 9, `${fixture}: only ${n} schedule buffers recognised`);
    checked.push(`${fixture}: ${n} buffers, worst rel ${fmt(worst)}`);
  }
  assert.ok(checked.length > 0, 'no fixture with schedule buffers found');
  for (const line of checked) t.diagnostic(line);
});

// ------------------------------------------------------------------------------------------
// 2. reference.json (torch 1.13 side-by-side numbers)
// ------------------------------------------------------------------------------------------

interface Reference {
  torch_linspace: { start: number; end: number; steps: number; dtype: 'float32' | 'float64'; values: number[] }[];
  ldm_make_beta_schedule: {
    kind: LdmBetaScheduleKind; T: number; linear_start: number; linear_end: number; cosine_s: number; betas: number[];
  }[];
  ldm_register_schedule: {
    kind: LdmBetaScheduleKind; T: number; linear_start: number; linear_end: number;
    parameterization: LdmParameterization; v_posterior: number; buffers: Record<string, number[]>; lvlb_weights: number[];
  }[];
  ldm_ddim_timesteps: { method: 'uniform' | 'quad'; S: number; T: number; timesteps: number[] }[];
  ldm_ddim_schedule: ({
    S: number; discretize: 'uniform' | 'quad'; eta: number; T: number; beta_schedule: LdmBetaScheduleKind;
    linear_start: number; linear_end: number;
  } & Record<string, unknown>)[];
  ddp_beta_schedule: { kind: LucidrainsBetaScheduleKind; T: number; kwargs: Record<string, number>; betas: number[] }[];
  ddp_buffers: {
    kind: LucidrainsBetaScheduleKind; T: number; objective: LucidrainsObjective; min_snr_loss_weight: boolean;
    min_snr_gamma: number; buffers: Record<string, number[]>;
  }[];
  ddp_ddim_times: { T: number; S: number; times: number[] }[];
  pddpm: { beta_1: number; beta_T: number; T: number; buffers: Record<string, number[]> }[];
}

const ref = JSON.parse(readFileSync(REFERENCE, 'utf8')) as Reference;
// float64 arithmetic that differs from numpy/torch only in last-ulp libm results (log, cos, exp)
const F64: Check = { mode: 'elementwise', rtol: 1e-12, atol: 1e-300 };

test('torchLinspace reproduces torch.linspace bit for bit (float32 and float64)', () => {
  for (const c of ref.torch_linspace) {
    const ours = torchLinspace(c.start, c.end, c.steps, c.dtype);
    compare(`linspace(${c.start}, ${c.end}, ${c.steps}, ${c.dtype})`, ours, c.values, { mode: 'exact' });
  }
});

test('LDM make_beta_schedule: linear, cosine, sqrt_linear, sqrt', (t) => {
  for (const c of ref.ldm_make_beta_schedule) {
    const w = compare(`${c.kind}(${c.linear_start}, ${c.linear_end}, s=${c.cosine_s})`,
      makeBetaSchedule(c.kind, c.T, c.linear_start, c.linear_end, c.cosine_s), c.betas, F64);
    t.diagnostic(`${c.kind} start=${c.linear_start} end=${c.linear_end} s=${c.cosine_s}: worst rel ${fmt(w)}`);
  }
});

test('LDM register_schedule: buffers (float64) and float32 lvlb_weights for eps / x0 / v and v_posterior', (t) => {
  for (const c of ref.ldm_register_schedule) {
    const s = registerSchedule(makeBetaSchedule(c.kind, c.T, c.linear_start, c.linear_end), {
      parameterization: c.parameterization,
      vPosterior: c.v_posterior,
    });
    const what = `${c.kind}/${c.parameterization}/v_posterior=${c.v_posterior}`;
    assert.deepEqual(Object.keys(c.buffers).sort(), [...DIFFUSION_BUFFER_KEYS].sort());
    for (const k of DIFFUSION_BUFFER_KEYS) compare(`${what}:${k}`, s[k], c.buffers[k]!, F64);
    // float32 arithmetic emulated step by step: equal to torch's float32 result
    compare(`${what}:lvlb_weights`, s.lvlb_weights, c.lvlb_weights, { mode: 'elementwise', rtol: 1e-7 });
    const exact = s.lvlb_weights.every((x, i) => x === c.lvlb_weights[i]);
    t.diagnostic(`${what}: lvlb_weights ${exact ? 'bit-identical to torch float32' : 'within 1e-7'}`);
  }
});

test('LDM make_ddim_timesteps: uniform (+1 shift, length quirk) and quad', () => {
  for (const c of ref.ldm_ddim_timesteps) {
    assert.deepEqual(Array.from(makeDdimTimesteps(c.method, c.S, c.T)), c.timesteps, `${c.method} S=${c.S} T=${c.T}`);
  }
  assert.deepEqual(Array.from(makeDdimTimesteps('uniform', 10)), [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]);
  assert.equal(makeDdimTimesteps('uniform', 30).length, 31); // 1000 // 30 = 33 -> range(0, 1000, 33)
});

test('LDM DDIMSampler.make_schedule with eta > 0 (dtypes as the official produces them)', () => {
  for (const c of ref.ldm_ddim_schedule) {
    const model = asFloat32(registerSchedule(makeBetaSchedule(c.beta_schedule, c.T, c.linear_start, c.linear_end)));
    const d = makeDdimSchedule(model, { ddimNumSteps: c.S, ddimDiscretize: c.discretize, ddimEta: c.eta });
    const what = `S=${c.S} ${c.discretize} eta=${c.eta}`;
    assert.deepEqual(Array.from(d.ddim_timesteps), c['ddim_timesteps'], `${what}: ddim_timesteps`);
    const dtypes = c['dtypes'] as Record<string, string>;
    const keys = [
      'ddim_sigmas', 'ddim_alphas', 'ddim_alphas_prev', 'ddim_sqrt_one_minus_alphas', 'ddim_sigmas_for_original_num_steps',
    ] as const;
    for (const k of keys) {
      const isF32 = dtypes[k]!.endsWith('float32');
      compare(`${what}:${k}`, d[k], c[k] as number[], isF32 ? { mode: 'exact' } : F64);
      if (isF32) assert.ok(d[k].every((x) => Math.fround(x) === x), `${what}:${k} should hold float32 values`);
    }
  }
});

test('lucidrains beta schedules: linear (scale 1000/T), cosine, sigmoid (float32 v_start/v_end quirk)', (t) => {
  for (const c of ref.ddp_beta_schedule) {
    const ours = lucidrainsBetaSchedule(c.kind, c.T, c.kwargs);
    const w = compare(`${c.kind} T=${c.T} ${JSON.stringify(c.kwargs)}`, ours, c.betas, { mode: 'elementwise', rtol: 1e-10, atol: 1e-300 });
    t.diagnostic(`${c.kind} T=${c.T} ${JSON.stringify(c.kwargs)}: worst rel ${fmt(w)}`);
  }
});

test('lucidrains GaussianDiffusion buffers and loss_weight (min-SNR)', () => {
  for (const c of ref.ddp_buffers) {
    const b = lucidrainsBuffers(lucidrainsBetaSchedule(c.kind, c.T), {
      objective: c.objective,
      minSnrLossWeight: c.min_snr_loss_weight,
      minSnrGamma: c.min_snr_gamma,
    });
    for (const [k, v] of Object.entries(c.buffers)) {
      assert.ok(k in b, `lucidrains buffer ${k} missing`);
      compare(`${c.kind}/${c.objective}:${k}`, b[k as keyof typeof b], v, { mode: 'elementwise', rtol: 1e-10, atol: 1e-300 });
    }
  }
});

test('lucidrains DDIM times: reversed(linspace(-1, T-1, S+1).int())', () => {
  for (const c of ref.ddp_ddim_times) assert.deepEqual(Array.from(lucidrainsDdimTimes(c.T, c.S)), c.times, `T=${c.T} S=${c.S}`);
  assert.deepEqual(Array.from(lucidrainsDdimTimes(1000, 3)), [999, 665, 332, -1]);
});

test('pytorch-ddpm trainer / sampler buffers and fixedlarge / fixedsmall log variances', () => {
  for (const c of ref.pddpm) {
    const betas = pddpmBetas(c.beta_1, c.beta_T, c.T);
    const tr = pddpmTrainerBuffers(betas);
    const sm = pddpmSamplerBuffers(betas);
    const ours: Record<string, ArrayLike<number>> = {
      ...tr,
      ...sm,
      fixedlarge: pddpmModelLogVar(sm, 'fixedlarge'),
    };
    compare(`pddpm T=${c.T}:betas`, betas, c.buffers['betas']!, { mode: 'exact' });
    for (const [k, v] of Object.entries(c.buffers)) {
      assert.ok(k in ours, `pytorch-ddpm buffer ${k} missing`);
      compare(`pddpm T=${c.T}:${k}`, ours[k]!, v, F64);
    }
    // index 0 borrows index 1 in both log variances
    assert.equal(sm.posterior_log_var_clipped[0], Math.log(sm.posterior_var[1]!));
    assert.deepEqual(pddpmModelLogVar(sm, 'fixedsmall'), sm.posterior_log_var_clipped);
  }
});

test('quirks and errors', () => {
  const ldm = registerSchedule(makeBetaSchedule('linear', 1000));
  assert.equal(ldm.posterior_log_variance_clipped[0], Math.log(1e-20));
  assert.equal(ldm.lvlb_weights[0], ldm.lvlb_weights[1]);
  assert.equal(ldm.alphas_cumprod_prev[0], 1);
  // x0: 0.5*sqrt(abar)/(2 - abar), not /(2*(1 - abar))
  const x0 = registerSchedule(makeBetaSchedule('linear', 1000), { parameterization: 'x0' });
  const a = Math.fround(ldm.alphas_cumprod[500]!);
  assert.ok(Math.abs(x0.lvlb_weights[500]! - (0.5 * Math.sqrt(a)) / (2 - a)) < 1e-6);
  assert.ok(registerSchedule(makeBetaSchedule('cosine', 100), { parameterization: 'v' }).lvlb_weights.every((x) => x === 1));
  // state_dict keys in registration order
  assert.deepEqual(Object.keys(ldm).filter((k) => k !== 'lvlb_weights'), [...DIFFUSION_BUFFER_KEYS]);
  assert.throws(() => makeBetaSchedule('quadratic' as LdmBetaScheduleKind, 10), ConfigError);
  assert.throws(() => makeDdimTimesteps('uniform', 2000, 1000), ConfigError);
  assert.throws(() => makeDdimTimesteps('log' as 'quad', 10), ConfigError);
  assert.throws(() => registerSchedule([0.1]), ConfigError);
  assert.throws(() => registerSchedule([0.1, 0.2], { parameterization: 'mu' as 'eps' }), ConfigError);
  assert.throws(
    () => makeDdimSchedule(ldm, { ddimNumSteps: 1000 }),
    ConfigError, // uniform S = T selects timestep T (1..1000), past the end, as in the official code
  );
});
