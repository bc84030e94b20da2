// backend/ (rank 1): the Kernels contract, the reference backend, and the native loader.
export type { Kernels, PartialKernels, Conv2dGeom, UnaryOp, BinaryOp } from './types.ts';
export type { ConvRoute, TunedConv } from './native/index.ts';
export { reference, erf } from './reference/index.ts';
export {
  loadNative, nativeInfo, nativeLoadError, setNativePrecision, setConvDirect, setConvGemm1x1, setConvWinograd, setConvWinogradSplit, setConvTune, convTunedRoutes,
  setConvWinogradTile,
} from './native/index.ts';
export { profileKernels, type KernelCall } from './profile.ts';
export { loadWasm, initWasm, wasmSupported } from './wasm/index.ts';
