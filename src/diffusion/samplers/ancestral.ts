// Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) as a function of a Denoiser callback:
//  1. x_T ~ N(0, I);
//  2. for t = T-1 .. 0: z ~ N(0, I) if t > 0 else 0;
//     x_{t-1} = mu_theta(x_t, t) + sigma_t z   (GaussianDiffusion.pSample: mean from the x0
//     estimate through the posterior q(x_{t-1}|x_t, x0), sigma_t^2 fixed or learned);
//  3. return x_0, with x_t logged every `logEveryT` steps (LDM `p_sample_loop`).
// Classifier-free guidance wraps the denoiser (guidance.ts). The step math lives in gaussian.ts.

import type { Tensor } from '../../tensor/index.ts';
import type { GaussianDiffusion, PSampleLoopOptions } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import type { Cond, Denoiser } from '../types.ts';
import type { SamplerResult } from './ddim.ts';

export interface AncestralOptions extends PSampleLoopOptions {
  uncond?: Cond;
  guidanceScale?: number;
  /** log the x0 estimates instead of x_t (LDM `progressive_denoising`) */
  progressive?: boolean;
}

export function ancestralSample(denoiser: Denoiser, diffusion: GaussianDiffusion, shape: readonly number[],
  opts: AncestralOptions = {}): SamplerResult {
  const guided = cfgDenoiser(denoiser, { uncond: opts.uncond, scale: opts.guidanceScale ?? 1 });
  const T = Math.min(diffusion.numTimesteps, opts.startT ?? diffusion.numTimesteps);
  const every = opts.logEveryT ?? 100;
  const preds: Tensor[] = [];
  const user = opts.callback;
  const loopOpts: PSampleLoopOptions = {
    ...opts,
    callback: (img, x0, t) => {
      if (t % every === 0 || t === T - 1) preds.push(x0); // the steps p_sample_loop logs
      user?.(img, x0, t);
    },
  };
  if (opts.progressive) {
    const r = diffusion.progressiveDenoising(guided, shape, loopOpts);
    return { samples: r.sample, intermediates: { x_inter: [], pred_x0: r.intermediates } };
  }
  const r = diffusion.pSampleLoop(guided, shape, loopOpts);
  return { samples: r.sample, intermediates: { x_inter: r.intermediates, pred_x0: [r.intermediates[0]!, ...preds] } };
}
