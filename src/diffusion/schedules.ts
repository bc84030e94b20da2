// Noise-schedule mathematics of the three reference codes, as plain numbers: beta schedules,
// the registered schedule buffers (LDM `DDPM.register_schedule`, lucidrains
// `GaussianDiffusion.__init__`, pytorch-ddpm `GaussianDiffusionTrainer/Sampler.__init__`), and
// the DDIM discretisations (LDM `make_ddim_timesteps` / `make_ddim_sampling_parameters` /
// `DDIMSampler.make_schedule`, lucidrains `ddim_sample` times).
//
// What it is: pure float64 arithmetic on Float64Array that reproduces the official numbers,
// including their float32 steps (emulated with Math.fround at every operation that torch runs in
// float32) and torch's own linspace kernel. Buffer names are the official ones, verbatim
// (snake_case), because they are state_dict keys.
// What it is not: no tensors, no sampling, no losses (the samplers and DDPM classes of diffusion/
// consume these arrays), and no file I/O.
//
// Precision contract: every buffer is returned at float64 precision, as the official code
// computes it BEFORE its cast to float32 (use `asFloat32` for the stored float32 values). The
// exceptions are values the official code itself computes from float32 data; those are
// float32-valued Float64Arrays: LDM `lvlb_weights`, DDIM `ddim_alphas`,
// `ddim_sqrt_one_minus_alphas`, `ddim_sigmas_for_original_num_steps`, and the float32-derived
// inputs of `ddim_alphas_prev` / `ddim_sigmas` (float64 arithmetic on float32 values).

import { ConfigError } from '../util/index.ts';

import { checkT, clip, f32, mapN, torchLinspace } from './float-emulation.ts';

export { fmaRound, numpyLinspace, torchLinspace } from './float-emulation.ts';
export * from './ddim-schedule.ts';

// ---- Beta schedules -----------------------------------------------------------------------------

export type LdmBetaScheduleKind = 'linear' | 'cosine' | 'sqrt_linear' | 'sqrt';

/**
 * LDM `make_beta_schedule` (ldm/modules/diffusionmodules/util.py), float64 throughout:
 *  - 'linear': torch.linspace(sqrt(start), sqrt(end), T, float64) ** 2  (NOT linspace(start, end));
 *  - 'cosine' (improved DDPM, Nichol & Dhariwal 2021, eq. 17): t_i = i/T + s for i = 0..T,
 *    f_i = cos(t_i / (1+s) * pi / 2)^2, abar_i = f_i / f_0, beta_i = 1 - abar_{i+1}/abar_i,
 *    np.clip to [0, 0.999];
 *  - 'sqrt_linear': torch.linspace(start, end, T, float64) (the plain linear schedule);
 *  - 'sqrt': torch.linspace(start, end, T, float64) ** 0.5.
 */
export function makeBetaSchedule(
  kind: LdmBetaScheduleKind,
  T: number,
  linearStart = 1e-4,
  linearEnd = 2e-2,
  cosineS = 8e-3,
): Float64Array {
  checkT('makeBetaSchedule', T);
  switch (kind) {
    case 'linear': {
      const l = torchLinspace(Math.sqrt(linearStart), Math.sqrt(linearEnd), T, 'float64');
      return l.map((x) => x * x);
    }
    case 'cosine': {
      // 1. timesteps = arange(T+1)/T + s   2. alphas = cos(timesteps/(1+s)*pi/2)^2
      const f = new Float64Array(T + 1);
      for (let i = 0; i <= T; i++) {
        const c = Math.cos((((i / T + cosineS) / (1 + cosineS)) * Math.PI) / 2);
        f[i] = c * c;
      }
      // 3. normalise by f_0   4. betas = 1 - abar[1:]/abar[:-1], clipped
      const f0 = f[0]!;
      for (let i = 0; i <= T; i++) f[i] = f[i]! / f0;
      const betas = new Float64Array(T);
      for (let i = 0; i < T; i++) betas[i] = clip(1 - f[i + 1]! / f[i]!, 0, 0.999);
      return betas;
    }
    case 'sqrt_linear':
      return torchLinspace(linearStart, linearEnd, T, 'float64');
    case 'sqrt':
      return torchLinspace(linearStart, linearEnd, T, 'float64').map(Math.sqrt);
    default:
      throw new ConfigError(
        `makeBetaSchedule: schedule '${String(kind)}' unknown (expected linear, cosine, sqrt_linear or sqrt)`,
      );
  }
}

