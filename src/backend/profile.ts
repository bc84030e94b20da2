// A profiling wrapper around a Kernels object: every kernel call is timed and recorded with
// the bytes it touches (the byte length of every buffer argument: what it reads plus what it
// writes) and, for the compute kernels, its floating-point operation count. It measures; it does
// not print (cli/bench.ts formats the report). Not for production runs: the wrapper costs one
// closure call and two clock reads per kernel.

import type { Conv2dGeom, Kernels } from './types.ts';

export interface KernelCall {
  /** Kernel name (conv2d, groupNorm, binary, ...). */
  readonly kernel: string;
  /** Kernel plus its shape class, e.g. `conv2d 3x3 64->128 16x16` or `binary add`. */
  readonly detail: string;
  readonly seconds: number;
  readonly bytes: number;
  readonly flop: number;
}

/** Floating-point operations and a shape label of one call, from its arguments. */
function describe(kernel: string, args: readonly unknown[]): { detail: string; flop: number } {
  const convGeom = (g: Conv2dGeom): { detail: string; flop: number } => ({
    detail: `${kernel} ${g.kh}x${g.kw}${g.strideH > 1 ? `/s${g.strideH}` : ''} ${g.cin}->${g.cout} ${g.oh}x${g.ow}`,
    flop: 2 * g.n * g.cout * g.oh * g.ow * g.cin * g.kh * g.kw,
  });
  switch (kernel) {
    case 'conv2d': return convGeom(args[3] as Conv2dGeom);
    case 'conv2dBackwardInput': return convGeom(args[2] as Conv2dGeom);
    case 'conv2dBackwardWeight': return convGeom(args[2] as Conv2dGeom);
    case 'matmul': {
      const [b, m, k, n] = args.slice(3, 7) as number[];
      return { detail: `matmul ${m}x${k}x${n}${b! > 1 ? ` x${b}` : ''}`, flop: 2 * b! * m! * k! * n! };
    }
    case 'attention': {
      const [b, sq, sk, d] = args.slice(3, 7) as number[];
      return { detail: `attention ${b}x${sq}x${sk}x${d}`, flop: 4 * b! * sq! * sk! * d! };
    }
    case 'unary': case 'unaryGrad': case 'binary': return { detail: `${kernel} ${String(args[0])}`, flop: 0 };
    case 'groupNorm': case 'groupNormGrad': {
      const [c, hw] = (kernel === 'groupNorm' ? args.slice(2, 4) : args.slice(3, 5)) as number[];
      return { detail: `${kernel} ${c}ch ${hw}px`, flop: 0 };
    }
    default: return { detail: kernel, flop: 0 };
  }
}

function bytesOf(args: readonly unknown[]): number {
  let b = 0;
  for (const a of args) if (ArrayBuffer.isView(a)) b += a.byteLength;
  return b;
}

/** Wraps every kernel of `k` so that each call appends a record to `sink`. */
export function profileKernels(k: Kernels, sink: KernelCall[]): Kernels {
  const wrapped: Record<string, unknown> = { name: k.name };
  for (const [name, fn] of Object.entries(k)) {
    if (typeof fn !== 'function') continue;
    const f = fn as (...a: unknown[]) => unknown;
    wrapped[name] = (...args: unknown[]): unknown => {
      const t0 = performance.now();
      const r = f(...args);
      const seconds = (performance.now() - t0) / 1000;
      const { detail, flop } = describe(name, args);
      sink.push({ kernel: name, detail, seconds, bytes: bytesOf(args), flop });
      return r;
    };
  }
  // Every key of k is copied above, so the object has the Kernels shape.
  return wrapped as unknown as Kernels;
}
