// Normalisation kernels: groupNorm (also fused with a following SiLU) / layerNorm (+ gradients) and row softmax / log-softmax
// (+ gradient), as OpenMP loops over independent groups or rows. Statistics accumulate in
// double (two passes: mean, then centred variance; biased variance as in PyTorch), so results
// match the float64-accumulating reference closely. Gradients for gamma/beta are overwritten.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "simd.h"

namespace ldm {

namespace {

inline double sumF(const float* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += double(x[i]);
  return s;
}

inline double sumSqDev(const float* x, int64_t n, double mean) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) {
    double t = double(x[i]) - mean;
    s += t * t;
  }
  return s;
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
  int64_t cpg = c / groups, m = cpg * hw, items = n * groups;
#pragma omp parallel for schedule(dynamic, 1) if (total > kParallelMin && items > 1)
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

/** The second half of the GroupNorm backward pass, from per-(n, c) sums of gy and gy*x: gx
 *  (which may alias gy) and the gamma / beta gradients. */
void groupNormGradFinish(const float* gyp, const float* xp0, int64_t n, int64_t c, int64_t hw, int64_t groups,
                         F32 gamma, F32 mean, F32 rstd, float* gxp, F32 gg, F32 gb, const std::vector<double>& sgy,
                         const std::vector<double>& sgyx) {
  int64_t cpg = c / groups, m = cpg * hw, total = n * c * hw;
  F32 gy{const_cast<float*>(gyp), size_t(total)}, x{const_cast<float*>(xp0), size_t(total)}, gx{gxp, size_t(total)};
  int64_t items = n * groups;
#pragma omp parallel for schedule(dynamic, 1) if (total > kParallelMin && items > 1)
  for (int64_t it = 0; it < items; it++) {
    int64_t ni = it / groups, g = it % groups;
    double mu = mean.p[it], rs = rstd.p[it];
    double sd = 0, sdx = 0;  // sum dxhat, sum dxhat*xhat
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t ch = g * cpg + cc, i = ni * c + ch;
      double ga = gamma.p ? gamma.p[ch] : 1.0;
      sd += ga * sgy[i];
      sdx += ga * rs * (sgyx[i] - mu * sgy[i]);
    }
    double invM = m > 0 ? 1.0 / double(m) : 0.0;
    double bx = -rs * rs * sdx * invM;             // coefficient of x
    double c0 = -rs * sd * invM + mu * rs * rs * sdx * invM;  // constant
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t ch = g * cpg + cc;
      float ag = float(rs * (gamma.p ? gamma.p[ch] : 1.0)), fb = float(bx), fc = float(c0);
      const float* gp = gy.p + (ni * c + ch) * hw;
      const float* xp = x.p + (ni * c + ch) * hw;
      float* op = gx.p + (ni * c + ch) * hw;
#pragma omp simd
      for (int64_t j = 0; j < hw; j++) op[j] = gp[j] * ag + xp[j] * fb + fc;
    }
  }
  for (int64_t ch = 0; ch < c; ch++) {
    double sg = 0, sgg = 0;
    int64_t g = ch / cpg;
    for (int64_t ni = 0; ni < n; ni++) {
      int64_t i = ni * c + ch;
      sg += sgy[i];
      sgg += rstd.p[ni * groups + g] * (sgyx[i] - double(mean.p[ni * groups + g]) * sgy[i]);
    }
    if (gb.p) gb.p[ch] = float(sg);
    if (gg.p) gg.p[ch] = float(sgg);
  }
}

