// Seeded random number generator that reproduces PyTorch 1.13's CPU generator bit for bit:
// after `torch.manual_seed(s)` the calls below return the same float32 / int64 numbers as ours
// after `new Generator(s)` (or `gen.manualSeed(s)`), and a sequence of calls on one generator
// advances its state exactly as torch does. It is not a cryptographic generator, not torch's
// CUDA (Philox) generator, and not NumPy's.
//
// Reproduced (x86-64 torch 1.13 CPU build, dispatch "CPU capability usage: AVX2", which is what
// the official wheels and Debian's python3-torch pick on AVX2/AVX-512 machines):
//   torch.manual_seed(s)                  -> manualSeed(s)       (mt19937 init from the low 32 bits)
//   torch.randn(*shape) / randn_like(x)   -> randn(numel)        (float32, x contiguous)
//   torch.normal(mean, std, size)         -> normal(numel, mean, std)   (also Tensor.normal_)
//   torch.rand(*shape) / rand_like(x)     -> rand(numel)         (float32)
//   Tensor.uniform_(lo, hi)               -> uniform(numel, lo, hi)     (float32)
//   torch.randint(low, high, shape)       -> randint(low, high, numel)  (int64 values)
//   torch.randperm(n)                     -> randperm(n)         (int64 values)
//
// Algorithms (ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp, core/DistributionsHelper.h,
// core/TransformationHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h,
// native/TensorFactories.cpp):
// - Engine: standard 32-bit mt19937; seed state[0] = seed & 0xffffffff, state[j] =
//   1812433253 * (state[j-1] ^ (state[j-1] >>> 30)) + j (mod 2^32); `left`/`next` counters as torch
//   (left = 1 after seeding, so the first draw regenerates the block). random() = one tempered
//   draw; random64() = (first << 32) | second.
// - uniform float32: (random() & 0xffffff) * 2^-24, then x * (hi - lo) + lo in float32.
//   uniform float64 (used only inside the scalar normal path): (random64() & (2^53-1)) * 2^-53.
// - randn / normal, numel >= 16 (contiguous float32 -> normal_fill_AVX2): draw numel float32
//   uniforms u; for each whole block of 16, Box-Muller on 8 lanes: u1 = 1 - u[j], u2 = u[j+8],
//   radius = sqrt(-2 * log256_ps(u1)), theta = fround(2*pi) * u2, (sin, cos) = sincos256_ps(theta),
//   out[j] = fma(radius*cos, std, mean), out[j+8] = fma(radius*sin, std, mean). If numel % 16 != 0,
//   16 *further* uniforms are drawn and the last 16 outputs are recomputed from them (so the
//   uniforms drawn for the partial block are consumed but unused). log256_ps and sincos256_ps are
//   the Cephes-polynomial AVX routines of avx_mathfun.h; we replay them in float32 (Math.fround)
//   including the exact places where GCC contracted mul+add into FMA in the shipped binary
//   (checked by disassembling libtorch_cpu.so 1.13.1); fma32() below is an exactly rounded float32
//   FMA. The cached normal is neither read nor written by this path.
// - randn / normal, numel < 16 (cpu_serial_kernel with at::normal_distribution<double>): per
//   value, if the generator holds a cached normal use it (and clear it); else draw u1, u2 as float64
//   uniforms, r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, cache r sin(theta), return r cos(theta).
//   Value = float32(ret * std + mean). The cache survives across calls until manualSeed.
// - randint(low, high): range = high - low; value = low + (random() % range), or random64() % range
//   when range >= 2^32.
// - randperm(n): out = [0..n); for i in 0..n-2: z = random() % (n - i); swap(out[i], out[i+z]).
//
// Exactness: mt19937 stream, rand, uniform, randint, randperm and randn/normal for numel >= 16 are
// bit-exact (integer and float32 arithmetic replayed operation by operation). The scalar path
// (numel < 16) computes in float64 with V8's Math.log/sin/cos instead of glibc's; both are within
// 1 ulp in float64, so the float32 result can differ only when a float64 value falls within 1 ulp
// of a float32 rounding boundary (about 1e-9 per value; never seen in tests).
// Limits: float32 only (torch.randn(..., dtype=torch.float64) and the half/bfloat16 paths are not
// reproduced); torch's non-AVX2 builds (ATEN_CPU_CAPABILITY=default, ARM, or avx512 dispatch) use
// std::log/sin/cos for numel >= 16 and give slightly different normals; randn_like of a
// non-contiguous tensor (e.g. channels_last) takes torch's scalar path, which we do not select;
// randperm assumes n < 2^32 and randint needs integer low < high with |values| < 2^53.

