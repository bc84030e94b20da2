// Normalisation kernels: groupNorm (also fused with a following SiLU) / layerNorm (+ gradients) and row softmax / log-softmax
// (+ gradient), as OpenMP loops over independent groups or rows. Statistics accumulate in
// double (two passes: mean, then centred variance; biased variance as in PyTorch), so results
// match the float64-accumulating reference closely. Gradients for gamma/beta are overwritten.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "simd.h"

namespace ldm {

namespace {

/** Sum of f(i, k) over [0, n) in double, where f gives the 8 lanes at i (k = 8) or the last
 *  k < 8 with zeros after. Each 64-element block is summed pairwise in float (3 roundings per
 *  lane: about 2e-7 of the block's absolute sum) and then added into double lanes, so the
 *  adds are independent instead of one dependent double chain with a float->double
 *  conversion per element (that chain was the bottleneck of the statistics). */
template <class F>
inline double blockSum(int64_t n, F f) {
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256 a = _mm256_add_ps(_mm256_add_ps(f(i, 8), f(i + 8, 8)), _mm256_add_ps(f(i + 16, 8), f(i + 24, 8)));
    __m256 b = _mm256_add_ps(_mm256_add_ps(f(i + 32, 8), f(i + 40, 8)), _mm256_add_ps(f(i + 48, 8), f(i + 56, 8)));
    vaddToDouble(lo, hi, _mm256_add_ps(a, b));
  }
  __m256 s = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, f(i, 8));
  if (i < n) s = _mm256_add_ps(s, f(i, n - i));
  vaddToDouble(lo, hi, s);
  return hsumd(lo, hi);
}

/** Two sums at once (f sets u and v for the lanes at i, zeros past k), 32-element blocks. */
template <class F>
inline void blockSum2(int64_t n, F f, double& su, double& sv) {
  __m256d a = _mm256_setzero_pd(), b = a, c = a, d = a;
  __m256 u0, v0, u1, v1, u2, v2, u3, v3;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    f(i, 8, u0, v0);
    f(i + 8, 8, u1, v1);
    f(i + 16, 8, u2, v2);
    f(i + 24, 8, u3, v3);
    vaddToDouble(a, b, _mm256_add_ps(_mm256_add_ps(u0, u1), _mm256_add_ps(u2, u3)));
    vaddToDouble(c, d, _mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)));
  }
  __m256 tu = _mm256_setzero_ps(), tv = tu;
  for (; i < n; i += 8) {
    f(i, std::min<int64_t>(8, n - i), u0, v0);
    tu = _mm256_add_ps(tu, u0);
    tv = _mm256_add_ps(tv, v0);
  }
  vaddToDouble(a, b, tu);
  vaddToDouble(c, d, tv);
  su = hsumd(a, b);
  sv = hsumd(c, d);
}

inline __m256 vload(const float* p, int64_t k) { return k == 8 ? _mm256_loadu_ps(p) : vloadPart(p, k); }

inline double sumF(const float* x, int64_t n) {
  return blockSum(n, [x](int64_t i, int64_t k) { return vload(x + i, k); });
}

/** Sum of (x - mean)^2: the deviations from float(mean) in float lanes (each one rounding
 *  relative to the deviation itself), corrected in double for mean - float(mean), since
 *  sum (x - m')^2 = sum (x - m)^2 + n (m - m')^2 when m is the mean. */
inline double sumSqDev(const float* x, int64_t n, double mean) {
  const float mf = float(mean);
  const __m256 vm = vset(mf);
  double s = blockSum(n, [x, vm](int64_t i, int64_t k) {
    __m256 d = _mm256_sub_ps(vload(x + i, k), vm);
    if (k < 8) d = _mm256_and_ps(d, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
    return _mm256_mul_ps(d, d);
  });
  double dm = mean - double(mf);
  return std::max(0.0, s - double(n) * dm * dm);
}

/** OpenMP chunk for items of m elements each: at least ~16K elements per chunk (few
 *  scheduler round trips for small planes), yet at least 4 chunks per thread to balance. */
inline int64_t itemChunk(int64_t items, int64_t m) {
  int64_t nt = omp_get_max_threads();
  int64_t ch = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(m, 1));
  return std::max<int64_t>(1, std::min(ch, items / (4 * nt)));
}

