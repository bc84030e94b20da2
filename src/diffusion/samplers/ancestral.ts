// Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), the `ddpm` row of the sampler table:
//  1. x_T ~ N(0, I) (or the given xT; img2img: the image noised to step tStart);
//  2. for t = T-1 .. 0: z ~ N(0, I) (none at t = 0 where the schedule says so);
//     x_{t-1} = mu_theta(x_t, t) + sigma_t z   (GaussianDiffusion.pSample: mean from the x0
//     estimate through the posterior q(x_{t-1}|x_t, x0), sigma_t^2 fixed or learned);
//     inpainting: x_{t-1} = q_sample(x0, t) mask + (1 - mask) x_{t-1};
//  3. return x_0, with x_t logged every `logEvery` timesteps (LDM `p_sample_loop`).
// Classifier-free guidance wraps the denoiser (guidance.ts). The step math lives in gaussian.ts.

import { ConfigError, defined } from '../../util/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import type { PSampleLoopOptions } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import type { Sampler } from './types.ts';

export const ancestral: Sampler = (denoiser, diffusion, o) => {
  const guided = cfgDenoiser(denoiser, { uncond: o.uncond, scale: o.guidance ?? 1 });
  if (o.tStart !== undefined && (!Number.isInteger(o.tStart) || o.tStart < 1 || o.tStart > diffusion.numTimesteps)) {
    throw new ConfigError(`ddpm sampler: tStart must be an integer in [1, ${diffusion.numTimesteps}], got ${o.tStart}`);
  }
  const T = o.tStart ?? diffusion.numTimesteps;
  const every = o.logEvery ?? 100;
  const preds: Tensor[] = [];
  const loopOpts: PSampleLoopOptions = {
    ...defined({ cond: o.cond, xT: o.xT, gen: o.gen, noises: o.noises, mask: o.mask, x0: o.x0, temperature: o.temperature }),
    startT: T, logEveryT: every, clipDenoised: o.clipDenoised ?? diffusion.clipDenoised,
    callback: (img, x0, t) => {
      if (t % every === 0 || t === T - 1) preds.push(x0); // the steps p_sample_loop logs
      o.onStep?.({ i: T - 1 - t, total: T, t, x: img, predX0: x0 });
    },
  };
  if (o.progressive) {
    const r = diffusion.progressiveDenoising(guided, o.shape, loopOpts);
    return { samples: r.sample, intermediates: { x_inter: [], pred_x0: r.intermediates } };
  }
  const r = diffusion.pSampleLoop(guided, o.shape, loopOpts);
  return { samples: r.sample, intermediates: { x_inter: r.intermediates, pred_x0: [r.intermediates[0]!, ...preds] } };
};