import { LdmError } from './errors.ts';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** torch's default_rng_seed_val (the seed of a fresh torch.Generator). */
export const TORCH_DEFAULT_SEED = 67280421310721n;

/** JSON-serialisable generator state (mirrors torch's mt19937_data_pod plus the normal cache). */
export interface GeneratorState {
  /** Seed given to manualSeed, as a decimal string (uint64). */
  seed: string;
  /** The 624 mt19937 state words (uint32). */
  mt: number[];
  /** Draws left before the next twist (1..624). */
  left: number;
  /** Index of the next state word to temper (0..624). */
  next: number;
  /** The cached second Box-Muller normal of the scalar path, or null. */
  nextNormal: number | null;
}

const fround = Math.fround;
const TWO_POW_M24 = 5.960464477539063e-8; // 2^-24
const TWO_POW_M53 = 1.1102230246251565e-16; // 2^-53
const TWO_POW_32 = 4294967296;

/**
 * Exactly rounded float32 fused multiply-add round32(a * b + c) for float32 a, b, c: the slow
 * path. a*b is exact in float64, so round32(round64(a*b + c)) is already correct unless the
 * float64 sum lies exactly on a float32 midpoint while the exact sum does not (double rounding);
 * then the TwoSum residual tells which way to go. The hot loops inline the cheap test
 * `s = a*b + c; r = fround(s); r !== s && (t = 2*s - r) is a float32` (true at every float32
 * midpoint) and call this only when it fires.
 */
function fma32Slow(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const f = fround(s);
  if (f === s) return f;
  const bb = s - p;
  const e = p - (s - bb) + (c - bb);
  if (e === 0) return f; // s is the exact sum: fround rounded it once, ties to even
  // The float32 neighbour of f on the side of s, and the midpoint between them.
  let h: number;
  if (f === 0) {
    h = s > 0 ? 1.401298464324817e-45 : -1.401298464324817e-45;
  } else {
    F32[0] = f;
    U32[0] = U32[0]! + (s > f === f > 0 ? 1 : -1);
    h = F32[0]!;
  }
  if (s !== (f + h) / 2) return f;
  return e > 0 === h > f ? h : f;
}