/**
 * lucidrains `linear_beta_schedule` (Ho et al. 2020 linear schedule rescaled to T):
 * scale = 1000/T; torch.linspace(scale*1e-4, scale*0.02, T, float64).
 */
export function linearBetaSchedule(T: number): Float64Array {
  checkT('linearBetaSchedule', T);
  const scale = 1000 / T;
  return torchLinspace(scale * 0.0001, scale * 0.02, T, 'float64');
}

/** t = torch.linspace(0, T, T+1, float64) / T, shared by the lucidrains cosine and sigmoid schedules. */
function unitTimes(T: number): Float64Array {
  return torchLinspace(0, T, T + 1, 'float64').map((x) => x / T);
}

/** 1 - abar[1:]/abar[:-1] after normalising abar by abar[0], clipped to [0, 0.999]. */
function betasFromAlphaBar(ac: Float64Array): Float64Array {
  const a0 = ac[0]!;
  const norm = ac.map((x) => x / a0);
  const n = ac.length - 1;
  const betas = new Float64Array(n);
  for (let i = 0; i < n; i++) betas[i] = clip(1 - norm[i + 1]! / norm[i]!, 0, 0.999);
  return betas;
}

/**
 * lucidrains `cosine_beta_schedule(T, s=0.008)` (improved DDPM eq. 17), float64:
 *  1. t = linspace(0, T, T+1)/T;  2. abar = cos((t + s)/(1 + s) * pi * 0.5)^2;
 *  3. abar /= abar[0];  4. beta = 1 - abar[1:]/abar[:-1], torch.clip to [0, 0.999].
 */
export function cosineBetaSchedule(T: number, s = 0.008): Float64Array {
  checkT('cosineBetaSchedule', T);
  const t = unitTimes(T);
  const ac = t.map((x) => {
    const c = Math.cos((((x + s) / (1 + s)) * Math.PI) * 0.5);
    return c * c;
  });
  return betasFromAlphaBar(ac);
}

/** torch.tensor(x).sigmoid() on a 0-d FLOAT32 tensor: 1/(1 + exp(-x)) in float32 (scalar kernel). */
function sigmoidF32(x: number): number {
  const xf = f32(x);
  return f32(1 / f32(1 + f32(Math.exp(-xf))));
}

/**
 * lucidrains `sigmoid_beta_schedule(T, start=-3, end=3, tau=1)` (Jabri et al. 2022, fig. 8):
 *  1. t = linspace(0, T, T+1, float64)/T;
 *  2. v_start = sigmoid(start/tau), v_end = sigmoid(end/tau) -- quirk: `torch.tensor(python
 *     float)` is FLOAT32, so both are float32 values, and (v_end - v_start) is a float32 difference;
 *  3. abar = (-sigmoid((t*(end-start) + start)/tau) + v_end) / (v_end - v_start)  (float64);
 *  4. abar /= abar[0]; beta = 1 - abar[1:]/abar[:-1], clipped to [0, 0.999].
 */
export function sigmoidBetaSchedule(T: number, start = -3, end = 3, tau = 1): Float64Array {
  checkT('sigmoidBetaSchedule', T);
  const t = unitTimes(T);
  const vStart = sigmoidF32(start / tau);
  const vEnd = sigmoidF32(end / tau);
  const denom = f32(vEnd - vStart);
  const ac = t.map((x) => {
    const z = (x * (end - start) + start) / tau;
    return (-(1 / (1 + Math.exp(-z))) + vEnd) / denom;
  });
  return betasFromAlphaBar(ac);
}

export type LucidrainsBetaScheduleKind = 'linear' | 'cosine' | 'sigmoid';

