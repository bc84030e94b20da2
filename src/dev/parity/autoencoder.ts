// Parity handler for the first-stage family of ldm/models/autoencoder.py and
// ldm/modules/diffusionmodules/model.py: fixtures `ldm_autoencoder_kl*` (AutoencoderKL),
// `ldm_encoder*` / `ldm_decoder*` (Encoder / Decoder called on their single input) and
// `ldm_diag_gaussian*` (DiagonalGaussianDistribution). Models are built from the fixture's
// `config.class` + `config.init` through MODEL_TARGETS, so other configurations need no code.
// Outputs are chosen by name (see each function); an output name we do not know is an error.

import { ConfigError, LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Module } from '../../nn/index.ts';
import { AutoencoderKL, DiagonalGaussianDistribution, MODEL_TARGETS, type TargetConfig } from '../../models/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

const GAUSSIAN_CLASS = 'ldm.modules.distributions.distributions.DiagonalGaussianDistribution';

/** Build `{target, params}` through the merged registry (nested configs included). */
function buildTarget(cfg: TargetConfig, where: string): unknown {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: target '${cfg.target}' is not registered`);
  return f(cfg.params ?? {}, buildTarget);
}

function buildModule(ctx: FixtureContext): Module {
  const cls = ctx.config.class;
  if (typeof cls !== 'string') throw new LdmError(`${ctx.path}: metadata config.class is missing`);
  const m = buildTarget({ target: cls, params: (ctx.config.init ?? {}) as Record<string, unknown> }, ctx.name);
  if (!(m instanceof Module)) throw new LdmError(`${ctx.path}: ${cls} did not build a module`);
  m.loadStateDict(ctx.stateDict(), true, ctx.path);
  if (ctx.config['eval'] !== false) m.eval();
  return m;
}

/** The one `in.*` tensor of a single-input call (Encoder(x), Decoder(z)). */
function singleInput(ctx: FixtureContext): Tensor {
  for (const k of ['x', 'z', 'h', 'input']) if (ctx.has(`in.${k}`)) return ctx.input(k);
  if (ctx.inputKeys.length === 1) return ctx.get(ctx.inputKeys[0]!);
  throw new LdmError(`${ctx.path}: cannot tell which of ${ctx.inputKeys.join(', ')} is the module input`);
}

/** One attribute of a posterior: mean, logvar, std, var, parameters, mode, kl, kl_other, nll, sample. */
function gaussianAttr(ctx: FixtureContext, d: DiagonalGaussianDistribution, attr: string, group: string): Tensor {
  const suffixed = (base: string): Tensor => (group && ctx.has(`in.${base}_${group}`) ? ctx.input(`${base}_${group}`) : ctx.input(base));
  switch (attr) {
    case 'parameters': return d.parameters;
    case 'mean': return d.mean;
    case 'logvar': return d.logvar;
    case 'std': return d.std;
    case 'var': return d.var;
    case 'mode': return d.mode();
    case 'kl': return d.kl();
    case 'kl_other': return d.kl(new DiagonalGaussianDistribution(suffixed('other_parameters')));
    case 'nll': return d.nll(suffixed('sample'));
    case 'sample': return d.sample(ctx.has('in.noise') ? suffixed('noise') : suffixed('eps'));
    default: throw new LdmError(`${ctx.path}: unknown DiagonalGaussianDistribution output '${attr}'`);
  }
}

/** `out.<attr>` on DiagonalGaussianDistribution(in.parameters); `out.<group>.<attr>` uses
 *  in.parameters_<group> when present, and group 'deterministic' sets deterministic=True. */
function runGaussian(ctx: FixtureContext): FixtureOutputs {
  const outs: FixtureOutputs = new Map();
  const init = (ctx.config.init ?? {}) as { deterministic?: boolean };
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    const dot = name.lastIndexOf('.');
    const group = dot >= 0 ? name.slice(0, dot) : '', attr = dot >= 0 ? name.slice(dot + 1) : name;
    const params = group && ctx.has(`in.parameters_${group}`) ? ctx.input(`parameters_${group}`) : ctx.input('parameters');
    const det = group === 'deterministic' || init.deterministic === true;
    outs.set(key, gaussianAttr(ctx, new DiagonalGaussianDistribution(params, det), attr, group));
  }
  return outs;
}

/** AutoencoderKL: `posterior.<attr>` of encode(in.x), `decode` = decode(in.z),
 *  `reconstruction_mode` = forward(in.x, sample_posterior=False)[0], `reconstruction` /
 *  `reconstruction_sample` = forward(in.x) with the posterior noise in.noise, `encoder` =
 *  encoder(in.x), `last_layer` = get_last_layer(). */
function runAutoencoder(ctx: FixtureContext, m: AutoencoderKL): FixtureOutputs {
  const outs: FixtureOutputs = new Map();
  let posterior: DiagonalGaussianDistribution | null = null;
  const post = (): DiagonalGaussianDistribution => (posterior ??= m.encode(ctx.input('x')));
  for (const key of ctx.outputKeys) {
    const name = key.slice('out.'.length);
    if (name.startsWith('posterior.')) { outs.set(key, gaussianAttr(ctx, post(), name.slice('posterior.'.length), '')); continue; }
    switch (name) {
      case 'decode': outs.set(key, m.decode(ctx.input('z'))); break;
      case 'reconstruction_mode': outs.set(key, m.forward(ctx.input('x'), false)[0]); break;
      case 'reconstruction':
      case 'reconstruction_sample': outs.set(key, m.forward(ctx.input('x'), true, ctx.input('noise'))[0]); break;
      case 'encoder': outs.set(key, m.encoder.forward(ctx.input('x'))); break;
      case 'last_layer': outs.set(key, m.get_last_layer()); break;
      default: throw new LdmError(`${ctx.path}: unknown AutoencoderKL output '${name}'`);
    }
  }
  return outs;
}

/** Encoder / Decoder / Model / anything with forward(x): every output is forward(single input). */
function runForward(ctx: FixtureContext, m: Module): FixtureOutputs {
  const f = (m as Module & { forward?: (x: Tensor) => Tensor }).forward;
  if (typeof f !== 'function') throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} has no forward(x)`);
  const y = f.call(m, singleInput(ctx));
  const outs: FixtureOutputs = new Map();
  for (const key of ctx.outputKeys) outs.set(key, y);
  return outs;
}

export const autoencoderHandler: FixtureHandler = {
  family: 'ldm first stage (AutoencoderKL, Encoder, Decoder, DiagonalGaussianDistribution)',
  prefixes: ['ldm_autoencoder_kl', 'ldm_encoder', 'ldm_decoder', 'ldm_diag_gaussian'],
  run(ctx: FixtureContext): FixtureOutputs {
    return T.noGrad(() => {
      if (ctx.config.class === GAUSSIAN_CLASS) return runGaussian(ctx);
      const m = buildModule(ctx);
      return m instanceof AutoencoderKL ? runAutoencoder(ctx, m) : runForward(ctx, m);
    });
  },
};
