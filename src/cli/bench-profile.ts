// `npm run bench -- --profile`: a per-op breakdown of one W4 training step and one sampling
// forward pass (time, bytes moved, GFLOP/s per kernel, per shape class and per layer kind), and
// the time spent outside kernels (JavaScript, autograd bookkeeping, allocation). Records come
// from tensor/dispatch's profiling wrapper; this file only aggregates and formats them.

import type { KernelCall } from '../backend/index.ts';

/** Layer kind of a kernel, for the coarse table. */
function kindOf(kernel: string): string {
  if (kernel.startsWith('conv2d')) return 'convolution';
  if (kernel === 'matmul') return 'matmul (linear)';
  if (kernel === 'attention' || kernel.startsWith('softmax')) return 'attention';
  if (kernel.startsWith('groupNorm') || kernel.startsWith('layerNorm')) return 'normalisation';
  if (['unary', 'unaryGrad', 'binary', 'affine', 'powScalar', 'clamp', 'where'].includes(kernel)) return 'elementwise';
  if (kernel.startsWith('strided') || kernel.startsWith('upsample')) return 'movement (copy, cat, upsample)';
  if (kernel.startsWith('reduce')) return 'reduction';
  if (kernel === 'adamw') return 'optimiser';
  return 'other';
}

interface Agg { key: string; calls: number; seconds: number; bytes: number; flop: number }

function aggregate(calls: readonly KernelCall[], key: (c: KernelCall) => string): Agg[] {
  const m = new Map<string, Agg>();
  for (const c of calls) {
    const k = key(c);
    const a = m.get(k) ?? { key: k, calls: 0, seconds: 0, bytes: 0, flop: 0 };
    a.calls++; a.seconds += c.seconds; a.bytes += c.bytes; a.flop += c.flop;
    m.set(k, a);
  }
  return [...m.values()].sort((x, y) => y.seconds - x.seconds);
}

function table(title: string, rows: readonly Agg[], reps: number, total: number, peak: number, top: number): string[] {
  const lines = [title, `  ${'share'.padStart(6)} ${'ms'.padStart(8)} ${'calls'.padStart(6)} ${'MB'.padStart(8)} ${'GB/s'.padStart(6)} ${'GFLOP/s'.padStart(8)} ${'%peak'.padStart(6)}  what`];
  for (const r of rows.slice(0, top)) {
    const s = r.seconds / reps;
    const gf = r.flop > 0 ? r.flop / r.seconds / 1e9 : null;
    lines.push(`  ${(100 * s / total).toFixed(1).padStart(5)}% ${(1000 * s).toFixed(2).padStart(8)} ${String(r.calls / reps).padStart(6)} ` +
      `${(r.bytes / reps / 2 ** 20).toFixed(1).padStart(8)} ${(r.bytes / r.seconds / 1e9).toFixed(1).padStart(6)} ` +
      `${gf === null ? ''.padStart(8) : gf.toFixed(0).padStart(8)} ${gf === null || !Number.isFinite(peak) ? ''.padStart(6) : `${(100 * gf / peak).toFixed(0)}%`.padStart(6)}  ${r.key}`);
  }
  if (rows.length > top) lines.push(`  … ${rows.length - top} more`);
  return lines;
}

/** The report of `reps` repetitions of one workload whose wall time was `wallSeconds` in all. */
export function formatProfile(name: string, calls: readonly KernelCall[], reps: number, wallSeconds: number,
  peak: number, top = 18): string[] {
  const total = wallSeconds / reps;
  const inKernels = calls.reduce((s, c) => s + c.seconds, 0) / reps;
  const flop = calls.reduce((s, c) => s + c.flop, 0) / reps;
  const out = [
    `${name}: ${(1000 * total).toFixed(1)} ms per run (${reps} runs), ${(1000 * inKernels).toFixed(1)} ms in ${calls.length / reps} kernel calls, ` +
      `${(1000 * (total - inKernels)).toFixed(1)} ms (${(100 * (total - inKernels) / total).toFixed(0)}%) outside kernels (JS, autograd, allocation); ` +
      `${(flop / total / 1e9).toFixed(0)} GFLOP/s overall${Number.isFinite(peak) ? ` = ${(100 * flop / total / 1e9 / peak).toFixed(0)}% of peak` : ''}`,
  ];
  out.push(...table(' by layer kind', aggregate(calls, (c) => kindOf(c.kernel)), reps, total, peak, 12));
  out.push(...table(' by kernel', aggregate(calls, (c) => c.kernel), reps, total, peak, 12));
  out.push(...table(' by kernel and shape (top)', aggregate(calls, (c) => c.detail), reps, total, peak, top));
  return out;
}
