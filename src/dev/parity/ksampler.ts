// Parity handler for sampler fixtures in the companion-checkpoint form (`ksampler_*`, made by
// scripts/fixtures/make-k-sampler-fixtures.py with crowsonkb/k-diffusion and wl-zhao/UniPC):
// the fixture holds no weights; `config.companion_files` names an official checkpoint (`ckpt`) and
// its YAML (`yaml`) in the fixture's folder, loaded as `ldm sample CKPT --config YAML` loads them
// (companions.ts: YAML -> model, then each checkpoint companion; outputs `out.<name>@<label>`), and
// `config.sample` names the run:
//   c = get_learned_conditioning({key: in.class_label}), uc likewise with in.uc_class_label;
//   sigmas = `scheduler` over the model's CompVisDenoiser levels (sigma_min, sigma_max, rho);
//   x = in.x_T * sigmas[0]; the `sampler` row of the k-sampler table with `sampler_kwargs`, CFG
//   `unconditional_guidance_scale` on the denoised output, Gaussian draws := in.noise[k].
// Outputs: out.sigmas, out.samples, out.denoised [steps, B, C, H, W]. New samplers, schedules,
// kwargs and models need no new code here.

import { LdmError } from '../../util/index.ts';
import { Tensor, noGrad, stack } from '../../tensor/index.ts';
import { DDPM, LatentDiffusion } from '../../models/index.ts';
import { isKSampler, kSample, SIGMA_SCHEDULES, type Cond, type KSampleOptions, type SigmaScheduleName } from '../../diffusion/index.ts';
import { companionModels } from './companions.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

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
  const xT = ctx.input('x_T');
  const noiseT = ctx.input('noise'); // [K, B, C, H, W]
  const K = noiseT.shape[0]!;
  const noises = Array.from({ length: K }, (_, k) => noiseT.slice(0, k, k + 1).reshape(...noiseT.shape.slice(1)));
  const kw = obj(s['sampler_kwargs']);
  const num = (k: string): number | undefined => (typeof kw[k] === 'number' ? kw[k] : undefined);
  const scale = typeof s['unconditional_guidance_scale'] === 'number' ? s['unconditional_guidance_scale'] : 1;
  const opt = <K extends keyof KSampleOptions>(k: K, v: KSampleOptions[K] | undefined): Partial<KSampleOptions> => (v === undefined ? {} : { [k]: v });
  const out: FixtureOutputs = new Map();
  for (const { label, loaded } of companionModels(ctx)) noGrad(() => {
    const model = loaded.model;
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
    out.set(`out.sigmas@${label}`, r.sigmas);
    out.set(`out.samples@${label}`, r.samples);
    out.set(`out.denoised@${label}`, stack(r.denoised, 0));
  });
  return out;
}

export const ksamplerHandler: FixtureHandler = {
  family: 'k-diffusion samplers over a companion checkpoint',
  prefixes: ['ksampler_'],
  run: runSample,
};
