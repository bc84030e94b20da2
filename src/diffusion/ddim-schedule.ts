// DDIM discretisations (Song et al. 2021) as the official codes compute them: LDM
// `make_ddim_timesteps` / `make_ddim_sampling_parameters` / `DDIMSampler.make_schedule`, and
// lucidrains `ddim_sample` (its times and per-step scalars) in the same DdimPlan form (float32
// steps emulated with Math.fround). Pure numbers; the sampler itself is samplers/ddim.ts.

import { ConfigError } from '../util/index.ts';
import { checkT, f32, mapN, numpyLinspace, torchLinspace } from './float-emulation.ts';

// ---- DDIM (Song et al. 2021), LDM util.py / ddim.py ---------------------------------------------

export type DdimDiscretize = 'uniform' | 'quad';

/**
 * LDM `make_ddim_timesteps`:
 *  - 'uniform': c = T // S; range(0, T, c)  -- may hold MORE than S entries when S does not
 *    divide T (the official length assert is commented out): T=1000, S=30 gives 31;
 *  - 'quad': (np.linspace(0, sqrt(T*.8), S) ** 2).astype(int)  (truncation);
 *  then + 1 ("to get the final alpha values right"): uniform S=10 gives 1, 101, ..., 901.
 */
export function makeDdimTimesteps(method: DdimDiscretize, S: number, T = 1000): Int32Array {
  checkT('makeDdimTimesteps', T);
  if (!Number.isInteger(S) || S < 1) {
    throw new ConfigError(`makeDdimTimesteps: ddim_num_steps must be a positive integer, got ${S}`);
  }
  let steps: number[];
  if (method === 'uniform') {
    const c = Math.floor(T / S);
    if (c === 0) {
      throw new ConfigError(`makeDdimTimesteps: ddim_num_steps ${S} exceeds the ${T} DDPM timesteps (T // S is 0)`);
    }
    steps = [];
    for (let t = 0; t < T; t += c) steps.push(t);
  } else if (method === 'quad') {
    steps = Array.from(numpyLinspace(0, Math.sqrt(T * 0.8), S), (x) => Math.trunc(x * x));
  } else {
    throw new ConfigError(
      `makeDdimTimesteps: there is no ddim discretization method called '${String(method)}' (expected uniform or quad)`,
    );
  }
  return Int32Array.from(steps, (t) => t + 1);
}

export interface DdimSamplingParameters {
  /** float64 (numpy / float64 torch arithmetic on float32 inputs). */
  ddim_sigmas: Float64Array;
  /** float32 values (a float32 tensor in the official). */
  ddim_alphas: Float64Array;
  /** float64 array of float32 values. */
  ddim_alphas_prev: Float64Array;
}

/**
 * LDM `make_ddim_sampling_parameters(alphacums, ddim_timesteps, eta)`; alphacums is the model's
 * FLOAT32 `alphas_cumprod` buffer (inputs are rounded to float32 here, as the official reads them):
 *  1. alphas = alphacums[timesteps]  (float32)
 *  2. alphas_prev = [alphacums[0]] + alphacums[timesteps[:-1]]  (float64; first entry is
 *     alphacums[0], NOT 1)
 *  3. sigmas = eta * sqrt((1 - a_prev)/(1 - a) * (1 - a/a_prev))  (DDIM eq. 16). Mixed types:
 *     `ndarray / tensor` runs torch's `__rtruediv__`, i.e. `(1 - a).reciprocal() * (1 - a_prev)`,
 *     so 1 - a AND its reciprocal are float32; everything else is float64.
 */
export function makeDdimSamplingParameters(
  alphasCumprod: ArrayLike<number>,
  timesteps: ArrayLike<number>,
  eta: number,
): DdimSamplingParameters {
  const T = alphasCumprod.length;
  const n = timesteps.length;
  if (n === 0) throw new ConfigError('makeDdimSamplingParameters: ddim_timesteps is empty');
  const at = (t: number): number => {
    if (!Number.isInteger(t) || t < 0 || t >= T) {
      throw new ConfigError(`makeDdimSamplingParameters: DDIM timestep ${t} is outside alphas_cumprod (length ${T})`);
    }
    return f32(alphasCumprod[t]!);
  };
  const ddim_alphas = mapN(n, (i) => at(timesteps[i]!));
  const ddim_alphas_prev = mapN(n, (i) => (i === 0 ? at(0) : at(timesteps[i - 1]!)));
  const ddim_sigmas = mapN(n, (i) => {
    const a = ddim_alphas[i]!;
    const ap = ddim_alphas_prev[i]!;
    return eta * Math.sqrt((1 - ap) * f32(1 / f32(1 - a)) * (1 - a / ap));
  });
  return { ddim_sigmas, ddim_alphas, ddim_alphas_prev };
}

export interface DdimSchedule extends DdimSamplingParameters {
  ddim_timesteps: Int32Array;
  /** sqrt(1 - ddim_alphas), float32. */
  ddim_sqrt_one_minus_alphas: Float64Array;
  /** eta * sqrt((1 - abar_prev)/(1 - abar) * (1 - abar/abar_prev)) over all T steps, float32. */
  ddim_sigmas_for_original_num_steps: Float64Array;
}

export interface DdimScheduleOptions {
  ddimNumSteps: number;
  /** Default 'uniform'. */
  ddimDiscretize?: DdimDiscretize;
  /** Default 0. */
  ddimEta?: number;
}

