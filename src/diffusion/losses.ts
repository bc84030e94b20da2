// Diffusion training losses and the variational bound, on tensors:
//  - the simple loss (Ho et al. 2020 eq. 14) on the eps / x0 / v target, l1 or l2, mean over
//    every non-batch axis (LDM `get_loss(..., mean=False).mean([1, 2, 3])`);
//  - LDM's loss assembly (`DDPM.p_losses` and `LatentDiffusion.p_losses`): lvlb_weights[t]
//    weighting with `original_elbo_weight`, `l_simple_weight`, and the per-timestep log-variance
//    `loss_simple / exp(logvar_t) + logvar_t` (learned when `learn_logvar`), with the official
//    log keys;
//  - lucidrains' per-timestep loss weights, including min-SNR-gamma (Hang et al. 2023);
//  - the full variational bound (improved DDPM, Nichol & Dhariwal 2021, sec. 2 and appendix):
//    normal KL, the discretized Gaussian decoder likelihood with the tanh approximation of the
//    normal CDF, the prior term L_T, L_0, all in bits per dimension (`calc_bpd_loop`).
// What it is not: no network, no optimiser; a Denoiser callback supplies model outputs.

import { ConfigError, Generator, defaultGenerator } from '../util/index.ts';
import {
  Tensor, abs, add, clamp, div, eq, exp, gt, indexSelect, log, lt, mean, mul, noGrad, pow, randn, scalar, square,
  stack, sub, tanh, toFloat, toInt64, where,
} from '../tensor/index.ts';
import type { GaussianDiffusion } from './gaussian.ts';
import { fullT } from './gaussian.ts';
import type { Cond, Denoiser, LossType, Parameterization } from './types.ts';

const LN2 = Math.log(2);
type TN = Tensor | number;
const asT = (v: TN): Tensor => (typeof v === 'number' ? scalar(v) : v);

/** Mean over every axis but the batch axis (`mean_flat`). [B, ...] -> [B] */
export function meanFlat(x: Tensor): Tensor {
  if (x.ndim <= 1) return x;
  return mean(x, Array.from({ length: x.ndim - 1 }, (_, i) => i + 1));
}

/** Elementwise l1 |target - pred| or l2 (target - pred)^2 (`get_loss(mean=False)`). */
export function elementLoss(pred: Tensor, target: Tensor, lossType: LossType): Tensor {
  switch (lossType) {
    case 'l1': return abs(sub(target, pred));
    case 'l2': return square(sub(target, pred));
    default: throw new ConfigError(`loss: unknown loss type '${String(lossType)}' (expected l1 or l2)`);
  }
}

/** Per-sample simple loss: elementLoss(...).mean([1, 2, 3]). [B] */
export function simpleLoss(pred: Tensor, target: Tensor, lossType: LossType): Tensor {
  return meanFlat(elementLoss(pred, target, lossType));
}

/** The regression target of a parameterization: eps -> noise, x0 -> x_start, v -> get_v. */
export function lossTarget(parameterization: Parameterization, diffusion: GaussianDiffusion, xStart: Tensor, noise: Tensor, t: Tensor): Tensor {
  switch (parameterization) {
    case 'eps': return noise;
    case 'x0': return xStart;
    case 'v': return diffusion.getV(xStart, noise, t);
    default: throw new ConfigError(`loss: parameterization '${parameterization}' has no simple-loss target (expected eps, x0 or v)`);
  }
}

export interface LdmLossOptions {
  modelOutput: Tensor;
  target: Tensor;
  /** int64 [B] */
  t: Tensor;
  lossType: LossType;
  /** float32 [T] (non-persistent buffer) */
  lvlbWeights: Tensor;
  lSimpleWeight?: number;
  originalElboWeight?: number;
  /** per-timestep log-variance [T]: LatentDiffusion's weighting; null/undefined = DDPM's loss */
  logvar?: Tensor | null;
  /** log `loss_gamma` and `logvar` (LatentDiffusion with learn_logvar) */
  learnLogvar?: boolean;
  /** 'train' or 'val' */
  prefix: string;
}

export interface LossWithLog {
  loss: Tensor;
  /** official keys, e.g. 'train/loss_simple', 'train/loss_vlb', 'train/loss' */
  lossDict: Map<string, Tensor>;
}

