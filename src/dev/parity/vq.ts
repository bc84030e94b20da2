// Parity handler for the VQ first-stage family (fixtures `tm_vq*`, `ldm_vq*`, made by
// scripts/fixtures/vq_first_stage.py from the official code). What runs is chosen by the
// fixture's `config.class` and `config.cases`, never by its name, so other configurations of
// these classes need no new code:
//  - taming.modules.vqvae.quantize.VectorQuantizer2: z_q, loss, indices = q(in.z) (unknown-index
//    draws from in.unknown_draw), the gradients of sum(z_q * in.grad_out) + loss (grad_z,
//    grad_embedding), codebook_entry = get_codebook_entry(indices, (N, h, w, e_dim));
//  - a VQ model (ldm VQModel / VQModelInterface, taming VQModel) without `cases`: the outputs
//    encode*, encode_to_prequant, decode, decode_force, decode_encode, forward.*, grad.* (see
//    runModel), in eval mode;
//  - a VQ model with `cases` (its loss a VQLPIPSWithDiscriminator): for each case the model built
//    with variants[variant] over init.lossconfig.params, train mode with autograd or eval under
//    no-grad, one forward, loss(…, 0, …) and loss(…, 1, …) with in.cond for a conditional
//    discriminator and predicted_indices when config.predicted_indices; every logged entry.
// A `remap` given as a path in config.init (the official .npy file) is replaced by the fixture's
// `used` buffer. State keys `<variant>.<key>` replace `<key>` for that variant only.

import { ConfigError, LdmError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Module } from '../../nn/index.ts';
import {
  MODEL_TARGETS, VQLPIPSWithDiscriminator, VQModel, VQModelBase, VQModelInterface, VectorQuantizer2, type TargetConfig,
} from '../../models/index.ts';
import type { FixtureContext, FixtureHandler, FixtureOutputs } from './types.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

function buildTarget(cfg: TargetConfig, where: string): unknown {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: target '${cfg.target}' is not registered`);
  return f(cfg.params ?? {}, buildTarget);
}

/** config.init with a path-valued `remap` replaced by the stored `used` buffer. */
function initWithRemap(ctx: FixtureContext, init: Obj, usedKey: string): Obj {
  if (typeof init['remap'] !== 'string') return init;
  if (!ctx.has(usedKey)) throw new LdmError(`${ctx.path}: config.init.remap names a file but the fixture has no '${usedKey}' buffer`);
  return { ...init, remap: ctx.get(usedKey) };
}

function build(ctx: FixtureContext, init: Obj): unknown {
  const cls = ctx.config.class;
  if (typeof cls !== 'string') throw new LdmError(`${ctx.path}: metadata config.class is missing`);
  return buildTarget({ target: cls, params: init }, ctx.name);
}

function unknownOutput(ctx: FixtureContext, key: string): never {
  throw new LdmError(`${ctx.path}: unknown output '${key}' for ${String(ctx.config.class)}`);
}

const opt = (ctx: FixtureContext, name: string): Tensor | undefined => (ctx.has(`in.${name}`) ? ctx.input(name) : undefined);

/** A float copy of an input that records gradients. */
function leaf(t: Tensor): Tensor {
  return T.clone(t).detach().requireGrad();
}

// ---- VectorQuantizer2 ------------------------------------------------------------------------

function runQuantizer(ctx: FixtureContext): FixtureOutputs {
  const q = build(ctx, initWithRemap(ctx, obj(ctx.config.init), 'used'));
  if (!(q instanceof VectorQuantizer2)) throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} did not build a VectorQuantizer2`);
  q.loadStateDict(ctx.stateDict(), true, ctx.path);
  const z = leaf(ctx.input('z'));
  const draw = opt(ctx, 'unknown_draw');
  const outs: FixtureOutputs = new Map();
  T.withGrad(() => {
    const r = q.forward(z, draw ? { unknownDraw: draw } : {});
    const [n, c, h, w] = z.shape as [number, number, number, number];
    const lazy: Record<string, () => Tensor> = {
      z_q: () => r.zQ.detach(),
      loss: () => r.loss.detach(),
      indices: () => r.indices,
      codebook_entry: () => T.noGrad(() => q.getCodebookEntry(r.indices, [n, h, w, c])),
    };
    if (ctx.wants('grad_z') || ctx.wants('grad_embedding')) {
      T.backward(T.add(T.sum(T.mul(r.zQ, ctx.input('grad_out'))), r.loss));
      lazy['grad_z'] = () => z.grad ?? T.zerosLike(z);
      lazy['grad_embedding'] = () => q.embedding.weight.grad ?? T.zerosLike(q.embedding.weight);
    }
    for (const key of ctx.outputKeys) {
      const f = lazy[key.slice('out.'.length)];
      if (!f) unknownOutput(ctx, key);
      outs.set(key, f());
    }
  });
  return outs;
}

