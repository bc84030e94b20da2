// The typed face every diffusion model shows to the samplers, train/ and cli/ (the components of
// a diffusers `DiffusionPipeline`, as an interface): the network as a Denoiser, the schedule the
// sampler table reads, the shape of x_T, how labels or prompts become conditioning, the null
// conditioning for classifier-free guidance, and, for latent models, the first stage's decode /
// encode. DDPM implements it for pixel space; LatentDiffusion (a DDPM) overrides the conditioning
// and adds decode / encode. Callers need no casts and no duck typing: a model either has decode or
// is a pixel-space model. What it is not: no training API (DDPM's sharedStep etc. stay the
// official methods).

import type { Tensor } from '../tensor/index.ts';
import type { Cond, Denoiser, GaussianDiffusion } from '../diffusion/index.ts';

/** What a model can be conditioned on through `condition`. */
export type ConditioningSpec =
  | { kind: 'none' }
  /** class labels 0..numClasses-1; nullLabel: the class the model reserves for "no class" (a
   *  ClassEmbedder's last class), or null when the training config decides (ucg_training) */
  | { kind: 'class'; numClasses: number; nullLabel: number | null }
  /** captions (a text encoder) */
  | { kind: 'text' }
  /** conditioning that is neither (concat images: super-resolution, inpainting); pass a Cond */
  | { kind: 'other' };

export type ConditionInput = { labels: readonly number[] } | { prompts: readonly string[] };

export interface DiffusionModel {
  /** The network output as a function of (x_t, t, cond), for the sampler table. */
  denoiser(): Denoiser;
  /** The schedule the samplers read (float32 buffers, parameterization, variance). */
  readonly diffusion: GaussianDiffusion;
  readonly numTimesteps: number;
  /** Whether the ancestral step clamps x0 estimates (the official clip_denoised). */
  readonly clipDenoised: boolean;
  /** The shape of x_T for n samples: [n, C, H, W] (latent C, H, W for latent models). */
  sampleShape(n: number): number[];
  conditioningSpec(): ConditioningSpec;
  /** labels or prompts -> the Cond the denoiser takes (ConfigError when the model cannot). */
  condition(input: ConditionInput): Cond;
  /** The null conditioning of n rows for guidance: the model's own null input, else the given
   *  null label; null when the model has none. */
  unconditional(n: number, nullLabel?: number | null): Cond | null;
  /** Text models: the words of the prompts the tokenizer does not hold whole (split into pieces or
   *  [UNK]: never seen whole in training); absent for models without a tokenizer. */
  unknownPromptWords?(prompts: readonly string[]): string[];
  /** Latent models: latents [n, C, h, w] -> images [n, 3|1, H, W] (unclamped). */
  decode?(z: Tensor): Tensor;
  /** Latent models: images -> latents (posterior mode, scaled: what the diffusion runs on). */
  encode?(x: Tensor): Tensor;
}