/** lucidrains `beta_schedule` by name with its `schedule_fn_kwargs`. */
export function lucidrainsBetaSchedule(
  kind: LucidrainsBetaScheduleKind,
  T: number,
  kwargs: { s?: number; start?: number; end?: number; tau?: number } = {},
): Float64Array {
  switch (kind) {
    case 'linear':
      return linearBetaSchedule(T);
    case 'cosine':
      return cosineBetaSchedule(T, kwargs.s ?? 0.008);
    case 'sigmoid':
      return sigmoidBetaSchedule(T, kwargs.start ?? -3, kwargs.end ?? 3, kwargs.tau ?? 1);
    default:
      throw new ConfigError(
        `lucidrainsBetaSchedule: unknown beta schedule '${String(kind)}' (expected linear, cosine or sigmoid)`,
      );
  }
}

/**
 * pytorch-ddpm betas: `torch.linspace(beta_1, beta_T, T).double()` -- the linspace runs in
 * FLOAT32 (torch's default dtype) and is only then widened, so every float64 buffer of
 * pytorch-ddpm derives from float32-rounded betas.
 */
export function pddpmBetas(beta1: number, betaT: number, T: number): Float64Array {
  checkT('pddpmBetas', T);
  return torchLinspace(beta1, betaT, T, 'float32');
}

// ---- Shared float64 buffer arithmetic (Ho et al. 2020, eqs. 4, 6, 7) ----------------------------

interface Core {
  alphas: Float64Array;
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
}

/** 1. alpha_t = 1 - beta_t  2. abar_t = prod_{s<=t} alpha_s (sequential)  3. abar_{t-1}, abar_{-1} = 1. */
function core(betas: ArrayLike<number>): Core {
  const T = betas.length;
  const alphas = new Float64Array(T);
  const alphasCumprod = new Float64Array(T);
  const alphasCumprodPrev = new Float64Array(T);
  let acc = 1;
  for (let i = 0; i < T; i++) {
    alphas[i] = 1 - betas[i]!;
    alphasCumprodPrev[i] = acc;
    acc = i === 0 ? alphas[0]! : acc * alphas[i]!;
    alphasCumprod[i] = acc;
  }
  return { alphas, alphasCumprod, alphasCumprodPrev };
}


/** The twelve q(x_t|x_0) / posterior buffers shared (same names, same formulas) by LDM and lucidrains. */
export interface DiffusionBuffers {
  betas: Float64Array;
  alphas_cumprod: Float64Array;
  alphas_cumprod_prev: Float64Array;
  sqrt_alphas_cumprod: Float64Array;
  sqrt_one_minus_alphas_cumprod: Float64Array;
  log_one_minus_alphas_cumprod: Float64Array;
  sqrt_recip_alphas_cumprod: Float64Array;
  sqrt_recipm1_alphas_cumprod: Float64Array;
  posterior_variance: Float64Array;
  posterior_log_variance_clipped: Float64Array;
  posterior_mean_coef1: Float64Array;
  posterior_mean_coef2: Float64Array;
}

/** Persistent buffers (state_dict keys) of LDM DDPM and lucidrains GaussianDiffusion, registration order. */
export const DIFFUSION_BUFFER_KEYS = [
  'betas',
  'alphas_cumprod',
  'alphas_cumprod_prev',
  'sqrt_alphas_cumprod',
  'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod',
  'sqrt_recip_alphas_cumprod',
  'sqrt_recipm1_alphas_cumprod',
  'posterior_variance',
  'posterior_log_variance_clipped',
  'posterior_mean_coef1',
  'posterior_mean_coef2',
] as const satisfies readonly (keyof DiffusionBuffers)[];

/**
 * The shared buffers in float64 (numpy in LDM, float64 torch in lucidrains; same formulas):
 *  1. sqrt(abar), sqrt(1-abar), log(1-abar), sqrt(1/abar), sqrt(1/abar - 1)   (q(x_t|x_0), eq. 4)
 *  2. posterior variance  beta~_t = (1-v) beta_t (1-abar_{t-1})/(1-abar_t) + v beta_t   (eq. 7;
 *     v = v_posterior, LDM only; lucidrains has v = 0)
 *  3. log(max(beta~, 1e-20))  (0 at t = 0, so index 0 is log(1e-20))
 *  4. posterior mean coefficients  beta_t sqrt(abar_{t-1})/(1-abar_t),
 *     (1-abar_{t-1}) sqrt(alpha_t)/(1-abar_t)   (eq. 7)
 */