// ---- VQ models -------------------------------------------------------------------------------

/** Outputs: encode (VQModelInterface: h), encode.{quant, emb_loss, indices} (VQModel.encode, draws
 *  in.unknown_draw.encode), encode_to_prequant, decode = decode(in.h), decode_force = decode(in.h,
 *  force_not_quantize=True), decode_encode = decode(encode(in.x)), forward.{dec, diff, ind} and
 *  grad.{x, <parameter key>} of sum(dec * in.grad_out) + diff (draws in.unknown_draw.forward). */
function runModel(ctx: FixtureContext, m: VQModelBase): FixtureOutputs {
  m.loadStateDict(ctx.stateDict(), true, ctx.path);
  if (ctx.config['eval'] !== false) m.eval(); else m.train();
  const x = ctx.input('x');
  const outs: FixtureOutputs = new Map();
  const encDraw = opt(ctx, 'unknown_draw.encode'), fwdDraw = opt(ctx, 'unknown_draw.forward');
  let encoded: [Tensor, Tensor, Tensor] | null = null;
  const encode = (): [Tensor, Tensor, Tensor] => {
    if (encoded) return encoded;
    if (!(m instanceof VQModel)) throw new LdmError(`${ctx.path}: encode.* outputs need a VQModel (encode -> quant, emb_loss, info)`);
    const [quant, embLoss, [, , ind]] = T.noGrad(() => m.encode(x, encDraw ? { unknownDraw: encDraw } : {}));
    return (encoded = [quant, embLoss, ind]);
  };
  let forward: { dec: Tensor; diff: Tensor; ind: Tensor; xg: Tensor } | null = null;
  const fwd = (): { dec: Tensor; diff: Tensor; ind: Tensor; xg: Tensor } => {
    if (forward) return forward;
    const xg = leaf(x);
    return (forward = T.withGrad(() => {
      const [dec, diff, ind] = m.reconstruct(xg, fwdDraw ? { unknownDraw: fwdDraw } : {});
      if (ctx.outputKeys.some((k) => k.startsWith('out.grad.'))) T.backward(T.add(T.sum(T.mul(dec, ctx.input('grad_out'))), diff));
      return { dec: dec.detach(), diff: diff.detach(), ind, xg };
    }));
  };
  const params = new Map(m.namedParameters());
  T.noGrad(() => {
    for (const key of ctx.outputKeys) {
      const name = key.slice('out.'.length);
      let v: Tensor;
      switch (name) {
        case 'encode':
          if (!(m instanceof VQModelInterface)) throw new LdmError(`${ctx.path}: out.encode is VQModelInterface.encode; this is ${m.constructor.name} (use encode.quant)`);
          v = m.encode(x); break;
        case 'encode.quant': v = encode()[0]; break;
        case 'encode.emb_loss': v = encode()[1]; break;
        case 'encode.indices': v = encode()[2]; break;
        case 'encode_to_prequant': v = m.encodeToPrequant(x); break;
        case 'decode': v = m instanceof VQModelInterface ? m.decode(ctx.input('h')) : m.decodeQuant(ctx.input('h')); break;
        case 'decode_force':
          if (!(m instanceof VQModelInterface)) throw new LdmError(`${ctx.path}: decode_force needs VQModelInterface`);
          v = m.decode(ctx.input('h'), true); break;
        case 'decode_encode':
          if (!(m instanceof VQModelInterface)) throw new LdmError(`${ctx.path}: decode_encode needs VQModelInterface`);
          v = m.decode(m.encode(x)); break;
        case 'forward.dec': v = fwd().dec; break;
        case 'forward.diff': v = fwd().diff; break;
        case 'forward.ind': v = fwd().ind; break;
        default: {
          if (!name.startsWith('grad.')) unknownOutput(ctx, key);
          const f = fwd();
          const target = name === 'grad.x' ? f.xg : params.get(name.slice('grad.'.length));
          if (!target) unknownOutput(ctx, key);
          v = target.grad ?? T.zerosLike(target);
        }
      }
      outs.set(key, v);
    }
  });
  return outs;
}

// ---- VQ model + VQLPIPSWithDiscriminator ---------------------------------------------------------

interface LossCase { variant?: string; global_step?: number; mode?: string }

