// Parity handler for `ldm_latent_loss*` (LatentDiffusion of CompVis/latent-diffusion a506df5 with
// a real first stage and a cond stage). For each `config.variants` entry v the model is
// LatentDiffusion(**init, **variants[v]) built through MODEL_TARGETS, loaded with the keys of the
// (union) fixture state dict that it owns (the 'std' variant alone has the scale_factor buffer,
// the 'logvar' variant alone the logvar parameter; every key it owns must be present), and put in
// train mode (eval when config.eval is true; the first stage stays in eval either way). The batch
// is every `in.*` tensor that is not a drawn noise or timestep, under its own name (channels-last
// image, labels). Then, as `config.call` describes:
//  1. scale_by_std: on_train_batch_start(batch, global_step 0) with the posterior noise
//     in.std_posterior_noise -> out.<v>.scale_factor;
//  2. z, c = get_input(batch, first_stage_key) with in.posterior_noise -> out.<v>.z, and
//     out.c = get_learned_conditioning(c) (c is the raw batch when cond_stage_trainable);
//  3. shared_step(batch) with posterior noise in.posterior_noise, t := in.t, noise := in.noise ->
//     out.<v>.loss, out.<v>.loss_dict.<key without the train/ or val/ prefix>, and the
//     DiffusionWrapper input / output out.<v>.x_noisy / out.<v>.model_output;
//  4. out.<v>.decode_first_stage = decode_first_stage(z), and (VQ first stages)
//     out.<v>.decode_first_stage_force_not_quantize = decode_first_stage(z, force_not_quantize=True).
// Outputs are produced for the names the fixture lists, so other configurations of the same call
// (other first / cond stages, conditioning keys, loss settings) need no new code.

import { LdmError } from '../../util/index.ts';
import { Tensor, noGrad } from '../../tensor/index.ts';
import { LatentDiffusion, MODEL_TARGETS, type BuildFn } from '../../models/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

const LD_CLASS = 'ldm.models.diffusion.ddpm.LatentDiffusion';
/** Inputs that stand for the official code's internal random draws, not batch entries. */
const DRAWN = new Set(['posterior_noise', 'std_posterior_noise', 't', 'noise']);

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new LdmError(`${where}: unknown target '${cfg.target}'`);
  return f(cfg.params ?? {}, build);
};

function makeModel(ctx: FixtureContext, v: string, extra: Obj): LatentDiffusion {
  const cls = ctx.config.class ?? LD_CLASS;
  const m = build({ target: cls, params: { ...obj(ctx.config.init), ...extra } }, `${ctx.path} config.init + variants.${v}`);
  if (!(m instanceof LatentDiffusion)) throw new LdmError(`${ctx.path}: ${cls} did not build a LatentDiffusion`);
  const sd = ctx.stateDict();
  const own = m.stateDict();
  const missing = [...own.keys()].filter((k) => !sd.has(k));
  if (missing.length > 0) throw new LdmError(`${ctx.path} variant ${v}: the fixture lacks ${missing.length} key(s) of the model: ${missing.slice(0, 8).join(', ')}`);
  m.loadStateDict(new Map([...sd].filter(([k]) => own.has(k))), true, `${ctx.path} variant ${v}`);
  return ctx.config['eval'] === true ? m.eval() : m.train();
}

function run(ctx: FixtureContext): FixtureOutputs {
  const out: FixtureOutputs = new Map();
  const batch: Obj = {};
  for (const k of ctx.inputKeys) {
    const name = k.slice('in.'.length);
    if (!DRAWN.has(name)) batch[name] = ctx.get(k);
  }
  const opt = (name: string): Tensor | undefined => (ctx.has(`in.${name}`) ? ctx.input(name) : undefined);
  const variants = Object.entries(obj(ctx.config['variants']));
  if (variants.length === 0) variants.push(['', {}]);
  noGrad(() => {
    for (const [v, extra] of variants) {
      const key = (name: string): string => (v ? `out.${v}.${name}` : `out.${name}`);
      const wants = (name: string): boolean => ctx.outputKeys.includes(key(name));
      const m = makeModel(ctx, v, obj(extra));
      // 1. on_train_batch_start (scale_by_std)
      const stdNoise = opt('std_posterior_noise');
      if (m.scaleByStd) m.onTrainBatchStart(batch, 0, stdNoise ? { noise: stdNoise } : {});
      if (wants('scale_factor')) out.set(key('scale_factor'), m.scaleByStd ? m.getBuffer('scale_factor') : m.scaleFactor);
      // 2. get_input, get_learned_conditioning
      const pn = opt('posterior_noise');
      const { z, c } = m.getLatentInput(batch, m.firstStageKey, pn ? { noise: pn } : {});
      if (wants('z')) out.set(key('z'), z);
      if (ctx.outputKeys.includes('out.c') && !out.has('out.c')) {
        const emb = m.condStageTrainable ? m.getLearnedConditioning(c) : c;
        if (!(emb instanceof Tensor)) throw new LdmError(`${ctx.path}: the learned conditioning is not a tensor`);
        out.set('out.c', emb);
      }
      // 3. shared_step
      const t = opt('t'), noise = opt('noise');
      const r = m.sharedStep(batch, { ...(pn ? { posteriorNoise: pn } : {}), ...(t ? { t } : {}), ...(noise ? { noise } : {}), gen: ctx.generator() });
      if (wants('x_noisy')) out.set(key('x_noisy'), r.xNoisy);
      if (wants('model_output')) out.set(key('model_output'), r.modelOutput);
      if (wants('loss')) out.set(key('loss'), r.loss);
      for (const [k, val] of r.lossDict) {
        const short = k.replace(/^(train|val)\//, '');
        if (wants(`loss_dict.${short}`)) out.set(key(`loss_dict.${short}`), val);
      }
      // 4. decode_first_stage
      if (wants('decode_first_stage')) out.set(key('decode_first_stage'), m.decodeFirstStage(z));
      if (wants('decode_first_stage_force_not_quantize')) out.set(key('decode_first_stage_force_not_quantize'), m.decodeFirstStage(z, { forceNotQuantize: true }));
    }
  });
  return out;
}

export const latentHandler: FixtureHandler = {
  family: 'ldm LatentDiffusion',
  prefixes: ['ldm_latent_loss'],
  run,
};
