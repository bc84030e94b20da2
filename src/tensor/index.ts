// tensor/ (rank 2): the Tensor, autograd, dispatch to backends, and every op the networks use.

export { Tensor, noGrad, withGrad, isGradEnabled, record } from './tensor.ts';
export type { DType, GradNode, Storage } from './tensor.ts';
export { backward, grad } from './autograd.ts';
export { inference, recycle, tidy, releaseInferenceBuffers, pooledInferenceBytes } from './recycle.ts';
export { K, setBackend, backendName, nativeAvailable, startProfile, stopProfile, setPrecision, precisionFallback, precisionEmulated } from './dispatch.ts';
export type { Precision } from './dispatch.ts';
export * from './ops/creation.ts';
export * from './ops/elementwise.ts';
export * from './ops/reduce.ts';
export * from './ops/movement.ts';
export * from './ops/matmul.ts';
export * from './ops/conv.ts';
export * from './ops/norm.ts';
export * from './ops/attention.ts';
