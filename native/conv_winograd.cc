// Winograd convolution on NCHW buffers for 3x3 stride-1 convolutions: the forward pass, the
// backward-to-input pass (the same kernel over gy with the weights transposed and flipped,
// padding 2-p) and the weight gradient, in two tile sizes F(m x m, 3x3), m = 2 or 4.
// Each a x a input tile d (a = m + 2) is transformed to V = B^T d B, each 3x3 filter g to
// U = G g G^T; the a*a positions xi of the transformed tile are a*a independent matrix products
// M[xi] (tiles x cout) = V[xi] (tiles x cin) . U[xi] (cin x cout), run by dnnl_sgemm; the output
// tile is Y = A^T M A (m x m). The weight gradient is the transpose of the same linear map:
// dU[xi] = V[xi]^T . dM[xi] with dM = A dY A^T, dW = G^T dU G.
//  - F(2x2,3x3): 16 multiply-adds per 4 outputs instead of 36 (2.25x fewer than direct); the
//    transforms only add, subtract and halve, so rounding stays within a few ulps of the sums.
//  - F(4x4,3x3): 36 per 16 outputs (4x fewer), and 36/16 transformed values per output instead of
//    4, so 1.78x less memory traffic through V and M. Interpolation points 0, 1, -1, 2, -2 and
//    infinity (the usual choice for this size): B^T, G and A^T hold 4, 5, 1/6, 1/24, 8, so the
//    rounding error grows (measured against the reference backend: see the README).
// Why: oneDNN 2.6's direct AVX2 convolutions (conv.cc asks for the direct algorithm, as PyTorch
// does) reach about half of the FMA peak; on the UNet's 3x3 layers F(2x2) measured 1.4-2x faster.
// On Zen 4 (AVX-512 in 256-bit halves: AVX2's FMA rate per cycle) oneDNN's AVX-512 kernels ran
// W1 (3x3 64->64 32x32, batch 16) at 86 / 88 / 74% of peak (forward / input / weight gradient,
// earlier measurements), Winograd on Zen 3 (same rate per cycle) at 103-115%: the AVX2 rules
// apply there, inferred, not timed on that CPU. On full-width AVX-512 oneDNN's kernels gain twice
// the rate and Winograd's transforms (AVX2 code) do not, so auto leaves it off (unmeasured).
// Which tile: LDM_WINO_TILE=2|4 or setWinogradTile(); auto takes F(4x4) for planes of at least
// 16x16 outputs in batches with enough tiles, where it measured faster (see winogradTileFor), F(2x2)
// elsewhere (8x8 planes have too few 4x4 tiles for the products to run at full speed).
// conv.cc decides whether Winograd runs at all.
// The plane transforms run on whole rows, vectorised along the columns: a row is split into
// column phases (c mod 2, or c mod 4) so that tile j's columns are the phases at j (and j + 1),
// each one a contiguous array.
// The batch runs in chunks of images whose transformed tiles (V and M) fit in about
// LDM_WINO_CHUNK_KB (default 1024) KiB, so the transforms and products meet in cache.
// Not here: other kernel sizes, strides, dilation, groups; bf16 (conv.cc uses oneDNN then).
#include <cpuid.h>
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.h"

namespace ldm {

bool cpuHasAvx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx512f"));
  }();
  return has;
}

