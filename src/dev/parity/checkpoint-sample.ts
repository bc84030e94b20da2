// Parity handler for `ldm_ckpt_*` fixtures: official checkpoints (companion files, both torch.save
// formats) sampled by an official sampler (config.sample.sampler, default 'ddim', looked up in the
// sampler table of diffusion/, so fixtures of other sampler families need no new code here). For each checkpoint companion (companions.ts: the
// model built from the YAML and the file loaded as `ldm sample CKPT --config YAML` does, EMA weights
// unless config.sample.ema is false), as `config.call` describes:
//  1. c = get_learned_conditioning(in.class_label), uc = the same for in.uc_class_label;
//  2. the sampler (config.sample: S, eta, batch_size, shape, unconditional_guidance_scale, log_every_t) from
//     x_T = in.x_T with the recorded step noises in.noise[i], every DiffusionWrapper output
//     ([uc, c] rows, as the guided call batches them) kept;
//  3. decoded = decode_first_stage(samples); image = clamp((decoded + 1) / 2, 0, 1).
// Outputs are `out.<name>@<label>`: the runner compares each with the reference `out.<name>`.

import { LdmError } from '../../util/index.ts';
import { Tensor, add, clamp, mul, noGrad, stack } from '../../tensor/index.ts';
import { getSampler, type Cond, type Denoiser } from '../../diffusion/index.ts';
import { LatentDiffusion } from '../../models/index.ts';
import { companionModels } from './companions.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

interface SampleCall {
  sampler?: string;
  S: number;
  eta?: number;
  batch_size: number;
  shape: number[];
  unconditional_guidance_scale?: number;
  log_every_t?: number;
  ema?: boolean;
}

function sampleCall(ctx: FixtureContext): SampleCall {
  const s = ctx.config['sample'] as Partial<SampleCall> | undefined;
  if (!s || typeof s.S !== 'number' || typeof s.batch_size !== 'number' || !Array.isArray(s.shape)) {
    throw new LdmError(`${ctx.path}: config.sample must give S, batch_size and shape`);
  }
  return s as SampleCall;
}

/** Cond of a learned conditioning for the model's conditioning key. */
function condOf(ldm: LatentDiffusion, c: Tensor): Cond {
  switch (ldm.model.conditioningKey) {
    case 'concat': return { c_concat: [c] };
    case 'adm': return { y: c };
    default: return { c_crossattn: [c] };
  }
}

function run(ctx: FixtureContext): FixtureOutputs {
  const s = sampleCall(ctx);
  const out: FixtureOutputs = new Map();
  const noise = ctx.has('in.noise') ? ctx.input('noise') : null; // [S, B, C, H, W]
  const noises = noise ? Array.from({ length: noise.shape[0]! }, (_, i) => noise.slice(0, i, i + 1).reshape(...noise.shape.slice(1))) : undefined;
  for (const { label, loaded } of companionModels(ctx, s.ema === false)) {
    const ldm = loaded.model;
    if (!(ldm instanceof LatentDiffusion)) throw new LdmError(`${ctx.path}: ${label} did not build a LatentDiffusion`);
    const set = (name: string, v: Tensor): void => { out.set(`out.${name}@${label}`, v); };
    noGrad(() => {
      const c = ldm.conditionFromLabels(ctx.input('class_label'));
      const guidance = s.unconditional_guidance_scale ?? 1;
      const uc = ctx.has('in.uc_class_label') ? ldm.conditionFromLabels(ctx.input('uc_class_label')) : null;
      set('c', c);
      if (uc) set('uc', uc);
      const modelOut: Tensor[] = [];
      const inner = ldm.denoiser();
      const recording: Denoiser = (x, t, cond) => {
        const o = inner(x, t, cond);
        modelOut.push(o);
        return o;
      };
      const r = getSampler(s.sampler ?? 'ddim')(recording, ldm.diffusion, {
        steps: s.S, shape: [s.batch_size, ...s.shape], eta: s.eta ?? 0, cond: condOf(ldm, c), ...(uc ? { uncond: condOf(ldm, uc) } : {}),
        guidance, xT: ctx.input('x_T'), ...(noises ? { noises } : {}), logEvery: s.log_every_t ?? 100, gen: ctx.generator(),
      });
      set('samples', r.samples);
      set('x_inter', stack(r.intermediates.x_inter, 0));
      set('pred_x0', stack(r.intermediates.pred_x0, 0));
      set('model_out', stack(modelOut, 0));
      const decoded = ldm.decodeFirstStage(r.samples);
      set('decoded', decoded);
      set('image', clamp(mul(add(decoded, 1), 0.5), 0, 1));
    });
  }
  return out;
}

export const checkpointSampleHandler: FixtureHandler = {
  family: 'official checkpoints sampled (companion .ckpt files + YAML)',
  prefixes: ['ldm_ckpt_'],
  run,
};
