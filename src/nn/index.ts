// nn/ (rank 3): Module with official state-dict keys, layers, init, optimisers, EMA, losses.
export { Module, type LoadResult } from './module.ts';
export * from './layers.ts';
export * from './init.ts';
export * from './optim.ts';
export { LitEma } from './ema.ts';
export * from './functional.ts';
