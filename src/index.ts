// ldm.ts: the package entry. Each layer is exported as a namespace (their names overlap, e.g.
// the tensor op `linear` and the nn layer `Linear`):
//   import { tensor as T, nn, models, diffusion } from 'ldm.ts';
export * as util from './util/index.ts';
export * as backend from './backend/index.ts';
export * as formats from './formats/index.ts';
export * as tensor from './tensor/index.ts';
export * as nn from './nn/index.ts';
export * as diffusion from './diffusion/index.ts';
export * as models from './models/index.ts';
export * as io from './io/index.ts';
export * as train from './train/index.ts';
