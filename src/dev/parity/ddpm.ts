// Parity handler for the LDM diffusion fixtures (CompVis/latent-diffusion a506df5):
//  - `ldm_ddpm_schedule*`: DDPM(**init) buffers: out.<buffer> (registered buffers and the
//    non-persistent lvlb_weights), out.<parameterization>.<buffer> from DDPM(**init,
//    parameterization=...);
//  - `ldm_ddim_schedule*`: DDIMSampler(DDPM(**model.init)).make_schedule(**config.make_schedule),
//    out.<attr> = the sampler attribute;
//  - `ldm_ddpm_ops`: q_sample, q_mean_variance, predict_start_from_noise, q_posterior, the
//    wrapper output, p_mean_variance, p_sample (noise := in.p_sample_noise) and p_losses for every
//    `config.loss_variants` entry (DDPM(**init, **variant) with the same state dict);
//  - `ldm_ddim_sample`: DDIMSampler(model).sample(...) per `config.variants` entry (S, eta,
//    guidance scale, uc) over a LatentDiffusion with an identity first stage; until the full
//    LatentDiffusion is registered it is composed here as DDPM + DiffusionWrapper (the
//    conditioning goes straight to apply_model, exactly what the official sample call does).
//    A PLMS `config.sampler` runs plmsSample. Per-step noise: in.<variant>_noise when present.
// Models are built from the fixture config through MODEL_TARGETS, so other schedules, S, eta,
// scales and variants need no new code.

import { LdmError } from '../../util/index.ts';
import { Tensor, noGrad, stack } from '../../tensor/index.ts';
import { DDPM, MODEL_TARGETS, type BuildFn, type TargetConfig } from '../../models/index.ts';
import { SAMPLERS, type Cond, type Denoiser } from '../../diffusion/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

const DDPM_CLASS = 'ldm.models.diffusion.ddpm.DDPM';
const LD_CLASS = 'ldm.models.diffusion.ddpm.LatentDiffusion';

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new LdmError(`${where}: unknown target '${cfg.target}'`);
  return f(cfg.params ?? {}, build);
};

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

function makeDdpm(ctx: FixtureContext, cls: string, init: Obj, where: string): DDPM {
  const m = build({ target: cls, params: init }, `${ctx.path} ${where}`);
  if (!(m instanceof DDPM)) throw new LdmError(`${ctx.path}: ${cls} did not build a DDPM`);
  return m;
}

// ---- ldm_ddpm_schedule ---------------------------------------------------------------------------

function runSchedule(ctx: FixtureContext): FixtureOutputs {
  const init = obj(ctx.config.init);
  const cls = ctx.config.class ?? DDPM_CLASS;
  const cache = new Map<string, DDPM>();
  const get = (param?: string): DDPM => {
    const k = param ?? '';
    let m = cache.get(k);
    if (!m) {
      m = makeDdpm(ctx, cls, param ? { ...init, parameterization: param } : init, 'config.init');
      cache.set(k, m);
    }
    return m;
  };
  const out: FixtureOutputs = new Map();
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    const m = /^(eps|x0|v)\.(.+)$/.exec(name);
    const model = m ? get(m[1]) : get();
    const buf = m ? m[2]! : name;
    const t = new Map(model.namedBuffers()).get(buf);
    if (!t) throw new LdmError(`${ctx.path}: ${key} names no buffer of DDPM`);
    out.set(key, t);
  }
  return out;
}

// ---- ldm_ddim_schedule ---------------------------------------------------------------------------

function runDdimSchedule(ctx: FixtureContext): FixtureOutputs {
  const mcfg = obj(ctx.config['model']);
  const model = makeDdpm(ctx, (mcfg['class'] as string | undefined) ?? DDPM_CLASS, obj(mcfg['init']), 'config.model');
  const ms = obj(ctx.config['make_schedule']);
  const S = ms['ddim_num_steps'];
  if (typeof S !== 'number') throw new LdmError(`${ctx.path}: config.make_schedule.ddim_num_steps is missing`);
  // make_schedule only reads the model's float32 buffers (in.alphas_cumprod holds the same values)
  const schedule = model.diffusion.ddimSchedule(S, (ms['ddim_eta'] as number | undefined) ?? 0,
    (ms['ddim_discretize'] as 'uniform' | 'quad' | undefined) ?? 'uniform');
  const out: FixtureOutputs = new Map();
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    const v: unknown = Reflect.get(schedule, name);
    if (!(v instanceof Float64Array || v instanceof Int32Array)) throw new LdmError(`${ctx.path}: ${key} is not a DDIMSampler schedule attribute`);
    out.set(key, name === 'ddim_timesteps'
      ? new Tensor(Float64Array.from(v), [v.length], 'int64')
      : Float64Array.from(v));
  }
  return out;
}