bool cpuFullWidthAvx512() {
  static const bool full = [] {
    if (!cpuHasAvx512()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return true;
    const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "Auth" "enti" "cAMD"
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return true;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    return family != 0x19;  // 19h: Zen 3 (no AVX-512) and Zen 4 (AVX-512 in 256-bit halves)
  }();
  return full;
}

namespace {

int gWino = -1;  // 0 off, 1 on, 2 auto; -1: not read yet (LDM_CONV_WINOGRAD)
int gWinoTile = -1;  // 0 auto, 2 or 4; -1: not read yet (LDM_WINO_TILE)
int64_t gWinoChunk = -1;  // bytes of V + M per chunk; -1: not read yet
int gWinoSplit = -1;  // how the passes share out work: 0 by tile positions, 1 by images, 2 auto; -1: not read yet (LDM_WINO_SPLIT)

int64_t winoChunkBytes() {
  if (gWinoChunk < 0) {
    const char* e = std::getenv("LDM_WINO_CHUNK_KB");
    gWinoChunk = (e ? int64_t(std::atoll(e)) : 1024) * 1024;
    if (gWinoChunk <= 0) gWinoChunk = int64_t(1) << 40;
  }
  return gWinoChunk;
}

constexpr const char* kWinograd = "winograd convolution";

inline int64_t roundUp8(int64_t v) { return (v + 7) / 8 * 8; }

// ---- F(2x2, 3x3): 4x4 input tiles at stride 2, columns split into even and odd ----

/** E[j] = r[2j], O[j] = r[2j+1] for j < L (r holds 2L floats). */
inline void deinterleave(const float* r, int64_t L, float* E, float* O) {
  int64_t j = 0;
  for (; j + 8 <= L; j += 8) {
    __m256 a = _mm256_loadu_ps(r + 2 * j), b = _mm256_loadu_ps(r + 2 * j + 8);
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(E + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    _mm256_storeu_ps(O + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
  }
  for (; j < L; j++) { E[j] = r[2 * j]; O[j] = r[2 * j + 1]; }
}

/** r[2j] = E[j], r[2j+1] = O[j] for j < L. */
inline void interleave(const float* E, const float* O, int64_t L, float* r) {
  int64_t j = 0;
  for (; j + 8 <= L; j += 8) {
    __m256 e = _mm256_loadu_ps(E + j), o = _mm256_loadu_ps(O + j);
    __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
    _mm256_storeu_ps(r + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(r + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  for (; j < L; j++) { r[2 * j] = E[j]; r[2 * j + 1] = O[j]; }
}

/** E[j] = row[2j - padL], O[j] = row[2j + 1 - padL] for j < Lp (a multiple of 8), zero outside
 *  columns [0, w): masked loads read the row in place (no padded copy). */
inline void loadRowDeinterleaved(const float* row, int64_t w, int64_t padL, int64_t Lp, float* E, float* O) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), wv = _mm256_set1_epi32(int(w)),
                m1 = _mm256_set1_epi32(-1), eight = _mm256_set1_epi32(8);
  for (int64_t j = 0; j < Lp; j += 8) {
    const int64_t c = 2 * j - padL;
    __m256 a, b;
    if (c >= 0 && c + 16 <= w) {
      a = _mm256_loadu_ps(row + c);
      b = _mm256_loadu_ps(row + c + 8);
    } else {
      const __m256i ca = _mm256_add_epi32(_mm256_set1_epi32(int(c)), lane), cb = _mm256_add_epi32(ca, eight);
      const __m256i ma = _mm256_and_si256(_mm256_cmpgt_epi32(ca, m1), _mm256_cmpgt_epi32(wv, ca));
      const __m256i mb = _mm256_and_si256(_mm256_cmpgt_epi32(cb, m1), _mm256_cmpgt_epi32(wv, cb));
      // masked-off lanes are neither read nor faulted on, wherever row + c points
      const uintptr_t base = reinterpret_cast<uintptr_t>(row) + uintptr_t(c * int64_t(sizeof(float)));
      a = _mm256_maskload_ps(reinterpret_cast<const float*>(base), ma);
      b = _mm256_maskload_ps(reinterpret_cast<const float*>(base + 8 * sizeof(float)), mb);
    }
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(E + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    _mm256_storeu_ps(O + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
  }
}

/** V[xi][p] (xi stride vs) of the tiles of one input plane [h][w]: tile (ti, tj) covers input
 *  rows 2ti-padT .. +3 and columns 2tj-padL .. +3 (zero outside the plane). buf: 16*(tw+9). */
void inputTransformPlane(const float* xp, int64_t h, int64_t w, int64_t padT, int64_t padL, int64_t th, int64_t tw,
                         float* V, int64_t vs, float* buf) {
  const int64_t L = tw + 1, Lp = (L + 7) / 8 * 8;
  float* E[4];  // deinterleaved rows: even columns at E[r], odd ones at E[r] + Lp
  for (int r = 0; r < 4; r++) E[r] = buf + 2 * r * Lp;
  float* tE = buf + 8 * Lp;  // column-transformed rows, 4 x (E, O)
  for (int64_t ti = 0; ti < th; ti++) {
    // tiles overlap by two rows: rows 0-1 of this tile row are rows 2-3 of the previous one
    if (ti > 0) { std::swap(E[0], E[2]); std::swap(E[1], E[3]); }
    for (int r = ti > 0 ? 2 : 0; r < 4; r++) {
      const int64_t iy = 2 * ti - padT + r;
      if (iy < 0 || iy >= h) std::memset(E[r], 0, size_t(2 * Lp) * sizeof(float));
      else loadRowDeinterleaved(xp + iy * w, w, padL, Lp, E[r], E[r] + Lp);
    }
    // B^T over rows: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3 (even and odd columns)
    for (int eo = 0; eo < 2; eo++) {
      const float* d0 = E[0] + eo * Lp;
      const float* d1 = E[1] + eo * Lp;
      const float* d2 = E[2] + eo * Lp;
      const float* d3 = E[3] + eo * Lp;
      float* t0 = tE + (0 * 2 + eo) * Lp;
      float* t1 = tE + (1 * 2 + eo) * Lp;
      float* t2 = tE + (2 * 2 + eo) * Lp;
      float* t3 = tE + (3 * 2 + eo) * Lp;
      #pragma GCC ivdep
      for (int64_t j = 0; j < L; j++) {
        t0[j] = d0[j] - d2[j];
        t1[j] = d1[j] + d2[j];
        t2[j] = d2[j] - d1[j];
        t3[j] = d1[j] - d3[j];
      }
    }
    // B over columns: tile j uses columns 2j, 2j+1, 2j+2, 2j+3 = e[j], o[j], e[j+1], o[j+1]
    const int64_t p0 = ti * tw;
    for (int k = 0; k < 4; k++) {
      const float* e = tE + (k * 2) * Lp;
      const float* o = e + Lp;
      float* v0 = V + (k * 4 + 0) * vs + p0;
      float* v1 = V + (k * 4 + 1) * vs + p0;
      float* v2 = V + (k * 4 + 2) * vs + p0;
      float* v3 = V + (k * 4 + 3) * vs + p0;
      #pragma GCC ivdep
      for (int64_t j = 0; j < tw; j++) {
        v0[j] = e[j] - e[j + 1];
        v1[j] = o[j] + e[j + 1];
        v2[j] = e[j + 1] - o[j];
        v3[j] = o[j] - o[j + 1];
      }
    }
  }
}

/** One output plane [oh][ow] = A^T M A of its tiles (M[xi][p], xi stride ms) plus bias.
 *  buf: 12*tw floats. */
void outputTransformPlane(const float* M, int64_t ms, int64_t th, int64_t tw, float bias, float* yp, int64_t oh,
                          int64_t ow, float* buf) {
  float* s = buf;  // s[k][b][j]: 8 rows of tw
  for (int64_t ti = 0; ti < th; ti++) {
    const int64_t p0 = ti * tw;
    for (int k = 0; k < 4; k++) {
      const float* m0 = M + (k * 4 + 0) * ms + p0;
      const float* m1 = M + (k * 4 + 1) * ms + p0;
      const float* m2 = M + (k * 4 + 2) * ms + p0;
      const float* m3 = M + (k * 4 + 3) * ms + p0;
      float* s0 = s + (k * 2) * tw;
      float* s1 = s0 + tw;
      #pragma GCC ivdep
      for (int64_t j = 0; j < tw; j++) {
        s0[j] = m0[j] + m1[j] + m2[j];
        s1[j] = m1[j] - m2[j] - m3[j];
      }
    }
    float* ev = s + 8 * tw;  // even / odd columns of one output row, then the row itself
    float* od = ev + tw;
    float* rowb = od + tw;
    for (int a = 0; a < 2; a++) {
      const int64_t oy = 2 * ti + a;
      if (oy >= oh) break;
      const float* q0e = s + 0 * tw; const float* q0o = s + 1 * tw;
      const float* q1e = s + 2 * tw; const float* q1o = s + 3 * tw;
      const float* q2e = s + 4 * tw; const float* q2o = s + 5 * tw;
      const float* q3e = s + 6 * tw; const float* q3o = s + 7 * tw;
      if (a == 0)
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) { ev[j] = q0e[j] + q1e[j] + q2e[j] + bias; od[j] = q0o[j] + q1o[j] + q2o[j] + bias; }
      else
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) { ev[j] = q1e[j] - q2e[j] - q3e[j] + bias; od[j] = q1o[j] - q2o[j] - q3o[j] + bias; }
      interleave(ev, od, tw, rowb);
      std::memcpy(yp + oy * ow, rowb, size_t(ow) * sizeof(float));
    }
  }
}

/** dM[xi][p] (xi stride ms) = A dY A^T of the 2x2 tiles of one output-gradient plane [oh][ow]
 *  (zero beyond the plane). buf: 6*tw floats. */
void gradTransformPlane(const float* gp, int64_t oh, int64_t ow, int64_t th, int64_t tw, float* dM, int64_t ms,
                        float* buf) {
  float* q = buf;  // q[a][l'] for l' in {e, o}: rows a = 0, 1, even / odd columns
  for (int64_t ti = 0; ti < th; ti++) {
    for (int a = 0; a < 2; a++) {
      float* ye = q + (a * 2) * tw;
      float* yo = ye + tw;
      const int64_t oy = 2 * ti + a;
      if (oy >= oh) {
        std::memset(ye, 0, size_t(2 * tw) * sizeof(float));
        continue;
      }
      float* pr = buf + 4 * tw;  // the row, zero-padded to 2 tw columns
      std::memcpy(pr, gp + oy * ow, size_t(ow) * sizeof(float));
      if (ow < 2 * tw) pr[ow] = 0.f;
      deinterleave(pr, tw, ye, yo);
    }
    const int64_t p0 = ti * tw;
    const float* e0 = q;
    const float* o0 = q + tw;
    const float* e1 = q + 2 * tw;
    const float* o1 = q + 3 * tw;
    // over columns (l): c0 = e, c1 = e + o, c2 = e - o, c3 = -o; over rows (k): k0 = row0,
    // k1 = row0 + row1, k2 = row0 - row1, k3 = -row1
    for (int l = 0; l < 4; l++) {
      float* d0 = dM + (0 * 4 + l) * ms + p0;
      float* d1 = dM + (1 * 4 + l) * ms + p0;
      float* d2 = dM + (2 * 4 + l) * ms + p0;
      float* d3 = dM + (3 * 4 + l) * ms + p0;
      #pragma GCC ivdep
      for (int64_t j = 0; j < tw; j++) {
        float c0, c1;
        switch (l) {
          case 0: c0 = e0[j]; c1 = e1[j]; break;
          case 1: c0 = e0[j] + o0[j]; c1 = e1[j] + o1[j]; break;
          case 2: c0 = e0[j] - o0[j]; c1 = e1[j] - o1[j]; break;
          default: c0 = -o0[j]; c1 = -o1[j]; break;
        }
        d0[j] = c0;
        d1[j] = c0 + c1;
        d2[j] = c0 - c1;
        d3[j] = -c1;
      }
    }
  }
}

/** The F(2x2) tile: transforms of one filter (U = G g G^T, dW = G^T dU G) and of one plane. */
struct F2 {
  static constexpr int64_t kM = 2, kA = 4, kX = 16;  // output tile, input tile, positions
  /** u[k*4 + l] of U = G g G^T, G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]]. */
  static void filter(const float g[3][3], float u[kX]) {
    float gg[4][3];  // G g
    for (int s = 0; s < 3; s++) {
      gg[0][s] = g[0][s];
      gg[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
      gg[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
      gg[3][s] = g[2][s];
    }
    for (int k = 0; k < 4; k++) {
      u[k * 4 + 0] = gg[k][0];
      u[k * 4 + 1] = 0.5f * (gg[k][0] + gg[k][1] + gg[k][2]);
      u[k * 4 + 2] = 0.5f * (gg[k][0] - gg[k][1] + gg[k][2]);
      u[k * 4 + 3] = gg[k][2];
    }
  }
  /** g [3][3] = G^T dU G of one filter's gradient du[k*4 + l]. */
  static void filterGrad(const float du[kX], float* g) {
    float t[3][4];  // G^T u: G^T = [[1,.5,.5,0],[0,.5,-.5,0],[0,.5,.5,1]]
    for (int l = 0; l < 4; l++) {
      const float u0 = du[l], u1 = du[4 + l], u2 = du[8 + l], u3 = du[12 + l];
      t[0][l] = u0 + 0.5f * (u1 + u2);
      t[1][l] = 0.5f * (u1 - u2);
      t[2][l] = 0.5f * (u1 + u2) + u3;
    }
    for (int r = 0; r < 3; r++) {
      g[r * 3 + 0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
      g[r * 3 + 1] = 0.5f * (t[r][1] - t[r][2]);
      g[r * 3 + 2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
    }
  }
  static size_t rowBufFloats(int64_t tw) { return size_t(16 * (tw + 9)); }
  static void input(const float* xp, int64_t h, int64_t w, int64_t padT, int64_t padL, int64_t th, int64_t tw,
                    float* V, int64_t vs, float* buf) {
    inputTransformPlane(xp, h, w, padT, padL, th, tw, V, vs, buf);
  }
  static void output(const float* M, int64_t ms, int64_t th, int64_t tw, float bias, float* yp, int64_t oh, int64_t ow,
                     float* buf) {
    outputTransformPlane(M, ms, th, tw, bias, yp, oh, ow, buf);
  }
  static void grad(const float* gp, int64_t oh, int64_t ow, int64_t th, int64_t tw, float* dM, int64_t ms,
                   float* buf) {
    gradTransformPlane(gp, oh, ow, th, tw, dM, ms, buf);
  }
};

// ---- F(4x4, 3x3): 6x6 input tiles at stride 4, columns split by c mod 4 ----
// B^T = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],[0,2,-1,-2,1,0],[0,4,0,-5,0,1]]
// G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]]
// A^T = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]]

/** P[k * Lp + j] = r[4j + k] for k < 4, j < Lp (a multiple of 8; r holds 4 Lp floats). */
inline void deinterleave4(const float* r, int64_t Lp, float* P) {
  // an in-lane 4x4 transpose leaves phase k as [j0 j2 j4 j6 | j1 j3 j5 j7]; the permute sorts it
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t j = 0; j < Lp; j += 8) {
    const __m256 a = _mm256_loadu_ps(r + 4 * j), b = _mm256_loadu_ps(r + 4 * j + 8);
    const __m256 c = _mm256_loadu_ps(r + 4 * j + 16), d = _mm256_loadu_ps(r + 4 * j + 24);
    const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
    const __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
    _mm256_storeu_ps(P + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), order));
    _mm256_storeu_ps(P + Lp + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)), order));
    _mm256_storeu_ps(P + 2 * Lp + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), order));
    _mm256_storeu_ps(P + 3 * Lp + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)), order));
  }
}

