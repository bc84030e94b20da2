// Seeded random number generator that reproduces PyTorch 1.13's CPU generator bit for bit:
// after `torch.manual_seed(s)` the calls below return the same float32 / int64 numbers as ours
// after `new Generator(s)` (or `gen.manualSeed(s)`), and a sequence of calls on one generator
// advances its state exactly as torch's does. It is not a tensor library (it fills flat typed
// arrays; shapes are the caller's business), not cryptographic, and not torch's CUDA (Philox)
// generator or NumPy's.
//
//   torch.manual_seed(s)                  -> manualSeed(s)   (uint64; only the low 32 bits matter)
//   torch.randn(*shape), randn_like(x)    -> randn(numel)    (float32; x contiguous)
//   torch.normal(mean, std, size)         -> normal(numel, mean, std)   (also Tensor.normal_)
//   torch.rand(*shape), rand_like(x)      -> rand(numel)     (float32)
//   Tensor.uniform_(lo, hi)               -> uniform(numel, lo, hi)     (float32)
//   torch.randint(low, high, shape)       -> randint(low, high, numel)  (int64, as exact doubles)
//   torch.randperm(n)                     -> randperm(n)     (int64, as exact doubles)
//   torch.get_rng_state/set_rng_state     -> getState()/setState()      (our own JSON layout)
//
// Algorithms (ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl, core/DistributionsHelper.h,
// core/TransformationHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h):
// - Engine: 32-bit mt19937. Seeding: state[0] = seed & 0xffffffff, state[j] =
//   1812433253 * (state[j-1] ^ (state[j-1] >>> 30)) + j (mod 2^32), left = 1, next = 0, so the
//   first draw twists. random() = one tempered draw; random64() = (first << 32) | second.
// - rand / uniform (float32): x = (random() & 0xffffff) * 2^-24; value = fma(x, hi - lo, lo) in
//   float32 (torch's binary contracts x * (to - from) + from into one FMA).
// - randn / normal with numel >= 16 (contiguous float32 -> normal_fill_AVX2): draw numel uniforms u
//   as above; each whole block of 16 becomes 16 normals by Box-Muller on 8 lanes: u1 = 1 - u[j],
//   u2 = u[j+8], radius = sqrt(-2 * log256_ps(u1)), (sin, cos) = sincos256_ps(fround(2pi) * u2),
//   out[j] = fma(radius*cos, std, mean), out[j+8] = fma(radius*sin, std, mean). If numel % 16 != 0,
//   16 *more* uniforms are drawn and the last 16 outputs are recomputed from them (the uniforms of
//   the partial block are consumed but unused). log256_ps/sincos256_ps are avx_mathfun.h's Cephes
//   polynomials; we replay them in float32 (Math.fround) with an FMA exactly where the shipped
//   binary has one (read from the disassembly of Debian's libtorch_cpu.so 1.13.1, GCC 12). This
//   path neither reads nor writes the cached normal.
// - randn / normal with numel < 16 (cpu_serial_kernel + at::normal_distribution<double>): per
//   value, take the generator's cached normal if there is one (and clear it); otherwise u1, u2 =
//   (random64() & (2^53 - 1)) * 2^-53, r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, cache
//   r sin(theta), use r cos(theta). Value = float32(v * std + mean). The cache lives across calls
//   (randn(3) leaves one for the next small call) until manualSeed.
// - randint: range = high - low; value = low + random() % range, or low + random64() % range when
//   range >= 2^32.
// - randperm(n): p = [0, 1, .., n-1]; for i in 0..n-2: z = random() % (n - i); swap p[i], p[i + z].
//
// Exactness (checked against torch 1.13.1, see test/util/rng.test.ts and
// scripts/make-rng-fixture.py; also 10M-value side-by-side runs): the mt19937 stream, rand,
// uniform, randint, randperm and randn/normal with numel >= 16 are bit-exact. The numel < 16 path
// computes in float64 with V8's Math.log/sin/cos where torch calls glibc's; they differ by 1 ulp in
// ~6% of float64 values, which changes the float32 result only if the value sits within 1 float64
// ulp of a float32 rounding boundary (~1e-10 per value; 0 of 1.85M in our runs).
// Limits: float32 only (float64/half/bfloat16 tensors take other paths and are not reproduced).
// The numel >= 16 numbers are those of x86-64 builds dispatching "AVX2" (1.13 picks it on AVX2 and
// AVX-512 CPUs, and ATEN_CPU_CAPABILITY=avx512 gives the same numbers); builds without it (ARM,
// ATEN_CPU_CAPABILITY=default) use std::log/cos/sin there and differ from us in ~40% of values by
// up to ~2.3e-6. Other compilers could in principle place FMAs differently. randn_like of a
// non-contiguous tensor (e.g. channels_last) takes torch's scalar path, which randn(n) does not
// choose for n >= 16. randperm needs n < 2^32; randint needs integers low < high within 2^53.

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
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Slow path of fma32. a*b is exact in float64, so round32(round64(a*b + c)) is already the
 * correctly rounded result unless the float64 sum lies exactly on a float32 midpoint while the
 * exact sum does not (double rounding); the TwoSum residual then says which way to round.
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

