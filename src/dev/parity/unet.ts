// Parity handler for the official `UNetModel` (openaimodel.py) fixtures `ldm_unet*`: builds the
// model from `config.init` through MODEL_TARGETS, loads the fixture's state dict and performs
// `out.output = UNetModel(**init)(in.x, in.timesteps, context=in.context, y=in.y)` with whichever
// inputs the file holds; with `in.grad_output` it also runs backward of sum(output * grad_output)
// and returns `out.grad.x` and `out.grad.<param>` for every requested parameter.

import { LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { MODEL_TARGETS, UNetModel, type BuildFn } from '../../models/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

const UNET_CLASS = 'ldm.modules.diffusionmodules.openaimodel.UNetModel';

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new LdmError(`${where}: unknown target '${cfg.target}'`);
  return f(cfg.params ?? {}, build);
};

function runUNet(ctx: FixtureContext): FixtureOutputs {
  const cls = ctx.config.class ?? UNET_CLASS;
  const model = build({ target: cls, params: (ctx.config.init ?? {}) as Record<string, unknown> }, `${ctx.path} config.class`);
  if (!(model instanceof UNetModel)) throw new LdmError(`${ctx.path}: ${cls} did not build a UNetModel`);
  model.loadStateDict(ctx.stateDict(), true, ctx.path);
  if (ctx.config['eval'] !== false) model.eval();

  const wantGrad = ctx.has('in.grad_output');
  const x0 = ctx.input('x');
  const x = wantGrad ? new Tensor(x0.f32.slice(), x0.shape).requireGrad() : x0;
  const cond = {
    context: ctx.has('in.context') ? ctx.input('context') : null,
    y: ctx.has('in.y') ? ctx.input('y') : null,
  };
  const run = (): Tensor => model.forward(x, ctx.input('timesteps'), cond);
  const out = new Map<string, Tensor | number | Float64Array>();
  if (!wantGrad) {
    out.set('out.output', T.noGrad(run));
    return out;
  }
  const y = run();
  out.set('out.output', y);
  T.backward(T.sum(T.mul(y, ctx.input('grad_output'))));
  const params = new Map(model.namedParameters());
  for (const key of ctx.outputKeys) {
    if (!key.startsWith('out.grad.')) continue;
    const name = key.slice('out.grad.'.length);
    const t = name === 'x' ? x : params.get(name);
    if (!t) throw new LdmError(`${ctx.path}: ${key} names no parameter of UNetModel`);
    out.set(key, t.grad ?? T.zerosLike(t));
  }
  return out;
}

export const unetHandler: FixtureHandler = {
  family: 'ldm UNetModel (openaimodel)',
  prefixes: ['ldm_unet'],
  run: runUNet,
};