/** r[4j + k] = P[k * Lp + j]: the inverse of deinterleave4 (the in-lane transpose is its own
 *  inverse; the permute goes first). */
inline void interleave4(const float* P, int64_t Lp, float* r) {
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int64_t j = 0; j < Lp; j += 8) {
    const __m256 v0 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(P + j), order);
    const __m256 v1 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(P + Lp + j), order);
    const __m256 v2 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(P + 2 * Lp + j), order);
    const __m256 v3 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(P + 3 * Lp + j), order);
    const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    _mm256_storeu_ps(r + 4 * j, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(r + 4 * j + 8, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm256_storeu_ps(r + 4 * j + 16, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(r + 4 * j + 24, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
  }
}

/** The phases of one row, P[k * Lp + j] = row[4j + k - padL] (zero outside columns [0, w)),
 *  through the zero-padded copy pr (4 Lp floats). */
inline void loadRow4(const float* row, int64_t w, int64_t padL, int64_t Lp, float* pr, float* P) {
  const int64_t R = 4 * Lp, lead = std::min(padL, R), n = std::max<int64_t>(0, std::min(w, R - padL));
  std::memset(pr, 0, size_t(lead) * sizeof(float));
  std::memcpy(pr + lead, row, size_t(n) * sizeof(float));
  std::memset(pr + lead + n, 0, size_t(R - lead - n) * sizeof(float));
  deinterleave4(pr, Lp, P);
}

struct F4 {
  static constexpr int64_t kM = 4, kA = 6, kX = 36;
  // The five 1-D maps, each written once and applied over rows, then over columns (the tile
  // transforms are separable): G [6x3], G^T, B^T [6x6], A^T [4x6], A [6x4] of Lavin's F(4x4,3x3)
  // with the points 0, +-1, +-2 and infinity.
  /** o = G g. */
  static inline void mapG(const float g[3], float o[6]) {
    o[0] = 0.25f * g[0];
    o[1] = -(g[0] + g[1] + g[2]) * (1.f / 6);
    o[2] = -(g[0] - g[1] + g[2]) * (1.f / 6);
    o[3] = g[0] * (1.f / 24) + g[1] * (1.f / 12) + g[2] * (1.f / 6);
    o[4] = g[0] * (1.f / 24) - g[1] * (1.f / 12) + g[2] * (1.f / 6);
    o[5] = g[2];
  }
  /** o = G^T u. */
  static inline void mapGt(const float u[6], float o[3]) {
    o[0] = 0.25f * u[0] - (u[1] + u[2]) * (1.f / 6) + (u[3] + u[4]) * (1.f / 24);
    o[1] = (u[2] - u[1]) * (1.f / 6) + (u[3] - u[4]) * (1.f / 12);
    o[2] = (u[3] + u[4] - u[1] - u[2]) * (1.f / 6) + u[5];
  }
  /** o = B^T d. */
  static inline void mapBt(const float d[6], float o[6]) {
    const float s12 = d[1] + d[2], m12 = d[1] - d[2], s34 = d[4] + d[3], m43 = d[4] - d[3];
    const float m42 = d[4] - d[2], m31 = d[3] - d[1];
    o[0] = 4.f * d[0] - 5.f * d[2] + d[4];
    o[1] = s34 - 4.f * s12;
    o[2] = m43 + 4.f * m12;
    o[3] = m42 + 2.f * m31;
    o[4] = m42 - 2.f * m31;
    o[5] = 4.f * d[1] - 5.f * d[3] + d[5];
  }
  /** o = A^T m. */
  static inline void mapAt(const float m[6], float o[4]) {
    const float p12 = m[1] + m[2], d12 = m[1] - m[2], p34 = m[3] + m[4], d34 = m[3] - m[4];
    o[0] = m[0] + p12 + p34;
    o[1] = d12 + 2.f * d34;
    o[2] = p12 + 4.f * p34;
    o[3] = d12 + 8.f * d34 + m[5];
  }
  /** o = A y. */
  static inline void mapA(const float y[4], float o[6]) {
    const float e = y[0] + y[2], od = y[1] + y[3], e4 = y[0] + 4.f * y[2], o4 = 2.f * y[1] + 8.f * y[3];
    o[0] = y[0];
    o[1] = e + od;
    o[2] = e - od;
    o[3] = e4 + o4;
    o[4] = e4 - o4;
    o[5] = y[3];
  }

  /** u[k*6 + l] of U = G g G^T. */
  static void filter(const float g[3][3], float u[kX]) {
    float gg[3][6];  // (G g)^T: column s of g mapped
    for (int s = 0; s < 3; s++) {
      const float col[3] = {g[0][s], g[1][s], g[2][s]};
      mapG(col, gg[s]);
    }
    for (int k = 0; k < 6; k++) {
      const float row[3] = {gg[0][k], gg[1][k], gg[2][k]};
      mapG(row, u + k * 6);
    }
  }
  /** g [3][3] = G^T dU G of one filter's gradient du[k*6 + l]. */
  static void filterGrad(const float du[kX], float* g) {
    float t[6][3];  // (G^T dU)^T
    for (int l = 0; l < 6; l++) {
      const float col[6] = {du[l], du[6 + l], du[12 + l], du[18 + l], du[24 + l], du[30 + l]};
      mapGt(col, t[l]);
    }
    for (int r = 0; r < 3; r++) {
      const float row[6] = {t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r]};
      mapGt(row, g + r * 3);
    }
  }
  /** Covers input (6 rows of 4 Lp, 6 transformed rows, a padded row: 13 x 4 Lp, Lp =
   *  roundUp8(tw + 1)), output (32 roundUp8(tw)) and gradient (44 roundUp8(tw)). */
  static size_t rowBufFloats(int64_t tw) { return size_t(52 * roundUp8(tw + 1) + 16); }

  /** V[xi][p] (xi stride vs) of the tiles of one input plane [h][w]: tile (ti, tj) covers input
   *  rows 4ti-padT .. +5 and columns 4tj-padL .. +5 (zero outside the plane). */
  static void input(const float* xp, int64_t h, int64_t w, int64_t padT, int64_t padL, int64_t th, int64_t tw,
                    float* V, int64_t vs, float* buf) {
    // phases of a row: P_k[j] = column 4j + k - padL, j < L; tile j takes P0..P3 at j, P0, P1 at j+1
    const int64_t L = tw + 1, Lp = roundUp8(L), R = 4 * Lp;
    float* D[6];  // the tile row's 6 input rows, each 4 phases of Lp
    for (int r = 0; r < 6; r++) D[r] = buf + r * R;
    float* t = buf + 6 * R;   // the 6 rows after B^T, same layout
    float* pr = buf + 12 * R;  // a zero-padded input row
    for (int64_t ti = 0; ti < th; ti++) {
      // tiles overlap by two rows: rows 0-1 of this tile row are rows 4-5 of the previous one
      if (ti > 0) { std::swap(D[0], D[4]); std::swap(D[1], D[5]); }
      for (int r = ti > 0 ? 2 : 0; r < 6; r++) {
        const int64_t iy = 4 * ti - padT + r;
        if (iy < 0 || iy >= h) std::memset(D[r], 0, size_t(R) * sizeof(float));
        else loadRow4(xp + iy * w, w, padL, Lp, pr, D[r]);
      }
      // B^T over rows, all phases at once (R floats per row)
      #pragma GCC ivdep
      for (int64_t j = 0; j < R; j++) {
        const float d[6] = {D[0][j], D[1][j], D[2][j], D[3][j], D[4][j], D[5][j]};
        float o[6];
        mapBt(d, o);
        for (int k = 0; k < 6; k++) t[k * R + j] = o[k];
      }
      // B over columns: tile j's columns are P0[j], P1[j], P2[j], P3[j], P0[j+1], P1[j+1]
      const int64_t p0 = ti * tw;
      for (int k = 0; k < 6; k++) {
        const float* c = t + k * R;
        float* v = V + k * 6 * vs + p0;
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) {
          const float e[6] = {c[j], c[Lp + j], c[2 * Lp + j], c[3 * Lp + j], c[j + 1], c[Lp + j + 1]};
          float o[6];
          mapBt(e, o);
          for (int l = 0; l < 6; l++) v[l * vs + j] = o[l];
        }
      }
    }
  }

  /** One output plane [oh][ow] = A^T M A of its tiles (M[xi][p], xi stride ms) plus bias. */
  static void output(const float* M, int64_t ms, int64_t th, int64_t tw, float bias, float* yp, int64_t oh,
                     int64_t ow, float* buf) {
    const int64_t Lq = roundUp8(tw);
    float* s = buf;               // s[a][l]: A^T over the rows, output row a, tile column l
    float* ph = buf + 24 * Lq;    // one output row as 4 column phases of Lq
    float* rowb = ph + 4 * Lq;    // the row itself (4 Lq floats)
    for (int64_t ti = 0; ti < th; ti++) {
      const int64_t p0 = ti * tw;
      for (int l = 0; l < 6; l++) {
        const float* m = M + l * ms + p0;  // m[k * 6 * ms + j]: row k of tile column l
        float* sl = s + l * Lq;            // sl[a * 6 * Lq + j]
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) {
          const float c[6] = {m[j], m[6 * ms + j], m[12 * ms + j], m[18 * ms + j], m[24 * ms + j], m[30 * ms + j]};
          float o[4];
          mapAt(c, o);
          for (int a = 0; a < 4; a++) sl[a * 6 * Lq + j] = o[a];
        }
      }
      for (int a = 0; a < 4; a++) {
        const int64_t oy = 4 * ti + a;
        if (oy >= oh) break;
        const float* q = s + a * 6 * Lq;
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) {  // interleave4 moves the tail beyond tw too, never stored
          const float c[6] = {q[j], q[Lq + j], q[2 * Lq + j], q[3 * Lq + j], q[4 * Lq + j], q[5 * Lq + j]};
          float o[4];
          mapAt(c, o);
          for (int b = 0; b < 4; b++) ph[b * Lq + j] = o[b] + bias;
        }
        interleave4(ph, Lq, rowb);
        std::memcpy(yp + oy * ow, rowb, size_t(ow) * sizeof(float));
      }
    }
  }

  /** dM[xi][p] (xi stride ms) = A dY A^T of the 4x4 tiles of one output-gradient plane
   *  [oh][ow] (zero beyond the plane). */
  static void grad(const float* gp, int64_t oh, int64_t ow, int64_t th, int64_t tw, float* dM, int64_t ms,
                   float* buf) {
    // A = [[1,0,0,0],[1,1,1,1],[1,-1,1,-1],[1,2,4,8],[1,-2,4,-8],[0,0,0,1]], over rows then columns
    const int64_t Lq = roundUp8(tw), R = 4 * Lq;
    float* Y = buf;            // 4 rows of the tile row, each 4 column phases of Lq
    float* r = buf + 4 * R;    // 6 rows after A, same layout
    float* pr = buf + 10 * R;  // a zero-padded gradient row
    for (int64_t ti = 0; ti < th; ti++) {
      for (int a = 0; a < 4; a++) {
        const int64_t oy = 4 * ti + a;
        if (oy >= oh) std::memset(Y + a * R, 0, size_t(R) * sizeof(float));
        else loadRow4(gp + oy * ow, ow, 0, Lq, pr, Y + a * R);
      }
      #pragma GCC ivdep
      for (int64_t j = 0; j < R; j++) {
        const float y[4] = {Y[j], Y[R + j], Y[2 * R + j], Y[3 * R + j]};
        float o[6];
        mapA(y, o);
        for (int k = 0; k < 6; k++) r[k * R + j] = o[k];
      }
      const int64_t p0 = ti * tw;
      for (int k = 0; k < 6; k++) {
        const float* c = r + k * R;
        float* d = dM + k * 6 * ms + p0;
        #pragma GCC ivdep
        for (int64_t j = 0; j < tw; j++) {
          const float y[4] = {c[j], c[Lq + j], c[2 * Lq + j], c[3 * Lq + j]};
          float o[6];
          mapA(y, o);
          for (int l = 0; l < 6; l++) d[l * ms + j] = o[l];
        }
      }
    }
  }
};