// ---- ldm_ddpm_ops --------------------------------------------------------------------------------

function runOps(ctx: FixtureContext): FixtureOutputs {
  const init = obj(ctx.config.init);
  const cls = ctx.config.class ?? DDPM_CLASS;
  const sd = ctx.stateDict();
  const load = (m: DDPM): DDPM => {
    m.loadStateDict(sd, true, ctx.path);
    if (ctx.config['eval'] !== false) m.eval();
    return m;
  };
  const model = load(makeDdpm(ctx, cls, init, 'config.init'));
  const out: FixtureOutputs = new Map();
  const want = (k: string): boolean => ctx.wants(k);
  const inp = (k: string): Tensor => ctx.input(k);
  noGrad(() => {
    if (want('q_sample')) out.set('out.q_sample', model.qSample(inp('x_start'), inp('t'), inp('noise')));
    if (want('q_mean_variance.mean')) {
      const r = model.qMeanVariance(inp('x_start'), inp('t'));
      out.set('out.q_mean_variance.mean', r.mean).set('out.q_mean_variance.variance', r.variance)
        .set('out.q_mean_variance.log_variance', r.logVariance);
    }
    if (want('predict_start_from_noise')) out.set('out.predict_start_from_noise', model.predictStartFromNoise(inp('x_t'), inp('t'), inp('noise')));
    if (want('q_posterior.mean')) {
      const r = model.qPosterior(inp('x_start'), inp('x_t'), inp('t'));
      out.set('out.q_posterior.mean', r.mean).set('out.q_posterior.variance', r.variance).set('out.q_posterior.log_variance', r.logVariance);
    }
    if (want('model_output')) out.set('out.model_output', model.applyModel(inp('x_t'), inp('t_sample')));
    if (want('p_mean_variance.mean')) {
      const r = model.pMeanVariance(inp('x_t'), inp('t_sample'), true);
      out.set('out.p_mean_variance.mean', r.mean).set('out.p_mean_variance.variance', r.variance)
        .set('out.p_mean_variance.log_variance', r.logVariance);
    }
    if (want('p_sample')) out.set('out.p_sample', model.pSample(inp('x_t'), inp('t_sample'), { clipDenoised: true, noise: inp('p_sample_noise') }));
    for (const [v, extra] of Object.entries(obj(ctx.config['loss_variants']))) {
      const m = load(makeDdpm(ctx, cls, { ...init, ...obj(extra) }, `config.loss_variants.${v}`));
      const r = m.pLosses(inp('x_start'), inp('t'), inp('noise'));
      const prefix = m.training ? 'train' : 'val';
      out.set(`out.p_losses.${v}.loss`, r.loss);
      for (const [k, t] of r.lossDict) {
        const short = k.startsWith(`${prefix}/`) ? k.slice(prefix.length + 1) : k;
        if (short !== 'loss') out.set(`out.p_losses.${v}.${short}`, t);
      }
    }
  });
  return out;
}

// ---- ldm_ddim_sample -----------------------------------------------------------------------------

const LD_ONLY = ['first_stage_config', 'cond_stage_config', 'num_timesteps_cond', 'cond_stage_key', 'cond_stage_trainable',
  'concat_mode', 'cond_stage_forward', 'scale_factor', 'scale_by_std'];
const IDENTITY_FIRST = ['ldm.models.autoencoder.IdentityFirstStage', 'torch.nn.Identity'];

