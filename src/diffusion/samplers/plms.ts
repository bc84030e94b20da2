// PLMS sampling (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds",
// PNDM) as LDM's `PLMSSampler` (ldm/models/diffusion/plms.py): the DDIM schedule with eta = 0
// (anything else is an error, as in the official), a linear multistep on eps with a history of
// up to three previous eps, and a pseudo improved-Euler (2nd order) first step that calls the
// model twice. The transfer step is the DDIM update (ddim.ts). The `plms` row of the sampler table.

import { ConfigError, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, div, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import { fullT } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import { ddimEpsAndX0, ddimStepScalars, ddimUpdate, epsParameterization, qSampleFromAlphas, stepNoise } from './ddim.ts';
import type { Sampler, SamplerIntermediates } from './types.ts';

/**
 * `PLMSSampler.sample` / `plms_sampling` / `p_sample_plms`. For step i (index = S - i - 1,
 * t = flip(ddim_timesteps)[i], t_next = the following entry, or t itself at the last step):
 *  1. e_t = model(x, t) (with guidance);
 *  2. e' by the history length n of old_eps:
 *     n = 0: pseudo improved Euler: x' = DDIM(x, e_t); e'' = model(x', t_next); e' = (e_t + e'')/2
 *     n = 1: (3 e_t - e_{-1}) / 2                                 (2nd-order Adams-Bashforth)
 *     n = 2: (23 e_t - 16 e_{-1} + 5 e_{-2}) / 12                 (3rd order)
 *     n >= 3: (55 e_t - 59 e_{-1} + 37 e_{-2} - 9 e_{-3}) / 24     (4th order)
 *  3. x_prev, pred_x0 = DDIM(x, e') at index; old_eps.append(e_t), keeping at most 3.
 * Every DDIM update draws its noise (sigma is 0), so a Generator advances as torch's would;
 * a given `noises` list is consumed in draw order (two draws in the first step).
 */
export const plms: Sampler = (denoiser, diffusion, opts) => {
  return noGrad(() => {
    const eta = opts.eta ?? 0;
    if (eta !== 0) throw new ConfigError(`plms: ddim_eta must be 0 for PLMS, got ${eta}`);
    if (opts.tStart !== undefined) throw new ConfigError('plms: tStart (img2img) is not supported; use ddim or ddpm');
    const schedule = diffusion.ddimSchedule(opts.steps ?? 50, 0, opts.discretize ?? 'uniform');
    const model = { alphas_cumprod: diffusion.alphasCumprod };
    const gen = opts.gen ?? defaultGenerator;
    const guided = cfgDenoiser(denoiser, { uncond: opts.uncond, scale: opts.guidance ?? 1 });
    const param = epsParameterization('plms', diffusion);
    const clip = opts.clipDenoised ?? false;
    const every = opts.logEvery ?? 100;
    const temperature = opts.temperature ?? 1;
    let img = opts.xT ?? randn(opts.shape, gen);
    const B = img.shape[0]!;
    const timeRange = Array.from(schedule.ddim_timesteps).reverse();
    const total = timeRange.length;
    const intermediates: SamplerIntermediates = { x_inter: [img], pred_x0: [img] };
    const oldEps: Tensor[] = [];
    let draws = 0;
    const noise = (shape: readonly number[]): Tensor => stepNoise(shape, draws++, opts.noises, gen);
    if (opts.mask && !opts.x0) throw new ConfigError('plms: mask given without x0');
    for (let i = 0; i < total; i++) {
      const index = total - i - 1;
      const ts = fullT(B, timeRange[i]!);
      if (opts.mask && opts.x0) {
        const orig = qSampleFromAlphas(model.alphas_cumprod, opts.x0, timeRange[i]!, randn(opts.x0.shape, gen));
        img = add(mul(orig, opts.mask), mul(sub(1, opts.mask), img));
      }
      const k = ddimStepScalars(schedule, index);
      const x = img;
      // model output -> eps (v / x0 outputs converted at the alphas of the timestep they were made at)
      const tNext = timeRange[Math.min(i + 1, total - 1)]!;
      const aNext = Math.fround(model.alphas_cumprod[tNext]!);
      const kNext = { ...k, aT: aNext, sqrtOneMinusAT: Math.fround(Math.sqrt(Math.fround(1 - aNext))) };
      const epsAt = (xx: Tensor, tt: Tensor, kk: typeof k): Tensor => ddimEpsAndX0(xx, guided(xx, tt, opts.cond), kk, param, clip).eT;
      const eT = epsAt(x, ts, k); // 1.
      let ePrime: Tensor; // 2.
      const n = oldEps.length;
      if (n === 0) {
        const first = ddimEpsAndX0(x, eT, k, 'eps');
        const xPrev = ddimUpdate(first.eT, first.predX0, k, noise(x.shape), temperature);
        const eNext = epsAt(xPrev, fullT(B, tNext), kNext);
        ePrime = div(add(eT, eNext), 2);
      } else if (n === 1) {
        ePrime = div(sub(mul(eT, 3), oldEps[n - 1]!), 2);
      } else if (n === 2) {
        ePrime = div(add(sub(mul(eT, 23), mul(oldEps[n - 1]!, 16)), mul(oldEps[n - 2]!, 5)), 12);
      } else {
        ePrime = div(sub(add(sub(mul(eT, 55), mul(oldEps[n - 1]!, 59)), mul(oldEps[n - 2]!, 37)), mul(oldEps[n - 3]!, 9)), 24);
      }
      const fin = ddimEpsAndX0(x, ePrime, k, 'eps'); // 3.
      img = ddimUpdate(fin.eT, fin.predX0, k, noise(x.shape), temperature);
      oldEps.push(eT);
      if (oldEps.length >= 4) oldEps.shift();
      opts.onStep?.({ i, total, t: timeRange[i]!, x: img, predX0: fin.predX0 });
      if (index % every === 0 || index === total - 1) {
        intermediates.x_inter.push(img);
        intermediates.pred_x0.push(fin.predX0);
      }
    }
    return { samples: img, intermediates };
  });
};