function sharedBuffers(betasIn: ArrayLike<number>, c: Core, vPosterior: number): DiffusionBuffers {
  const T = betasIn.length;
  const betas = Float64Array.from(betasIn);
  const ac = c.alphasCumprod;
  const acp = c.alphasCumprodPrev;
  const posterior_variance =
    vPosterior === 0
      ? mapN(T, (i) => (betas[i]! * (1 - acp[i]!)) / (1 - ac[i]!))
      : mapN(T, (i) => ((1 - vPosterior) * betas[i]! * (1 - acp[i]!)) / (1 - ac[i]!) + vPosterior * betas[i]!);
  return {
    betas,
    alphas_cumprod: Float64Array.from(ac),
    alphas_cumprod_prev: Float64Array.from(acp),
    sqrt_alphas_cumprod: mapN(T, (i) => Math.sqrt(ac[i]!)),
    sqrt_one_minus_alphas_cumprod: mapN(T, (i) => Math.sqrt(1 - ac[i]!)),
    log_one_minus_alphas_cumprod: mapN(T, (i) => Math.log(1 - ac[i]!)),
    sqrt_recip_alphas_cumprod: mapN(T, (i) => Math.sqrt(1 / ac[i]!)),
    sqrt_recipm1_alphas_cumprod: mapN(T, (i) => Math.sqrt(1 / ac[i]! - 1)),
    posterior_variance,
    posterior_log_variance_clipped: mapN(T, (i) => Math.log(Math.max(posterior_variance[i]!, 1e-20))),
    posterior_mean_coef1: mapN(T, (i) => (betas[i]! * Math.sqrt(acp[i]!)) / (1 - ac[i]!)),
    posterior_mean_coef2: mapN(T, (i) => ((1 - acp[i]!) * Math.sqrt(c.alphas[i]!)) / (1 - ac[i]!)),
  };
}

function checkBetas(fn: string, betas: ArrayLike<number>, minLength: number): void {
  if (betas.length < minLength) {
    throw new ConfigError(`${fn}: betas must hold at least ${minLength} timesteps, got ${betas.length}`);
  }
  for (let i = 0; i < betas.length; i++) {
    const b = betas[i]!;
    if (!(b >= 0 && b <= 1)) throw new ConfigError(`${fn}: betas[${i}] = ${b} is not in [0, 1]`);
  }
}

// ---- LDM DDPM.register_schedule -----------------------------------------------------------------

export type LdmParameterization = 'eps' | 'x0' | 'v';

export interface LdmScheduleOptions {
  /** 'eps' (default), 'x0', or 'v' ('v' is absent from latent-diffusion a506df5: stablediffusion's formula). */
  parameterization?: LdmParameterization;
  /** v_posterior: posterior variance sigma^2 = (1-v) beta~ + v beta (default 0). */
  vPosterior?: number;
}

export interface LdmSchedule extends DiffusionBuffers {
  /** Non-persistent buffer (not a state_dict key); float32 values, as the official computes it. */
  lvlb_weights: Float64Array;
}

/**
 * LDM `DDPM.register_schedule` (ldm/models/diffusion/ddpm.py) from given betas (`given_betas`,
 * or `makeBetaSchedule(...)`). The twelve persistent buffers are the float64 numpy values that the
 * official casts to float32 (`asFloat32` gives the stored values). `lvlb_weights` (the
 * L_t weights of Ho et al. eq. 12, multiplied into the per-sample loss) is computed by the official
 * code in FLOAT32 torch from the float32 buffers, reproduced here with Math.fround at each step:
 *  - eps: betas^2 / (2 * posterior_variance * alphas * (1 - alphas_cumprod));
 *  - x0:  0.5 * sqrt(alphas_cumprod) / (2.*1 - alphas_cumprod)  -- sic, (2 - abar), as written;
 *  - v:   ones (stablediffusion's `torch.ones_like(<eps formula>)`; latent-diffusion a506df5 asserts
 *         parameterization in ['eps', 'x0'], so 'v' follows the later Stability-AI code);
 *  then lvlb_weights[0] := lvlb_weights[1] (index 0 is inf for eps, since beta~_0 = 0).
 */
