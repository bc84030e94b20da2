// The native backend: loads the N-API addon build/ldm_native.node (native/*.cc over oneDNN and
// OpenMP, built by scripts/build-native.mjs) and adapts it to the Kernels contract.
//
// It is partial: conv2d (+ both backward passes), matmul, attention (fused forward), groupNorm, layerNorm,
// softmax (+ gradients), unary / unaryGrad (every UnaryOp), binary (every BinaryOp, any
// strides), affine, adamw, reduceSum, stridedCopy / stridedAccumulate, upsampleNearest,
// avgPool2d (+ gradients), clamp and powScalar. Dispatch falls back to the reference backend
// for the rest (where, reduceMax, maxPool2d). Each kernel computes what the reference computes (within float32 rounding); the addon
// checks buffer lengths and throws an Error naming the kernel and the expected length.
// This file does not choose a backend: tensor/dispatch.ts does.

import { createRequire } from 'node:module';
import type { BinaryOp, Conv2dGeom, PartialKernels, UnaryOp } from '../types.ts';

type F32 = Float32Array;

/** The raw addon exports (positional arguments; see native/*.cc for each signature). */
interface Addon {
  info(): { threads: number; onednnVersion: string; isa: string };
  peakGflops(): number;
  attentionIsa(level: 'auto' | 'avx2'): string;
  convChunkKB(kb: number): number;
  convDirect(mode: number): number;
  conv2d(x: F32, w: F32, bias: F32 | null, out: F32, ...geom: number[]): void;
  conv2dBackwardInput(gy: F32, w: F32, gx: F32, ...geom: number[]): void;
  conv2dBackwardWeight(gy: F32, x: F32, gw: F32, gb: F32 | null, ...geom: number[]): void;
  matmul(a: F32, b: F32, out: F32, batch: number, m: number, k: number, n: number, transA: boolean,
    transB: boolean, aBatchStride: number, bBatchStride: number, accumulate: boolean): void;
  attention(q: F32, k: F32, v: F32, b: number, sq: number, sk: number, d: number, dv: number, scale: number,
    mask: F32 | null, maskStrides: readonly number[] | null, out: F32, probs: F32): void;
  groupNorm(x: F32, n: number, c: number, hw: number, groups: number, eps: number, gamma: F32 | null,
    beta: F32 | null, out: F32, mean: F32, rstd: F32): void;
  groupNormGrad(gy: F32, x: F32, n: number, c: number, hw: number, groups: number, gamma: F32 | null,
    mean: F32, rstd: F32, gx: F32, ggamma: F32 | null, gbeta: F32 | null): void;
  layerNorm(x: F32, rows: number, d: number, eps: number, gamma: F32 | null, beta: F32 | null, out: F32,
    mean: F32, rstd: F32): void;
  layerNormGrad(gy: F32, x: F32, rows: number, d: number, gamma: F32 | null, mean: F32, rstd: F32, gx: F32,
    ggamma: F32 | null, gbeta: F32 | null): void;
  softmax(x: F32, rows: number, cols: number, out: F32, log: boolean): void;
  softmaxGrad(y: F32, gy: F32, rows: number, cols: number, out: F32, log: boolean): void;
  unary(op: UnaryOp, x: F32, out: F32): void;
  unaryGrad(op: UnaryOp, x: F32, y: F32, gy: F32, out: F32): void;
  binary(op: BinaryOp, a: F32, aStrides: readonly number[], b: F32, bStrides: readonly number[], out: F32,
    outShape: readonly number[]): void;
  affine(x: F32, scale: number, shift: number, out: F32): void;
  adamw(p: F32, g: F32, m: F32, v: F32, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number): void;
  reduceSum(x: F32, outer: number, axis: number, inner: number, out: F32): void;
  stridedCopy(src: F32, offset: number, strides: readonly number[], shape: readonly number[], out: F32): void;
  stridedAccumulate(src: F32, dst: F32, offset: number, strides: readonly number[], shape: readonly number[]): void;
  upsampleNearest(x: F32, nc: number, h: number, w: number, sh: number, sw: number, out: F32): void;
  upsampleNearestGrad(gy: F32, nc: number, h: number, w: number, sh: number, sw: number, gx: F32): void;
  avgPool2d(x: F32, n: number, c: number, h: number, w: number, k: number, s: number, out: F32): void;
  avgPool2dGrad(gy: F32, n: number, c: number, h: number, w: number, k: number, s: number, gx: F32): void;
  clamp(x: F32, lo: number, hi: number, out: F32): void;
  powScalar(x: F32, p: number, out: F32): void;
}

