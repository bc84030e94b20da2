// The contract between diffusion/ (samplers, losses, gaussian math) and models/: a Denoiser is a
// plain function that maps a noisy batch and its integer timesteps (plus optional conditioning)
// to the network output (eps, x0, v or x_{t-1}, as the model's parameterization says).
// What it is not: no model, no schedule; models/ builds Denoisers (e.g. DDPM.denoiser()).

import type { Tensor } from '../tensor/index.ts';

/**
 * Conditioning as LDM's `DiffusionWrapper.forward(x, t, c_concat, c_crossattn)` receives it
 * (`apply_model` wraps a bare tensor as `{c_concat: [c]}` or `{c_crossattn: [c]}`), plus `y`
 * for class-conditional ('adm') UNets. Each list entry has the batch on axis 0.
 */
export interface Cond {
  /** Concatenated to x on the channel axis (super-resolution, inpainting). [B, Cc, H, W] each */
  c_concat?: Tensor[];
  /** Concatenated on axis 1 and passed as the cross-attention context. [B, L, D] each */
  c_crossattn?: Tensor[];
  /** Class labels / adm vector. [B] int64 or [B, D] */
  y?: Tensor;
}

/** x [B, C, H, W], t [B] (int64 timesteps; float32 fractional ones from the k-diffusion rows, as
 *  k-diffusion's CompVisDenoiser passes them, unless they quantize) -> model output [B, C', H, W]. */
export type Denoiser = (x: Tensor, t: Tensor, cond?: Cond) => Tensor;

/** What the network predicts (LDM `parameterization`; 'xprev' is improved-DDPM's PREVIOUS_X). */
export type Parameterization = 'eps' | 'x0' | 'v' | 'xprev';

/**
 * Reverse-process variance: 'fixedsmall' = posterior beta~_t (LDM's choice), 'fixedlarge' =
 * beta_t (index 0 borrowing beta~_1), 'learned' = the model's extra channels are log sigma^2,
 * 'learned_range' = they interpolate between log beta~_t and log beta_t (improved DDPM eq. 15).
 */
export type VarianceType = 'fixedsmall' | 'fixedlarge' | 'learned' | 'learned_range';

export type LossType = 'l1' | 'l2';
