// Parity handler for the first-stage losses: `tm_lpips*` (taming LPIPS: the head on given
// feature maps when the fixture stands in for the VGG, else the whole network), `tm_nlayer_disc*`
// (NLayerDiscriminator with BatchNorm2d or ActNorm: eval / train / eval phases and the state
// after each) and `ldm_lpips_with_disc*` (an AutoencoderKL whose `lossconfig` is
// LPIPSWithDiscriminator: every case of `config.cases`, both optimizer indices, the logged
// entries and the discriminator maps). Everything is built from the fixture's config through
// MODEL_TARGETS, so other configurations of these classes need no new code.

import { ConfigError, LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Module } from '../../nn/index.ts';
import {
  AutoencoderKL, LPIPS, LPIPSWithDiscriminator, MODEL_TARGETS, NLayerDiscriminator, type TargetConfig,
} from '../../models/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

function buildTarget(cfg: TargetConfig, where: string): unknown {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: target '${cfg.target}' is not registered`);
  return f(cfg.params ?? {}, buildTarget);
}

function buildFromConfig(ctx: FixtureContext, init: unknown = ctx.config.init): Module {
  const cls = ctx.config.class;
  if (typeof cls !== 'string') throw new LdmError(`${ctx.path}: metadata config.class is missing`);
  const m = buildTarget({ target: cls, params: (init ?? {}) as Record<string, unknown> }, ctx.name);
  if (!(m instanceof Module)) throw new LdmError(`${ctx.path}: ${cls} did not build a module`);
  return m;
}

/** Load the fixture weights; keys the fixture leaves out on purpose (frozen LPIPS weights that
 *  the official harness stubbed) may be missing only under `allowMissingUnder`. */
function loadWeights(ctx: FixtureContext, m: Module, allowMissingUnder: readonly string[]): void {
  const r = m.loadStateDict(ctx.stateDict(), false, ctx.path);
  const missing = r.missing.filter((k) => !allowMissingUnder.some((p) => k.startsWith(p)));
  if (missing.length > 0 || r.unexpected.length > 0) {
    throw new LdmError(`${ctx.path}: state dict does not match ${m.constructor.name}` +
      (missing.length ? `; missing: ${missing.slice(0, 8).join(', ')}` : '') +
      (r.unexpected.length ? `; unexpected: ${r.unexpected.slice(0, 8).join(', ')}` : ''));
  }
}

function unknownOutput(ctx: FixtureContext, name: string): never {
  throw new LdmError(`${ctx.path}: unknown output 'out.${name}' for ${String(ctx.config.class)}`);
}

// ---- LPIPS -----------------------------------------------------------------------------------

/** `out.lpips`, `out.lin.<k>`, `out.res.<k>`, `out.scaled.{x,y}`, `out.norm{0,1}.<k>`,
 *  `out.feats{0,1}.<k>` (VGG taps, full network only). With `in.feats0.*` / `in.feats1.*` the
 *  VGG is replaced by those maps (the fixture's stand-in net). */
function runLpips(ctx: FixtureContext): FixtureOutputs {
  const m = buildFromConfig(ctx);
  if (!(m instanceof LPIPS)) throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} is not LPIPS`);
  const standIn = ctx.has('in.feats0.0');
  loadWeights(ctx, m, standIn ? ['net.'] : []);
  m.train(ctx.config['eval'] === false);
  const x = ctx.input('x'), y = ctx.input('y');
  const scaledX = m.scaling_layer.forward(x), scaledY = m.scaling_layer.forward(y);
  const taps = (which: 0 | 1): Tensor[] => (standIn
    ? [0, 1, 2, 3, 4].map((k) => ctx.input(`feats${which}.${k}`))
    : m.net.forward(which === 0 ? scaledX : scaledY));
  const f0 = taps(0), f1 = taps(1);
  const head = m.head(f0, f1);
  const outs: FixtureOutputs = new Map();
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    const [group, idx] = name.split('.') as [string, string | undefined];
    const k = Number(idx);
    switch (group) {
      case 'lpips': outs.set(key, head.value); break;
      case 'lin': outs.set(key, head.lin[k]!); break;
      case 'res': outs.set(key, head.res[k]!); break;
      case 'scaled': outs.set(key, idx === 'x' ? scaledX : idx === 'y' ? scaledY : unknownOutput(ctx, name)); break;
      case 'norm0': outs.set(key, head.norm0[k]!); break;
      case 'norm1': outs.set(key, head.norm1[k]!); break;
      case 'feats0': outs.set(key, f0[k]!); break;
      case 'feats1': outs.set(key, f1[k]!); break;
      default: unknownOutput(ctx, name);
    }
    if (outs.get(key) === undefined) unknownOutput(ctx, name);
  }
  return outs;
}

// ---- NLayerDiscriminator ---------------------------------------------------------------------

/** Phases in the order of `config.call` (`eval*` -> eval mode, `train*` -> train mode); each
 *  phase's input is the `in.*` its call text applies the module to (default in.x).
 *  `out.<phase>.output` = the forward, `out.<phase>.<state key>` = that entry after the phase. */
