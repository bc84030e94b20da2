// Float emulation of the reference codes' arithmetic: an exactly rounded fused multiply-add,
// torch's CPU linspace kernel (FMA-contracted, AVX2 block structure) and numpy's linspace, plus
// small argument checks shared by the schedule code. Pure numbers; no tensors.

import { ConfigError } from '../util/index.ts';

export const f32 = Math.fround;
const id = (x: number): number => x;

// ---- Exact fused multiply-add (torch's CPU linspace kernel is compiled with FMA contraction) ----

const scratch = new DataView(new ArrayBuffer(8));

/** x = m * 2^e exactly, m a signed integer. */
function decompose(x: number): [bigint, number] {
  if (x === 0) return [0n, 0];
  scratch.setFloat64(0, x);
  const hi = scratch.getUint32(0);
  const lo = scratch.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e = -1074;
  if (biased !== 0) {
    m |= 1n << 52n;
    e = biased - 1075;
  }
  return [hi >>> 31 ? -m : m, e];
}

function bitLength(a: bigint): number {
  return a === 0n ? 0 : a.toString(2).length;
}

/**
 * n * 2^e rounded once, to nearest-even, to float64 (`toF32` false) or float32 (`toF32` true).
 * The integer is first narrowed with a sticky bit (50 bits when the target is float32, so that
 * Number() is exact and fround does the only rounding; 64 bits for float64, where Number() rounds
 * correctly). Assumes a normal-range result (true for every schedule here).
 */
function roundScaled(n: bigint, e: number, toF32: boolean): number {
  if (n === 0n) return 0;
  const neg = n < 0n;
  let a = neg ? -n : n;
  const keep = toF32 ? 50 : 64;
  const len = bitLength(a);
  if (len > keep) {
    const k = len - keep;
    const sticky = (a & ((1n << BigInt(k)) - 1n)) !== 0n;
    a = (a >> BigInt(k)) | (sticky ? 1n : 0n);
    e += k;
  }
  const half = Math.trunc(e / 2);
  let r = Number(a) * 2 ** half * 2 ** (e - half);
  if (toF32) r = f32(r);
  return neg ? -r : r;
}

/** fma(a, b, c) = a*b + c with a single rounding, to float64 or float32. */
export function fmaRound(a: number, b: number, c: number, toF32 = false): number {
  const [ma, ea] = decompose(a);
  const [mb, eb] = decompose(b);
  const [mc, ec] = decompose(c);
  const ep = ea + eb;
  const E = Math.min(ep, ec);
  const n = ((ma * mb) << BigInt(ep - E)) + (mc << BigInt(ec - E));
  return roundScaled(n, E, toF32);
}

// ---- linspace, as torch (CPU, AVX2 kernels) and numpy compute it --------------------------------

/**
 * `torch.linspace(start, end, steps, dtype)` bit for bit as the CPU kernel of torch 1.13
 * (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp, AVX2 dispatch), verified against torch:
 *  1. start, end cast to scalar_t; step = (end - start) / (steps - 1) in scalar_t;
 *  2. element idx < steps/2 is start + step*idx, the others end - step*(steps-1-idx), each
 *     contracted into ONE fused multiply-add by the compiler;
 *  3. the vectorised loop handles 2 vectors per iteration (8 float32 / 4 float64 lanes each):
 *     a vector starting at idx gets the fused base of step 2 at idx, and lane j is
 *     base + j*step (two roundings, not fused); the tail (< 2 vectors) is scalar (step 2).
 * Exact for steps <= 32768 (above torch's GRAIN_SIZE the result depends on the thread count).
 * float32 results are returned widened to float64 (as `.double()` does).
 */
export function torchLinspace(
  start: number,
  end: number,
  steps: number,
  dtype: 'float32' | 'float64' = 'float32',
): Float64Array {
  if (!Number.isInteger(steps) || steps < 0) {
    throw new ConfigError(`torchLinspace: steps must be a non-negative integer, got ${steps}`);
  }
  const isF32 = dtype === 'float32';
  const r = isF32 ? f32 : id;
  const W = isF32 ? 8 : 4; // AVX2 lanes (Vectorized<float>::size(), Vectorized<double>::size())
  const out = new Float64Array(steps);
  const s = r(start);
  const e = r(end);
  if (steps === 0) return out;
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  // 1. step in scalar_t
  const step = r(r(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // 2. fused base value at idx
  const base = (idx: number): number =>
    idx < halfway ? fmaRound(step, idx, s, isF32) : fmaRound(-step, steps - idx - 1, e, isF32);
  // 3. vectorised loop, then the scalar tail
  let i = 0;
  for (; i <= steps - 2 * W; i += 2 * W) {
    for (let v = 0; v < 2; v++) {
      const idx = i + v * W;
      const b = base(idx);
      out[idx] = b;
      for (let j = 1; j < W; j++) out[idx + j] = r(b + r(j * step));
    }
  }
  for (; i < steps; i++) out[i] = base(i);
  return out;
}

/**
 * `np.linspace(start, stop, num)` (endpoint=True) as numpy 1.24 computes it: step = delta/div,
 * y[i] = i*step + start, then y[-1] = stop exactly (num == 1 gives [start]).
 */
export function numpyLinspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 0) return out;
  const div = num - 1;
  const delta = stop - start;
  if (div === 0) {
    out[0] = start;
    return out;
  }
  const step = delta / div;
  for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
  out[num - 1] = stop;
  return out;
}

export function checkT(fn: string, T: number): void {
  if (!Number.isInteger(T) || T < 1) {
    throw new ConfigError(`${fn}: the number of timesteps must be a positive integer, got ${T}`);
  }
}

export function clip(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}


/** A Float64Array of length n filled with f(i). */
export function mapN(n: number, f: (i: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}
