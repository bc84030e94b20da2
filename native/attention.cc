// Fused scaled dot-product attention (forward). Work items are (batch, chunk of query rows),
// spread over the OpenMP pool. Per item: k is transposed once into kT [d, skp] (zero-padded to
// a multiple of two vectors) and, per block of 48 query rows, S = q kT * scale is computed by
// a 6-row register-blocked kernel into a thread-local tile that stays in L1/L2; then each row
// gets + mask, exp(x - max) in place, its sum; probs receives the normalised row (streaming
// stores when probs is large and aligned); finally out = (E v) / sum by a 6-row kernel.
// The kernels (attention_kernel.h) are compiled twice: AVX-512 (chosen at run time by CPUID)
// and the AVX2 baseline. There is no fused backward: the tensor layer composes it from
// matmul and softmaxGrad over probs.
// GCC 12 warns about _mm512_undefined_* inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "common.h"
#include "simd.h"

namespace ldm {

// ---- AVX2 instantiation (the build's baseline ISA) -----------------------------------------
namespace attn256h {
static inline __m256 exp2n(__m256 y, __m256 fx) {
  __m256i n = _mm256_cvtps_epi32(fx);
  __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(y, p1), p2);
}
}  // namespace attn256h

#define NS attn256
#define VW 8
#define vf __m256
#define LD(p) _mm256_loadu_ps(p)
#define ST(p, v) _mm256_storeu_ps(p, v)
#define STREAM(p, v) _mm256_stream_ps(p, v)
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define SET1(x) _mm256_set1_ps(x)
#define ADD(a, b) _mm256_add_ps(a, b)
#define SUB(a, b) _mm256_sub_ps(a, b)
#define MUL(a, b) _mm256_mul_ps(a, b)
#define MAX(a, b) _mm256_max_ps(a, b)
#define ZERO() _mm256_setzero_ps()
#define ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define HSUM(v) hsum(v)
#define HMAX(v) hmax(v)
#define EXP2N(y, n) attn256h::exp2n(y, n)
#include "attention_kernel.h"  // undefines the macros above

// ---- AVX-512 instantiation ------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
namespace attn512h {
static inline float hsum(__m512 v) {
  __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float hmax(__m512 v) {
  __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
}  // namespace attn512h

#define NS attn512
#define VW 16
#define vf __m512
#define LD(p) _mm512_loadu_ps(p)
#define ST(p, v) _mm512_storeu_ps(p, v)
#define STREAM(p, v) _mm512_stream_ps(p, v)
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define SET1(x) _mm512_set1_ps(x)
#define ADD(a, b) _mm512_add_ps(a, b)
#define SUB(a, b) _mm512_sub_ps(a, b)
#define MUL(a, b) _mm512_mul_ps(a, b)
#define MAX(a, b) _mm512_max_ps(a, b)
#define ZERO() _mm512_setzero_ps()
#define ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define HSUM(v) attn512h::hsum(v)
#define HMAX(v) attn512h::hmax(v)
#define EXP2N(y, n) _mm512_scalef_ps(y, n)
#include "attention_kernel.h"  // undefines the macros above
#pragma GCC pop_options

namespace {

int64_t gRows = 0;  // query rows per S tile (a multiple of the 6-row panel); 0: LDM_ATTN_ROWS or 24

int64_t tileRows() {
  if (gRows <= 0) {
    const char* e = std::getenv("LDM_ATTN_ROWS");
    int64_t r = e ? std::atoll(e) : 24;
    gRows = r < 6 ? 6 : (r / 6) * 6;
  }
  return gRows;
}

/** Grow-only, 64-byte aligned buffer per OpenMP thread (threads persist, so do buffers). */
struct TBuf {
  float* p = nullptr;
  size_t cap = 0;
  ~TBuf() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64 + 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      cap = p ? n : 0;
    }
    return p;
  }
};
thread_local TBuf tK, tV, tS, tQ, tO, tInv;

int gIsa = -1;  // -1 auto, 0 force AVX2

bool useAvx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }();
  return has && gIsa != 0;
}

struct Problem {
  const float *q, *k, *v, *mask;
  float *out, *probs;
  int64_t b, sq, sk, d, dv, m0, m1, m2;
  float scale;
  bool nt;
};