// groupNormGrad(gy, x, n, c, hw, groups, gamma|null, mean, rstd, gx, ggamma|null, gbeta|null)
void groupNormGrad(Args& a) {
  int64_t n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw"), groups = a.dim(5, "groups", 1);
  if (c % groups != 0) a.fail("c=" + std::to_string(c) + " is not divisible by groups=" + std::to_string(groups));
  int64_t total = checkedProd(a, {n, c, hw});
  F32 gy = a.f32Len(0, "gy", total, "n*c*hw");
  F32 x = a.f32Len(1, "x", total, "n*c*hw");
  F32 gamma = a.f32LenOrNull(6, "gamma", c, "c");
  F32 mean = a.f32Len(7, "mean", n * groups, "n*groups");
  F32 rstd = a.f32Len(8, "rstd", n * groups, "n*groups");
  F32 gx = a.f32Len(9, "gx", total, "n*c*hw");
  F32 gg = a.f32LenOrNull(10, "ggamma", c, "c");
  F32 gb = a.f32LenOrNull(11, "gbeta", c, "c");
  int64_t nc = n * c;
  std::vector<double> sgy(static_cast<size_t>(nc)), sgyx(static_cast<size_t>(nc));  // per (n, c): sum gy, sum gy*x
#pragma omp parallel for schedule(static) if (total > kParallelMin)
  for (int64_t i = 0; i < nc; i++) {
    const float* g = gy.p + i * hw;
    const float* xp = x.p + i * hw;
    double s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
    for (int64_t j = 0; j < hw; j++) {
      s += double(g[j]);
      sx += double(g[j]) * double(xp[j]);
    }
    sgy[i] = s;
    sgyx[i] = sx;
  }
  groupNormGradFinish(gy.p, x.p, n, c, hw, groups, gamma, mean, rstd, gx.p, gg, gb, sgy, sgyx);
}

// groupNormSiluGrad(gy, x, n, c, hw, groups, gamma|null, beta|null, mean, rstd, gx, ggamma|null, gbeta|null)
// Pass 1 recomputes z = groupNorm(x) per row, writes gz = gy * silu'(z) into gx and sums gz and
// gz*x per (n, c); pass 2 is the GroupNorm backward over gz, in place in gx.
void groupNormSiluGrad(Args& a) {
  int64_t n = a.dim(2, "n"), c = a.dim(3, "c"), hw = a.dim(4, "hw"), groups = a.dim(5, "groups", 1);
  if (c % groups != 0) a.fail("c=" + std::to_string(c) + " is not divisible by groups=" + std::to_string(groups));
  int64_t total = checkedProd(a, {n, c, hw});
  F32 gy = a.f32Len(0, "gy", total, "n*c*hw");
  F32 x = a.f32Len(1, "x", total, "n*c*hw");
  F32 gamma = a.f32LenOrNull(6, "gamma", c, "c");
  F32 beta = a.f32LenOrNull(7, "beta", c, "c");
  F32 mean = a.f32Len(8, "mean", n * groups, "n*groups");
  F32 rstd = a.f32Len(9, "rstd", n * groups, "n*groups");
  F32 gx = a.f32Len(10, "gx", total, "n*c*hw");
  F32 gg = a.f32LenOrNull(11, "ggamma", c, "c");
  F32 gb = a.f32LenOrNull(12, "gbeta", c, "c");
  int64_t cpg = c / groups, nc = n * c;
  std::vector<double> sgy(static_cast<size_t>(nc)), sgyx(static_cast<size_t>(nc));
#pragma omp parallel for schedule(static) if (total > kParallelMin)
  for (int64_t i = 0; i < nc; i++) {
    const int64_t ch = i % c, st = (i / c) * groups + ch / cpg;
    const float rs = rstd.p[st], mu = mean.p[st];
    const float ga = gamma.p ? gamma.p[ch] : 1.f, be = beta.p ? beta.p[ch] : 0.f;
    // z = (x - mu) * rs * ga + be, as the forward computed it (in float)
    const float sc = float(double(rs) * ga), sh = float(double(be) - double(mu) * double(rs) * ga);
    const float* g = gy.p + i * hw;
    const float* xp = x.p + i * hw;
    float* op = gx.p + i * hw;
    const __m256 vsc = vset(sc), vsh = vset(sh), one = vset(1.f);
    vmap3(g, xp, xp, op, 0, hw, [&](__m256 gv, __m256 xv, __m256) {
      __m256 z = _mm256_fmadd_ps(xv, vsc, vsh), sg = vsigmoid(z);
      // silu'(z) = s (1 + z (1 - s))
      return _mm256_mul_ps(gv, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, _mm256_sub_ps(one, sg), one)));
    });
    double s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
    for (int64_t j = 0; j < hw; j++) {
      s += double(op[j]);
      sx += double(op[j]) * double(xp[j]);
    }
    sgy[i] = s;
    sgyx[i] = sx;
  }
  groupNormGradFinish(gx.p, x.p, n, c, hw, groups, gamma, mean, rstd, gx.p, gg, gb, sgy, sgyx);
}

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
