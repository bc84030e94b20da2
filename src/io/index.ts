// io/ (rank 6): files in and out: tensor files and checkpoints, images, datasets, configs.
export * from './tensors.ts';
export * from './datasets/index.ts';
export * from './images.ts';
export * from './config.ts';
export * from './checkpoint.ts';
export * from './metrics.ts';
export * from './pretrained.ts';
export * from './convert.ts';
export * from './load-model.ts';
export * from './inspect-config.ts';
