// The native backend: loads the N-API addon build/ldm_native.node (native/*.cc over oneDNN and
// OpenMP, built by scripts/build-native.mjs), whose kernel exports take exactly the arguments of
// the Kernels contract (no adapter: signatures are written once, in backend/types.ts).
//
// It is partial: conv2d (+ both backward passes; 3x3 stride-1 ones by Winograd on AVX2 CPUs), matmul, attention (fused forward), groupNorm, layerNorm,
// softmax (+ gradients), unary / unaryGrad (every UnaryOp), binary (every BinaryOp, any
// strides), affine, adamw, reduceSum, stridedCopy / stridedAccumulate, upsampleNearest,
// avgPool2d (+ gradients), clamp and powScalar. Dispatch falls back to the reference backend
// for the rest (where, reduceMax, maxPool2d). Each kernel computes what the reference computes (within float32 rounding); the addon
// checks buffer lengths and throws an Error naming the kernel and the expected length.
// This file does not choose a backend: tensor/dispatch.ts does.

import { createRequire } from 'node:module';
import type { PartialKernels } from '../types.ts';

/** The addon's exports that are not kernels: facts and tuning knobs (see native/addon.cc,
 *  attention.cc, conv.cc). */
export interface NativeExtras {
  info(): { threads: number; onednnVersion: string; isa: string; fmaBits: number; bf16: string };
  precision(mode: NativePrecision | ''): NativePrecision;
  peakGflops(): number;
  attentionIsa(level: 'auto' | 'avx2'): string;
  convChunkKB(kb: number): number;
  convDirect(mode: number): number;
  convGemm1x1(mode: number): number;
  convWinograd(mode: number): number;
  convWinogradTile(tile: number): number;
  convWinogradSplit(mode: number): number;
  convTune(mode: number): number;
  convTuned(forget: boolean): TunedConv[];
}

/** Names of the addon's exports that are not kernels of the contract. */
export const NATIVE_EXTRAS: readonly (keyof NativeExtras)[] = ['info', 'precision', 'peakGflops', 'attentionIsa', 'convChunkKB', 'convDirect', 'convGemm1x1', 'convWinograd', 'convWinogradTile', 'convWinogradSplit', 'convTune', 'convTuned'];

/** The raw addon: every kernel it exports has exactly the contract's signature (written once, in
 *  backend/types.ts; the C++ reads Conv2dGeom by field name), so the kernels need no adapter.
 *  test/backend/native.test.ts checks that the exports are the contract's names plus the extras. */
type Addon = Omit<PartialKernels, 'name'> & NativeExtras;

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
  /** Bits an FMA works on per cycle and pipe: 512 on AVX-512 at full width, 256 on AVX2 and on
   *  AMD's Zen 4 (AVX-512 in two 256-bit halves), where the convolution rules measured on AVX2
   *  apply; null when unavailable. */
  readonly fmaBits: number | null;
  /** How oneDNN runs bf16 here: 'amx', 'avx512_bf16', or null when it cannot (no native bf16,
   *  or the addon is unavailable): then `--precision bf16` falls back to fp32. */
  readonly bf16: string | null;
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

/** The raw exports of the addon (kernels and extras), or null when it is not loaded. For tests
 *  that compare the exports with the contract. */
export function nativeExports(): Readonly<Record<string, unknown>> | null {
  return load().addon as Readonly<Record<string, unknown>> | null;
}

/** The native kernels, or null when the addon is absent or fails to load (see
 *  nativeLoadError() for the reason). Never throws. */
