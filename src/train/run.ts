// The trainer registry: a config's model.target -> the trainer that runs it (the DDPM family with
// one optimizer, EMA and sampling; first stages with the autoencoder and discriminator
// optimizers). A literal table checked with `satisfies`; a new kind of model to train is one row.

import { ConfigError, closest } from '../util/index.ts';
import { getPath } from '../io/index.ts';
import { AUTOENCODER_TARGETS, trainAutoencoder, type AutoencoderTrainResult } from './autoencoder.ts';
import { trainDiffusion, type TrainResult } from './trainer.ts';
import type { TrainOptions } from './types.ts';

export type AnyTrainResult = TrainResult | AutoencoderTrainResult;
type Trainer = (opts: TrainOptions) => Promise<AnyTrainResult>;

const [KL, LDM_VQ, TAMING_VQ] = AUTOENCODER_TARGETS;

export const TRAINERS = {
  'ldm.models.diffusion.ddpm.DDPM': trainDiffusion,
  'ldm.models.diffusion.ddpm.LatentDiffusion': trainDiffusion,
  [KL!]: trainAutoencoder,
  [LDM_VQ!]: trainAutoencoder,
  [TAMING_VQ!]: trainAutoencoder,
} satisfies Record<string, Trainer>;

/** Train the config's model with the trainer of its target. */
export async function train(opts: TrainOptions): Promise<AnyTrainResult> {
  const target = getPath(opts.config, 'model.target');
  const trainer: Trainer | undefined = typeof target === 'string' ? (TRAINERS as Record<string, Trainer>)[target] : undefined;
  if (!trainer) {
    const known = Object.keys(TRAINERS);
    const s = typeof target === 'string' ? closest(target, known) : undefined;
    throw new ConfigError(`train: no trainer for model.target ${JSON.stringify(target ?? null)}${s ? ` (did you mean '${s}'?)` : ''}; trainable: ${known.join(', ')}`);
  }
  return await trainer(opts);
}