/** Transposes the 8x8 block r[0..7] (rows) in registers. */
inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/** dst[p * ld + cc] = src[cc * ss + p] for p < T, cc < nc (<= 8): planes to channel-minor. */
void planesToMinor(const float* src, int64_t ss, int64_t T, int64_t nc, float* dst, int64_t ld) {
  int64_t p = 0;
  if (nc == 8) {
    for (; p + 8 <= T; p += 8) {
      __m256 r[8];
      for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + k * ss + p);
      transpose8(r);
      for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + (p + k) * ld, r[k]);
    }
  }
  for (; p < T; p++)
    for (int64_t cc = 0; cc < nc; cc++) dst[p * ld + cc] = src[cc * ss + p];
}

/** dst[cc * ds + p] = src[p * ld + cc]: channel-minor to planes. */
void minorToPlanes(const float* src, int64_t ld, int64_t T, int64_t nc, float* dst, int64_t ds) {
  int64_t p = 0;
  if (nc == 8) {
    for (; p + 8 <= T; p += 8) {
      __m256 r[8];
      for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + (p + k) * ld);
      transpose8(r);
      for (int k = 0; k < 8; k++) _mm256_storeu_ps(dst + k * ds + p, r[k]);
    }
  }
  for (; p < T; p++)
    for (int64_t cc = 0; cc < nc; cc++) dst[cc * ds + p] = src[p * ld + cc];
}