export function registerSchedule(betas: ArrayLike<number>, opts: LdmScheduleOptions = {}): LdmSchedule {
  const parameterization = opts.parameterization ?? 'eps';
  const vPosterior = opts.vPosterior ?? 0;
  checkBetas('registerSchedule', betas, 2);
  if (!(vPosterior >= 0 && vPosterior <= 1)) {
    throw new ConfigError(`registerSchedule: v_posterior must be in [0, 1], got ${vPosterior}`);
  }
  const c = core(betas);
  const buf = sharedBuffers(betas, c, vPosterior);
  const T = betas.length;
  const lvlb = new Float64Array(T);
  switch (parameterization) {
    case 'eps':
      for (let i = 0; i < T; i++) {
        // all operands are the float32 buffers (to_torch(alphas) is float32 as well)
        const b = f32(buf.betas[i]!);
        const num = f32(b * b); // 1. betas ** 2
        const den = f32(
          f32(f32(2 * f32(buf.posterior_variance[i]!)) * f32(c.alphas[i]!)) * f32(1 - f32(buf.alphas_cumprod[i]!)),
        ); // 2. 2 * posterior_variance * alphas * (1 - alphas_cumprod), left to right
        lvlb[i] = f32(num / den); // 3. quotient
      }
      break;
    case 'x0':
      for (let i = 0; i < T; i++) {
        const a = f32(c.alphasCumprod[i]!); // torch.Tensor(alphas_cumprod) is float32
        lvlb[i] = f32(f32(0.5 * f32(Math.sqrt(a))) / f32(2 - a));
      }
      break;
    case 'v':
      lvlb.fill(1);
      break;
    default:
      throw new ConfigError(
        `registerSchedule: parameterization '${String(parameterization)}' not supported (expected eps, x0 or v)`,
      );
  }
  lvlb[0] = lvlb[1]!; // "TODO how to choose this term" in the official code
  if (lvlb.every((x) => Number.isNaN(x))) {
    throw new ConfigError('registerSchedule: lvlb_weights are all NaN (the official asserts against this)');
  }
  return { ...buf, lvlb_weights: lvlb };
}

// ---- lucidrains GaussianDiffusion.__init__ (denoising-diffusion-pytorch v2.3.1) -----------------

export type LucidrainsObjective = 'pred_noise' | 'pred_x0' | 'pred_v';

export interface LucidrainsOptions {
  /** Default 'pred_v' (the v2.3.1 default). */
  objective?: LucidrainsObjective;
  /** Min-SNR weighting (Hang et al. 2023), default false. */
  minSnrLossWeight?: boolean;
  /** Default 5. */
  minSnrGamma?: number;
}

export interface LucidrainsBuffers extends DiffusionBuffers {
  /** Persistent buffer (state_dict key) in lucidrains. */
  loss_weight: Float64Array;
}

/** lucidrains persistent buffers in registration order: the shared twelve, then loss_weight. */
export const LUCIDRAINS_BUFFER_KEYS = [...DIFFUSION_BUFFER_KEYS, 'loss_weight'] as const;

/**
 * lucidrains `GaussianDiffusion.__init__` buffers: every value computed in float64 torch, then
 * `.to(float32)` (here: the float64 values). The shared buffers have the LDM formulas with
 * v_posterior = 0 and `clamp(min=1e-20)`. Loss weight (Hang et al. 2023, "min-SNR"):
 *  1. snr = abar/(1 - abar);  2. snr' = min(snr, gamma) when minSnrLossWeight, else snr;
 *  3. pred_noise: snr'/snr;  pred_x0: snr';  pred_v: snr'/(snr + 1).
 */
