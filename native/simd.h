// AVX2/FMA vector math for the addon's loops (8 floats per __m256): exp, tanh, sigmoid, erf,
// and helpers that run a vector function over [i0, i1) with a zero-padded tail, optionally
// split over the OpenMP pool. Accuracy: exp about 2 ulp (Cephes polynomial), tanh and erf
// within about 3e-7 relative (a Cephes polynomial near 0, exp-based identities elsewhere;
// erf uses a Taylor series below 0.5 and Abramowitz-Stegun 7.1.26 above), sigmoid about 3e-7
// relative (no division: rcp + one Newton step on 1 + e^{-|x|}).
// Not a general SIMD library: only what the kernels need. The build targets x86-64-v3.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace ldm {

static inline __m256 vset(float v) { return _mm256_set1_ps(v); }

/** e^x; x below -88.38 gives 0, above 88.72 gives +inf, NaN stays NaN. */
static inline __m256 vexp(__m256 x0) {
  const __m256 hi = vset(88.72283935546875f), lo = vset(-88.3762626647949f);
  __m256 x = _mm256_min_ps(_mm256_max_ps(x0, lo), hi);
  __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, vset(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, vset(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, vset(-2.12194440e-4f), x);
  __m256 y = vset(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, vset(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, vset(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, vset(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, vset(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, vset(5.0000001201E-1f));
  __m256 x2 = _mm256_mul_ps(x, x);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(x, vset(1.f)));
  // 2^fx, built in two halves so that fx = 128 (x near 88.7) does not overflow the exponent.
  __m256i n = _mm256_cvtps_epi32(fx);
  __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  __m256 r = _mm256_mul_ps(_mm256_mul_ps(y, p1), p2);
  r = _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(x0, lo, _CMP_LT_OQ));
  r = _mm256_blendv_ps(r, vset(INFINITY), _mm256_cmp_ps(x0, vset(88.72283935546875f), _CMP_GT_OQ));
  return _mm256_blendv_ps(r, x0, _mm256_cmp_ps(x0, x0, _CMP_UNORD_Q));
}

/** e^t for t in [-88, 0] (or NaN), with a single 2^n scale: the caller clamps t (t = -88 gives
 *  n = -127, whose scale bits are 0, so the result is exactly 0 below about -87.7; NaN stays
 *  NaN). n comes from the round-to-nearest of t*log2(e) + 1.5*2^23, whose low mantissa bits
 *  are the integer n (no round/convert). Relative error about 3e-7 (a shorter polynomial
 *  than vexp's). */
static inline __m256 vexpNonPos(__m256 t) {
  const __m256 magic = vset(12582912.f);  // 1.5 * 2^23
  __m256 k = _mm256_fmadd_ps(t, vset(1.44269504088896341f), magic);
  __m256 fx = _mm256_sub_ps(k, magic);
  __m256 x = _mm256_fnmadd_ps(fx, vset(0.693359375f), t);
  x = _mm256_fnmadd_ps(fx, vset(-2.12194440e-4f), x);
  // 1 + x + x^2 q(x), q of degree 3 fitted for relative error on [-ln2/2, ln2/2]: 2.0e-7 in
  // float arithmetic (Cephes' degree 5 q buys ulps that the sigmoid's rcp step gives back)
  __m256 y = vset(0.00831252709031105f);
  y = _mm256_fmadd_ps(y, x, vset(0.04189011827111244f));
  y = _mm256_fmadd_ps(y, x, vset(0.16667114198207855f));
  y = _mm256_fmadd_ps(y, x, vset(0.499992311000824f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, vset(1.f)));
  // (n + 127) << 23: the magic's own bits shift out of the 32-bit lane.
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/** sigmoid(x) = 1 / (1 + e^{-x}), within about 3e-7 relative, and 1 - sigmoid(x) in *oneMinus
 *  (no cancellation for large x). e = e^{-|x|} lies in (0, 1], so 1 + e cannot overflow and
 *  r = 1 / (1 + e) comes from rcp plus one Newton step (no division); sigmoid is r for x >= 0
 *  (sign bit clear) and e*r for x < 0. Below x = -87.7 sigmoid is 0 (the float value would be
 *  a subnormal under 1.2e-38); +-inf give 1 and 0; NaN stays NaN. */
static inline __m256 vsigmoid(__m256 x, __m256* oneMinus = nullptr) {
  // -|x| clamped at -88; max(lo, t) returns t when t is NaN, so NaN passes through.
  __m256 t = _mm256_max_ps(vset(-88.f), _mm256_or_ps(x, vset(-0.f)));
  __m256 e = vexpNonPos(t);
  __m256 d = _mm256_add_ps(vset(1.f), e);
  __m256 r = _mm256_rcp_ps(d);
  r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, vset(1.f)), r);
  __m256 er = _mm256_mul_ps(e, r);
  if (oneMinus) *oneMinus = _mm256_blendv_ps(er, r, x);
  return _mm256_blendv_ps(r, er, x);  // blendv picks by the sign bit of x
}

static inline __m256 vabs(__m256 x) { return _mm256_andnot_ps(vset(-0.f), x); }

static inline __m256 vtanh(__m256 x) {
  __m256 ax = vabs(x);
  // small: Cephes tanhf polynomial
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = vset(-5.70498872745E-3f);
  p = _mm256_fmadd_ps(p, s, vset(2.06390887954E-2f));
  p = _mm256_fmadd_ps(p, s, vset(-5.37397155531E-2f));
  p = _mm256_fmadd_ps(p, s, vset(1.33314422036E-1f));
  p = _mm256_fmadd_ps(p, s, vset(-3.33332819422E-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
  // large: 1 - 2 / (e^{2|x|} + 1), sign restored
  __m256 e = vexp(_mm256_add_ps(ax, ax));
  __m256 big = _mm256_sub_ps(vset(1.f), _mm256_div_ps(vset(2.f), _mm256_add_ps(e, vset(1.f))));
  big = _mm256_or_ps(big, _mm256_and_ps(x, vset(-0.f)));
  __m256 isSmall = _mm256_cmp_ps(ax, vset(0.625f), _CMP_LT_OQ);
  return _mm256_blendv_ps(big, small, isSmall);
}

static inline __m256 verf(__m256 x) {
  __m256 ax = vabs(x);
  // |x| < 0.5: 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320 + x^13/9360)
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = vset(1.f / 9360.f);
  p = _mm256_fmadd_ps(p, s, vset(-1.f / 1320.f));
  p = _mm256_fmadd_ps(p, s, vset(1.f / 216.f));
  p = _mm256_fmadd_ps(p, s, vset(-1.f / 42.f));
  p = _mm256_fmadd_ps(p, s, vset(1.f / 10.f));
  p = _mm256_fmadd_ps(p, s, vset(-1.f / 3.f));
  p = _mm256_fmadd_ps(p, s, vset(1.f));
  __m256 small = _mm256_mul_ps(_mm256_mul_ps(p, x), vset(1.1283791670955126f));
  // |x| >= 0.5: 1 - (a1 t + ... + a5 t^5) e^{-x^2}, t = 1 / (1 + 0.3275911 |x|)
  __m256 t = _mm256_div_ps(vset(1.f), _mm256_fmadd_ps(vset(0.3275911f), ax, vset(1.f)));
  __m256 q = vset(1.061405429f);
  q = _mm256_fmadd_ps(q, t, vset(-1.453152027f));
  q = _mm256_fmadd_ps(q, t, vset(1.421413741f));
  q = _mm256_fmadd_ps(q, t, vset(-0.284496736f));
  q = _mm256_fmadd_ps(q, t, vset(0.254829592f));
  q = _mm256_mul_ps(q, t);
  __m256 big = _mm256_fnmadd_ps(q, vexp(_mm256_sub_ps(_mm256_setzero_ps(), s)), vset(1.f));
  big = _mm256_or_ps(big, _mm256_and_ps(x, vset(-0.f)));
  __m256 isSmall = _mm256_cmp_ps(ax, vset(0.5f), _CMP_LT_OQ);
  return _mm256_blendv_ps(big, small, isSmall);
}

/** Run body(i0, i1) over [0, n), split across the OpenMP pool when n is large. */
template <class Body>
inline void parallelRange(int64_t n, Body&& body, int64_t minPar = kParallelMin) {
  if (n < minPar) {
    body(int64_t(0), n);
    return;
  }
  int nt = omp_get_max_threads();
  int64_t chunks = std::min<int64_t>(int64_t(nt) * 4, (n + 1023) / 1024);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t i0 = (n * c / chunks) & ~int64_t(7), i1 = c + 1 == chunks ? n : ((n * (c + 1) / chunks) & ~int64_t(7));
    body(i0, i1);
  }
}

/** y[i] = f(x[i]) for vectors of 8 with a zero-padded tail. */
template <class F>
inline void vmap1(const float* x, float* y, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < i1) {
    alignas(32) float tx[8] = {0}, ty[8];
    std::memcpy(tx, x + i, (i1 - i) * sizeof(float));
    _mm256_store_ps(ty, f(_mm256_load_ps(tx)));
    std::memcpy(y + i, ty, (i1 - i) * sizeof(float));
  }
}

/** out[i] = f(a[i], b[i], c[i]). */
template <class F>
inline void vmap3(const float* a, const float* b, const float* c, float* out, int64_t i0, int64_t i1, F f) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8)
    _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), _mm256_loadu_ps(c + i)));
  if (i < i1) {
    alignas(32) float ta[8] = {0}, tb[8] = {0}, tc[8] = {0}, to[8];
    size_t bytes = (i1 - i) * sizeof(float);
    std::memcpy(ta, a + i, bytes);
    std::memcpy(tb, b + i, bytes);
    std::memcpy(tc, c + i, bytes);
    _mm256_store_ps(to, f(_mm256_load_ps(ta), _mm256_load_ps(tb), _mm256_load_ps(tc)));
    std::memcpy(out + i, to, bytes);
  }
}