template <int VWT>
bool runItem(const Problem& P, int64_t i, int64_t r0, int64_t r1) {
  const int64_t skp = (P.sk + 2 * VWT - 1) / (2 * VWT) * (2 * VWT);
  const int64_t dvp = (P.dv + VWT - 1) / VWT * VWT;
  float* kT = tK.get(size_t(P.d * skp));
  const int64_t kRows = tileRows();
  float* S = tS.get(size_t(kRows * skp));
  float* Q = tQ.get(size_t(kRows * P.d));
  float* O = tO.get(size_t(kRows * dvp));
  float* inv = tInv.get(kRows);
  if (!kT || !S || !Q || !O || !inv) return false;
  // kT [d, skp] = k[i]^T, zero-padded columns
  const float* kb = P.k + i * P.sk * P.d;
  transpose(kb, P.sk, P.d, P.d, kT, skp);
  for (int64_t t = 0; t < P.d; t++)
    for (int64_t j = P.sk; j < skp; j++) kT[t * skp + j] = 0.f;
  // vP [sk, dvp]: v itself when dv is a multiple of the vector width
  const float* vb = P.v + i * P.sk * P.dv;
  const float* vP = vb;
  if (dvp != P.dv) {
    float* V = tV.get(size_t(P.sk * dvp));
    if (!V) return false;
    for (int64_t j = 0; j < P.sk; j++) {
      std::memcpy(V + j * dvp, vb + j * P.dv, size_t(P.dv) * sizeof(float));
      for (int64_t c = P.dv; c < dvp; c++) V[j * dvp + c] = 0.f;
    }
    vP = V;
  }
  for (int64_t rb = r0; rb < r1; rb += kRows) {
    const int64_t rows = r1 - rb < kRows ? r1 - rb : kRows;
    const int64_t panels = (rows + 5) / 6;
    const float* qsrc = P.q + (i * P.sq + rb) * P.d;
    if (rows % 6 != 0) {  // pad the query rows to whole panels with zeros
      std::memcpy(Q, qsrc, size_t(rows * P.d) * sizeof(float));
      std::memset(Q + rows * P.d, 0, size_t((panels * 6 - rows) * P.d) * sizeof(float));
      qsrc = Q;
    }
    for (int64_t p = 0; p < panels; p++) {
      if (VWT == 16) attn512::qkPanel(qsrc + p * 6 * P.d, P.d, kT, skp, P.scale, S + p * 6 * skp);
      else attn256::qkPanel(qsrc + p * 6 * P.d, P.d, kT, skp, P.scale, S + p * 6 * skp);
    }
    for (int64_t r = 0; r < rows; r++) {
      const float* mrow = P.mask ? P.mask + i * P.m0 + (rb + r) * P.m1 : nullptr;
      float* prow = P.probs + (i * P.sq + rb + r) * P.sk;
      inv[r] = VWT == 16 ? attn512::softmaxRowN(S + r * skp, P.sk, skp, mrow, P.m2, prow, P.nt)
                         : attn256::softmaxRowN(S + r * skp, P.sk, skp, mrow, P.m2, prow, P.nt);
    }
    for (int64_t r = rows; r < panels * 6; r++) inv[r] = 0.f;
    for (int64_t p = 0; p < panels; p++) {
      if (VWT == 16) attn512::pvPanel(S + p * 6 * skp, skp, P.sk, vP, dvp, inv + p * 6, O + p * 6 * dvp);
      else attn256::pvPanel(S + p * 6 * skp, skp, P.sk, vP, dvp, inv + p * 6, O + p * 6 * dvp);
    }
    float* ob = P.out + (i * P.sq + rb) * P.dv;
    for (int64_t r = 0; r < rows; r++) std::memcpy(ob + r * P.dv, O + r * dvp, size_t(P.dv) * sizeof(float));
  }
  if (P.nt) _mm_sfence();
  return true;
}