/** Images per chunk: the transformed tiles of a chunk fit the budget, but each product has at
 *  least 256 tile rows (on 8x8 images smaller chunks ran the gemms at half their speed). */
int64_t chunkImages(int64_t n, int64_t perImage, int64_t T) {
  int64_t nb = winoChunkBytes() / std::max<int64_t>(perImage, 1);
  nb = std::max(nb, (256 + T - 1) / T);
  return std::clamp<int64_t>(nb, 1, n);
}

/** Images per thread chunk for the split by images, or 0 where the split by tile positions
 *  runs: the knob says so, one thread, or (auto) fewer than minChunksPerThread chunks a thread.
 *  A chunk's transformed tiles fit the chunk budget, but its products have at least 128 tile rows
 *  (a thread's sgemm on fewer ran slower), and every thread gets a chunk. */
int64_t imageChunk(int64_t n, int64_t perImage, int64_t T, int64_t minChunksPerThread) {
  const int mode = winogradSplitMode();
  const int64_t nt = omp_get_max_threads();
  if (mode == 0 || nt < 2) return 0;
  int64_t nb = std::max<int64_t>(1, winoChunkBytes() / std::max<int64_t>(perImage, 1));
  nb = std::max(nb, (128 + T - 1) / T);
  nb = std::min(nb, (n + nt - 1) / nt);
  // auto: the forward and input-gradient passes split by images from one chunk a thread (W4's 8x8
  // and 16x16 layers at batch 16: its sampling pass 4-9% faster than split by tiles in `bench --ab
  // wino-split=images`, passes alternating), the weight gradient from two (with one, W4's training
  // step measured 1-13% slower: its fixed share a thread cannot hand work over).
  if (mode == 2 && (n + nb - 1) / nb < minChunksPerThread * nt) return 0;
  return nb;
}

/** U [kX][ci][co] = G g G^T of every filter g [3][3]; g comes from wsrc [co][ci][3][3], or
 *  transposed and flipped from forward weights [ci][co][3][3] (the backward-to-input pass). */
