// Image-to-image starts (SDEdit, Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with
// Stochastic Differential Equations") for the rows of the sampler table: the known image x0 is
// noised to the step `strength` of the way through the sampler's own schedule, and the row runs
// the remaining tStart steps from there (SampleOptions.xT / tStart):
//   ddpm          tStart = round(strength T), xT = q_sample(x0, tStart - 1);
//   ddim          tStart = max(1, int(strength S)) (the official img2img `t_enc`), xT = q_sample(x0, t)
//                 at the first DDIM timestep it evaluates, ddim_timesteps[tStart - 1];
//   k-samplers    tStart = round(strength S), sigma = sigmas[S - tStart],
//                 xT = sqrt(abar) x0 + sqrt(1 - abar) n with abar = 1 / (1 + sigma^2).
// plms and dpm-solver++ have no partial start and refuse. What it is not: no image I/O.

import { ConfigError } from '../../util/index.ts';
import { Tensor, add, mul } from '../../tensor/index.ts';
import { fullT, type GaussianDiffusion } from '../gaussian.ts';
import { qSampleFromAlphas } from './ddim.ts';
import { isKSampler, kStartSigma } from './k-sample.ts';
import type { SampleOptions } from './types.ts';

export interface Img2ImgStart {
  /** x0 noised to the starting step (VP form). [B, C, H, W] */
  xT: Tensor;
  /** steps to run */
  tStart: number;
}

/** The start of image-to-image for `sampler` at `strength` in (0, 1]; noise [B, C, H, W] unit normal. */
export function img2imgStart(sampler: string, diffusion: GaussianDiffusion, o: Pick<SampleOptions, 'steps' | 'eta' | 'discretize' | 'scheduler' | 'sigmaMin' | 'sigmaMax' | 'rho'>,
  x0: Tensor, strength: number, noise: Tensor): Img2ImgStart {
  if (!(strength > 0 && strength <= 1)) throw new ConfigError(`--strength must be in (0, 1], got ${strength}`);
  const B = x0.shape[0]!;
  const steps = o.steps ?? 50;
  if (sampler === 'ddpm') {
    const tStart = Math.max(1, Math.round(strength * diffusion.numTimesteps));
    return { xT: diffusion.qSample(x0, fullT(B, tStart - 1), noise), tStart };
  }
  if (sampler === 'ddim') {
    const plan = diffusion.ddimSchedule(steps, o.eta ?? 0, o.discretize ?? 'uniform');
    const S = plan.ddim_timesteps.length;
    const tStart = Math.max(1, Math.min(S, Math.trunc(strength * S)));
    return { xT: qSampleFromAlphas(diffusion.alphasCumprod, x0, plan.ddim_timesteps[tStart - 1]!, noise), tStart };
  }
  if (isKSampler(sampler)) {
    const tStart = Math.max(1, Math.min(steps, Math.round(strength * steps)));
    const sigma = kStartSigma(diffusion, steps, tStart, o);
    const abar = 1 / (1 + sigma * sigma);
    return { xT: add(mul(x0, Math.sqrt(abar)), mul(noise, Math.sqrt(1 - abar))), tStart };
  }
  throw new ConfigError(`image-to-image: sampler '${sampler}' has no partial start; use ddim, ddpm or a k-diffusion sampler (euler, dpmpp_2m, ...)`);
}
