// The first-stage training losses: LPIPS, NLayerDiscriminator (+ ActNorm, weights_init) and
// LPIPSWithDiscriminator, and this family's TargetTable (merged in models/index.ts).

import type { TargetTable } from '../targets.ts';
import { makeLPIPS } from './lpips.ts';
import { makeNLayerDiscriminator } from './discriminator.ts';
import { makeLPIPSWithDiscriminator } from './contperceptual.ts';
import { DummyLoss, makeLdmVQLPIPSWithDiscriminator, makeTamingVQLPIPSWithDiscriminator } from './vqperceptual.ts';

export {
  LPIPS, NetLinLayer, ScalingLayer, Vgg16Slices, normalizeTensor, spatialAverage, lpipsStateDictFromPretrained,
  LPIPS_CHANNELS, VGG16_CFG, VGG_SLICES, LPIPS_SCHEMA, type LPIPSOptions, type LpipsHeadOutputs,
} from './lpips.ts';
export { ActNorm } from './actnorm.ts';
export { NLayerDiscriminator, weightsInit, NLAYER_DISCRIMINATOR_SCHEMA, type NLayerDiscriminatorOptions } from './discriminator.ts';
export {
  LPIPSWithDiscriminator, adoptWeight, hingeDLoss, vanillaDLoss, LPIPS_WITH_DISCRIMINATOR_KEYS, LPIPS_WITH_DISCRIMINATOR_SCHEMA,
  adaptiveGanWeight, type LPIPSWithDiscriminatorOptions, type KlPosterior, type LossOutput,
} from './contperceptual.ts';
export {
  VQLPIPSWithDiscriminator, DummyLoss, measurePerplexity, makeTamingVQLPIPSWithDiscriminator, makeLdmVQLPIPSWithDiscriminator,
  TAMING_VQLPIPS_KEYS, LDM_VQLPIPS_KEYS, TAMING_VQLPIPS_SCHEMA, LDM_VQLPIPS_SCHEMA,
  type VQLPIPSWithDiscriminatorOptions, type TamingVQLPIPSWithDiscriminatorOptions,
} from './vqperceptual.ts';

/** Official class paths of the loss family -> constructors. */
export const lossTargets = {
  'ldm.modules.losses.LPIPSWithDiscriminator': (p) => makeLPIPSWithDiscriminator(p),
  'ldm.modules.losses.contperceptual.LPIPSWithDiscriminator': (p) => makeLPIPSWithDiscriminator(p),
  'taming.modules.losses.lpips.LPIPS': (p) => makeLPIPS(p),
  'taming.modules.discriminator.model.NLayerDiscriminator': (p) => makeNLayerDiscriminator(p),
  'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator': (p) => makeTamingVQLPIPSWithDiscriminator(p),
  'ldm.modules.losses.vqperceptual.VQLPIPSWithDiscriminator': (p) => makeLdmVQLPIPSWithDiscriminator(p),
  'taming.modules.losses.vqperceptual.DummyLoss': () => new DummyLoss(),
} satisfies TargetTable;

// The Lightning steps and optimisers of AutoencoderKL that use this loss.
export {
  autoencoderTrainingStep, autoencoderValidationStep, autoencoderOptimizationStep, configureAutoencoderOptimizers,
  type AutoencoderBatch, type AutoencoderOptimizers, type AutoencoderBatchResult, type AutoencoderStepOptions,
} from '../autoencoder/training.ts';
// The Lightning steps and optimisers of the VQ first stages that use VQLPIPSWithDiscriminator.
export {
  vqTrainingStep, vqValidationStep, vqOptimizationStep, configureVQOptimizers,
  type VQBatch, type VQOptimizers, type VQBatchResult,
} from '../autoencoder/vq-training.ts';