template <class Tile>
void transformWeights(const float* wsrc, int64_t co, int64_t ci, bool transposeFlip, float* U) {
  constexpr int64_t kX = Tile::kX;
  const int64_t kc = co * ci, ob = (co + 7) / 8;
  // blocks of 8 output channels for one input channel: 8 read streams, 32-byte writes into U
#pragma omp parallel for schedule(static) if (kc > 256)
  for (int64_t bi = 0; bi < ob * ci; bi++) {
    const int64_t i = bi / ob, o0 = (bi % ob) * 8, no = std::min<int64_t>(8, co - o0);
    float tmp[kX][8];
    for (int64_t oo = 0; oo < no; oo++) {
      const int64_t o = o0 + oo;
      float g[3][3], u[kX];
      for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++)
          g[r][s] = transposeFlip ? wsrc[((i * co + o) * 3 + 2 - r) * 3 + 2 - s] : wsrc[((o * ci + i) * 3 + r) * 3 + s];
      Tile::filter(g, u);
      for (int xi = 0; xi < kX; xi++) tmp[xi][oo] = u[xi];
    }
    for (int xi = 0; xi < kX; xi++) std::memcpy(U + xi * kc + i * co + o0, tmp[xi], size_t(no) * sizeof(float));
  }
}

}  // namespace

int convWinogradMode() {
  if (gWino < 0) gWino = envMode("LDM_CONV_WINOGRAD");
  return gWino;
}

void setConvWinograd(int mode) { gWino = mode; }

int winogradTile() {
  if (gWinoTile < 0) {
    const char* e = std::getenv("LDM_WINO_TILE");
    gWinoTile = !e ? 0 : e[0] == '2' ? 2 : e[0] == '4' ? 4 : 0;
  }
  return gWinoTile;
}

void setWinogradTile(int tile) { gWinoTile = tile == 2 || tile == 4 ? tile : 0; }

int winogradSplitMode() {
  if (gWinoSplit < 0) gWinoSplit = envMode("LDM_WINO_SPLIT");
  return gWinoSplit;
}

void setWinogradSplit(int mode) { gWinoSplit = mode == 0 || mode == 1 ? mode : 2; }

void setWinogradChunkKB(int64_t kb) { gWinoChunk = kb > 0 ? kb * 1024 : int64_t(1) << 40; }

bool convWinogradWanted(int64_t cin, int64_t cout, int64_t oh, int64_t ow) {
  const int m = convWinogradMode();
  // auto: where the FMAs are 256 bits wide (AVX2, or Zen 4's AVX-512 in halves: oneDNN's direct
  // kernels then run at AVX2's rate per cycle, as where these rules were measured), the products
  // are wide enough for the gemm and the planes big enough for the transforms to pay. Measured on
  // 2 AVX2 cores, ms per forward call, oneDNN / F(2x2) / F(4x4): mnist-ddpm's UNet at batch 200:
  // 32->32 28x28 21.7 / 30.7 / 27.6, 64->32 28x28 38 / 47 / 40, 96->32 28x28 66 / 51 / 55, 64->64 14x14 22.5 /
  // 30.6 / 20.5, 128->64 14x14 43 / 52 / 34, 64->64 7x7 7.3 / 12.1 / 10.3, 128->64 7x7 12.5 /
  // 20.1 / 16.3; W4 at batch 16: 64->64 32x32 10.3 / - / 6.0, 128->128 8x8 2.9 / 2.5 / -,
  // 3->64 and 64->3 faster on oneDNN.
  // Split by images (imageChunk; all three passes) the transforms run faster, and
  // planes of 14x14 and up pay from 64 channels in and out together (ms, oneDNN / Winograd F(4x4),
  // best of 10 over two runs, fwd / bwd-input / weight gradient): batch 200 64->32 28x28 53 / 38
  // fwd; batch 64 64->32 28x28 17 / 10, 13-18 / 11, 23-25 / 11-14; 32->32 28x28 8.7-9.9 / 6.3-7.5,
  // 8.7 / 7.2-8.0, 10.5-14.7 / 7.3-7.7; 32->64 14x14 4.9-5.6 / 3.6, 4.2-4.8 / 3.3-3.5, 5.7-7.5 / 4.9-5.7.
  // Since the image split, tuning (LDM_CONV_TUNE=1, best of two after a warm call, ms oneDNN /
  // Winograd) also found the last layer (many channels in, few out) faster: W4's 64->3 32x32 n16
  // forward 4.75 / 2.70, weight gradient 6.06 / 2.79; mnist-ddpm's 32->1 28x28 forward n64 5.7 /
  // 3.8, n200 11.6 / 7.1, weight gradient n64 4.6 / 3.9; and 7x7 planes with 192 channels in and
  // out together: 128->64 7x7 forward n80 4.3 / 3.9, n200 15.9 / 13.2 (64->64 7x7 was mixed:
  // n200 forward 8.8 / 6.9, n64 oneDNN's in all three passes).
  const int64_t side = std::min(oh, ow);
  const bool wide = cin >= 16 && cout >= 16 &&
                    ((cin + cout >= 192 && side >= 7) || (cin + cout >= 128 && side >= 8) || (cin + cout >= 64 && side >= 14));
  const bool fewOut = cout < 16 && cin >= 32 && side >= 14;
  return m == 1 || (m == 2 && !cpuFullWidthAvx512() && (wide || fewOut));
}

/** The tile size for n output planes of oh x ow: the knob, or auto. Auto takes F(4x4) on planes
 *  of at least 12x12 (14x14 measured above in convWinogradWanted) when the batch has enough 4x4 tiles for the products: at least 64 for the
 *  forward products, 256 for the weight gradient's (its products have the tiles as the inner
 *  dimension and write 36 cin x cout blocks). Measured on 2 AVX2 cores (ms, F(2x2) / F(4x4)):
 *  64->64 32x32 n16 fwd 10.9/7.8, weight gradient 12.8/8.5; 128->128 16x16 n16 9.5/7.0 and
 *  11.5/9.1; 128->128 16x16 n1 1.2/1.3 and 1.4/2.9; 128->128 8x8 n16 3.6/3.1 and 3.7/4.7,
 *  n64 13.6/13.3 and 14.0/13.6 (8x8 planes stay F(2x2): little to gain, 20x more error). */
int winogradTileFor(int64_t n, int64_t oh, int64_t ow, bool weightGrad) {
  const int t = winogradTile();
  if (t != 0) return t;
  const int64_t tiles4 = n * ((oh + 3) / 4) * ((ow + 3) / 4);
  return std::min(oh, ow) >= 12 && tiles4 >= (weightGrad ? 256 : 64) ? 4 : 2;
}