inline void scaleShift(const float* x, float* y, int64_t n, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * a + b;
}

/** y = silu(x * a + b) over one row, 8 lanes at a time (the fused GroupNorm + SiLU output). */
inline void scaleShiftSilu(const float* x, float* y, int64_t n, float a, float b) {
  const __m256 va = vset(a), vb = vset(b);
  vmap1(x, y, 0, n, [&](__m256 v) {
    __m256 z = _mm256_fmadd_ps(v, va, vb);
    return _mm256_mul_ps(z, vsigmoid(z));
  });
}

// groupNorm(x, n, c, hw, groups, eps, gamma|null, beta|null, out, mean, rstd), and
// groupNormSilu with the same arguments (out = silu(groupNorm(x)) in the same pass).
template <bool kSilu>
void groupNormImpl(Args& a) {
  int64_t n = a.dim(1, "n"), c = a.dim(2, "c"), hw = a.dim(3, "hw"), groups = a.dim(4, "groups", 1);
  double eps = a.num(5, "eps");
  if (c % groups != 0) a.fail("c=" + std::to_string(c) + " is not divisible by groups=" + std::to_string(groups));
  int64_t total = checkedProd(a, {n, c, hw});
  F32 x = a.f32Len(0, "x", total, "n*c*hw");
  F32 gamma = a.f32LenOrNull(6, "gamma", c, "c");
  F32 beta = a.f32LenOrNull(7, "beta", c, "c");
  F32 out = a.f32Len(8, "out", total, "n*c*hw");
  F32 mean = a.f32Len(9, "mean", n * groups, "n*groups");
  F32 rstd = a.f32Len(10, "rstd", n * groups, "n*groups");
  int64_t cpg = c / groups, m = cpg * hw, items = n * groups, chunk = itemChunk(items, m);
#pragma omp parallel for schedule(dynamic, chunk) if (total > kParallelMin && items > 1)
  for (int64_t it = 0; it < items; it++) {
    int64_t g = it % groups;
    const float* xp = x.p + it * m;
    float* yp = out.p + it * m;
    double mu = m > 0 ? sumF(xp, m) / double(m) : 0.0;
    double var = m > 0 ? sumSqDev(xp, m, mu) / double(m) : 0.0;
    double rs = 1.0 / std::sqrt(var + eps);
    mean.p[it] = float(mu);
    rstd.p[it] = float(rs);
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t ch = g * cpg + cc;
      double ga = gamma.p ? gamma.p[ch] : 1.0, be = beta.p ? beta.p[ch] : 0.0;
      double sc = rs * ga;
      if (kSilu) scaleShiftSilu(xp + cc * hw, yp + cc * hw, hw, float(sc), float(be - mu * sc));
      else scaleShift(xp + cc * hw, yp + cc * hw, hw, float(sc), float(be - mu * sc));
    }
  }
}

void groupNorm(Args& a) { groupNormImpl<false>(a); }
void groupNormSilu(Args& a) { groupNormImpl<true>(a); }

/** The GroupNorm backward pass, one (sample, group) item at a time so that its rows are read
 *  from memory once and revisited from cache. Pass 1 over the item's channels sums gz and
 *  gz*x per (n, c), where gz = gy, or (kSilu) gz = gy * silu'(z) with z = groupNorm(x)
 *  recomputed as the forward did and written to gx; pass 2 writes gx = rs*ga*gz + bx*x + c0
 *  (in place over gz for kSilu; gx may alias gy). Then the gamma / beta gradients from the
 *  per-(n, c) sums, overwritten. beta is only read when kSilu. */