export function lucidrainsBuffers(betas: ArrayLike<number>, opts: LucidrainsOptions = {}): LucidrainsBuffers {
  const objective = opts.objective ?? 'pred_v';
  const gamma = opts.minSnrGamma ?? 5;
  checkBetas('lucidrainsBuffers', betas, 1);
  const c = core(betas);
  const buf = sharedBuffers(betas, c, 0);
  const T = betas.length;
  const loss_weight = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    const a = c.alphasCumprod[i]!;
    const snr = a / (1 - a);
    const clipped = opts.minSnrLossWeight ? Math.min(snr, gamma) : snr;
    switch (objective) {
      case 'pred_noise':
        loss_weight[i] = clipped / snr;
        break;
      case 'pred_x0':
        loss_weight[i] = clipped;
        break;
      case 'pred_v':
        loss_weight[i] = clipped / (snr + 1);
        break;
      default:
        throw new ConfigError(
          `lucidrainsBuffers: unknown objective '${String(objective)}' (expected pred_noise, pred_x0 or pred_v)`,
        );
    }
  }
  return { ...buf, loss_weight };
}

// ---- pytorch-ddpm (w86763777) GaussianDiffusionTrainer / GaussianDiffusionSampler ---------------

export interface PddpmTrainerBuffers {
  betas: Float64Array;
  sqrt_alphas_bar: Float64Array;
  sqrt_one_minus_alphas_bar: Float64Array;
}

export interface PddpmSamplerBuffers {
  betas: Float64Array;
  sqrt_recip_alphas_bar: Float64Array;
  sqrt_recipm1_alphas_bar: Float64Array;
  posterior_var: Float64Array;
  posterior_log_var_clipped: Float64Array;
  posterior_mean_coef1: Float64Array;
  posterior_mean_coef2: Float64Array;
}

/**
 * pytorch-ddpm `GaussianDiffusionTrainer` buffers (float64, stored float64):
 * 1. betas (float32 linspace, widened)  2. abar = cumprod(1 - betas)
 * 3. sqrt_alphas_bar = sqrt(abar), sqrt_one_minus_alphas_bar = sqrt(1 - abar).
 * Pass `pddpmBetas(beta_1, beta_T, T)` to reproduce the official constructor.
 */
export function pddpmTrainerBuffers(betas: ArrayLike<number>): PddpmTrainerBuffers {
  checkBetas('pddpmTrainerBuffers', betas, 1);
  const c = core(betas);
  const T = betas.length;
  return {
    betas: Float64Array.from(betas),
    sqrt_alphas_bar: mapN(T, (i) => Math.sqrt(c.alphasCumprod[i]!)),
    sqrt_one_minus_alphas_bar: mapN(T, (i) => Math.sqrt(1 - c.alphasCumprod[i]!)),
  };
}

/**
 * pytorch-ddpm `GaussianDiffusionSampler` buffers (float64):
 *  1. abar_prev = pad(abar, [1, 0], value=1)[:T]
 *  2. sqrt_recip_alphas_bar = sqrt(1/abar), sqrt_recipm1_alphas_bar = sqrt(1/abar - 1)
 *  3. posterior_var = betas (1 - abar_prev)/(1 - abar)
 *  4. posterior_log_var_clipped = log(cat([posterior_var[1:2], posterior_var[1:]])) -- index 0
 *     BORROWS index 1 (no 1e-20 clamp, unlike LDM / lucidrains)
 *  5. posterior_mean_coef1 = sqrt(abar_prev) betas/(1 - abar),
 *     posterior_mean_coef2 = sqrt(alphas) (1 - abar_prev)/(1 - abar).
 */
export function pddpmSamplerBuffers(betas: ArrayLike<number>): PddpmSamplerBuffers {
  checkBetas('pddpmSamplerBuffers', betas, 2);
  const c = core(betas);
  const T = betas.length;
  const ac = c.alphasCumprod;
  const acp = c.alphasCumprodPrev;
  const b = Float64Array.from(betas);
  const posterior_var = mapN(T, (i) => (b[i]! * (1 - acp[i]!)) / (1 - ac[i]!));
  return {
    betas: b,
    sqrt_recip_alphas_bar: mapN(T, (i) => Math.sqrt(1 / ac[i]!)),
    sqrt_recipm1_alphas_bar: mapN(T, (i) => Math.sqrt(1 / ac[i]! - 1)),
    posterior_var,
    posterior_log_var_clipped: mapN(T, (i) => Math.log(posterior_var[i === 0 ? 1 : i]!)),
    posterior_mean_coef1: mapN(T, (i) => (Math.sqrt(acp[i]!) * b[i]!) / (1 - ac[i]!)),
    posterior_mean_coef2: mapN(T, (i) => (Math.sqrt(c.alphas[i]!) * (1 - acp[i]!)) / (1 - ac[i]!)),
  };
}

