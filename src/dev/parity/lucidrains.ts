// Parity handler for the lucidrains/denoising-diffusion-pytorch v2.3.1 fixtures (`ddp_loss*`,
// `ddp_sample*`, `ddp_schedule*`): builds `Unet(**config.unet)` and
// `GaussianDiffusion(unet, **config.init)` through MODEL_TARGETS and performs the calls that
// `config.call` describes, chosen by the output names:
//  - schedules: out.<buffer> (objective-independent buffers), out.loss_weight.<objective> and
//    out.loss_weight_min_snr<gamma>.<objective> from GaussianDiffusion(..., objective, min-SNR);
//  - loss: out.loss / out.loss_per_sample = diffusion(in.img, times=in.t, noise=in.noise[, 'none']),
//    out.q_sample = q_sample(in.img*2-1, in.t, in.noise), out.model_output = the Unet output;
//  - sample: out.ddim_eta<e>.all = ddim_sample(shape, return_all_timesteps=True) with randn :=
//    in.x_T then in.ddim_noise[i] (eta from the name), out.p_sample_t<t>.{pred_img,x_start} =
//    p_sample(in.p_sample_x, t) with randn_like := in.p_sample_noise.

import { LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { LucidrainsDiffusion, LucidrainsUnet, MODEL_TARGETS, type BuildFn } from '../../models/index.ts';
import { loadSubset, replayNoise } from './pddpm.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

const UNET_CLASS = 'denoising_diffusion_pytorch.denoising_diffusion_pytorch.Unet';
const GD_CLASS = 'denoising_diffusion_pytorch.denoising_diffusion_pytorch.GaussianDiffusion';

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new LdmError(`${where}: unknown target '${cfg.target}'`);
  return f(cfg.params ?? {}, build);
};

function makeUnet(ctx: FixtureContext): LucidrainsUnet {
  const cls = (ctx.config['unet_class'] ?? UNET_CLASS) as string;
  const unet = build({ target: cls, params: (ctx.config['unet'] ?? {}) as Record<string, unknown> }, `${ctx.path} config.unet`);
  if (!(unet instanceof LucidrainsUnet)) throw new LdmError(`${ctx.path}: ${cls} did not build a lucidrains Unet`);
  return unet;
}

function makeDiffusion(ctx: FixtureContext, unet: LucidrainsUnet, extra: Record<string, unknown> = {}): LucidrainsDiffusion {
  const cls = ctx.config.class ?? GD_CLASS;
  const d = build({ target: cls, params: { ...(ctx.config.init as Record<string, unknown>), ...extra, model: unet } }, `${ctx.path} config.class`);
  if (!(d instanceof LucidrainsDiffusion)) throw new LdmError(`${ctx.path}: ${cls} did not build a GaussianDiffusion`);
  if (ctx.config['eval'] !== false) d.eval();
  return d;
}

function runSchedule(ctx: FixtureContext): FixtureOutputs {
  const unet = makeUnet(ctx);
  const out: FixtureOutputs = new Map();
  const cache = new Map<string, LucidrainsDiffusion>();
  const get = (extra: Record<string, unknown>): LucidrainsDiffusion => {
    const key = JSON.stringify(extra);
    let d = cache.get(key);
    if (!d) { d = makeDiffusion(ctx, unet, extra); cache.set(key, d); }
    return d;
  };
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    const m = /^loss_weight(?:_min_snr([0-9.eE+-]+))?\.(pred_noise|pred_x0|pred_v)$/.exec(name);
    const d = m
      ? get(m[1] !== undefined ? { objective: m[2], min_snr_loss_weight: true, min_snr_gamma: Number(m[1]) } : { objective: m[2] })
      : get({});
    const buf = m ? 'loss_weight' : name;
    if (!d.stateDict().has(buf)) throw new LdmError(`${ctx.path}: ${key} names no buffer of GaussianDiffusion`);
    out.set(key, d.getBuffer(buf));
  }
  return out;
}

function loadedDiffusion(ctx: FixtureContext, extra: Record<string, unknown> = {}): LucidrainsDiffusion {
  const d = makeDiffusion(ctx, makeUnet(ctx), extra);
  const used = new Set<string>();
  loadSubset(ctx, d, used);
  const unused = ctx.stateKeys.filter((k) => !used.has(k));
  if (unused.length > 0) throw new LdmError(`${ctx.path}: state dict keys LucidrainsDiffusion does not have: ${unused.slice(0, 8).join(', ')}`);
  return d;
}

function runLoss(ctx: FixtureContext): FixtureOutputs {
  const d = loadedDiffusion(ctx);
  const img = ctx.input('img'), t = ctx.input('t'), noise = ctx.input('noise');
  const out: FixtureOutputs = new Map();
  T.noGrad(() => {
    const terms = d.lossTerms(img, { times: t, noise });
    if (ctx.wants('loss')) out.set('out.loss', terms.loss);
    if (ctx.wants('model_output')) out.set('out.model_output', terms.model_out);
    if (ctx.wants('q_sample')) out.set('out.q_sample', d.qSample(d.normalize(img), t, noise));
    if (ctx.wants('loss_per_sample')) out.set('out.loss_per_sample', d.forward(img, { times: t, noise, loss_reduction: 'none' }));
  });
  return out;
}

function runSample(ctx: FixtureContext): FixtureOutputs {
  const out: FixtureOutputs = new Map();
  const base = loadedDiffusion(ctx);
  const pSampled = new Map<number, { pred_img: Tensor; x_start: Tensor }>();
  T.noGrad(() => {
    for (const key of ctx.outputKeys) {
      const name = key.slice('out.'.length);
      const ddim = /^ddim_eta([0-9.eE+-]+?)\.all$/.exec(name);
      if (ddim) {
        const xT = ctx.input('x_T');
        const draws: Tensor[] = [xT, ...T.chunk(ctx.input('ddim_noise'), ctx.input('ddim_noise').dim(0), 0).map((x) => T.squeeze(x, 0))];
        out.set(key, base.ddimSample(xT.shape, true, { eta: Number(ddim[1]), noise: replayNoise(draws, `${ctx.path} in.x_T/in.ddim_noise`) }));
        continue;
      }
      const ps = /^p_sample_t(\d+)\.(pred_img|x_start)$/.exec(name);
      if (ps) {
        const t = Number(ps[1]);
        let r = pSampled.get(t);
        if (!r) {
          r = base.pSample(ctx.input('p_sample_x'), t, { noise: replayNoise([ctx.input('p_sample_noise')], `${ctx.path} in.p_sample_noise`) });
          pSampled.set(t, r);
        }
        out.set(key, ps[2] === 'pred_img' ? r.pred_img : r.x_start);
        continue;
      }
      throw new LdmError(`${ctx.path}: no call known for output ${key}`);
    }
  });
  return out;
}

function runLucidrains(ctx: FixtureContext): FixtureOutputs {
  if (ctx.name.startsWith('ddp_schedule')) return runSchedule(ctx);
  if (ctx.name.startsWith('ddp_loss')) return runLoss(ctx);
  if (ctx.name.startsWith('ddp_sample')) return runSample(ctx);
  throw new LdmError(`${ctx.path}: unknown lucidrains fixture kind '${ctx.name}'`);
}

export const lucidrainsHandler: FixtureHandler = {
  family: 'lucidrains denoising-diffusion-pytorch Unet / GaussianDiffusion',
  prefixes: ['ddp_loss', 'ddp_sample', 'ddp_schedule'],
  run: runLucidrains,
};