function runLoss(ctx: FixtureContext): FixtureOutputs {
  const init = initWithRemap(ctx, obj(ctx.config.init), 'quantize.used');
  const lc = init['lossconfig'] as TargetConfig | undefined;
  if (!lc || typeof lc.target !== 'string') throw new LdmError(`${ctx.path}: config.init.lossconfig is missing`);
  const variants = obj(ctx.config['variants']) as Record<string, Obj>;
  const cases = obj(ctx.config['cases']) as Record<string, LossCase>;
  const passIndices = ctx.config['predicted_indices'] === true;
  const x = ctx.input('x');
  const condIn = opt(ctx, 'cond');
  const base = ctx.stateDict();
  const variantOf = (k: string): string | null => Object.keys(variants).find((v) => k.startsWith(`${v}.`)) ?? null;
  const outs: FixtureOutputs = new Map();
  for (const [name, c] of Object.entries(cases)) {
    const v = c.variant ?? '';
    const override = v ? variants[v] : {};
    if (override === undefined) throw new LdmError(`${ctx.path}: case '${name}' names unknown variant '${v}'`);
    const m = build(ctx, { ...init, lossconfig: { ...lc, params: { ...(lc.params ?? {}), ...override } } });
    if (!(m instanceof VQModelBase)) throw new LdmError(`${ctx.path}: ${String(ctx.config.class)} did not build a VQ model`);
    const loss = m.loss;
    if (!(loss instanceof VQLPIPSWithDiscriminator)) throw new LdmError(`${ctx.path}: lossconfig '${lc.target}' did not build VQLPIPSWithDiscriminator`);
    const sd = new Map<string, Tensor>();
    for (const [k, t] of base) {
      const kv = variantOf(k);
      if (kv === null) sd.set(k, t);
    }
    for (const [k, t] of base) if (v && k.startsWith(`${v}.`)) sd.set(k.slice(v.length + 1), t);
    const r = m.loadStateDict(sd, false, `${ctx.path} case ${name}`);
    const missing = r.missing.filter((k) => !k.startsWith('loss.perceptual_loss.'));
    if (missing.length > 0 || r.unexpected.length > 0) {
      throw new LdmError(`${ctx.path} case ${name}: state dict does not match; missing ${missing.slice(0, 6).join(', ')}; unexpected ${r.unexpected.slice(0, 6).join(', ')}`);
    }
    const train = (c.mode ?? 'train') === 'train';
    const split = train ? 'train' : 'val';
    const gs = c.global_step ?? 0;
    const cond = loss.discConditional ? (condIn ?? null) : null;
    const run = (): void => {
      m.train(train);
      const [rec, qloss, ind] = m.reconstruct(x);
      if (!outs.has('out.reconstructions')) {
        outs.set('out.reconstructions', rec.detach());
        outs.set('out.qloss', qloss.detach());
        outs.set('out.indices', ind);
      }
      const last = m.get_last_layer();
      const indices = passIndices ? ind : null;
      const o0 = loss.forward(qloss, x, rec, 0, gs, last, cond, split, indices);
      const o1 = loss.forward(qloss, x, rec, 1, gs, last, cond, split, indices);
      for (const key of ctx.outputKeys) {
        const pre = `out.${name}.`;
        if (!key.startsWith(pre)) continue;
        const rest = key.slice(pre.length);
        let t: Tensor | undefined;
        if (rest === 'opt0.loss') t = o0.loss;
        else if (rest === 'opt1.loss') t = o1.loss;
        else if (rest.startsWith('opt0.')) t = o0.log[`${split}/${rest.slice(5)}`];
        else if (rest.startsWith('opt1.')) t = o1.log[`${split}/${rest.slice(5)}`];
        else if (rest === 'disc.fake_g') t = o0.logitsFake;
        else if (rest === 'disc.real_d') t = o1.logitsReal;
        else if (rest === 'disc.fake_d') t = o1.logitsFake;
        if (!t) unknownOutput(ctx, key);
        outs.set(key, t.detach());
      }
    };
    if (train) T.withGrad(run); else T.noGrad(run);
  }
  for (const key of [...outs.keys()]) if (!ctx.outputKeys.includes(key)) outs.delete(key);
  for (const key of ctx.outputKeys) if (!outs.has(key)) unknownOutput(ctx, key);
  return outs;
}

export const vqHandler: FixtureHandler = {
  family: 'VQ first stage (VectorQuantizer2, VQModel, VQModelInterface, taming VQModel, VQLPIPSWithDiscriminator)',
  prefixes: ['tm_vq', 'ldm_vq'],
  run(ctx: FixtureContext): FixtureOutputs {
    if (ctx.config['cases'] !== undefined) return runLoss(ctx);
    const cls = String(ctx.config.class);
    if (MODEL_TARGETS[cls] === undefined) throw new LdmError(`${ctx.path}: class '${cls}' is not registered`);
    if (cls.endsWith('VectorQuantizer2')) return runQuantizer(ctx);
    const init = initWithRemap(ctx, obj(ctx.config.init), 'quantize.used');
    const m = build(ctx, init);
    if (!(m instanceof VQModelBase) || !(m instanceof Module)) throw new LdmError(`${ctx.path}: ${cls} did not build a VQ model`);
    return runModel(ctx, m);
  },
};
