// Parity handler for sampler fixtures in the companion-checkpoint form (`ksampler_*`, made by
// scripts/fixtures/make-k-sampler-fixtures.py with crowsonkb/k-diffusion and wl-zhao/UniPC):
// the fixture holds no weights; `config.companion_files` names an official checkpoint (`ckpt`) and
// its YAML (`yaml`) in the fixture's folder, loaded as `ldm sample CKPT --config YAML` loads them
// (YAML -> model through the target registry, then the checkpoint's state_dict), and
// `config.sample` names the run:
//   c = get_learned_conditioning({key: in.class_label}), uc likewise with in.uc_class_label;
//   sigmas = `scheduler` over the model's CompVisDenoiser levels (sigma_min, sigma_max, rho);
//   x = in.x_T * sigmas[0]; the `sampler` row of the k-sampler table with `sampler_kwargs`, CFG
//   `unconditional_guidance_scale` on the denoised output, Gaussian draws := in.noise[k].
// Outputs: out.sigmas, out.samples, out.denoised [steps, B, C, H, W]. New samplers, schedules,
// kwargs and models need no new code here.

import { dirname, join } from 'node:path';
import { LdmError } from '../../util/index.ts';
import { Tensor, noGrad, stack } from '../../tensor/index.ts';
import { DDPM, LatentDiffusion } from '../../models/index.ts';
import { isKSampler, kSample, SIGMA_SCHEDULES, type Cond, type KSampleOptions, type SigmaScheduleName } from '../../diffusion/index.ts';
import { buildModelFromConfig, readConfigFile } from '../config.ts';
import { loadWeightsInto, readWeights } from '../checkpoint.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

const cache = new Map<string, DDPM>();

/** The model of a fixture's companion files (built and loaded once per ckpt + yaml pair). */
export function companionModel(ctx: FixtureContext): DDPM {
  const files = obj(ctx.config['companion_files']);
  const ckpt = files['ckpt'], yaml = files['yaml'];
  if (typeof ckpt !== 'string' || typeof yaml !== 'string') {
    throw new LdmError(`${ctx.path}: config.companion_files must name 'ckpt' and 'yaml'`);
  }
  const dir = dirname(ctx.path);
  const key = `${join(dir, ckpt)}|${join(dir, yaml)}`;
  let m = cache.get(key);
  if (!m) {
    const built = buildModelFromConfig(readConfigFile(join(dir, yaml)));
    if (!(built instanceof DDPM)) throw new LdmError(`${ctx.path}: ${yaml} does not build a DDPM-family model`);
    const w = readWeights(join(dir, ckpt));
    const r = loadWeightsInto(built, w.tensors, w.path, false);
    const missing = r.missing.filter((k) => !k.startsWith('model_ema.') && k !== 'logvar');
    if (missing.length > 0) throw new LdmError(`${ctx.path}: ${ckpt} lacks ${missing.length} model tensors (first: ${missing[0]})`);
    built.eval();
    m = built;
    cache.set(key, m);
  }
  return m;
}

const labels = (t: Tensor): number[] => Array.from(t.data, Number);

function condOf(model: DDPM, ctx: FixtureContext, name: string): Cond | undefined {
  if (!ctx.has(`in.${name}`)) return undefined;
  const l = labels(ctx.input(name));
  if (model instanceof LatentDiffusion) {
    const c = model.conditionFromLabels(l);
    return model.model.conditioningKey === 'concat' ? { c_concat: [c] } : { c_crossattn: [c] };
  }
  return { y: new Tensor(Float64Array.from(l), [l.length], 'int64') }; // 'adm' pixel DDPM
}

function runSample(ctx: FixtureContext): FixtureOutputs {
  const s = obj(ctx.config['sample']);
  const sampler = String(s['sampler']);
  if (!isKSampler(sampler)) throw new LdmError(`${ctx.path}: config.sample.sampler '${sampler}' is not a k-sampler`);
  const scheduler = String(s['scheduler'] ?? 'karras') as SigmaScheduleName;
  if (!SIGMA_SCHEDULES.includes(scheduler)) throw new LdmError(`${ctx.path}: config.sample.scheduler '${scheduler}' is unknown`);
  const model = companionModel(ctx);
  const xT = ctx.input('x_T');
  const noiseT = ctx.input('noise'); // [K, B, C, H, W]
  const K = noiseT.shape[0]!;
  const noises = Array.from({ length: K }, (_, k) => noiseT.slice(0, k, k + 1).reshape(...noiseT.shape.slice(1)));
  const kw = obj(s['sampler_kwargs']);
  const num = (k: string): number | undefined => (typeof kw[k] === 'number' ? kw[k] : undefined);
  const scale = typeof s['unconditional_guidance_scale'] === 'number' ? s['unconditional_guidance_scale'] : 1;
  const opt = <K extends keyof KSampleOptions>(k: K, v: KSampleOptions[K] | undefined): Partial<KSampleOptions> => (v === undefined ? {} : { [k]: v });
  return noGrad(() => {
    const cond = condOf(model, ctx, 'class_label');
    const uncond = scale !== 1 ? condOf(model, ctx, 'uc_class_label') : undefined;
    const r = kSample(model.denoiser(), model.diffusion.alphasCumprod, {
      sampler, scheduler, steps: Number(s['steps']), shape: xT.shape, xT, noises,
      cond, uncond, guidanceScale: scale, parameterization: model.parameterization,
      ...opt('sigmaMin', typeof s['sigma_min'] === 'number' ? s['sigma_min'] : undefined),
      ...opt('sigmaMax', typeof s['sigma_max'] === 'number' ? s['sigma_max'] : undefined),
      ...opt('rho', typeof s['rho'] === 'number' ? s['rho'] : undefined),
      ...opt('eta', num('eta')), ...opt('sNoise', num('s_noise')), ...opt('sChurn', num('s_churn')),
      ...opt('sTmin', num('s_tmin')), ...opt('sTmax', num('s_tmax')), ...opt('order', num('order')),
      ...(kw['solver_type'] === 'heun' || kw['solver_type'] === 'midpoint' ? { solverType: kw['solver_type'] } : {}),
    });
    const out: FixtureOutputs = new Map();
    out.set('out.sigmas', r.sigmas);
    out.set('out.samples', r.samples);
    out.set('out.denoised', stack(r.denoised, 0));
    return out;
  });
}

export const ksamplerHandler: FixtureHandler = {
  family: 'k-diffusion samplers over a companion checkpoint',
  prefixes: ['ksampler_'],
  run: runSample,
};