/**
 * LDM's loss assembly after the model call.
 * DDPM.p_losses (no logvar):
 *  1. l = loss(model_out, target).mean([1,2,3]); log loss_simple = l.mean()
 *  2. loss_simple = l.mean() * l_simple_weight; loss_vlb = (lvlb_weights[t] * l).mean()
 *  3. loss = loss_simple + original_elbo_weight * loss_vlb
 * LatentDiffusion.p_losses (logvar given):
 *  1. l as above; log loss_simple = l.mean() (before the logvar division)
 *  2. g = l / exp(logvar[t]) + logvar[t]; (learn_logvar: log loss_gamma = g.mean(), logvar = mean(logvar))
 *  3. loss = l_simple_weight * g.mean() + original_elbo_weight * (lvlb_weights[t] * l).mean()
 */
export function ldmLoss(o: LdmLossOptions): LossWithLog {
  const lsw = o.lSimpleWeight ?? 1;
  const oew = o.originalElboWeight ?? 0;
  const p = o.prefix;
  const t = o.t.dtype === 'int64' ? o.t : toInt64(o.t);
  const d = new Map<string, Tensor>();
  const l = simpleLoss(o.modelOutput, o.target, o.lossType); // 1. [B]
  d.set(`${p}/loss_simple`, mean(l));
  const lossVlb = mean(mul(indexSelect(o.lvlbWeights, 0, t), l));
  let loss: Tensor;
  if (o.logvar) {
    const logvarT = indexSelect(o.logvar, 0, t); // [B]
    const g = add(div(l, exp(logvarT)), logvarT); // 2.
    if (o.learnLogvar) {
      d.set(`${p}/loss_gamma`, mean(g));
      d.set('logvar', mean(o.logvar.detach()));
    }
    loss = mul(mean(g), lsw);
  } else {
    loss = mul(mean(l), lsw); // 2.
  }
  d.set(`${p}/loss_vlb`, lossVlb);
  loss = add(loss, mul(lossVlb, oew)); // 3.
  d.set(`${p}/loss`, loss);
  return { loss, lossDict: d };
}

/**
 * lucidrains loss weights per timestep (float64 [T]) from alphas_cumprod (Hang et al. 2023):
 *  1. snr = abar / (1 - abar);  2. snr' = min(snr, gamma) when gamma is given, else snr;
 *  3. eps: snr'/snr;  x0: snr';  v: snr'/(snr + 1).
 */
export function snrLossWeights(alphasCumprod: ArrayLike<number>, target: 'eps' | 'x0' | 'v', minSnrGamma?: number): Float64Array {
  const out = new Float64Array(alphasCumprod.length);
  for (let i = 0; i < out.length; i++) {
    const a = alphasCumprod[i]!;
    const snr = a / (1 - a);
    const c = minSnrGamma !== undefined ? Math.min(snr, minSnrGamma) : snr;
    out[i] = target === 'eps' ? c / snr : target === 'x0' ? c : c / (snr + 1);
  }
  return out;
}

/** lucidrains `p_losses` reduction: (loss.mean over non-batch axes * loss_weight[t]).mean(). */
export function weightedLoss(pred: Tensor, target: Tensor, t: Tensor, lossWeight: Tensor, lossType: LossType): Tensor {
  const l = simpleLoss(pred, target, lossType);
  return mean(mul(l, indexSelect(lossWeight, 0, t.dtype === 'int64' ? t : toInt64(t))));
}

// ---- the variational bound ---------------------------------------------------------------------

/** KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise (`normal_kl`). */
export function normalKl(mean1: TN, logvar1: TN, mean2: TN, logvar2: TN): Tensor {
  const lv1 = asT(logvar1), lv2 = asT(logvar2);
  // 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2))
  const a = add(sub(add(lv2, -1), lv1), exp(sub(lv1, lv2)));
  const b = mul(square(sub(asT(mean1), asT(mean2))), exp(mul(lv2, -1)));
  return mul(add(a, b), 0.5);
}

/** A fast approximation of the standard normal CDF: 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function approxStandardNormalCdf(x: Tensor): Tensor {
  return mul(add(tanh(mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1), 0.5);
}

/**
 * `discretized_gaussian_log_likelihood` of images in [-1, 1] quantised to 256 bins (bin width
 * 2/255): log of the Gaussian mass of [x - 1/255, x + 1/255], the edge bins extended to +-inf.
 */