template <bool kSilu>
void groupNormGradImpl(const float* gy, const float* x, int64_t n, int64_t c, int64_t hw, int64_t groups, F32 gamma,
                       F32 beta, F32 mean, F32 rstd, float* gx, F32 gg, F32 gb) {
  int64_t cpg = c / groups, m = cpg * hw, total = n * c * hw, items = n * groups, chunk = itemChunk(items, m);
  std::vector<double> sgy(size_t(n * c)), sgyx(size_t(n * c));  // per (n, c): sum gz, sum gz*x
#pragma omp parallel for schedule(dynamic, chunk) if (total > kParallelMin && items > 1)
  for (int64_t it = 0; it < items; it++) {
    int64_t ni = it / groups, g = it % groups;
    const float muf = mean.p[it], rsf = rstd.p[it];
    const double mu = muf, rs = rsf;
    double sd = 0, sdx = 0;  // sum dxhat, sum dxhat*xhat (times 1/rs)
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t ch = g * cpg + cc, i = ni * c + ch;
      const float* gp = gy + i * hw;
      const float* xp = x + i * hw;
      double s = 0, sx = 0;
      if (kSilu) {
        const float ga = gamma.p ? gamma.p[ch] : 1.f, be = beta.p ? beta.p[ch] : 0.f;
        // z = (x - mu) * rs * ga + be, as the forward computed it (in float)
        const float sc = float(double(rsf) * ga), sh = float(double(be) - double(muf) * double(rsf) * ga);
        const __m256 vsc = vset(sc), vsh = vset(sh), one = vset(1.f);
        float* op = gx + i * hw;
        blockSum2(hw, [&](int64_t j, int64_t k, __m256& u, __m256& v) {
          __m256 gv = vload(gp + j, k), xv = vload(xp + j, k);
          __m256 z = _mm256_fmadd_ps(xv, vsc, vsh), om, sg = vsigmoid(z, &om);
          // silu'(z) = s (1 + z (1 - s)); zero lanes past k (gy = 0 there)
          u = _mm256_mul_ps(gv, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, om, one)));
          v = _mm256_mul_ps(u, xv);
          if (k == 8) _mm256_storeu_ps(op + j, u);
          else vstorePart(op + j, k, u);
        }, s, sx);
      } else {
        blockSum2(hw, [&](int64_t j, int64_t k, __m256& u, __m256& v) {
          u = vload(gp + j, k);
          v = _mm256_mul_ps(u, vload(xp + j, k));
        }, s, sx);
      }
      sgy[size_t(i)] = s;
      sgyx[size_t(i)] = sx;
      double ga = gamma.p ? gamma.p[ch] : 1.0;
      sd += ga * s;
      sdx += ga * rs * (sx - mu * s);
    }
    double invM = m > 0 ? 1.0 / double(m) : 0.0;
    double bx = -rs * rs * sdx * invM;                        // coefficient of x
    double c0 = -rs * sd * invM + mu * rs * rs * sdx * invM;  // constant
    const float fb = float(bx), fc = float(c0);
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t ch = g * cpg + cc, i = ni * c + ch;
      float ag = float(rs * (gamma.p ? gamma.p[ch] : 1.0));
      const float* gp = (kSilu ? gx : gy) + i * hw;
      const float* xp = x + i * hw;
      float* op = gx + i * hw;
#pragma omp simd
      for (int64_t j = 0; j < hw; j++) op[j] = gp[j] * ag + xp[j] * fb + fc;
    }
  }
  for (int64_t ch = 0; ch < c; ch++) {
    double sg = 0, sgg = 0;
    int64_t g = ch / cpg;
    for (int64_t ni = 0; ni < n; ni++) {
      size_t i = size_t(ni * c + ch);
      sg += sgy[i];
      sgg += rstd.p[ni * groups + g] * (sgyx[i] - double(mean.p[ni * groups + g]) * sgy[i]);
    }
    if (gb.p) gb.p[ch] = float(sg);
    if (gg.p) gg.p[ch] = float(sgg);
  }
}