/**
 * pytorch-ddpm `p_mean_variance` model log-variance (float64; `extract` later casts to float32):
 *  - 'fixedlarge': log(cat([posterior_var[1:2], betas[1:]])) -- sigma_t^2 = beta_t, with index 0
 *    borrowing posterior_var[1] "to get a better decoder log likelihood";
 *  - 'fixedsmall': posterior_log_var_clipped (sigma_t^2 = beta~_t, index 0 borrowing index 1).
 */
export function pddpmModelLogVar(buffers: PddpmSamplerBuffers, varType: 'fixedlarge' | 'fixedsmall'): Float64Array {
  const { posterior_var: pv, betas } = buffers;
  switch (varType) {
    case 'fixedlarge':
      return mapN(betas.length, (i) => Math.log(i === 0 ? pv[1]! : betas[i]!));
    case 'fixedsmall':
      return Float64Array.from(buffers.posterior_log_var_clipped);
    default:
      throw new ConfigError(
        `pddpmModelLogVar: var_type '${String(varType)}' unknown (expected fixedlarge or fixedsmall)`,
      );
  }
}


/**
 * The twelve DiffusionBuffers of a pytorch-ddpm trainer or sampler, so its math runs in
 * GaussianDiffusion: its own float64 arrays under the LDM names where it has them
 * (sqrt_alphas_bar -> sqrt_alphas_cumprod, posterior_var -> posterior_variance,
 * posterior_log_var_clipped (index 0 borrowing 1) -> posterior_log_variance_clipped, ...), the
 * standard formulas of `registerSchedule(betas)` for the rest.
 */
export function pddpmDiffusionBuffers(b: { betas: Float64Array } & Partial<PddpmSamplerBuffers & PddpmTrainerBuffers>): DiffusionBuffers {
  const base = registerSchedule(b.betas);
  const pick = (own: Float64Array | undefined, dflt: Float64Array): Float64Array => own ?? dflt;
  return {
    betas: b.betas,
    alphas_cumprod: base.alphas_cumprod,
    alphas_cumprod_prev: base.alphas_cumprod_prev,
    sqrt_alphas_cumprod: pick(b.sqrt_alphas_bar, base.sqrt_alphas_cumprod),
    sqrt_one_minus_alphas_cumprod: pick(b.sqrt_one_minus_alphas_bar, base.sqrt_one_minus_alphas_cumprod),
    log_one_minus_alphas_cumprod: base.log_one_minus_alphas_cumprod,
    sqrt_recip_alphas_cumprod: pick(b.sqrt_recip_alphas_bar, base.sqrt_recip_alphas_cumprod),
    sqrt_recipm1_alphas_cumprod: pick(b.sqrt_recipm1_alphas_bar, base.sqrt_recipm1_alphas_cumprod),
    posterior_variance: pick(b.posterior_var, base.posterior_variance),
    posterior_log_variance_clipped: pick(b.posterior_log_var_clipped, base.posterior_log_variance_clipped),
    posterior_mean_coef1: pick(b.posterior_mean_coef1, base.posterior_mean_coef1),
    posterior_mean_coef2: pick(b.posterior_mean_coef2, base.posterior_mean_coef2),
  };
}


// ---- float32 views --------------------------------------------------------------------------------

/** The float32 values the official stores (`to_torch(x)` / `.to(torch.float32)`), field by field. */
export function asFloat32<T extends { [K in keyof T]: ArrayLike<number> }>(
  buffers: T,
): { [K in keyof T]: Float32Array } {
  const out = {} as { [K in keyof T]: Float32Array };
  for (const k of Object.keys(buffers) as (keyof T & string)[]) out[k] = Float32Array.from(buffers[k]);
  return out;
}
