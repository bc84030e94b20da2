// models/ (rank 5): the networks of the seeds with official state-dict keys, and the merged
// table of official class paths -> constructors used by configs and the parity runner.

import type { TargetTable } from './targets.ts';

export type { TargetTable, TargetConfig, TargetFactory, BuildFn } from './targets.ts';
export type { DiffusionModel, ConditioningSpec, ConditionInput } from './diffusion-model.ts';

import { autoencoderTargets } from './autoencoder/kl.ts';
export { AutoencoderKL, IdentityFirstStage, DiagonalGaussianDistribution, autoencoderTargets, type AutoencoderKLOptions } from './autoencoder/kl.ts';
import { vqTargets } from './autoencoder/vq.ts';
export { VQModel, VQModelInterface, VQModelBase, TamingVQModel, vqTargets, LDM_VQMODEL_KEYS, TAMING_VQMODEL_KEYS, type VQModelOptions, type VQEncodeResult } from './autoencoder/vq.ts';
export { VectorQuantizer2, makeVectorQuantizer2, VECTOR_QUANTIZER2_KEYS, type VectorQuantizer2Options, type QuantizeOptions, type QuantizeResult, type UnknownIndex } from './autoencoder/quantize.ts';
export { Encoder, Decoder, Model as DDPMModel, type DDConfig } from './autoencoder/encoder.ts';
export { ResnetBlock as AEResnetBlock, AttnBlock as AEAttnBlock, LinAttnBlock, makeAttn, getTimestepEmbedding as aeTimestepEmbedding } from './autoencoder/blocks.ts';

export { UNetModel, openaiTargets, timestepEmbedding, type UNetOptions, type UNetCond } from './unet/openai.ts';
import { openaiTargets } from './unet/openai.ts';
export * from './classic.ts';
import { classicTargets } from './classic.ts';
export { DDPM, DiffusionWrapper, DDPM_KWARGS, ddpmTargets, type DDPMOptions, type DiffusionNet, type ConditioningKey, type CondInput, type DdpmSampleOptions } from './ddpm.ts';
import { ddpmTargets } from './ddpm.ts';
export const MODEL_TARGETS: TargetTable = {
  ...ddpmTargets,
  ...classicTargets,
  ...openaiTargets,
  ...autoencoderTargets,
  ...vqTargets,
  ...lossTargets,
  ...latentDiffusionTargets,
} satisfies TargetTable;
import { latentDiffusionTargets } from './latent-diffusion.ts'; export * from './latent-diffusion.ts'; export * from './conditioning.ts'; export * from './tokenizer.ts'; export * from './x-transformer.ts';
import { lossTargets } from './losses/index.ts'; export * from './losses/index.ts';