// groupNormGrad(gy, x, n, c, hw, groups, gamma|null, mean, rstd, gx, ggamma|null, gbeta|null), and
// groupNormSiluGrad with beta|null after gamma (it recomputes the forward's SiLU input).
template <bool kSilu>
void groupNormGradArgs(Args& a) {
  int64_t n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw"), groups = a.dim(5, "groups", 1);
  if (c % groups != 0) a.fail("c=" + std::to_string(c) + " is not divisible by groups=" + std::to_string(groups));
  int64_t total = checkedProd(a, {n, c, hw});
  const size_t k = kSilu ? 1 : 0;  // the arguments after gamma sit one further with beta
  F32 gy = a.f32Len(0, "gy", total, "n*c*hw");
  F32 x = a.f32Len(1, "x", total, "n*c*hw");
  F32 gamma = a.f32LenOrNull(6, "gamma", c, "c");
  F32 beta = kSilu ? a.f32LenOrNull(7, "beta", c, "c") : F32{};
  F32 mean = a.f32Len(7 + k, "mean", n * groups, "n*groups");
  F32 rstd = a.f32Len(8 + k, "rstd", n * groups, "n*groups");
  F32 gx = a.f32Len(9 + k, "gx", total, "n*c*hw");
  F32 gg = a.f32LenOrNull(10 + k, "ggamma", c, "c");
  F32 gb = a.f32LenOrNull(11 + k, "gbeta", c, "c");
  groupNormGradImpl<kSilu>(gy.p, x.p, n, c, hw, groups, gamma, beta, mean, rstd, gx.p, gg, gb);
}

void groupNormGrad(Args& a) { groupNormGradArgs<false>(a); }
void groupNormSiluGrad(Args& a) { groupNormGradArgs<true>(a); }

// layerNorm(x, rows, d, eps, gamma|null, beta|null, out, mean, rstd)
void layerNorm(Args& a) {
  int64_t rows = a.dim(1, "rows"), d = a.dim(2, "d");
  double eps = a.num(3, "eps");
  int64_t total = checkedProd(a, {rows, d});
  F32 x = a.f32Len(0, "x", total, "rows*d");
  F32 gamma = a.f32LenOrNull(4, "gamma", d, "d");
  F32 beta = a.f32LenOrNull(5, "beta", d, "d");
  F32 out = a.f32Len(6, "out", total, "rows*d");
  F32 mean = a.f32Len(7, "mean", rows, "rows");
  F32 rstd = a.f32Len(8, "rstd", rows, "rows");
#pragma omp parallel for schedule(static) if (total > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) {
    const float* xp = x.p + r * d;
    float* yp = out.p + r * d;
    double mu = d > 0 ? sumF(xp, d) / double(d) : 0.0;
    double var = d > 0 ? sumSqDev(xp, d, mu) / double(d) : 0.0;
    double rs = 1.0 / std::sqrt(var + eps);
    mean.p[r] = float(mu);
    rstd.p[r] = float(rs);
    float fm = float(mu), fr = float(rs);
    const float* ga = gamma.p;
    const float* be = beta.p;
    if (ga && be) {
#pragma omp simd
      for (int64_t j = 0; j < d; j++) yp[j] = (xp[j] - fm) * fr * ga[j] + be[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; j++) yp[j] = (xp[j] - fm) * fr * (ga ? ga[j] : 1.f) + (be ? be[j] : 0.f);
    }
  }
}

