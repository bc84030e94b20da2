// Parity handler for the w86763777/pytorch-ddpm fixtures (`pddpm*`): builds the UNet from
// `config.unet` (class `config.unet_class`), the trainer from `config.trainer` and one sampler per
// entry of `config.samplers`, all through MODEL_TARGETS and sharing one UNet (as the official
// scripts do), loads the union state dict (float64 buffers from their stored F64 values), and
// performs the calls `config.call` describes:
//  - out.trainer.loss = trainer(in.x_0) with randint := in.t, randn_like := in.noise;
//  - out.model_output = model(in.x_t, in.t_step);
//  - out.<v>.mean / out.<v>.log_var = sampler_v.p_mean_variance(in.x_t, in.t_step);
//  - out.<v>.step = mean + exp(0.5 log_var) * in.step_noise;
//  - out.<v>.last<k> = sampler_v(in.x_t) over time_step k-1 .. 0 with randn_like := in.chain_noise[i].

import { LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import {
  GaussianDiffusionSampler, GaussianDiffusionTrainer, MODEL_TARGETS, PddpmUNet, type BuildFn, type NoiseFn,
} from '../../models/index.ts';
import type { Module } from '../../nn/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

interface ClassCfg {
  class?: string;
  init?: Record<string, unknown>;
}

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new LdmError(`${where}: unknown target '${cfg.target}'`);
  return f(cfg.params ?? {}, build);
};

/** Draws taken in order from a stack of tensors [N, ...shape] (the official randn calls, replayed). */
export function replayNoise(stack: Tensor | readonly Tensor[], what: string): NoiseFn {
  const items = Array.isArray(stack) ? [...stack] : T.chunk(stack as Tensor, (stack as Tensor).dim(0), 0).map((t) => T.squeeze(t, 0));
  let i = 0;
  return (shape) => {
    const t = items[i++];
    if (!t) throw new LdmError(`${what}: the official code draws more noise than the fixture holds (${items.length})`);
    if (t.size !== shape.reduce((a, b) => a * b, 1)) throw new LdmError(`${what}: draw ${i - 1} has ${t.size} values, shape [${shape}] needs more`);
    return T.reshape(t, shape);
  };
}

/** Load the keys of `m` from the fixture's union state dict (strict on m's own keys). */
export function loadSubset(ctx: FixtureContext, m: Module, used: Set<string>): void {
  const all = ctx.stateDict();
  const own = new Map<string, Tensor>();
  for (const k of m.stateDict().keys()) {
    const t = all.get(k);
    if (t) { own.set(k, t); used.add(k); }
  }
  m.loadStateDict(own, true, ctx.path);
}

function runPddpm(ctx: FixtureContext): FixtureOutputs {
  const cfg = ctx.config as Record<string, unknown>;
  const unetClass = (cfg['unet_class'] ?? 'model.UNet') as string;
  const unet = build({ target: unetClass, params: (cfg['unet'] ?? {}) as Record<string, unknown> }, `${ctx.path} config.unet`);
  if (!(unet instanceof PddpmUNet)) throw new LdmError(`${ctx.path}: ${unetClass} did not build a pytorch-ddpm UNet`);
  if (cfg['eval'] !== false) unet.eval();
  const used = new Set<string>();
  const out: FixtureOutputs = new Map();

  // trainer
  const tcfg = cfg['trainer'] as ClassCfg | undefined;
  if (tcfg) {
    const trainer = build({ target: tcfg.class ?? 'diffusion.GaussianDiffusionTrainer', params: { ...tcfg.init, model: unet } }, `${ctx.path} config.trainer`);
    if (!(trainer instanceof GaussianDiffusionTrainer)) throw new LdmError(`${ctx.path}: config.trainer did not build a GaussianDiffusionTrainer`);
    loadSubset(ctx, trainer, used);
    trainer.setFloat64Buffers(ctx.float64);
    if (ctx.wants('trainer.loss')) {
      out.set('out.trainer.loss', T.noGrad(() => trainer.forward(ctx.input('x_0'), { t: ctx.input('t'), noise: ctx.input('noise') })));
    }
  }
  if (ctx.wants('model_output')) out.set('out.model_output', T.noGrad(() => unet.forward(ctx.input('x_t'), ctx.input('t_step'))));

  // samplers
  const samplers = (cfg['samplers'] ?? {}) as Record<string, ClassCfg>;
  for (const [v, scfg] of Object.entries(samplers)) {
    const sampler = build({ target: scfg.class ?? 'diffusion.GaussianDiffusionSampler', params: { ...scfg.init, model: unet } }, `${ctx.path} config.samplers.${v}`);
    if (!(sampler instanceof GaussianDiffusionSampler)) throw new LdmError(`${ctx.path}: config.samplers.${v} did not build a GaussianDiffusionSampler`);
    loadSubset(ctx, sampler, used);
    sampler.setFloat64Buffers(ctx.float64);
    T.noGrad(() => {
      if (ctx.wants(`${v}.mean`) || ctx.wants(`${v}.log_var`) || ctx.wants(`${v}.step`)) {
        const { mean, logVar } = sampler.pMeanVariance(ctx.input('x_t'), ctx.input('t_step'));
        out.set(`out.${v}.mean`, mean);
        out.set(`out.${v}.log_var`, logVar);
        if (ctx.has('in.step_noise')) out.set(`out.${v}.step`, T.add(mean, T.mul(T.exp(T.mul(logVar, 0.5)), ctx.input('step_noise'))));
      }
      for (const key of ctx.outputKeys) {
        const m = new RegExp(`^out\\.${v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.last(\\d+)$`).exec(key);
        if (!m) continue;
        const steps = Number(m[1]);
        out.set(key, sampler.forward(ctx.input('x_t'), { steps, noise: replayNoise(ctx.input('chain_noise'), `${ctx.path} in.chain_noise`) }));
      }
    });
  }
  const unused = ctx.stateKeys.filter((k) => !used.has(k));
  if (unused.length > 0) throw new LdmError(`${ctx.path}: state dict keys used by no module: ${unused.slice(0, 8).join(', ')}`);
  return out;
}

export const pddpmHandler: FixtureHandler = {
  family: 'pytorch-ddpm (w86763777) UNet, GaussianDiffusionTrainer/Sampler',
  prefixes: ['pddpm'],
  run: runPddpm,
};