/** What the native backend reports about itself (for `ldm bench` and diagnostics). */
export interface NativeInfo {
  readonly available: boolean;
  /** Why the addon is not available (null when it is). */
  readonly reason: string | null;
  /** OpenMP threads used by the kernels (0 when unavailable). */
  readonly threads: number;
  readonly onednnVersion: string | null;
  /** Widest vector ISA of this CPU seen by the addon ('avx512' or 'avx2'), null when unavailable. */
  readonly isa: string | null;
  /** Measures the machine's FP32 peak in GFLOP/s (12 independent FMA chains per thread on all
   *  OpenMP threads, AVX-512 when the CPU has it, about 0.1 s); NaN when the addon is unavailable. */
  peakGflops(): number;
}

const ADDON_PATH = '../../../build/ldm_native.node'; // relative to this file: <repo>/build/

let loaded: { addon: Addon | null; reason: string | null } | null = null;

function load(): { addon: Addon | null; reason: string | null } {
  if (loaded) return loaded;
  // OpenMP threads that sleep instead of spinning while they wait: on 2 shared cores spinning
  // measured 2-3x slower (libgomp reads this when the addon loads, so it must be set first).
  if (process.env['OMP_WAIT_POLICY'] === undefined) process.env['OMP_WAIT_POLICY'] = 'passive';
  try {
    const require = createRequire(import.meta.url);
    const addon = require(ADDON_PATH) as Addon;
    if (typeof addon.conv2d !== 'function' || typeof addon.info !== 'function') {
      loaded = { addon: null, reason: 'build/ldm_native.node does not export the expected kernels (rebuild: npm run build:native)' };
    } else {
      loaded = { addon, reason: null };
    }
  } catch (e: unknown) {
    const msg = e instanceof Error ? e.message.split('\n')[0] ?? e.message : String(e);
    const missing = e instanceof Error && (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
    loaded = {
      addon: null,
      reason: missing ? 'build/ldm_native.node is not built (npm run build:native)' : `build/ldm_native.node failed to load: ${msg}`,
    };
  }
  return loaded;
}

/** Why loadNative() returned null, or null when the addon loaded. */
export function nativeLoadError(): string | null {
  return load().reason;
}

function geomArgs(g: Conv2dGeom): number[] {
  return [g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.strideH, g.strideW, g.padT, g.padB, g.padL, g.padR, g.oh, g.ow];
}

/** The native kernels, or null when the addon is absent or fails to load (see
 *  nativeLoadError() for the reason). Never throws. */
export function loadNative(): PartialKernels | null {
  const { addon: a } = load();
  if (!a) return null;
  return {
    name: 'native',
    conv2d: (x, w, bias, g, out) => a.conv2d(x, w, bias, out, ...geomArgs(g)),
    conv2dBackwardInput: (gy, w, g, gx) => a.conv2dBackwardInput(gy, w, gx, ...geomArgs(g)),
    conv2dBackwardWeight: (gy, x, g, gw, gb) => a.conv2dBackwardWeight(gy, x, gw, gb, ...geomArgs(g)),
    matmul: (x, y, out, batch, m, k, n, ta, tb, sa, sb, acc) => a.matmul(x, y, out, batch, m, k, n, ta, tb, sa, sb, acc),
    attention: (q, k, v, b, sq, sk, d, dv, scale, mask, maskStrides, out, probs) =>
      a.attention(q, k, v, b, sq, sk, d, dv, scale, mask, maskStrides, out, probs),
    groupNorm: (x, n, c, hw, groups, eps, gamma, beta, out, mean, rstd) =>
      a.groupNorm(x, n, c, hw, groups, eps, gamma, beta, out, mean, rstd),
    groupNormGrad: (gy, x, n, c, hw, groups, gamma, mean, rstd, gx, ggamma, gbeta) =>
      a.groupNormGrad(gy, x, n, c, hw, groups, gamma, mean, rstd, gx, ggamma, gbeta),
    layerNorm: (x, rows, d, eps, gamma, beta, out, mean, rstd) => a.layerNorm(x, rows, d, eps, gamma, beta, out, mean, rstd),
    layerNormGrad: (gy, x, rows, d, gamma, mean, rstd, gx, ggamma, gbeta) =>
      a.layerNormGrad(gy, x, rows, d, gamma, mean, rstd, gx, ggamma, gbeta),
    softmax: (x, rows, cols, out, log) => a.softmax(x, rows, cols, out, log),
    softmaxGrad: (y, gy, rows, cols, out, log) => a.softmaxGrad(y, gy, rows, cols, out, log),
    unary: (op, x, out) => a.unary(op, x, out),
    unaryGrad: (op, x, y, gy, out) => a.unaryGrad(op, x, y, gy, out),
    binary: (op, x, xs, y, ys, out, shape) => a.binary(op, x, xs, y, ys, out, shape),
    affine: (x, scale, shift, out) => a.affine(x, scale, shift, out),
    adamw: (p, g, m, v, lr, b1, b2, eps, wd, step) => a.adamw(p, g, m, v, lr, b1, b2, eps, wd, step),
    reduceSum: (x, outer, axis, inner, out) => a.reduceSum(x, outer, axis, inner, out),
    stridedCopy: (src, offset, strides, shape, out) => a.stridedCopy(src, offset, strides, shape, out),
    stridedAccumulate: (src, dst, offset, strides, shape) => a.stridedAccumulate(src, dst, offset, strides, shape),
    upsampleNearest: (x, nc, h, w, sh, sw, out) => a.upsampleNearest(x, nc, h, w, sh, sw, out),
    upsampleNearestGrad: (gy, nc, h, w, sh, sw, gx) => a.upsampleNearestGrad(gy, nc, h, w, sh, sw, gx),
    avgPool2d: (x, n, c, h, w, k, s, out) => a.avgPool2d(x, n, c, h, w, k, s, out),
    avgPool2dGrad: (gy, n, c, h, w, k, s, gx) => a.avgPool2dGrad(gy, n, c, h, w, k, s, gx),
    clamp: (x, lo, hi, out) => a.clamp(x, lo, hi, out),
    powScalar: (x, p, out) => a.powScalar(x, p, out),
  };
}

/** Restricts the ISA-specialised kernels (attention) to the AVX2 baseline ('avx2') or lets
 *  them use the widest ISA of the CPU ('auto', the default); returns the ISA now in use, or
 *  null when the addon is not loaded. For tests and benchmarks. */
export function setNativeIsa(level: 'auto' | 'avx2'): string | null {
  const { addon } = load();
  return addon ? addon.attentionIsa(level) : null;
}

/** Sets how many KiB of (reordered) input + output one convolution call processes at a time
 *  (the batch is split into equal chunks so that oneDNN's layout reorders stay in cache;
 *  0 = the whole batch at once, the default unless LDM_CONV_CHUNK_KB is set); -1 only reads it.
 *  Returns the value in effect, or null when the addon is not loaded. A tuning knob. */
export function setConvChunkKB(kb: number): number | null {
  const { addon } = load();
  return addon ? addon.convChunkKB(kb) : null;
}

/** Chooses where stride-1 convolutions (forward and backward-to-input) run: 'auto' (default,
 *  or LDM_CONV_DIRECT): the direct AVX-512 kernels when a channel count is not a multiple of 16,
 *  oneDNN otherwise; 'on': the direct kernels always; 'off': oneDNN always. No argument only
 *  reads. Returns the mode in effect ('off' when the CPU lacks AVX-512), or null when the addon
 *  is not loaded. A tuning knob for tests and benchmarks. */
export function setConvDirect(mode?: 'auto' | 'on' | 'off'): 'auto' | 'on' | 'off' | null {
  const { addon } = load();
  if (!addon) return null;
  const code = mode === undefined ? -1 : mode === 'off' ? 0 : mode === 'on' ? 1 : 2;
  const r = addon.convDirect(code);
  return r === 0 ? 'off' : r === 1 ? 'on' : 'auto';
}

/** Facts about the native backend; `available: false` with a reason when it is not loaded. */
export function nativeInfo(): NativeInfo {
  const { addon, reason } = load();
  if (!addon) {
    return { available: false, reason, threads: 0, onednnVersion: null, isa: null, peakGflops: () => Number.NaN };
  }
  const i = addon.info();
  return {
    available: true, reason: null, threads: i.threads, onednnVersion: i.onednnVersion, isa: i.isa,
    peakGflops: () => addon.peakGflops(),
  };
}