/** The first k (0..8) floats at p, zeros after (masked load: nothing past p + k is touched). */
static inline __m256 vloadPart(const float* p, int64_t k) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(k)), idx));
}

/** Stores the first k (0..8) lanes of v at p (masked: nothing past p + k is touched). */
static inline void vstorePart(float* p, int64_t k, __m256 v) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(k)), idx), v);
}

/** Adds the 8 float lanes of v to the 8 double lanes (lo: lanes 0-3, hi: 4-7). */
static inline void vaddToDouble(__m256d& lo, __m256d& hi, __m256 v) {
  lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static inline double hsumd(__m256d lo, __m256d hi) {
  __m256d v = _mm256_add_pd(lo, hi);
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/** dst[c][r] = src[r][c] for an 8x8 block (row strides in floats). */
static inline void transpose8x8(const float* src, int64_t ss, float* dst, int64_t ds) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss), r2 = _mm256_loadu_ps(src + 2 * ss),
         r3 = _mm256_loadu_ps(src + 3 * ss), r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss),
         r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/** dst [cols, ds] = src [rows, ss]^T (8x8 blocks, scalar edges). */
static inline void transpose(const float* src, int64_t rows, int64_t cols, int64_t ss, float* dst, int64_t ds) {
  int64_t r8 = rows & ~int64_t(7), c8 = cols & ~int64_t(7);
  for (int64_t r = 0; r < r8; r += 8)
    for (int64_t c = 0; c < c8; c += 8) transpose8x8(src + r * ss + c, ss, dst + c * ds + r, ds);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = (r < r8 ? c8 : 0); c < cols; c++) dst[c * ds + r] = src[r * ss + c];
}