/**
 * LDM `DDIMSampler.make_schedule` for a model's (float32) `alphas_cumprod` and
 * `alphas_cumprod_prev` buffers; T = alphas_cumprod.length (the model's num_timesteps):
 *  1. ddim_timesteps = make_ddim_timesteps(discretize, S, T)
 *  2. sigmas, alphas, alphas_prev = make_ddim_sampling_parameters(alphas_cumprod, ddim_timesteps, eta)
 *  3. ddim_sqrt_one_minus_alphas = np.sqrt(1. - ddim_alphas)  (float32)
 *  4. ddim_sigmas_for_original_num_steps = eta * sqrt((1 - acp)/(1 - ac) * (1 - ac/acp)), float32 torch.
 */
export function makeDdimSchedule(
  model: { alphas_cumprod: ArrayLike<number>; alphas_cumprod_prev: ArrayLike<number> },
  opts: DdimScheduleOptions,
): DdimSchedule {
  const ac = model.alphas_cumprod;
  const acp = model.alphas_cumprod_prev;
  const T = ac.length;
  if (acp.length !== T) {
    throw new ConfigError(`makeDdimSchedule: alphas_cumprod_prev has ${acp.length} entries, alphas_cumprod ${T}`);
  }
  const eta = opts.ddimEta ?? 0;
  const ddim_timesteps = makeDdimTimesteps(opts.ddimDiscretize ?? 'uniform', opts.ddimNumSteps, T);
  const p = makeDdimSamplingParameters(ac, ddim_timesteps, eta);
  const ddim_sqrt_one_minus_alphas = p.ddim_alphas.map((a) => f32(Math.sqrt(f32(1 - a))));
  const etaF = f32(eta);
  const ddim_sigmas_for_original_num_steps = mapN(T, (i) => {
    const a = f32(ac[i]!);
    const ap = f32(acp[i]!);
    const q = f32(f32(1 - ap) / f32(1 - a));
    const w = f32(1 - f32(a / ap));
    return f32(etaF * f32(Math.sqrt(f32(q * w))));
  });
  return { ddim_timesteps, ...p, ddim_sqrt_one_minus_alphas, ddim_sigmas_for_original_num_steps };
}

/** The DDIM steps a sampler walks: LDM's schedule, plus how the last step ends. */
export interface DdimPlan extends DdimSchedule {
  /** The last step returns the x0 estimate itself and draws no noise (lucidrains `ddim_sample`,
   *  whose final `time_next` is -1); LDM steps to alphas_cumprod[0] instead (absent = false). */
  finalToX0?: boolean;
}

// ---- lucidrains denoising-diffusion-pytorch `ddim_sample` ----------------------------------------

/**
 * lucidrains `ddim_sample` times: `reversed(torch.linspace(-1, T-1, S+1).int())` -- a FLOAT32
 * linspace truncated toward zero (T=1000, S=3: [999, 665, 332, -1]). Pairs (time, time_next) are
 * consecutive entries; time_next = -1 ends the chain (the step returns x_start).
 */
export function lucidrainsDdimTimes(T: number, S: number): Int32Array {
  checkT('lucidrainsDdimTimes', T);
  if (!Number.isInteger(S) || S < 1 || S > T) {
    throw new ConfigError(`lucidrainsDdimTimes: sampling_timesteps must be an integer in [1, ${T}], got ${S}`);
  }
  const l = torchLinspace(-1, T - 1, S + 1, 'float32');
  const out = new Int32Array(S + 1);
  for (let i = 0; i <= S; i++) out[i] = Math.trunc(l[S - i]!);
  return out;
}

/**
 * lucidrains `ddim_sample` as a DdimPlan over the FLOAT32 alphas_cumprod buffer. Pair i of
 * lucidrainsDdimTimes, (time, time_next), is plan index S-1-i:
 *  a = alphas_cumprod[time], a_next = alphas_cumprod[time_next] (1 at time_next = -1);
 *  sigma = eta sqrt((1 - a/a_next)(1 - a_next)/(1 - a)) in float32 0-d tensor arithmetic;
 *  the last pair returns x_start (finalToX0).
 */
export function lucidrainsDdimPlan(alphasCumprod: ArrayLike<number>, S: number, eta: number): DdimPlan {
  const times = lucidrainsDdimTimes(alphasCumprod.length, S);
  const ac = (t: number): number => f32(alphasCumprod[t]!);
  const ddim_timesteps = new Int32Array(S);
  const ddim_alphas = new Float64Array(S), ddim_alphas_prev = new Float64Array(S), ddim_sigmas = new Float64Array(S);
  for (let i = 0; i < S; i++) {
    const time = times[i]!, next = times[i + 1]!, index = S - 1 - i;
    const a = ac(time), an = next < 0 ? 1 : ac(next);
    ddim_timesteps[index] = time;
    ddim_alphas[index] = a;
    ddim_alphas_prev[index] = an;
    ddim_sigmas[index] = next < 0 ? 0 : f32(eta * f32(Math.sqrt(f32(f32(f32(1 - f32(a / an)) * f32(1 - an)) / f32(1 - a)))));
  }
  return {
    ddim_timesteps, ddim_alphas, ddim_alphas_prev, ddim_sigmas,
    ddim_sqrt_one_minus_alphas: ddim_alphas.map((a) => f32(Math.sqrt(f32(1 - a)))),
    ddim_sigmas_for_original_num_steps: new Float64Array(0), // an LDM attribute; lucidrains has none
    finalToX0: true,
  };
}