export function loadNative(): PartialKernels | null {
  const { addon } = load();
  if (!addon) return null;
  // Every export that is not an extra is a kernel with the contract's signature (Addon above).
  const { info: _i, precision: _r, peakGflops: _p, attentionIsa: _a, convChunkKB: _c, convDirect: _d, convGemm1x1: _g, convWinograd: _w, convWinogradTile: _t, convWinogradSplit: _s, convTune: _u, convTuned: _v, ...kernels } = addon;
  return { name: 'native', ...kernels };
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

type KnobMode = 'auto' | 'on' | 'off';

/** A native mode knob through its integer code (0 off, 1 on, 2 auto, -1 only reads). */
function modeKnob(call: (code: number) => number, mode?: KnobMode): KnobMode {
  const r = call(mode === undefined ? -1 : mode === 'off' ? 0 : mode === 'on' ? 1 : 2);
  return r === 0 ? 'off' : r === 1 ? 'on' : 'auto';
}

/** Chooses where stride-1 convolutions (forward and backward-to-input) run: 'auto' (default,
 *  or LDM_CONV_DIRECT): the direct AVX-512 kernels when a channel count is not a multiple of 16,
 *  oneDNN otherwise; 'on': the direct kernels always; 'off': oneDNN always. No argument only
 *  reads. Returns the mode in effect ('off' when the CPU lacks AVX-512), or null when the addon
 *  is not loaded. A tuning knob for tests and benchmarks. */
export function setConvDirect(mode?: 'auto' | 'on' | 'off'): 'auto' | 'on' | 'off' | null {
  const { addon } = load();
  return addon ? modeKnob((code) => addon.convDirect(code), mode) : null;
}

/** Chooses where 1x1 stride-1 unpadded convolutions run: 'auto' (default, or LDM_CONV_GEMM1X1)
 *  and 'on': as single-precision GEMMs on the NCHW buffers (native/conv.cc; the forward and
 *  backward-to-input passes only in fp32 precision, bf16 keeps oneDNN); 'off': oneDNN's
 *  primitives with their layout reorders. No argument only reads. Returns the mode in effect, or
 *  null when the addon is not loaded. A tuning knob for tests and benchmarks. */
export function setConvGemm1x1(mode?: 'auto' | 'on' | 'off'): 'auto' | 'on' | 'off' | null {
  const { addon } = load();
  return addon ? modeKnob((code) => addon.convGemm1x1(code), mode) : null;
}

/** Chooses where 3x3 stride-1 convolutions (all three passes) run: 'auto' (default, or
 *  LDM_CONV_WINOGRAD): the Winograd kernels of native/conv_winograd.cc on a CPU whose FMAs are
 *  256 bits wide (AVX2, or AVX-512 in halves: nativeInfo().fmaBits) where both channel counts
 *  are at least 16 and the planes big enough for the channels, or many channels go in and few out
 *  (see convWinogradWanted), oneDNN (or the direct kernels) otherwise; 'on': Winograd for every
 *  3x3 stride-1 fp32 convolution; 'off': never. No argument only reads. Returns the mode in
 *  effect, or null when the addon is not loaded. A tuning knob for tests and benchmarks. */
export function setConvWinograd(mode?: 'auto' | 'on' | 'off'): 'auto' | 'on' | 'off' | null {
  const { addon } = load();
  return addon ? modeKnob((code) => addon.convWinograd(code), mode) : null;
}

/** Chooses the Winograd tile of those convolutions: 2 runs F(2x2,3x3), 4 runs F(4x4,3x3) (fewer
 *  multiplies, more rounding), 'auto' (default, or LDM_WINO_TILE=2|4) F(4x4) where the output
 *  planes are at least 16x16 and the batch has enough tiles, F(2x2) elsewhere. No argument only
 *  reads. Returns the tile in effect,
 *  or null when the addon is not loaded. A tuning knob for tests and benchmarks. */
export function setConvWinogradTile(tile?: 'auto' | 2 | 4): 'auto' | 2 | 4 | null {
  const { addon } = load();
  if (!addon) return null;
  const r = addon.convWinogradTile(tile === undefined ? -1 : tile === 'auto' ? 0 : tile);
  return r === 2 || r === 4 ? r : 'auto';
}

/** Chooses how the Winograd passes (all three) share out work: 'images' gives each thread whole
 *  chunks of images (its own transforms and products, one barrier a call; in the forward and
 *  input-gradient passes a held-up thread's chunks are taken by the others), 'tiles' splits each chunk's products by tile position
 *  (every thread on every chunk), 'auto' (default, or LDM_WINO_SPLIT=0 tiles / 1 images) takes
 *  images where the batch gives at least one chunk a thread (the weight gradient: two). No argument only reads. Returns the
 *  mode in effect, or null when the addon is not loaded. A tuning knob for tests and benchmarks. */
export function setConvWinogradSplit(mode?: 'auto' | 'tiles' | 'images'): 'auto' | 'tiles' | 'images' | null {
  const { addon } = load();
  if (!addon) return null;
  const r = addon.convWinogradSplit(mode === undefined ? -1 : mode === 'tiles' ? 0 : mode === 'images' ? 1 : 2);
  return r === 0 ? 'tiles' : r === 1 ? 'images' : 'auto';
}

/** Where a convolution pass runs: oneDNN's primitives, the 1x1 GEMMs, the direct AVX-512
 *  kernels or Winograd F(2x2,3x3) / F(4x4,3x3) (native/conv.cc). */
export type ConvRoute = 'oneDNN' | 'gemm1x1' | 'direct' | 'winograd2' | 'winograd4';

/** One tuned pass and geometry (see setConvTune): the route kept, the one the rules take, and
 *  each candidate route's best time in ms. */
export interface TunedConv {
  pass: 'forward' | 'input-gradient' | 'weight-gradient';
  n: number; cin: number; h: number; w: number; cout: number; kh: number; kw: number; strideH: number; strideW: number;
  oh: number; ow: number;
  route: ConvRoute;
  rule: ConvRoute;
  ms: Partial<Record<ConvRoute, number>>;
}

/** Chooses how convolution passes find their route: 'off' (default) by the rules above (each
 *  knob's auto rule, measured on AVX2 and AVX-512 machines for the shapes they name); 'on'
 *  (or LDM_CONV_TUNE=1) by timing: the first call of each pass on each geometry (batch
 *  included) runs every route that computes it (Winograd in both tiles, F(4x4) on output planes
 *  of 12x12 and up; a knob at 'off' excludes its route, one at 'on' forces it, a tile knob at 2
 *  or 4 keeps that tile) and keeps the fastest, like torch.backends.cudnn.benchmark. The routes agree
 *  within float32 rounding, so tuned runs can differ from each other in low bits. No argument
 *  only reads. Returns the mode in effect, or null when the addon is not loaded. */
export function setConvTune(mode?: 'on' | 'off'): 'on' | 'off' | null {
  const { addon } = load();
  if (!addon) return null;
  return addon.convTune(mode === undefined ? -1 : mode === 'on' ? 1 : 0) === 1 ? 'on' : 'off';
}

/** The tuned choices of this thread so far ([] when none, or the addon is not loaded);
 *  `forget` drops them afterwards, so that the next call of each geometry tunes again. */
export function convTunedRoutes(forget = false): TunedConv[] {
  const { addon } = load();
  return addon ? addon.convTuned(forget) : [];
}

/** The native convolutions' precision: 'fp32' exact float32; 'bf16' multiplies in bf16 with f32
 *  inputs, outputs and accumulation (mixed precision, like torch.autocast); 'bf16-emulated' the
 *  same numerics on any CPU (operands rounded to bf16, f32 kernels: bf16's rounding, not its speed). */
export type NativePrecision = 'fp32' | 'bf16' | 'bf16-emulated';

/** Sets the precision of the native convolutions. Returns the precision in effect: 'fp32' where
 *  'bf16' was asked and the CPU has no native bf16 (nativeInfo().bf16 null), or the addon is not
 *  loaded. */
export function setNativePrecision(p: NativePrecision): NativePrecision {
  const { addon } = load();
  return addon ? addon.precision(p) : 'fp32';
}

/** Facts about the native backend; `available: false` with a reason when it is not loaded. */
export function nativeInfo(): NativeInfo {
  const { addon, reason } = load();
  if (!addon) {
    return { available: false, reason, threads: 0, onednnVersion: null, isa: null, fmaBits: null, bf16: null, peakGflops: () => Number.NaN };
  }
  const i = addon.info();
  return {
    available: true, reason: null, threads: i.threads, onednnVersion: i.onednnVersion, isa: i.isa, fmaBits: i.fmaBits, bf16: i.bf16 || null,
    peakGflops: () => addon.peakGflops(),
  };
}