namespace {

/** Layouts (p = tile index within a chunk of images, image-major then tile row, tile column):
 *  V [kX][P][cin], M [kX][P][cout], U [kX][cin][cout]: every product is M[xi] = V[xi] . U[xi]
 *  with the tiles as the long dimension, the shape dnnl_sgemm ran fastest (measured on one AVX2
 *  core: 73-89% of peak, against 31-41% with the tiles as columns). The transforms work on one
 *  plane at a time in a per-thread buffer (contiguous rows) and move kCB channels at once to or
 *  from the channel-minor layout. */
constexpr int64_t kCB = 8;

/** Per-thread buffers of the plane transforms: kCB planes of kX*T transformed tiles, plus the
 *  row buffers. */
template <class Tile>
size_t threadBufFloats(int64_t T, int64_t tw) { return size_t(kCB * Tile::kX * T) + Tile::rowBufFloats(tw); }

/** The kX products of one chunk (one per transformed tile position xi), shared out over the
 *  threads of the enclosing parallel region; a failing sgemm sets `failed` (shared), which the
 *  caller turns into an error after the region (no exception may leave an OpenMP region). */
template <class Product>
void eachTileProduct(int nx, bool& failed, Product&& product) {
#pragma omp for schedule(static)
  for (int xi = 0; xi < nx; xi++) {
    try {
      product(xi);
    } catch (...) {
#pragma omp atomic write
      failed = true;
    }
  }
}

/** The forward pass (and, with transposed and flipped weights, the backward-to-input pass), shared
 *  out over the threads in one of two ways:
 *  - by tile positions (imageChunk gives 0): the batch runs in chunks of images (chunkImages), every
 *    thread transforms a share of each chunk's channel blocks, then runs a share of its kX
 *    products, then transforms a share of the outputs (three barriers a chunk);
 *  - by images: each thread takes whole chunks of imageChunk()'s images (dynamic
 *    schedule) and runs their transforms and products alone, in its own V and M: one barrier a
 *    call, a chunk's transformed tiles never leave the core that made them, and when a core is
 *    held up (another process, the host taking it) the other takes the remaining chunks. */
template <class Tile>
void forwardTiles(const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t padT,
                  int64_t padL, int64_t oh, int64_t ow, const float* bias, float* y, const float* wsrc,
                  bool transposeFlip) {
  constexpr int64_t kX = Tile::kX, kM = Tile::kM;
  const int64_t th = (oh + kM - 1) / kM, tw = (ow + kM - 1) / kM, T = th * tw;
  const int nt = omp_get_max_threads();
  const int64_t perImage = kX * (ci + co) * T * int64_t(sizeof(float)), nbImages = imageChunk(n, perImage, T, 1);  // forward / input gradient
  const bool byImages = nbImages > 0;
  const int64_t nb = byImages ? nbImages : chunkImages(n, perImage, T);
  // V and M: one chunk's (by tiles), or one per thread (by images)
  const size_t vf = size_t(kX * ci * nb * T), mf = size_t(kX * co * nb * T), copies = byImages ? size_t(nt) : 1;
  float* U = scratch(kSlotWinoU, size_t(kX * co * ci));
  float* Vall = scratch(kSlotWinoV, copies * vf);
  float* Mall = scratch(kSlotWinoM, copies * mf);
  transformWeights<Tile>(wsrc, co, ci, transposeFlip, U);
  const size_t tb = threadBufFloats<Tile>(T, tw);
  float* bufs = scratch(kSlotMisc, size_t(nt) * tb);
  const int64_t cbi = (ci + kCB - 1) / kCB, cbo = (co + kCB - 1) / kCB;
  // Input block `item` of the chunk at image n0 (P tile rows): kCB channels of one image to V.
  auto input = [&](int64_t n0, int64_t P, int64_t item, float* loc, float* V) {
    const int64_t i = item / cbi, c0 = (item % cbi) * kCB, nc = std::min(kCB, ci - c0);
    for (int64_t cc = 0; cc < nc; cc++)
      Tile::input(x + ((n0 + i) * ci + c0 + cc) * h * w, h, w, padT, padL, th, tw, loc + cc * kX * T, T,
                  loc + kCB * kX * T);
    for (int xi = 0; xi < kX; xi++)
      planesToMinor(loc + xi * T, kX * T, T, nc, V + (size_t(xi) * P + i * T) * ci + c0, ci);
  };
  auto product = [&](int64_t P, int xi, const float* V, float* M) {
    sgemm(kWinograd, 'N', 'N', P, co, ci, V + xi * P * ci, ci, U + xi * ci * co, co, 0.f, M + xi * P * co, co);
  };
  // Output block `item`: kCB channels of one image from M to y.
  auto output = [&](int64_t n0, int64_t P, int64_t item, float* loc, const float* M) {
    const int64_t i = item / cbo, o0 = (item % cbo) * kCB, nc = std::min(kCB, co - o0);
    for (int xi = 0; xi < kX; xi++)
      minorToPlanes(M + (size_t(xi) * P + i * T) * co + o0, co, T, nc, loc + xi * T, kX * T);
    for (int64_t cc = 0; cc < nc; cc++) {
      const int64_t o = o0 + cc;
      Tile::output(loc + cc * kX * T, T, th, tw, bias ? bias[o] : 0.f, y + ((n0 + i) * co + o) * oh * ow, oh, ow,
                   loc + kCB * kX * T);
    }
  };
  bool failed = false;
  if (byImages) {
    const int64_t chunks = (n + nb - 1) / nb;
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      float* loc = bufs + size_t(tid) * tb;
      float* V = Vall + size_t(tid) * vf;
      float* M = Mall + size_t(tid) * mf;
#pragma omp for schedule(dynamic, 1)
      for (int64_t k = 0; k < chunks; k++) {
        const int64_t n0 = k * nb, cn = std::min(nb, n - n0), P = cn * T;
        for (int64_t item = 0; item < cn * cbi; item++) input(n0, P, item, loc, V);
        try {
          for (int xi = 0; xi < kX; xi++) product(P, xi, V, M);
        } catch (...) {
#pragma omp atomic write
          failed = true;
        }
        for (int64_t item = 0; item < cn * cbo; item++) output(n0, P, item, loc, M);
      }
    }
  } else {
    for (int64_t n0 = 0; n0 < n && !failed; n0 += nb) {
      const int64_t cn = std::min(nb, n - n0), P = cn * T;
#pragma omp parallel
      {
        float* loc = bufs + size_t(omp_get_thread_num()) * tb;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < cn * cbi; item++) input(n0, P, item, loc, Vall);
        eachTileProduct(int(kX), failed, [&](int xi) { product(P, xi, Vall, Mall); });
#pragma omp for schedule(static)
        for (int64_t item = 0; item < cn * cbo; item++) output(n0, P, item, loc, Mall);
      }
    }
  }
  if (failed) throw ArgError{"winograd convolution: dnnl_sgemm failed"};
}

