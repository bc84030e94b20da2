// The sampler table: name -> sampler, every row with the one signature of types.ts
//   (denoiser: Denoiser, schedule: GaussianDiffusion, opts: SampleOptions) => SamplerResult.
// Models, train/ and the CLI look samplers up here by name; nothing else switches on a name.
//
// Adding a sampler (e.g. a k-diffusion one) is one file plus one row:
//  1. write `samplers/<name>.ts` exporting `export const <name>: Sampler = (denoiser, schedule, o) => ...`
//     (cite the paper, number the steps). What the schedule offers:
//       schedule.alphasCumprod [T] float32   -> k-diffusion sigmas: sigma_t = sqrt((1 - abar_t) / abar_t),
//                                               and back to a timestep for the denoiser (CompVisDenoiser
//                                               `sigma_to_t`); the denoiser input is x / sqrt(sigma^2 + 1)
//       schedule.parameterization            -> turn the denoiser output into eps / x0 (`epsParameterization`)
//       schedule.pSample / qSample / ...      -> the Gaussian step math (gaussian.ts)
//       schedule.ddimSchedule(S, eta, disc)  -> DDIM steps in the model's own discretisation
//     and from the options: guidance through `cfgDenoiser(denoiser, { uncond, scale: guidance })`;
//     randomness from `o.noises[i]` else `o.gen` (`stepNoise` in ddim.ts); inpainting: re-impose
//     q_sample(x0, t) where mask == 1 before each model call (as ddim.ts does); img2img: start from
//     o.xT and run the last o.tStart steps; report each step through o.onStep. Throw a ConfigError
//     naming the option for anything the sampler cannot honour (see dpm-solver.ts).
//  2. add the row below; `SamplerName`, `getSampler`, the CLI's --sampler choices and the config
//     check follow from the table.
//  3. a test in test/diffusion/samplers.test.ts (the analytic point-mass denoiser lands on x*).

import { ConfigError, closest } from '../../util/index.ts';
import { ancestral } from './ancestral.ts';
import { ddim } from './ddim.ts';
import { dpmSolver } from './dpm-solver.ts';
import { plms } from './plms.ts';
import type { Sampler } from './types.ts';
import { kRow } from './k-sample.ts';

export const SAMPLERS = {
  ddpm: ancestral,
  ddim,
  plms,
  'dpm-solver++': dpmSolver,
  // k-diffusion (Karras et al. 2022 over the model's CompVisDenoiser sigmas; k-sample.ts) and UniPC
  euler: kRow('euler'),
  euler_a: kRow('euler_a'),
  heun: kRow('heun'),
  dpm2: kRow('dpm2'),
  dpmpp_2s_a: kRow('dpmpp_2s_a'),
  dpmpp_2m: kRow('dpmpp_2m'),
  dpmpp_2m_sde: kRow('dpmpp_2m_sde'),
  dpmpp_3m_sde: kRow('dpmpp_3m_sde'),
  lms: kRow('lms'),
  unipc: kRow('unipc'),
} as const satisfies Record<string, Sampler>;

export type SamplerName = keyof typeof SAMPLERS;

export const SAMPLER_NAMES = Object.keys(SAMPLERS) as SamplerName[];

export function isSamplerName(name: string): name is SamplerName {
  return Object.hasOwn(SAMPLERS, name);
}

/** The sampler of that name, or a ConfigError listing the table (with the closest name). */
export function getSampler(name: string): Sampler {
  if (isSamplerName(name)) return SAMPLERS[name];
  const s = closest(name, SAMPLER_NAMES);
  throw new ConfigError(`unknown sampler '${name}'${s ? ` (did you mean '${s}'?)` : ''}; samplers: ${SAMPLER_NAMES.join(', ')}`);
}

export * from './types.ts';
export { ancestral } from './ancestral.ts';
export { ddim, ddimLoop, ddimEpsAndX0, ddimStepScalars, ddimUpdate, epsParameterization, qSampleFromAlphas, stepNoise, type DdimStepScalars } from './ddim.ts';
export { plms } from './plms.ts';
export { dpmSolver, dpmSolverSample, dpmSolverTimesteps, type DpmSolverSettings } from './dpm-solver.ts';
export * from './k-diffusion.ts';
export * from './unipc.ts';
export * from './k-sample.ts';
export * from './img2img.ts';