function runDiscriminator(ctx: FixtureContext): FixtureOutputs {
  const m = buildFromConfig(ctx);
  if (!(m instanceof NLayerDiscriminator)) throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} is not NLayerDiscriminator`);
  loadWeights(ctx, m, []);
  const call = (ctx.config.call ?? {}) as Record<string, unknown>;
  const outs: FixtureOutputs = new Map();
  for (const [phase, text] of Object.entries(call)) {
    const wanted = ctx.outputKeys.filter((k) => k.startsWith(`out.${phase}.`));
    if (wanted.length === 0) continue;
    if (phase.startsWith('train')) m.train(); else if (phase.startsWith('eval')) m.eval();
    else throw new LdmError(`${ctx.path}: cannot tell the mode of phase '${phase}' (expected eval* or train*)`);
    const calls = [...String(text).matchAll(/\((in\.[A-Za-z0-9_.]+)\)/g)].map((r) => r[1]!);
    const input = ctx.get(calls[0] ?? 'in.x');
    const y = T.noGrad(() => m.forward(input));
    const sd = m.stateDict();
    for (const key of wanted) {
      const rest = key.slice(`out.${phase}.`.length);
      if (rest === 'output') { outs.set(key, y); continue; }
      const t = sd.get(rest);
      if (!t) unknownOutput(ctx, key.slice(4));
      outs.set(key, t.detach());
    }
  }
  return outs;
}

// ---- AutoencoderKL + LPIPSWithDiscriminator --------------------------------------------------

interface LossCase { variant?: string; global_step?: number; mode?: string }

const LOG_OUTPUTS_OPT0 = ['total_loss', 'logvar', 'kl_loss', 'nll_loss', 'rec_loss', 'd_weight', 'disc_factor', 'g_loss'];

/** For each `config.cases[c]`: an AutoencoderKL built with `variants[variant]` overriding
 *  `init.lossconfig.params`, loaded from the stored weights; train mode with autograd or eval
 *  under no-grad; one forward with in.posterior_noise; loss(…, 0, …) and loss(…, 1, …), with
 *  `in.cond` (conditional discriminator) and `in.weights` when the fixture has them. */
function runLpipsWithDisc(ctx: FixtureContext): FixtureOutputs {
  const init = (ctx.config.init ?? {}) as Record<string, unknown>;
  const lc = init['lossconfig'] as TargetConfig | undefined;
  if (!lc || typeof lc.target !== 'string') throw new LdmError(`${ctx.path}: config.init.lossconfig is missing`);
  const variants = (ctx.config['variants'] ?? {}) as Record<string, Record<string, unknown>>;
  const cases = (ctx.config['cases'] ?? { default: { mode: 'train', global_step: 0 } }) as Record<string, LossCase>;
  const outs: FixtureOutputs = new Map();
  const x = ctx.input('x');
  const noise = ctx.has('in.posterior_noise') ? ctx.input('posterior_noise') : undefined;
  const cond = ctx.has('in.cond') ? ctx.input('cond') : null;
  const weights = ctx.has('in.weights') ? ctx.input('weights') : null;

  for (const [name, c] of Object.entries(cases)) {
    const override = c.variant ? variants[c.variant] : {};
    if (override === undefined) throw new LdmError(`${ctx.path}: case '${name}' names unknown variant '${String(c.variant)}'`);
    const caseInit = { ...init, lossconfig: { ...lc, params: { ...(lc.params ?? {}), ...override } } };
    const ae = buildFromConfig(ctx, caseInit);
    if (!(ae instanceof AutoencoderKL)) throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} is not AutoencoderKL`);
    const loss = ae.loss; // throws with the reason if the lossconfig could not be built
    if (!(loss instanceof LPIPSWithDiscriminator)) throw new LdmError(`${ctx.path}: lossconfig '${lc.target}' did not build LPIPSWithDiscriminator`);
    loadWeights(ctx, ae, ['loss.perceptual_loss.']);
    const train = (c.mode ?? 'train') === 'train';
    const split = train ? 'train' : 'val';
    const gs = c.global_step ?? 0;
    const run = (): void => {
      if (train) ae.train(); else ae.eval();
      const [rec, post] = ae.forward(x, true, noise);
      if (!outs.has('out.reconstructions')) {
        outs.set('out.reconstructions', rec.detach());
        outs.set('out.posterior.mean', post.mean.detach());
        outs.set('out.posterior.logvar', post.logvar.detach());
      }
      const last = ae.get_last_layer();
      const o0 = loss.forward(x, rec, post, 0, gs, last, cond, split, weights);
      const o1 = loss.forward(x, rec, post, 1, gs, last, cond, split, weights);
      const put = (k: string, t: Tensor | undefined): void => { if (t && ctx.wants(`${name}.${k}`)) outs.set(`out.${name}.${k}`, t.detach()); };
      put('opt0.loss', o0.loss);
      for (const k of LOG_OUTPUTS_OPT0) put(`opt0.${k}`, o0.log[`${split}/${k}`]);
      put('opt1.loss', o1.loss);
      for (const k of ['disc_loss', 'logits_real', 'logits_fake']) put(`opt1.${k}`, o1.log[`${split}/${k}`]);
      put('disc.fake_g', o0.logitsFake);
      put('disc.real_d', o1.logitsReal);
      put('disc.fake_d', o1.logitsFake);
    };
    if (train) T.withGrad(run); else T.noGrad(run);
  }
  for (const key of ctx.outputKeys) if (!outs.has(key)) unknownOutput(ctx, key.slice(4));
  return outs;
}

export const lossesHandler: FixtureHandler = {
  family: 'first-stage losses (LPIPS, NLayerDiscriminator, LPIPSWithDiscriminator)',
  prefixes: ['tm_lpips', 'tm_lpips_head', 'tm_nlayer_disc', 'ldm_lpips_with_disc'],
  run(ctx: FixtureContext): FixtureOutputs {
    if (ctx.name.startsWith('ldm_lpips_with_disc')) return runLpipsWithDisc(ctx);
    if (ctx.name.startsWith('tm_nlayer_disc')) return runDiscriminator(ctx);
    return T.noGrad(() => runLpips(ctx));
  },
};