template <class Tile>
void backwardWeightTiles(const float* gy, const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co,
                         int64_t padT, int64_t padL, int64_t oh, int64_t ow, float* gw, float* gb) {
  constexpr int64_t kX = Tile::kX, kM = Tile::kM;
  const int64_t th = (oh + kM - 1) / kM, tw = (ow + kM - 1) / kM, T = th * tw;
  const int nt = omp_get_max_threads();
  const int64_t perImage = kX * (ci + co) * T * int64_t(sizeof(float)), nbImages = imageChunk(n, perImage, T, 2);  // weight gradient
  const bool byImages = nbImages > 0;
  const int64_t nb = byImages ? nbImages : chunkImages(n, perImage, T);
  // dU, V and dM: one chunk's (by tiles), or one per thread (by images)
  const int64_t ukc = kX * ci * co;
  const size_t vf = size_t(kX * ci * nb * T), mf = size_t(kX * co * nb * T), copies = byImages ? size_t(nt) : 1;
  float* dU = scratch(kSlotWinoU, copies * size_t(ukc));
  float* Vall = scratch(kSlotWinoV, copies * vf);
  float* Mall = scratch(kSlotWinoM, copies * mf);
  const size_t tb = threadBufFloats<Tile>(T, tw);
  float* bufs = scratch(kSlotMisc, size_t(nt) * tb);
  const int64_t cbi = (ci + kCB - 1) / kCB, cbo = (co + kCB - 1) / kCB;
  // Block `item` of the chunk at image n0 (P tile rows): the input blocks of an image, then its
  // output-gradient blocks, kCB channels each, to V or dM.
  auto transform = [&](int64_t n0, int64_t P, int64_t item, float* loc, float* V, float* dM) {
    const int64_t i = item / (cbi + cbo), b = item % (cbi + cbo);
    const bool isX = b < cbi;
    const int64_t C = isX ? ci : co, c0 = (isX ? b : b - cbi) * kCB, nc = std::min(kCB, C - c0);
    float* rows = loc + kCB * kX * T;
    for (int64_t cc = 0; cc < nc; cc++) {
      if (isX)
        Tile::input(x + ((n0 + i) * ci + c0 + cc) * h * w, h, w, padT, padL, th, tw, loc + cc * kX * T, T, rows);
      else
        Tile::grad(gy + ((n0 + i) * co + c0 + cc) * oh * ow, oh, ow, th, tw, loc + cc * kX * T, T, rows);
    }
    float* dst = isX ? V : dM;
    for (int xi = 0; xi < kX; xi++)
      planesToMinor(loc + xi * T, kX * T, T, nc, dst + (size_t(xi) * P + i * T) * C + c0, C);
  };
  // dU[xi] [ci][co] (+)= V[xi]^T . dM[xi]
  auto product = [&](int64_t P, int xi, const float* V, const float* dM, float beta, float* dUt) {
    sgemm(kWinograd, 'T', 'N', ci, co, P, V + xi * P * ci, ci, dM + xi * P * co, co, beta, dUt + xi * ci * co, co);
  };
  bool failed = false;
  if (byImages) {
    // Each thread sums its chunks' products into its own dU (the first thread's is dU itself),
    // then the threads add theirs into dU. A static schedule: which chunks a thread sums must not
    // change between runs, or neither would the rounding (a resumed training run gives the
    // uninterrupted run's weights bit for bit).
    const int64_t chunks = (n + nb - 1) / nb;
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      float* loc = bufs + size_t(tid) * tb;
      float* V = Vall + size_t(tid) * vf;
      float* dM = Mall + size_t(tid) * mf;
      float* dUt = dU + size_t(tid) * ukc;
      std::memset(dUt, 0, size_t(ukc) * sizeof(float));
#pragma omp for schedule(static)
      for (int64_t k = 0; k < chunks; k++) {
        const int64_t n0 = k * nb, cn = std::min(nb, n - n0), P = cn * T;
        for (int64_t item = 0; item < cn * (cbi + cbo); item++) transform(n0, P, item, loc, V, dM);
        try {
          for (int xi = 0; xi < kX; xi++) product(P, xi, V, dM, 1.f, dUt);
        } catch (...) {
#pragma omp atomic write
          failed = true;
        }
      }
#pragma omp for schedule(static)
      for (int64_t e = 0; e < ukc; e++)
        for (int t = 1; t < nt; t++) dU[e] += dU[size_t(t) * ukc + e];
    }
  } else {
    for (int64_t n0 = 0; n0 < n && !failed; n0 += nb) {
      const int64_t cn = std::min(nb, n - n0), P = cn * T;
      const float beta = n0 == 0 ? 0.f : 1.f;
#pragma omp parallel
      {
        float* loc = bufs + size_t(omp_get_thread_num()) * tb;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < cn * (cbi + cbo); item++) transform(n0, P, item, loc, Vall, Mall);
        eachTileProduct(int(kX), failed, [&](int xi) { product(P, xi, Vall, Mall, beta, dU); });
      }
    }
  }
  if (failed) throw ArgError{"winograd convolution: dnnl_sgemm failed"};
  // dW = G^T dU G for every (o, i); the bias gradient is the sum of gy over images and pixels
  const int64_t kc = co * ci;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (int64_t io = 0; io < kc; io++) {  // output channel fastest: dU is read contiguously
      const int64_t i = io / co, o = io % co;
      float u[kX];
      for (int xi = 0; xi < kX; xi++) u[xi] = dU[xi * kc + io];
      Tile::filterGrad(u, gw + (o * ci + i) * 9);
    }
    if (gb) {
#pragma omp for schedule(static)
      for (int64_t o = 0; o < co; o++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
          const float* p = gy + (i * co + o) * oh * ow;
          float part = 0.f;
          for (int64_t k = 0; k < oh * ow; k++) part += p[k];
          s += part;
        }
        gb[o] = float(s);
      }
    }
  }
}

}  // namespace

bool convWinogradS1(const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t padT,
                    int64_t padL, int64_t oh, int64_t ow, const float* bias, float* y, const float* wsrc,
                    bool transposeFlip, int tile) {
  if (n < 1 || ci < 1 || co < 1 || oh < 1 || ow < 1 || padT < 0 || padL < 0) return false;
  if (tile == 4)
    forwardTiles<F4>(x, n, ci, h, w, co, padT, padL, oh, ow, bias, y, wsrc, transposeFlip);
  else
    forwardTiles<F2>(x, n, ci, h, w, co, padT, padL, oh, ow, bias, y, wsrc, transposeFlip);
  return true;
}

bool convWinogradS1BackwardWeight(const float* gy, const float* x, int64_t n, int64_t ci, int64_t h, int64_t w,
                                  int64_t co, int64_t padT, int64_t padL, int64_t oh, int64_t ow, float* gw,
                                  float* gb, int tile) {
  if (n < 1 || ci < 1 || co < 1 || oh < 1 || ow < 1 || padT < 0 || padL < 0) return false;
  if (tile == 4)
    backwardWeightTiles<F4>(gy, x, n, ci, h, w, co, padT, padL, oh, ow, gw, gb);
  else
    backwardWeightTiles<F2>(gy, x, n, ci, h, w, co, padT, padL, oh, ow, gw, gb);
  return true;
}

}  // namespace ldm
