// The table of fixture handlers, one per official family. Each family's handler lives in its
// own file next to this one; this literal table is the only registration (no import side effects).

import type { FixtureHandler } from './types.ts';

import { autoencoderHandler } from './autoencoder.ts';
import { unetHandler } from './unet.ts';
import { pddpmHandler } from './pddpm.ts';
import { lucidrainsHandler } from './lucidrains.ts';
import { ddpmHandler } from './ddpm.ts';
import { vqHandler } from './vq.ts';
export const HANDLERS: readonly FixtureHandler[] = [
  ddpmHandler,
  pddpmHandler, lucidrainsHandler,
  unetHandler,
  autoencoderHandler,
  lossesHandler,
  latentHandler,
  vqHandler,
  checkpointSampleHandler,
  ksamplerHandler,
] satisfies readonly FixtureHandler[];
import { latentHandler } from './latent.ts';
import { lossesHandler } from './losses.ts';
import { checkpointSampleHandler } from './checkpoint-sample.ts';
import { ksamplerHandler } from './ksampler.ts';