export function discretizedGaussianLogLikelihood(x: Tensor, means: Tensor, logScales: Tensor): Tensor {
  const centered = sub(x, means);
  const invStdv = exp(mul(logScales, -1));
  const cdfPlus = approxStandardNormalCdf(mul(invStdv, add(centered, 1 / 255)));
  const cdfMin = approxStandardNormalCdf(mul(invStdv, sub(centered, 1 / 255)));
  const logCdfPlus = log(clamp(cdfPlus, 1e-12));
  const logOneMinusCdfMin = log(clamp(sub(1, cdfMin), 1e-12));
  const logCdfDelta = log(clamp(sub(cdfPlus, cdfMin), 1e-12));
  return where(lt(x, -0.999), logCdfPlus, where(gt(x, 0.999), logOneMinusCdfMin, logCdfDelta));
}

/**
 * `_vb_terms_bpd` for one model output on (x_t, t): L_{t-1} = KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t))
 * for t > 0 and the decoder NLL -log p(x0|x1) at t == 0, in bits per dimension. [B]
 */
export function vbTermsBpd(diffusion: GaussianDiffusion, modelOutput: Tensor, xStart: Tensor, xT: Tensor, t: Tensor,
  clipDenoised = true): { output: Tensor; predXstart: Tensor } {
  const q = diffusion.qPosterior(xStart, xT, t);
  const p = diffusion.pMeanVariance(modelOutput, xT, t, { clipDenoised });
  const kl = mul(meanFlat(normalKl(q.mean, q.logVariance, p.mean, p.logVariance)), 1 / LN2);
  const nll = mul(meanFlat(discretizedGaussianLogLikelihood(xStart, p.mean, mul(p.logVariance, 0.5))), -1 / LN2);
  return { output: where(eq(toFloat(t), 0), nll, kl), predXstart: p.predXstart };
}

/** `_prior_bpd`: L_T = KL(q(x_T|x0) || N(0, I)) in bits per dimension. [B] */
export function priorBpd(diffusion: GaussianDiffusion, xStart: Tensor): Tensor {
  const t = fullT(xStart.shape[0]!, diffusion.numTimesteps - 1);
  const q = diffusion.qMeanVariance(xStart, t);
  return mul(meanFlat(normalKl(q.mean, q.logVariance, 0, 0)), 1 / LN2);
}

export interface BpdResult {
  /** sum_t L_t + L_T per sample [B] */
  totalBpd: Tensor;
  priorBpd: Tensor;
  /** [B, T], column t = L_t (t = 0: decoder NLL) */
  vb: Tensor;
  xstartMse: Tensor;
  mse: Tensor;
}

/**
 * `calc_bpd_loop`: for t = T-1 .. 0, x_t = q_sample(x0, t, noise ~ N(0, I)), the model's terms
 * at (x_t, t); total = sum_t L_t + L_T. Noise is drawn from gen (one randn_like per step).
 */
export function calcBpd(denoiser: Denoiser, diffusion: GaussianDiffusion, xStart: Tensor,
  opts: { cond?: Cond; gen?: Generator; clipDenoised?: boolean } = {}): BpdResult {
  return noGrad(() => {
    const gen = opts.gen ?? defaultGenerator;
    const B = xStart.shape[0]!;
    const T = diffusion.numTimesteps;
    const vb: Tensor[] = new Array<Tensor>(T);
    const xm: Tensor[] = new Array<Tensor>(T);
    const mse: Tensor[] = new Array<Tensor>(T);
    for (let i = T - 1; i >= 0; i--) {
      const t = fullT(B, i);
      const noise = randn(xStart.shape, gen);
      const xT = diffusion.qSample(xStart, t, noise);
      const out = denoiser(xT, t, opts.cond);
      const r = vbTermsBpd(diffusion, out, xStart, xT, t, opts.clipDenoised ?? true);
      vb[i] = r.output;
      xm[i] = meanFlat(square(sub(r.predXstart, xStart)));
      const eps = diffusion.predictEpsFromStart(xT, t, r.predXstart);
      mse[i] = meanFlat(square(sub(eps, noise)));
    }
    const vbT = stack(vb, 1); // [B, T]
    const prior = priorBpd(diffusion, xStart);
    return {
      totalBpd: add(vbT.sum(1), prior),
      priorBpd: prior,
      vb: vbT,
      xstartMse: stack(xm, 1),
      mse: stack(mse, 1),
    };
  });
}