/** fma32 for code off the hot path (same result as the inlined pattern). */
function fma32(a: number, b: number, c: number): number {
  const s = a * b + c;
  const r = fround(s);
  if (r !== s) {
    const t = 2 * s - r;
    if (fround(t) === t) return fma32Slow(a, b, c);
  }
  return r;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

// Constants of avx_mathfun.h (as float32, the way the _PS256_CONST tables hold them).
const SQRTHF = fround(0.707106781186547524);
const LOG_P0 = fround(7.0376836292e-2);
const LOG_P1 = fround(-1.151461031e-1);
const LOG_P2 = fround(1.167699874e-1);
const LOG_P3 = fround(-1.2420140846e-1);
const LOG_P4 = fround(1.4249322787e-1);
const LOG_P5 = fround(-1.6668057665e-1);
const LOG_P6 = fround(2.0000714765e-1);
const LOG_P7 = fround(-2.4999993993e-1);
const LOG_P8 = fround(3.3333331174e-1);
const LOG_Q1 = fround(-2.1219444e-4);
const LOG_Q2 = fround(0.693359375);
const DP1 = fround(-0.78515625);
const DP2 = fround(-2.4187564849853515625e-4);
const DP3 = fround(-3.77489497744594108e-8);
const SIN_P0 = fround(-1.9515295891e-4);
const SIN_P1 = fround(8.3321608736e-3);
const SIN_P2 = fround(-1.6666654611e-1);
const COS_P0 = fround(2.443315711809948e-5);
const COS_P1 = fround(-1.388731625493765e-3);
const COS_P2 = fround(4.166664568298827e-2);
const FOPI = fround(1.27323954473516);
const TWO_PI_F = fround(2 * Math.PI);
/** Per-lane radius scratch of boxMuller16. */
const RADIUS = new Float64Array(8);
/** POW2_NEG[b] = 2^-b. */
const POW2_NEG = Float64Array.from({ length: 26 }, (_, b) => 2 ** -b);

/**
 * normal_fill_16_AVX2 on one block: the 16 uniforms are k[o..o+16) as 24-bit integers
 * (u = k * 2^-24); writes out[w..w+16). Lane j (0..7) is Box-Muller on u1 = 1 - u[j],
 * u2 = u[j+8]: log256_ps(u1), sincos256_ps(2pi * u2), replayed in float32 with FMAs exactly
 * where the shipped binary has vfmadd/vfmsub. Written out longhand (the fma pattern inlined)
 * because this loop is the hot path of randn.
 */
function boxMuller16(
  k: Int32Array,
  o: number,
  out: Float32Array,
  w: number,
  mean: number,
  std: number,
): void {
  let s: number;
  let t: number;
  for (let j = 0; j < 8; j++) {
    // ---- log256_ps(u1), u1 = m * 2^-24, m in [1, 2^24] ----
    const m = 16777216 - ((k[o + j] as number) & 0xffffff);
    const bits = 32 - Math.clz32(m);
    let e = bits - 24; // u1 = x * 2^e, x in [0.5, 1)
    let x = m * (POW2_NEG[bits] as number);
    if (x < SQRTHF) {
      e -= 1;
      x = x + x - 1; // exact
    } else {
      x = x - 1; // exact
    }
    let y = LOG_P0;
    let r: number;
    // y = fma(y, x, P_i) for P1..P8
    s = y * x + LOG_P1; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P1);
    y = r;
    s = y * x + LOG_P2; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P2);
    y = r;
    s = y * x + LOG_P3; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P3);
    y = r;
    s = y * x + LOG_P4; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P4);
    y = r;
    s = y * x + LOG_P5; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P5);
    y = r;
    s = y * x + LOG_P6; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P6);
    y = r;
    s = y * x + LOG_P7; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P7);
    y = r;
    s = y * x + LOG_P8; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, x, LOG_P8);
    y = r;
    const z = fround(x * x);
    y = fround(y * x);
    const eq1 = fround(e * LOG_Q1);
    s = y * z + eq1; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(y, z, eq1);
    y = fround(r - z * 0.5); // z * 0.5 is exact, so the fnmadd equals this
    x = fround(x + y);
    // e * Q2 is exact (small integer times 355/512)
    s = e * LOG_Q2 + x; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(e, LOG_Q2, x);
    RADIUS[j] = fround(Math.sqrt(fround(r * -2)));
  }
  for (let j = 0; j < 8; j++) {
    const radius = RADIUS[j] as number;
    let r: number;
    let x: number;
    let z: number;
    // ---- sincos256_ps(theta), theta = 2pi * u2 in [0, 2pi) ----
    const x0 = fround(TWO_PI_F * (((k[o + j + 8] as number) & 0xffffff) * TWO_POW_M24));
    const q = (Math.trunc(fround(x0 * FOPI)) + 1) & ~1;
    s = q * DP1 + x0; x = fround(s);
    if (x !== s && fround((t = 2 * s - x)) === t) x = fma32Slow(q, DP1, x0);
    const x1 = x;
    s = q * DP2 + x1; x = fround(s);
    if (x !== s && fround((t = 2 * s - x)) === t) x = fma32Slow(q, DP2, x1);
    const x2 = x;
    s = q * DP3 + x2; x = fround(s);
    if (x !== s && fround((t = 2 * s - x)) === t) x = fma32Slow(q, DP3, x2);
    z = fround(x * x);
    // cosine polynomial
    s = z * COS_P0 + COS_P1; let yc = fround(s);
    if (yc !== s && fround((t = 2 * s - yc)) === t) yc = fma32Slow(z, COS_P0, COS_P1);
    let p = yc;
    s = z * p + COS_P2; yc = fround(s);
    if (yc !== s && fround((t = 2 * s - yc)) === t) yc = fma32Slow(z, p, COS_P2);
    p = fround(z * yc);
    const hz = fround(z * 0.5);
    s = p * z - hz; yc = fround(s);
    if (yc !== s && fround((t = 2 * s - yc)) === t) yc = fma32Slow(p, z, -hz);
    yc = fround(yc + 1);
    // sine polynomial
    s = SIN_P0 * z + SIN_P1; let ys = fround(s);
    if (ys !== s && fround((t = 2 * s - ys)) === t) ys = fma32Slow(SIN_P0, z, SIN_P1);
    p = ys;
    s = z * p + SIN_P2; ys = fround(s);
    if (ys !== s && fround((t = 2 * s - ys)) === t) ys = fma32Slow(z, p, SIN_P2);
    p = fround(z * ys);
    s = p * x + x; ys = fround(s);
    if (ys !== s && fround((t = 2 * s - ys)) === t) ys = fma32Slow(p, x, x);
    // pick polynomials and signs by octant
    let sn: number;
    let cs: number;
    if ((q & 2) === 0) {
      sn = ys;
      cs = yc;
    } else {
      sn = yc;
      cs = ys;
    }
    if ((q & 4) !== 0) sn = -sn;
    if (((q - 2) & 4) === 0) cs = -cs;

    // ---- out = fma(radius * {cos, sin}, std, mean) ----
    const n1 = fround(radius * cs);
    s = n1 * std + mean; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(n1, std, mean);
    out[w + j] = r;
    const n2 = fround(radius * sn);
    s = n2 * std + mean; r = fround(s);
    if (r !== s && fround((t = 2 * s - r)) === t) r = fma32Slow(n2, std, mean);
    out[w + j + 8] = r;
  }
}

