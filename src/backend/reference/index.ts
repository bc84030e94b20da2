// The reference backend: every kernel of the contract in plain TypeScript loops. It is the
// specification the native backend is tested against; it is slow (about 1.5 GFLOP/s).

import type { Kernels } from '../types.ts';
import { affine, binary, clamp, stridedAccumulate, stridedCopy, unary, unaryGrad, where } from './elementwise.ts';
import { powScalar } from './elementwise.ts';
import { reduceMax, reduceSum, softmax, softmaxGrad } from './reduce.ts';
import { matmul } from './matmul.ts';
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from './conv.ts';
import { avgPool2d, avgPool2dGrad, maxPool2d, upsampleNearest, upsampleNearestGrad } from './pool.ts';
import { groupNorm, groupNormGrad, groupNormSilu, groupNormSiluGrad, layerNorm, layerNormGrad } from './norm.ts';
import { attention } from './attention.ts';
import { adamw } from './optim.ts';

export { erf } from './elementwise.ts';

export const reference = {
  name: 'reference',
  unary, unaryGrad, binary, affine, powScalar, clamp, where,
  stridedCopy, stridedAccumulate,
  reduceSum, reduceMax, softmax, softmaxGrad,
  matmul,
  conv2d, conv2dBackwardInput, conv2dBackwardWeight,
  avgPool2d, avgPool2dGrad, maxPool2d, upsampleNearest, upsampleNearestGrad,
  groupNorm, groupNormGrad, groupNormSilu, groupNormSiluGrad, layerNorm, layerNormGrad,
  attention,
  adamw,
} satisfies Kernels;