/** In-place softmax (or log-softmax) of one row x[0..n). Returns nothing; sums in float
 *  lanes then double for the total. */
static inline void softmaxRow(const float* x, float* y, int64_t n, bool log) {
  __m256 m8 = vset(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
  float m = hmax(m8);
  for (; i < n; i++) m = std::max(m, x[i]);
  __m256 mv = vset(m), s8 = _mm256_setzero_ps();
  double sum = 0;
  i = 0;
  if (!log) {
    for (; i + 8 <= n; i += 8) {
      __m256 e = vexp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
      _mm256_storeu_ps(y + i, e);
      s8 = _mm256_add_ps(s8, e);
    }
    for (; i < n; i++) {
      float e = std::exp(x[i] - m);
      y[i] = e;
      sum += e;
    }
    sum += hsum(s8);
    __m256 inv = vset(float(1.0 / sum));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    float invs = float(1.0 / sum);
    for (; i < n; i++) y[i] *= invs;
  } else {
    for (; i + 8 <= n; i += 8) s8 = _mm256_add_ps(s8, vexp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv)));
    for (; i < n; i++) sum += std::exp(x[i] - m);
    sum += hsum(s8);
    float lse = float(m + std::log(sum));
    __m256 lv = vset(lse);
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_loadu_ps(x + i), lv));
    for (; i < n; i++) y[i] = x[i] - lse;
  }
}

}  // namespace ldm
