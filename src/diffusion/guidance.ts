// Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance") as a
// Denoiser wrapper, in the official LDM form (ddim.py / plms.py `p_sample_ddim`):
//  1. x_in = cat([x, x]), t_in = cat([t, t]), c_in = cat([uc, c])   (UNCONDITIONAL FIRST);
//  2. e_uncond, e_cond = model(x_in, t_in, c_in).chunk(2);
//  3. e = e_uncond + s * (e_cond - e_uncond).
// With no unconditional conditioning or s == 1, the model runs once on (x, t, c).
// Also: conditioning dropout for training the unconditional branch (replace rows by the null
// conditioning with probability p). What it is not: no sampler loop (samplers/).

import { ConfigError, Generator, ShapeError, fmtShape } from '../util/index.ts';
import { Tensor, add, cat, chunk, mul, sub, tensor, where } from '../tensor/index.ts';
import type { Cond, Denoiser } from './types.ts';

/** Concatenate two conditionings along the batch axis, key by key (`torch.cat([uc, c])`). */
export function catCond(a: Cond, b: Cond): Cond {
  const out: Cond = {};
  const lists = (x: Tensor[] | undefined, y: Tensor[] | undefined, key: string): Tensor[] | undefined => {
    if (!x && !y) return undefined;
    if (!x || !y || x.length !== y.length) {
      throw new ConfigError(`guidance: conditional and unconditional conditionings differ in '${key}' (${x?.length ?? 0} vs ${y?.length ?? 0} tensors)`);
    }
    return x.map((t, i) => cat([t, y[i]!], 0));
  };
  const cc = lists(a.c_concat, b.c_concat, 'c_concat');
  if (cc) out.c_concat = cc;
  const ca = lists(a.c_crossattn, b.c_crossattn, 'c_crossattn');
  if (ca) out.c_crossattn = ca;
  if (a.y || b.y) {
    if (!a.y || !b.y) throw new ConfigError("guidance: conditional and unconditional conditionings differ in 'y'");
    out.y = cat([a.y, b.y], 0);
  }
  return out;
}

export interface GuidanceOptions {
  /** the null / unconditional conditioning, same layout as the conditional one */
  uncond?: Cond | undefined;
  /** `unconditional_guidance_scale` (default 1: no guidance) */
  scale?: number;
}

/** Whether the options ask for the batched [uncond, cond] call. */
export function guidanceActive(opts: GuidanceOptions): boolean {
  return opts.uncond !== undefined && (opts.scale ?? 1) !== 1;
}

/** Wrap a Denoiser with classifier-free guidance (steps 1-3 above). */
export function cfgDenoiser(denoiser: Denoiser, opts: GuidanceOptions): Denoiser {
  if (!guidanceActive(opts)) return denoiser;
  const uc = opts.uncond!;
  const s = opts.scale ?? 1;
  return (x, t, c) => {
    if (!c) return denoiser(x, t, c);
    const xIn = cat([x, x], 0); // 1. [2B, C, H, W]
    const tIn = cat([t, t], 0);
    const cIn = catCond(uc, c);
    const out = denoiser(xIn, tIn, cIn);
    const [eU, eC] = chunk(out, 2, 0) as [Tensor, Tensor]; // 2.
    return add(eU, mul(sub(eC, eU), s)); // 3.
  };
}

/**
 * Conditioning dropout (training for classifier-free guidance): each batch row of `c` is
 * replaced by the same row of `nullC` with probability p (one uniform draw per row from gen).
 * c, nullC [B, ...]
 */
export function dropCond(c: Tensor, nullC: Tensor, p: number, gen: Generator): Tensor {
  if (c.shape.length !== nullC.shape.length || c.shape.some((d, i) => d !== nullC.shape[i])) {
    throw new ShapeError(`dropCond: null conditioning ${fmtShape(nullC.shape)} must match ${fmtShape(c.shape)}`);
  }
  if (!(p >= 0 && p <= 1)) throw new ConfigError(`dropCond: probability must be in [0, 1], got ${p}`);
  const B = c.shape[0]!;
  const u = gen.rand(B);
  const keep = tensor(Array.from(u, (v) => (v < p ? 0 : 1)), [B, ...new Array<number>(c.ndim - 1).fill(1)]);
  return where(keep, c, nullC);
}
