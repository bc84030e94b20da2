// train/ (rank 7): the training loop, learning-rate schedules, settings from configs, sampling
// helpers (grids, denoising strips), the MNIST classifier and evaluation (bits/dim, accuracy).
export * from './lr.ts';
export * from './settings.ts';
export * from './sampling.ts';
export * from './img2img.ts';
export * from './types.ts';
export * from './trainer.ts';
export * from './run.ts';
export * from './classifier.ts';
export * from './eval.ts';
export * from './fid.ts';
export * from './load.ts';
export * from './autoencoder.ts';
export * from './latent.ts';
export * from './init-from.ts';
export * from './memory.ts';