/** The sampling model: the registered LatentDiffusion if there is one, else DDPM composed with its wrapper. */
function makeSamplingModel(ctx: FixtureContext): DDPM {
  const cls = ctx.config.class ?? DDPM_CLASS;
  const init = obj(ctx.config.init);
  if (cls !== LD_CLASS || MODEL_TARGETS[LD_CLASS]) return makeDdpm(ctx, cls, init, 'config.init');
  const fs = init['first_stage_config'] as TargetConfig | undefined;
  if (fs && !IDENTITY_FIRST.includes(fs.target)) {
    throw new LdmError(`${ctx.path}: first stage ${fs.target} needs the full LatentDiffusion (not registered yet)`);
  }
  const ddpmInit: Obj = {};
  for (const [k, v] of Object.entries(init)) if (!LD_ONLY.includes(k)) ddpmInit[k] = v;
  // LatentDiffusion.__init__: conditioning_key None -> 'concat' if concat_mode (default) else 'crossattn'
  if (init['conditioning_key'] === undefined || init['conditioning_key'] === null) {
    ddpmInit['conditioning_key'] = init['cond_stage_config'] === '__is_unconditional__' ? null : (init['concat_mode'] ?? true) ? 'concat' : 'crossattn';
  }
  return makeDdpm(ctx, DDPM_CLASS, ddpmInit, 'config.init (DDPM part of LatentDiffusion)');
}

function runDdimSample(ctx: FixtureContext): FixtureOutputs {
  const model = makeSamplingModel(ctx);
  model.loadStateDict(ctx.stateDict(), true, ctx.path);
  if (ctx.config['eval'] !== false) model.eval();
  const callStr = typeof ctx.config.call === 'string' ? ctx.config.call : JSON.stringify(ctx.config.call ?? '');
  const logEveryT = Number(/log_every_t=(\d+)/.exec(callStr)?.[1] ?? 100);
  const plms = String(ctx.config['sampler'] ?? '').toLowerCase().includes('plms');
  const xT = ctx.input('x_T');
  const wrap = (c: Tensor): Cond => (model.model.conditioningKey === 'concat' ? { c_concat: [c] } : { c_crossattn: [c] });
  const out: FixtureOutputs = new Map();
  for (const [v, vcfgRaw] of Object.entries(obj(ctx.config['variants']))) {
    const vc = obj(vcfgRaw);
    const outs: Tensor[] = [];
    const base = model.denoiser();
    const recording: Denoiser = (x, t, c) => {
      const y = base(x, t, c);
      outs.push(y);
      return y;
    };
    const noiseKey = `in.${v}_noise`;
    const noises = ctx.has(noiseKey) ? ctx.get(noiseKey) : null;
    const noiseList = noises ? Array.from({ length: noises.shape[0]! }, (_, i) => noises.slice(0, i, i + 1).reshape(...noises.shape.slice(1))) : undefined;
    const opts = {
      steps: vc['S'] as number,
      shape: xT.shape,
      eta: (vc['eta'] as number | undefined) ?? 0,
      xT,
      gen: ctx.generator(),
      logEvery: (vc['log_every_t'] as number | undefined) ?? logEveryT,
      guidance: (vc['unconditional_guidance_scale'] as number | undefined) ?? 1,
      ...(ctx.has('in.c') ? { cond: wrap(ctx.input('c')) } : {}),
      ...(vc['uc'] ? { uncond: wrap(ctx.input('uc')) } : {}),
      ...(noiseList ? { noises: noiseList } : {}),
    };
    const r = SAMPLERS[plms ? 'plms' : 'ddim'](recording, model.diffusion, opts);
    out.set(`out.${v}.samples`, r.samples);
    out.set(`out.${v}.x_inter`, stack(r.intermediates.x_inter, 0));
    out.set(`out.${v}.pred_x0`, stack(r.intermediates.pred_x0, 0));
    out.set(`out.${v}.model_out`, stack(outs, 0));
  }
  return out;
}

// ---- dispatch ------------------------------------------------------------------------------------

export const ddpmHandler: FixtureHandler = {
  family: 'ldm DDPM / DDIMSampler',
  prefixes: ['ldm_ddpm_schedule', 'ldm_ddim_schedule', 'ldm_ddpm_ops', 'ldm_ddim_sample', 'ldm_plms_sample'],
  run(ctx: FixtureContext): FixtureOutputs {
    const n = ctx.name;
    if (n.startsWith('ldm_ddpm_schedule')) return runSchedule(ctx);
    if (n.startsWith('ldm_ddim_schedule')) return runDdimSchedule(ctx);
    if (n.startsWith('ldm_ddim_sample') || n.startsWith('ldm_plms_sample')) return runDdimSample(ctx);
    return runOps(ctx);
  },
};