/**
 * Exactly rounded float32 fused multiply-add: the float32 nearest to a * b + c for float32
 * a, b, c (what vfmadd*ss/ps computes). Used where torch's binary has a contracted FMA whose
 * operands depend on the caller (uniform range, normal mean/std).
 */
export function fma32(a: number, b: number, c: number): number {
  // r is wrong only if s sits on a float32 midpoint, and then t = 2s - r is a float32.
  const s = a * b + c;
  const r = fround(s);
  if (r !== s) {
    const t = 2 * s - r;
    if (fround(t) === t) return fma32Slow(a, b, c);
  }
  return r;
}

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
/** POW2_NEG[b] = 2^-b. */
const POW2_NEG = Float64Array.from({ length: 26 }, (_, b) => 2 ** -b);

/**
 * normal_fill_16_AVX2 on one block: the 16 uniforms are k[o..o+16) as 24-bit integers
 * (u = k * 2^-24); writes out[w..w+16). Lane j (0..7) is Box-Muller on u1 = 1 - u[j],
 * u2 = u[j+8]: log256_ps(u1) and sincos256_ps(2pi * u2) replayed in float32, with an FMA exactly
 * where the shipped binary has vfmadd/vfmsub/vfnmadd.
 *
 * Inside log256_ps and sincos256_ps each FMA is written fround(a * b + c): every input of those
 * two stages is a function of one 24-bit integer (m or k), and running all 2^24 inputs of each
 * through both this formula and the exact fma32() gives identical results at every FMA site
 * (the float64 sum never lands on a float32 midpoint), so the cheap form is exact here. The final
 * fma(n, std, mean) depends on the caller's mean/std and uses the checked form.
 */
function boxMuller16(
  k: Int32Array,
  o: number,
  out: Float32Array,
  w: number,
  mean: number,
  std: number,
): void {
  const plain = mean === 0 && std === 1;
  for (let j = 0; j < 8; j++) {
    // ---- log256_ps(u1), u1 = 1 - u = m * 2^-24, m in [1, 2^24] ----
    const m = 16777216 - ((k[o + j] as number) & 0xffffff);
    const bits = 32 - Math.clz32(m);
    let e = bits - 24; // u1 = x * 2^e with x in [0.5, 1): the mantissa/exponent split
    let x = m * (POW2_NEG[bits] as number);
    if (x < SQRTHF) {
      e -= 1;
      x = x + x - 1; // exact
    } else {
      x = x - 1; // exact
    }
    let y = fround(LOG_P0 * x + LOG_P1); // fma
    y = fround(y * x + LOG_P2); // fma
    y = fround(y * x + LOG_P3); // fma
    y = fround(y * x + LOG_P4); // fma
    y = fround(y * x + LOG_P5); // fma
    y = fround(y * x + LOG_P6); // fma
    y = fround(y * x + LOG_P7); // fma
    y = fround(y * x + LOG_P8); // fma
    let z = fround(x * x);
    y = fround(y * x);
    y = fround(y * z + fround(e * LOG_Q1)); // fma(y, z, e*q1)
    y = fround(y - z * 0.5); // fnmadd; z * 0.5 is exact
    x = fround(x + y);
    const lg = fround(e * LOG_Q2 + x); // fma; e * q2 is exact
    const radius = fround(Math.sqrt(fround(lg * -2)));

    // ---- sincos256_ps(theta), theta = 2pi * u2 in [0, 2pi) (sign bit 0) ----
    const x0 = fround(TWO_PI_F * (((k[o + j + 8] as number) & 0xffffff) * TWO_POW_M24));
    const q = (Math.trunc(fround(x0 * FOPI)) + 1) & ~1; // octant, j = (j + 1) & ~1
    x = fround(q * DP1 + x0); // fma
    x = fround(q * DP2 + x); // fma
    x = fround(q * DP3 + x); // fma
    z = fround(x * x);
    let yc = fround(z * COS_P0 + COS_P1); // fma
    yc = fround(z * yc + COS_P2); // fma
    yc = fround(z * yc);
    yc = fround(yc * z - fround(z * 0.5)); // fmsub
    yc = fround(yc + 1);
    let ys = fround(SIN_P0 * z + SIN_P1); // fma
    ys = fround(z * ys + SIN_P2); // fma
    ys = fround(z * ys);
    ys = fround(ys * x + x); // fma
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
    const n2 = fround(radius * sn);
    if (plain) {
      out[w + j] = n1 + 0; // fma(n, 1, +0) = n, with -0 -> +0
      out[w + j + 8] = n2 + 0;
    } else {
      out[w + j] = fma32(n1, std, mean);
      out[w + j + 8] = fma32(n2, std, mean);
    }
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
    checkCount(n, 'randn');
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
    const range = high - low;
    if (
      !Number.isSafeInteger(low) ||
      !Number.isSafeInteger(high) ||
      !(low < high) ||
      !Number.isSafeInteger(range)
    ) {
      throw new LdmError(
        'rng: randint expects integers low < high with high - low < 2^53, ' +
          `got low=${low}, high=${high}`,
      );
    }
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
