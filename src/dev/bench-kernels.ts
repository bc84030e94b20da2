// Kernel-level benchmark workloads W1-W3 (the same shapes as shared/bench/bench_torch.py), run
// through a backend's kernels (the native one by default). Each returns records
// {workload, times (seconds per call), flop}; the caller computes best / median and prints.
// Not a CLI: no printing, no argv. Dev tooling (dev/), outside the library; W4 (a UNet training
// step) is bench-unet.ts.

import { performance } from 'node:perf_hooks';
import { loadNative, nativeLoadError, type Conv2dGeom, type PartialKernels } from '../backend/index.ts';

export interface KernelBenchRecord {
  readonly workload: 'W1_conv_fwd' | 'W1_conv_bwd_input' | 'W1_conv_bwd_weight' | 'W2_sgemm' | 'W3_attention';
  /** Seconds per call, one entry per timed repetition. */
  readonly times: number[];
  readonly flop: number;
}

export interface KernelBenchOptions {
  /** Untimed calls before timing (default 2). */
  readonly warmup?: number;
  /** Timed calls (default 7). */
  readonly reps?: number;
}

function filled(n: number, seed: number, amp = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * amp;
  }
  return a;
}

function time(fn: () => void, opts: KernelBenchOptions): number[] {
  const warmup = opts.warmup ?? 2, reps = opts.reps ?? 7;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}

function need<K extends keyof PartialKernels>(k: PartialKernels, name: K): NonNullable<PartialKernels[K]> {
  const f = k[name];
  if (f === undefined) throw new Error(`bench-kernels: backend '${k.name}' has no ${String(name)} kernel`);
  return f as NonNullable<PartialKernels[K]>;
}

/** W1: conv 3x3, N=16, C=64->64, 32x32, padding 1: forward, backward-to-input, backward-to-weight. */
export function benchW1Conv(k: PartialKernels, opts: KernelBenchOptions = {}): KernelBenchRecord[] {
  const conv2d = need(k, 'conv2d'), bwdIn = need(k, 'conv2dBackwardInput'), bwdW = need(k, 'conv2dBackwardWeight');
  const g: Conv2dGeom = {
    n: 16, cin: 64, h: 32, w: 32, cout: 64, kh: 3, kw: 3, strideH: 1, strideW: 1,
    padT: 1, padB: 1, padL: 1, padR: 1, oh: 32, ow: 32,
  };
  const flop = 2 * g.n * g.cout * g.oh * g.ow * g.cin * g.kh * g.kw;
  const x = filled(g.n * g.cin * g.h * g.w, 1), w = filled(g.cout * g.cin * 9, 2, 0.05);
  const gy = filled(g.n * g.cout * g.oh * g.ow, 3);
  const y = new Float32Array(gy.length), gx = new Float32Array(x.length), gw = new Float32Array(w.length);
  return [
    { workload: 'W1_conv_fwd', times: time(() => conv2d(x, w, null, g, y), opts), flop },
    { workload: 'W1_conv_bwd_input', times: time(() => bwdIn(gy, w, g, gx), opts), flop },
    { workload: 'W1_conv_bwd_weight', times: time(() => bwdW(gy, x, g, gw, null), opts), flop },
  ];
}

/** W2: sgemm 1024^3. */
export function benchW2Sgemm(k: PartialKernels, opts: KernelBenchOptions = {}): KernelBenchRecord[] {
  const matmul = need(k, 'matmul');
  const n = 1024;
  const a = filled(n * n, 4), b = filled(n * n, 5), c = new Float32Array(n * n);
  return [{ workload: 'W2_sgemm', times: time(() => matmul(a, b, c, 1, n, n, n, false, false, 0, 0, false), opts), flop: 2 * n ** 3 }];
}

/** W3: attention, batch 16 x 4 heads, seq 256, head dim 32 (flop 4 b sq sk d). */
export function benchW3Attention(k: PartialKernels, opts: KernelBenchOptions = {}): KernelBenchRecord[] {
  const attention = need(k, 'attention');
  const b = 16 * 4, s = 256, d = 32;
  const q = filled(b * s * d, 6), kk = filled(b * s * d, 7), v = filled(b * s * d, 8);
  const out = new Float32Array(b * s * d), probs = new Float32Array(b * s * s);
  const scale = 1 / Math.sqrt(d);
  return [{
    workload: 'W3_attention',
    times: time(() => attention(q, kk, v, b, s, s, d, d, scale, null, null, out, probs), opts),
    flop: 4 * b * s * s * d,
  }];
}

/** W1, W2 and W3 through the given kernels (default: the native backend; throws when it is
 *  not available, with the reason). */
export function benchKernels(kernels?: PartialKernels, opts: KernelBenchOptions = {}): KernelBenchRecord[] {
  const k = kernels ?? loadNative();
  if (!k) throw new Error(`bench-kernels: native backend unavailable (${nativeLoadError() ?? 'unknown reason'})`);
  return [...benchW1Conv(k, opts), ...benchW2Sgemm(k, opts), ...benchW3Attention(k, opts)];
}