function toSeed(seed: number | bigint): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) {
      throw new LdmError(`rng: seed must be an integer (got ${seed})`);
    }
    seed = BigInt(seed);
  }
  return BigInt.asUintN(64, seed);
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new LdmError(`rng: ${what} expects a non-negative integer count, got ${n}`);
  }
}

/** Draws taken per chunk by the bulk methods (a multiple of 16). */
const CHUNK = 4096;

export class Generator {
  /** mt19937 state words, exactly torch's mt19937_data_pod.state_. */
  readonly #mt = new Uint32Array(N);
  /** Tempered outputs of the current state block, as int32 bit patterns (valid once twisted). */
  readonly #out = new Int32Array(N);
  /** Draws left before the next twist (torch's left_), 1..624. */
  #left = 1;
  /** Index of the next output (torch's next_), 0..624. */
  #next = 0;
  #seed = 0n;
  /** Cached second normal of the scalar Box-Muller path (next_double_normal_sample_). */
  #nextNormal: number | null = null;
  /** Scratch for bulk draws. */
  readonly #buf = new Int32Array(CHUNK);

  constructor(seed: number | bigint = TORCH_DEFAULT_SEED) {
    this.manualSeed(seed);
  }

  /** torch.manual_seed / Generator.manual_seed: reseed and drop the cached normal. */
  manualSeed(seed: number | bigint): this {
    const s = toSeed(seed);
    this.#seed = s;
    const mt = this.#mt;
    mt[0] = Number(s & 0xffffffffn);
    for (let j = 1; j < N; j++) {
      const prev = mt[j - 1] as number;
      mt[j] = Math.imul(1812433253, prev ^ (prev >>> 30)) + j;
    }
    this.#left = 1;
    this.#next = 0;
    this.#nextNormal = null;
    return this;
  }

  /** The seed last given to manualSeed (torch.initial_seed()). */
  initialSeed(): bigint {
    return this.#seed;
  }