// attention(q, k, v, b, sq, sk, d, dv, scale, mask|null, maskStrides|null, out, probs)
void attention(Args& a) {
  int64_t b = a.dim(3, "b"), sq = a.dim(4, "sq"), sk = a.dim(5, "sk"), d = a.dim(6, "d"), dv = a.dim(7, "dv");
  float scale = float(a.num(8, "scale"));
  F32 q = a.f32Len(0, "q", checkedProd(a, {b, sq, d}), "b*sq*d");
  F32 k = a.f32Len(1, "k", checkedProd(a, {b, sk, d}), "b*sk*d");
  F32 v = a.f32Len(2, "v", checkedProd(a, {b, sk, dv}), "b*sk*dv");
  F32 mask = a.f32OrNull(9, "mask");
  bool stridesNull = false;
  std::vector<int64_t> ms = a.ints(10, "maskStrides", &stridesNull);
  F32 out = a.f32Len(11, "out", checkedProd(a, {b, sq, dv}), "b*sq*dv");
  F32 probs = a.f32Len(12, "probs", checkedProd(a, {b, sq, sk}), "b*sq*sk");
  Problem P{q.p, k.p, v.p, mask.p, out.p, probs.p, b, sq, sk, d, dv, 0, 0, 0, scale, false};
  if (mask.p) {
    if (stridesNull) {  // contiguous [b, sq, sk]
      P.m0 = sq * sk, P.m1 = sk, P.m2 = 1;
    } else {
      if (ms.size() != 3) a.fail("maskStrides must have 3 entries [b, sq, sk], got " + std::to_string(ms.size()));
      P.m0 = ms[0], P.m1 = ms[1], P.m2 = ms[2];
      if (P.m0 < 0 || P.m1 < 0 || P.m2 < 0) a.fail("maskStrides must be non-negative");
    }
    if (b > 0 && sq > 0 && sk > 0) {
      int64_t need = (b - 1) * P.m0 + (sq - 1) * P.m1 + (sk - 1) * P.m2 + 1;
      if (int64_t(mask.n) < need)
        a.fail("mask has length " + std::to_string(mask.n) + ", expected at least " + std::to_string(need) +
               " (from maskStrides)");
    }
  }
  if (b == 0 || sq == 0) return;
  if (sk == 0) {
    std::memset(out.p, 0, out.n * sizeof(float));
    return;
  }
  const bool wide = useAvx512();
  const int64_t vw = wide ? 16 : 8;
  P.nt = probs.n * sizeof(float) > (size_t(8) << 20) && sk >= 4 * vw;
  const int nt = omp_get_max_threads();
  // Rows per item: whole batches when there are enough of them, else split the rows.
  int64_t chunks = b >= 2 * nt ? 1 : (4 * nt + b - 1) / b;
  int64_t cr = (sq + chunks - 1) / chunks;
  cr = (cr + 5) / 6 * 6;
  chunks = (sq + cr - 1) / cr;
  const int64_t items = b * chunks;
  const bool par = items > 1 && double(b) * sq * sk * (d + dv) > 2.0e5;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t it = 0; it < items; it++) {
    int64_t i = it / chunks, r0 = (it % chunks) * cr, r1 = r0 + cr < sq ? r0 + cr : sq;
    bool ok = wide ? runItem<16>(P, i, r0, r1) : runItem<8>(P, i, r0, r1);
    if (!ok) {
#pragma omp atomic write
      failed = 1;
    }
  }
  if (failed) a.fail("out of memory for the attention scratch tiles");
}

// attentionIsa(level): 'auto' uses AVX-512 when the CPU has it, 'avx2' forces the baseline
// kernel (for tests). Returns the ISA now in use.
napi_value attentionIsa(Args& a) {
  std::string s = a.str(0, "level");
  if (s == "avx2") gIsa = 0;
  else if (s == "auto") gIsa = -1;
  else a.fail("level must be 'auto' or 'avx2'");
  napi_value r;
  const char* cur = useAvx512() ? "avx512" : "avx2";
  napi_create_string_utf8(a.env, cur, NAPI_AUTO_LENGTH, &r);
  return r;
}

}  // namespace

void registerAttention(std::vector<KernelDef>& r) {
  r.push_back({"attention", attention, nullptr});
  r.push_back({"attentionIsa", nullptr, attentionIsa});
}

}  // namespace ldm
