// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models", Algorithm 2): a multistep second-order solver of the diffusion ODE in
// its data-prediction form, stepping in log-SNR time lambda_t = log(alpha_t / sigma_t), with
// alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t) of the discrete (VP) schedule.
// Timesteps are integers on the model's grid from T-1 down to 0, uniform in lambda ("logSNR",
// the default: time-uniform steps leave one huge lambda jump at the end of the discrete grid) or
// uniform in t ("time_uniform", the choice of the Stable Diffusion integration). Classifier-free
// guidance through guidance.ts; eps, x0 and v models are turned into data predictions x_theta.
// The `dpm-solver++` row of the sampler table.
// What it is not: no singlestep / 3rd-order variants, no SDE variant.

import { ConfigError, Generator, defaultGenerator } from '../../util/index.ts';
import { Tensor, add, clamp, div, mul, noGrad, randn, sub } from '../../tensor/index.ts';
import { fullT, type GaussianDiffusion } from '../gaussian.ts';
import { cfgDenoiser } from '../guidance.ts';
import type { Denoiser } from '../types.ts';
import { epsParameterization } from './ddim.ts';
import type { SampleOptions, Sampler, SamplerIntermediates, SamplerResult } from './types.ts';

/** DPM-Solver's own settings beyond SampleOptions (the table row uses the defaults). */
export interface DpmSolverSettings {
  /** 1 (= DDIM in data prediction) or 2 (default) */
  order?: 1 | 2;
  /** time grid: 'logSNR' (default; uniform in lambda, far more accurate on the discrete grid near t = 0) or 'time_uniform' */
  skipType?: 'time_uniform' | 'logSNR';
  /** take the last step first-order when steps < 15 (default true, as the DPM-Solver code) */
  lowerOrderFinal?: boolean;
  /** finish with x = x_theta(x, t_M) (default false) */
  denoiseToZero?: boolean;
}

/** Integer timesteps t_0 > t_1 > ... > t_M on [0, T-1]. */
export function dpmSolverTimesteps(alphasCumprod: ArrayLike<number>, steps: number, skipType: 'time_uniform' | 'logSNR' = 'logSNR'): number[] {
  const T = alphasCumprod.length;
  if (!Number.isInteger(steps) || steps < 1 || steps > T - 1) {
    throw new ConfigError(`dpm-solver: steps must be an integer in [1, ${T - 1}], got ${steps}`);
  }
  const lam = (t: number): number => {
    const a = alphasCumprod[t]!;
    return 0.5 * Math.log(a) - 0.5 * Math.log(1 - a);
  };
  const ts: number[] = [];
  if (skipType === 'time_uniform') {
    for (let i = 0; i <= steps; i++) ts.push(Math.round((T - 1) * (1 - i / steps)));
  } else {
    // uniform in lambda between lambda(T-1) and lambda(0): the grid index nearest each target,
    // kept strictly decreasing (lambda is monotone in t), ending at 0
    const l0 = lam(T - 1), l1 = lam(0);
    let j = T - 1;
    for (let i = 0; i <= steps; i++) {
      const target = l0 + ((l1 - l0) * i) / steps;
      while (j > 0 && lam(j - 1) <= target) j--;
      if (j > 0 && Math.abs(lam(j - 1) - target) < Math.abs(lam(j) - target)) j--;
      const prev = ts.length ? ts[ts.length - 1]! : T;
      ts.push(Math.max(steps - i, Math.min(j, prev - 1)));
    }
  }
  for (let i = 1; i < ts.length; i++) {
    if (ts[i]! >= ts[i - 1]!) throw new ConfigError(`dpm-solver: ${steps} steps do not give distinct timesteps on a ${T}-step grid`);
  }
  return ts;
}