  /** mt19937 next_state(), then temper the whole block into #out. */
  #twist(): void {
    const mt = this.#mt;
    let kk = 0;
    let y: number;
    for (; kk < N - M; kk++) {
      y = ((mt[kk] as number) & UPPER_MASK) | ((mt[kk + 1] as number) & LOWER_MASK);
      mt[kk] = (mt[kk + M] as number) ^ (y >>> 1) ^ ((mt[kk + 1] as number) & 1 ? MATRIX_A : 0);
    }
    for (; kk < N - 1; kk++) {
      y = ((mt[kk] as number) & UPPER_MASK) | ((mt[kk + 1] as number) & LOWER_MASK);
      mt[kk] = (mt[kk + M - N] as number) ^ (y >>> 1) ^ ((mt[kk + 1] as number) & 1 ? MATRIX_A : 0);
    }
    y = ((mt[N - 1] as number) & UPPER_MASK) | ((mt[0] as number) & LOWER_MASK);
    mt[N - 1] = (mt[M - 1] as number) ^ (y >>> 1) ^ ((mt[0] as number) & 1 ? MATRIX_A : 0);
    this.#temper();
    this.#left = N;
    this.#next = 0;
  }

  #temper(): void {
    const mt = this.#mt;
    const out = this.#out;
    for (let i = 0; i < N; i++) {
      let y = mt[i] as number;
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      out[i] = y;
    }
  }

  /** CPUGeneratorImpl::random(): one tempered mt19937 draw, uint32. */
  nextUint32(): number {
    if (--this.#left === 0) this.#twist();
    return (this.#out[this.#next++] as number) >>> 0;
  }

  /** CPUGeneratorImpl::random64(): (first draw << 32) | second draw. */
  nextUint64(): bigint {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** `count` consecutive draws into dst[0..count) (same stream as count nextUint32 calls). */
  #fill(dst: Int32Array, count: number): void {
    let i = 0;
    while (i < count) {
      if (this.#left === 1) {
        this.#twist();
        this.#left = N + 1; // so that taking the first output below leaves left = N
      }
      // Outputs available without a twist: left - 1 (the draw that makes left reach 0 twists).
      const take = Math.min(count - i, this.#left - 1);
      const from = this.#next;
      dst.set(this.#out.subarray(from, from + take), i);
      this.#next = from + take;
      this.#left -= take;
      i += take;
    }
  }

  /** at::uniform_real_distribution<double>(0, 1): 53 random bits of random64(). */
  #uniformDouble(): number {
    const hi = this.nextUint32() & 0x1fffff;
    const lo = this.nextUint32();
    return (hi * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** at::normal_distribution<double>(0, 1) with torch's one-value cache. */
  #scalarNormal(): number {
    const cached = this.#nextNormal;
    if (cached !== null) {
      this.#nextNormal = null;
      return cached;
    }
    const u1 = this.#uniformDouble();
    const u2 = this.#uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.#nextNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** torch.randn(n) (float32, contiguous). */
  randn(n: number): Float32Array {
    return this.normal(n, 0, 1);
  }

  /** torch.normal(mean, std, (n,)) / Tensor.normal_(mean, std) on a contiguous float32 tensor. */
  normal(n: number, mean = 0, std = 1): Float32Array {
    checkCount(n, 'normal');
    if (!(std >= 0)) throw new LdmError(`rng: normal expects std >= 0, got ${std}`);
    const out = new Float32Array(n);
    if (n < 16) {
      // Float32Array stores round to float32 like static_cast<float>.
      for (let i = 0; i < n; i++) out[i] = this.#scalarNormal() * std + mean;
      return out;
    }
    const meanF = fround(mean);
    const stdF = fround(std);
    const buf = this.#buf;
    const whole = n - (n % 16);
    for (let w = 0; w < whole; w += CHUNK) {
      const len = Math.min(CHUNK, whole - w);
      this.#fill(buf, len);
      for (let b = 0; b < len; b += 16) boxMuller16(buf, b, out, w + b, meanF, stdF);
    }
    const rem = n % 16;
    if (rem !== 0) {
      // torch draws uniforms for the partial block, then overwrites the last 16 outputs
      // from 16 fresh uniforms.
      this.#fill(buf, rem + 16);
      boxMuller16(buf, rem, out, n - 16, meanF, stdF);
    }
    return out;
  }

  /** torch.rand(n) (float32): uniform on [0, 1). */
  rand(n: number): Float32Array {
    checkCount(n, 'rand');
    const out = new Float32Array(n);
    const buf = this.#buf;
    for (let w = 0; w < n; w += CHUNK) {
      const len = Math.min(CHUNK, n - w);
      this.#fill(buf, len);
      for (let i = 0; i < len; i++) out[w + i] = ((buf[i] as number) & 0xffffff) * TWO_POW_M24;
    }
    return out;
  }

  /** Tensor.uniform_(lo, hi) on a float32 tensor: uniform on [lo, hi). */
  uniform(n: number, lo = 0, hi = 1): Float32Array {
    checkCount(n, 'uniform');
    const from = fround(lo);
    const to = fround(hi);
    if (!(from <= to)) throw new LdmError(`rng: uniform expects lo <= hi, got [${lo}, ${hi})`);
    const range = fround(to - from);
    const out = new Float32Array(n);
    const buf = this.#buf;
    for (let w = 0; w < n; w += CHUNK) {
      const len = Math.min(CHUNK, n - w);
      this.#fill(buf, len);
      for (let i = 0; i < len; i++) {
        // x * (to - from) + from, contracted to one FMA in torch's binary
        out[w + i] = fma32(((buf[i] as number) & 0xffffff) * TWO_POW_M24, range, from);
      }
    }
    return out;
  }

  /** torch.randint(low, high, (n,)) (int64): integers in [low, high), as exact doubles. */
  randint(low: number, high: number, n: number): Float64Array {
    checkCount(n, 'randint');
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || !(low < high)) {
      throw new LdmError(`rng: randint expects integers low < high, got low=${low}, high=${high}`);
    }
    const range = high - low;
    const out = new Float64Array(n);
    if (range < TWO_POW_32) {
      for (let i = 0; i < n; i++) out[i] = low + (this.nextUint32() % range);
    } else {
      const r = BigInt(range);
      for (let i = 0; i < n; i++) out[i] = low + Number(this.nextUint64() % r);
    }
    return out;
  }

  /** torch.randperm(n) (int64): a random permutation of 0..n-1, as exact doubles. */
  randperm(n: number): Float64Array {
    checkCount(n, 'randperm');
    if (n >= TWO_POW_32) throw new LdmError(`rng: randperm supports n < 2^32, got ${n}`);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = 0; i < n - 1; i++) {
      const z = this.nextUint32() % (n - i);
      const t = out[i] as number;
      out[i] = out[i + z] as number;
      out[i + z] = t;
    }
    return out;
  }

  /** A JSON-serialisable snapshot; setState(getState()) resumes the same stream. */
  getState(): GeneratorState {
    return {
      seed: this.#seed.toString(),
      mt: Array.from(this.#mt),
      left: this.#left,
      next: this.#next,
      nextNormal: this.#nextNormal,
    };
  }

  setState(s: GeneratorState): void {
    const ok =
      typeof s === 'object' &&
      s !== null &&
      Array.isArray(s.mt) &&
      s.mt.length === N &&
      s.mt.every((v) => Number.isInteger(v) && v >= 0 && v < TWO_POW_32) &&
      Number.isInteger(s.left) &&
      s.left >= 1 &&
      s.left <= N &&
      Number.isInteger(s.next) &&
      s.next >= 0 &&
      s.next <= N &&
      (s.nextNormal === null || Number.isFinite(s.nextNormal)) &&
      typeof s.seed === 'string' &&
      /^\d+$/.test(s.seed);
    if (!ok) {
      throw new LdmError(
        'rng: setState expects {seed: decimal string, mt: 624 uint32, left: 1..624, ' +
          'next: 0..624, nextNormal: finite number | null} (as returned by getState)',
      );
    }
    this.#mt.set(s.mt);
    this.#temper();
    this.#left = s.left;
    this.#next = s.next;
    this.#seed = BigInt(s.seed);
    this.#nextNormal = s.nextNormal;
  }

  /** An independent generator with the same state. */
  clone(): Generator {
    const g = new Generator(0);
    g.setState(this.getState());
    return g;
  }
}

/** Process-wide generator, the counterpart of torch.default_generator. */
export const defaultGenerator = new Generator();

/** torch.manual_seed(seed): reseeds defaultGenerator and returns it. */
export function manualSeed(seed: number | bigint): Generator {
  return defaultGenerator.manualSeed(seed);
}
