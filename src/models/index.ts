// models/ (rank 5): the networks of the seeds with official state-dict keys, the DiffusionModel
// face the samplers, train/ and cli/ use, and MODEL_TARGETS: the merged table of official class
// paths -> constructors used by configs and the parity runner. Every name is exported as it is
// declared (no renames on the way out).

import type { TargetTable } from './targets.ts';
import { autoencoderTargets } from './autoencoder/kl.ts';
import { vqTargets } from './autoencoder/vq.ts';
import { openaiTargets } from './unet/openai.ts';
import { classicTargets } from './classic-targets.ts';
import { ddpmTargets } from './ddpm.ts';
import { latentDiffusionTargets } from './latent-diffusion.ts';
import { lossTargets } from './losses/index.ts';

export type { TargetTable, TargetConfig, TargetFactory, BuildFn } from './targets.ts';
export type { DiffusionModel, ConditioningSpec, ConditionInput } from './diffusion-model.ts';

// LDM: DDPM, LatentDiffusion, conditioning encoders
export { DDPM, DiffusionWrapper, DDPM_KWARGS, DDPM_SCHEMA, ddpmTargets, type DDPMOptions, type DiffusionNet, type ConditioningKey, type CondInput, type DdpmSampleOptions } from './ddpm.ts';
export * from './latent-diffusion.ts';
export * from './conditioning.ts';
export * from './tokenizer.ts';
export * from './x-transformer.ts';

// networks: the openai UNetModel, first stages (KL and VQ), their losses
export { UNetModel, openaiTargets, timestepEmbedding, UNET_SCHEMA, type UNetOptions, type UNetCond } from './unet/openai.ts';
export {
  AutoencoderKL, IdentityFirstStage, DiagonalGaussianDistribution, autoencoderTargets, AUTOENCODER_KL_SCHEMA,
  type AutoencoderKLOptions, type IdentityFirstStageOptions,
} from './autoencoder/kl.ts';
export {
  VQModel, VQModelInterface, VQModelBase, TamingVQModel, vqTargets, LDM_VQMODEL_KEYS, TAMING_VQMODEL_KEYS, LDM_VQMODEL_SCHEMA, TAMING_VQMODEL_SCHEMA,
  type VQModelOptions, type TamingVQModelOptions, type VQEncodeResult,
} from './autoencoder/vq.ts';
export { VectorQuantizer2, makeVectorQuantizer2, VECTOR_QUANTIZER2_KEYS, VECTOR_QUANTIZER2_SCHEMA, type VectorQuantizer2Options, type QuantizeOptions, type QuantizeResult, type UnknownIndex } from './autoencoder/quantize.ts';
export { Encoder, Decoder, Model, DDCONFIG_SCHEMA, MODEL_SCHEMA, type DDConfig, type ModelOptions } from './autoencoder/encoder.ts';
export { LinAttnBlock, makeAttn } from './autoencoder/blocks.ts';
export * from './losses/index.ts';

// the two classic code bases: w86763777/pytorch-ddpm and lucidrains/denoising-diffusion-pytorch
export { classicTargets } from './classic-targets.ts';
export { PddpmUNet, pddpmTimeTable, PDDPM_UNET_SCHEMA, type PddpmUNetOptions } from './unet/pddpm.ts';
export {
  GaussianDiffusionTrainer, GaussianDiffusionSampler, noiseFromGenerator, PDDPM_TRAINER_SCHEMA, PDDPM_SAMPLER_SCHEMA,
  type GaussianDiffusionTrainerOptions, type GaussianDiffusionSamplerOptions, type NoiseFn, type PddpmModel, type PddpmMeanType, type PddpmVarType,
} from './pddpm-diffusion.ts';
export { LucidrainsUnet, LUCIDRAINS_UNET_SCHEMA, type LucidrainsUnetOptions } from './unet/lucidrains.ts';
export {
  LucidrainsDiffusion, LUCIDRAINS_DIFFUSION_SCHEMA, type LucidrainsDiffusionOptions, type LucidrainsModel, type LucidrainsModelPrediction, type LucidrainsLossTerms, type LucidrainsLossOptions,
} from './lucidrains-diffusion.ts';

export const MODEL_TARGETS: TargetTable = {
  ...ddpmTargets,
  ...classicTargets,
  ...openaiTargets,
  ...autoencoderTargets,
  ...vqTargets,
  ...lossTargets,
  ...latentDiffusionTargets,
} satisfies TargetTable;