/**
 * DPM-Solver++(2M), Lu et al. Algorithm 2 (t_0 = T-1 ... t_M = 0):
 *  1. x~_{t_0} = x_T; D_0 = x_theta(x~_{t_0}, t_0)
 *  2. h_1 = lambda_{t_1} - lambda_{t_0};
 *     x~_{t_1} = (sigma_{t_1}/sigma_{t_0}) x~_{t_0} - alpha_{t_1} (e^{-h_1} - 1) D_0
 *  3. for i = 2..M: h_i = lambda_{t_i} - lambda_{t_{i-1}}, r_i = h_{i-1}/h_i,
 *     D_i = (1 + 1/(2 r_i)) x_theta(x~_{t_{i-1}}) - (1/(2 r_i)) x_theta(x~_{t_{i-2}}),
 *     x~_{t_i} = (sigma_{t_i}/sigma_{t_{i-1}}) x~_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i
 *     (first order, D_i = x_theta(x~_{t_{i-1}}), at the last step when lowerOrderFinal and M < 15)
 *  4. optionally x = x_theta(x~_{t_M}, t_M).
 */
export const dpmSolver: Sampler = (denoiser, diffusion, opts) => dpmSolverSample(denoiser, diffusion, opts);

/** The `dpm-solver++` row with DPM-Solver's own settings. */
export function dpmSolverSample(denoiser: Denoiser, diffusion: GaussianDiffusion, opts: SampleOptions & DpmSolverSettings): SamplerResult {
  return noGrad(() => {
    if (opts.mask || opts.x0) throw new ConfigError('dpm-solver++: inpainting masks are not supported (use ddim or ddpm)');
    if (opts.tStart !== undefined) throw new ConfigError('dpm-solver++: tStart (img2img) is not supported (use ddim or ddpm)');
    if (opts.noises) throw new ConfigError('dpm-solver++: draws no noise; leave out noises');
    const ac = diffusion.alphasCumprod;
    const gen = opts.gen ?? defaultGenerator;
    const order = opts.order ?? 2;
    const param = epsParameterization('dpm-solver++', diffusion);
    const every = opts.logEvery ?? 1;
    const guided = cfgDenoiser(denoiser, { uncond: opts.uncond, scale: opts.guidance ?? 1 });
    const M = opts.steps ?? 50;
    const ts = dpmSolverTimesteps(ac, M, opts.skipType ?? 'logSNR');
    const alpha = (t: number): number => Math.sqrt(ac[t]!);
    const sigma = (t: number): number => Math.sqrt(1 - ac[t]!);
    const lambda = (t: number): number => Math.log(alpha(t)) - Math.log(sigma(t));
    let x = opts.xT ?? randn(opts.shape, gen);
    const B = x.shape[0]!;
    const intermediates: SamplerIntermediates = { x_inter: [x], pred_x0: [x] };

    // data prediction x_theta(x, t) from the model output
    const dataPred = (xx: Tensor, t: number): Tensor => {
      const out = guided(xx, fullT(B, t), opts.cond);
      const a = alpha(t), s = sigma(t);
      let x0: Tensor;
      if (param === 'eps') x0 = div(sub(xx, mul(out, s)), a);
      else if (param === 'v') x0 = sub(mul(xx, a), mul(out, s));
      else x0 = out;
      return opts.clipDenoised ? clamp(x0, -1, 1) : x0;
    };

    let prevD: Tensor | null = null; // x_theta at t_{i-2}
    let prevH = 0;
    let D = dataPred(x, ts[0]!); // 1.
    for (let i = 1; i <= M; i++) {
      const tPrev = ts[i - 1]!, t = ts[i]!;
      const h = lambda(t) - lambda(tPrev);
      const firstOrder = order === 1 || prevD === null || ((opts.lowerOrderFinal ?? true) && i === M && M < 15);
      let Di = D;
      if (!firstOrder && prevD) {
        const r = prevH / h; // 3.
        Di = sub(mul(D, 1 + 1 / (2 * r)), mul(prevD, 1 / (2 * r)));
      }
      // 2./3. x~_{t_i} = (sigma_i/sigma_{i-1}) x~_{i-1} - alpha_i (e^{-h} - 1) D_i
      x = sub(mul(x, sigma(t) / sigma(tPrev)), mul(Di, alpha(t) * Math.expm1(-h)));
      const predX0 = D;
      if (i < M || opts.denoiseToZero) {
        prevD = D;
        prevH = h;
        D = dataPred(x, t);
      }
      opts.onStep?.({ i: i - 1, total: M, t, x, predX0 });
      if ((M - i) % every === 0 || i === 1) {
        intermediates.x_inter.push(x);
        intermediates.pred_x0.push(predX0);
      }
    }
    if (opts.denoiseToZero) x = D; // 4.
    return { samples: x, intermediates };
  });
}