// layerNormGrad(gy, x, rows, d, gamma|null, mean, rstd, gx, ggamma|null, gbeta|null)
void layerNormGrad(Args& a) {
  int64_t rows = a.dim(2, "rows"), d = a.dim(3, "d");
  int64_t total = checkedProd(a, {rows, d});
  F32 gy = a.f32Len(0, "gy", total, "rows*d");
  F32 x = a.f32Len(1, "x", total, "rows*d");
  F32 gamma = a.f32LenOrNull(4, "gamma", d, "d");
  F32 mean = a.f32Len(5, "mean", rows, "rows");
  F32 rstd = a.f32Len(6, "rstd", rows, "rows");
  F32 gx = a.f32Len(7, "gx", total, "rows*d");
  F32 gg = a.f32LenOrNull(8, "ggamma", d, "d");
  F32 gb = a.f32LenOrNull(9, "gbeta", d, "d");
  bool par = total > kParallelMin && rows > 1;
  int nt = par ? omp_get_max_threads() : 1;
  bool wantParams = gg.p || gb.p;
  std::vector<double> part(wantParams ? size_t(nt) * size_t(d) * 2 : 0, 0.0);
#pragma omp parallel num_threads(nt) if (par)
  {
    int t = omp_get_thread_num();
    double* pg = wantParams ? part.data() + size_t(t) * size_t(d) * 2 : nullptr;
    double* pb = pg ? pg + d : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* g = gy.p + r * d;
      const float* xp = x.p + r * d;
      float* op = gx.p + r * d;
      double mu = mean.p[r], rs = rstd.p[r];
      double sd = 0, sdx = 0;
      const float* ga = gamma.p;
#pragma omp simd reduction(+ : sd, sdx)
      for (int64_t j = 0; j < d; j++) {
        double dx = double(g[j]) * (ga ? double(ga[j]) : 1.0);
        sd += dx;
        sdx += dx * (double(xp[j]) - mu) * rs;
      }
      double invD = d > 0 ? 1.0 / double(d) : 0.0;
      float fr = float(rs), fm = float(mu), fa = float(sd * invD), fb = float(sdx * invD);
#pragma omp simd
      for (int64_t j = 0; j < d; j++) {
        float xh = (xp[j] - fm) * fr;
        op[j] = fr * (g[j] * (ga ? ga[j] : 1.f) - fa - xh * fb);
      }
      if (pg) {
        for (int64_t j = 0; j < d; j++) {
          pg[j] += double(g[j]) * (double(xp[j]) - mu) * rs;
          pb[j] += double(g[j]);
        }
      }
    }
  }
  if (wantParams) {
    for (int64_t j = 0; j < d; j++) {
      double sg = 0, sb = 0;
      for (int t = 0; t < nt; t++) {
        sg += part[size_t(t) * size_t(d) * 2 + size_t(j)];
        sb += part[size_t(t) * size_t(d) * 2 + size_t(d + j)];
      }
      if (gg.p) gg.p[j] = float(sg);
      if (gb.p) gb.p[j] = float(sb);
    }
  }
}

// softmax(x, rows, cols, out, log)
void softmax(Args& a) {
  int64_t rows = a.dim(1, "rows"), cols = a.dim(2, "cols");
  int64_t total = checkedProd(a, {rows, cols});
  F32 x = a.f32Len(0, "x", total, "rows*cols");
  F32 out = a.f32Len(3, "out", total, "rows*cols");
  bool log = a.boolean(4, "log");
  if (cols == 0) return;
#pragma omp parallel for schedule(static) if (total > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) softmaxRow(x.p + r * cols, out.p + r * cols, cols, log);
}

// softmaxGrad(y, gy, rows, cols, out, log)
void softmaxGrad(Args& a) {
  int64_t rows = a.dim(2, "rows"), cols = a.dim(3, "cols");
  int64_t total = checkedProd(a, {rows, cols});
  F32 y = a.f32Len(0, "y", total, "rows*cols");
  F32 gy = a.f32Len(1, "gy", total, "rows*cols");
  F32 out = a.f32Len(4, "out", total, "rows*cols");
  bool log = a.boolean(5, "log");
#pragma omp parallel for schedule(static) if (total > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) {
    const float* yp = y.p + r * cols;
    const float* g = gy.p + r * cols;
    float* o = out.p + r * cols;
    double s = 0;
    if (!log) {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < cols; j++) s += double(g[j]) * double(yp[j]);
      float fs = float(s);
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) o[j] = yp[j] * (g[j] - fs);
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < cols; j++) s += double(g[j]);
      __m256 sv = vset(float(s));
      vmap3(yp, g, g, o, 0, cols, [sv](__m256 yv, __m256 gv, __m256) { return _mm256_fnmadd_ps(vexp(yv), sv, gv); });
    }
  }
}

}  // namespace

void registerNorm(std::vector<KernelDef>& r) {
  r.push_back({"groupNorm", groupNorm, nullptr});
  r.push_back({"groupNormGrad", groupNormGrad, nullptr});
  r.push_back({"groupNormSilu", groupNormSilu, nullptr});
  r.push_back({"groupNormSiluGrad", groupNormSiluGrad, nullptr});
  r.push_back({"layerNorm", layerNorm, nullptr});
  r.push_back({"layerNormGrad", layerNormGrad, nullptr});
  r.push_back({"softmax", softmax, nullptr});
  r.push_back({"softmaxGrad", softmaxGrad, nullptr});
}

}  // namespace ldm
