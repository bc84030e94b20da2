// Elementwise and small reduction kernels: unary (every UnaryOp) and unaryGrad, broadcasting
// binary over collapsed strides, affine, AdamW (in place, PyTorch semantics) and reduceSum.
// Exp-family ops use the AVX2 vector math of simd.h; log, sin, cos, softplus and pow run
// the C library per element (still across the OpenMP pool). Not here: movement kernels.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "simd.h"

namespace ldm {

namespace {

enum class U { neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, silu, gelu, relu, softplus, sin, cos, sign, square, reciprocal, erf };

U parseUnary(const Args& a, const std::string& s) {
  static const char* names[] = {"neg",  "exp",  "log",      "sqrt", "rsqrt", "abs",  "tanh",   "sigmoid",    "silu",
                                "gelu", "relu", "softplus", "sin",  "cos",   "sign", "square", "reciprocal", "erf"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (s == names[i]) return U(i);
  a.fail("unknown unary op '" + s + "'");
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kTwoOverSqrtPi = 1.1283791670955126f;

inline float softplusS(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
inline float signS(float x) { return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f); }  // NaN -> 0, as the reference

template <class F>
void scalarMap(const float* x, float* y, int64_t n, F f) {
  parallelRange(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) y[i] = f(x[i]);
  }, 4096);
}

template <class F>
void vecMap(const float* x, float* y, int64_t n, F f) {
  parallelRange(n, [&](int64_t i0, int64_t i1) { vmap1(x, y, i0, i1, f); });
}

// unary(op, x, out)
void unary(Args& a) {
  U op = parseUnary(a, a.str(0, "op"));
  F32 x = a.f32(1, "x");
  F32 y = a.f32Len(2, "out", int64_t(x.n), "x.length");
  const float* xp = x.p;
  float* yp = y.p;
  int64_t n = int64_t(x.n);
  const __m256 one = vset(1.f), zero = _mm256_setzero_ps();
  switch (op) {
    case U::neg: vecMap(xp, yp, n, [](__m256 v) { return _mm256_xor_ps(v, vset(-0.f)); }); break;
    case U::exp: vecMap(xp, yp, n, [](__m256 v) { return vexp(v); }); break;
    case U::log: scalarMap(xp, yp, n, [](float v) { return std::log(v); }); break;
    case U::sqrt: vecMap(xp, yp, n, [](__m256 v) { return _mm256_sqrt_ps(v); }); break;
    case U::rsqrt: vecMap(xp, yp, n, [one](__m256 v) { return _mm256_div_ps(one, _mm256_sqrt_ps(v)); }); break;
    case U::abs: vecMap(xp, yp, n, [](__m256 v) { return vabs(v); }); break;
    case U::tanh: vecMap(xp, yp, n, [](__m256 v) { return vtanh(v); }); break;
    case U::sigmoid: vecMap(xp, yp, n, [](__m256 v) { return vsigmoid(v); }); break;
    case U::silu: vecMap(xp, yp, n, [](__m256 v) { return _mm256_mul_ps(v, vsigmoid(v)); }); break;
    case U::gelu:
      vecMap(xp, yp, n, [one](__m256 v) {
        __m256 e = verf(_mm256_mul_ps(v, vset(kInvSqrt2)));
        return _mm256_mul_ps(_mm256_mul_ps(vset(0.5f), v), _mm256_add_ps(one, e));
      });
      break;
    case U::relu: vecMap(xp, yp, n, [zero](__m256 v) { return _mm256_max_ps(v, zero); }); break;  // NaN -> 0
    case U::softplus: scalarMap(xp, yp, n, softplusS); break;
    case U::sin: scalarMap(xp, yp, n, [](float v) { return std::sin(v); }); break;
    case U::cos: scalarMap(xp, yp, n, [](float v) { return std::cos(v); }); break;
    case U::sign: scalarMap(xp, yp, n, signS); break;
    case U::square: vecMap(xp, yp, n, [](__m256 v) { return _mm256_mul_ps(v, v); }); break;
    case U::reciprocal: vecMap(xp, yp, n, [one](__m256 v) { return _mm256_div_ps(one, v); }); break;
    case U::erf: vecMap(xp, yp, n, [](__m256 v) { return verf(v); }); break;
  }
}

template <class F>
void vecMap3(const float* x, const float* y, const float* g, float* o, int64_t n, F f) {
  parallelRange(n, [&](int64_t i0, int64_t i1) { vmap3(x, y, g, o, i0, i1, f); });
}

template <class F>
void scalarMap3(const float* x, const float* y, const float* g, float* o, int64_t n, F f) {
  parallelRange(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) o[i] = f(x[i], y[i], g[i]);
  }, 4096);
}

// unaryGrad(op, x, y, gy, out): out = gy * d op(x) / dx
void unaryGrad(Args& a) {
  U op = parseUnary(a, a.str(0, "op"));
  F32 x = a.f32(1, "x");
  int64_t n = int64_t(x.n);
  F32 y = a.f32Len(2, "y", n, "x.length");
  F32 gy = a.f32Len(3, "gy", n, "x.length");
  F32 o = a.f32Len(4, "out", n, "x.length");
  const float *xp = x.p, *yp = y.p, *gp = gy.p;
  float* op_ = o.p;
  const __m256 one = vset(1.f), zero = _mm256_setzero_ps();
  switch (op) {
    case U::neg: vecMap3(xp, yp, gp, op_, n, [](__m256, __m256, __m256 g) { return _mm256_xor_ps(g, vset(-0.f)); }); break;
    case U::exp: vecMap3(xp, yp, gp, op_, n, [](__m256, __m256 yv, __m256 g) { return _mm256_mul_ps(g, yv); }); break;
    case U::log: vecMap3(xp, yp, gp, op_, n, [](__m256 xv, __m256, __m256 g) { return _mm256_div_ps(g, xv); }); break;
    case U::sqrt:
      vecMap3(xp, yp, gp, op_, n, [](__m256, __m256 yv, __m256 g) { return _mm256_div_ps(g, _mm256_add_ps(yv, yv)); });
      break;
    case U::rsqrt:  // d x^-1/2 = -0.5 x^-3/2 = -0.5 y^3
      vecMap3(xp, yp, gp, op_, n, [](__m256, __m256 yv, __m256 g) {
        return _mm256_mul_ps(_mm256_mul_ps(g, vset(-0.5f)), _mm256_mul_ps(yv, _mm256_mul_ps(yv, yv)));
      });
      break;
    case U::abs: scalarMap3(xp, yp, gp, op_, n, [](float xv, float, float g) { return g * signS(xv); }); break;
    case U::tanh:
      vecMap3(xp, yp, gp, op_, n, [one](__m256, __m256 yv, __m256 g) { return _mm256_mul_ps(g, _mm256_fnmadd_ps(yv, yv, one)); });
      break;
    case U::sigmoid:
      vecMap3(xp, yp, gp, op_, n, [one](__m256, __m256 yv, __m256 g) {
        return _mm256_mul_ps(g, _mm256_mul_ps(yv, _mm256_sub_ps(one, yv)));
      });
      break;
    case U::silu:  // s (1 + x (1 - s))
      vecMap3(xp, yp, gp, op_, n, [one](__m256 xv, __m256, __m256 g) {
        __m256 om, s = vsigmoid(xv, &om);  // om = 1 - s without cancellation
        return _mm256_mul_ps(g, _mm256_mul_ps(s, _mm256_fmadd_ps(xv, om, one)));
      });
      break;
    case U::gelu:  // Phi(x) + x phi(x)
      vecMap3(xp, yp, gp, op_, n, [one](__m256 xv, __m256, __m256 g) {
        __m256 cdf = _mm256_mul_ps(vset(0.5f), _mm256_add_ps(one, verf(_mm256_mul_ps(xv, vset(kInvSqrt2)))));
        __m256 pdf = _mm256_mul_ps(vset(kInvSqrt2Pi), vexp(_mm256_mul_ps(vset(-0.5f), _mm256_mul_ps(xv, xv))));
        return _mm256_mul_ps(g, _mm256_fmadd_ps(xv, pdf, cdf));
      });
      break;
    case U::relu:
      vecMap3(xp, yp, gp, op_, n, [zero](__m256 xv, __m256, __m256 g) {
        return _mm256_and_ps(g, _mm256_cmp_ps(xv, zero, _CMP_GT_OQ));
      });
      break;
    case U::softplus:
      vecMap3(xp, yp, gp, op_, n, [](__m256 xv, __m256, __m256 g) { return _mm256_mul_ps(g, vsigmoid(xv)); });
      break;
    case U::sin: scalarMap3(xp, yp, gp, op_, n, [](float xv, float, float g) { return g * std::cos(xv); }); break;
    case U::cos: scalarMap3(xp, yp, gp, op_, n, [](float xv, float, float g) { return -g * std::sin(xv); }); break;
    case U::sign: scalarMap3(xp, yp, gp, op_, n, [](float, float, float) { return 0.f; }); break;
    case U::square:
      vecMap3(xp, yp, gp, op_, n, [](__m256 xv, __m256, __m256 g) { return _mm256_mul_ps(g, _mm256_add_ps(xv, xv)); });
      break;
    case U::reciprocal:
      vecMap3(xp, yp, gp, op_, n, [](__m256, __m256 yv, __m256 g) {
        return _mm256_xor_ps(_mm256_mul_ps(g, _mm256_mul_ps(yv, yv)), vset(-0.f));
      });
      break;
    case U::erf:
      vecMap3(xp, yp, gp, op_, n, [](__m256 xv, __m256, __m256 g) {
        return _mm256_mul_ps(g, _mm256_mul_ps(vset(kTwoOverSqrtPi), vexp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(xv, xv)))));
      });
      break;
  }
}

// ---- binary --------------------------------------------------------------------------------

enum class B { add, sub, mul, div, pow, max, min, gt, lt, ge, le, eq };

B parseBinary(const Args& a, const std::string& s) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "max", "min", "gt", "lt", "ge", "le", "eq"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (s == names[i]) return B(i);
  a.fail("unknown binary op '" + s + "'");
}

template <B op>
inline float bop(float x, float y) {
  if constexpr (op == B::add) return x + y;
  if constexpr (op == B::sub) return x - y;
  if constexpr (op == B::mul) return x * y;
  if constexpr (op == B::div) return x / y;
  if constexpr (op == B::pow) return std::pow(x, y);
  if constexpr (op == B::max) return (x >= y || x != x) ? x : y;
  if constexpr (op == B::min) return (x <= y || x != x) ? x : y;
  if constexpr (op == B::gt) return x > y ? 1.f : 0.f;
  if constexpr (op == B::lt) return x < y ? 1.f : 0.f;
  if constexpr (op == B::ge) return x >= y ? 1.f : 0.f;
  if constexpr (op == B::le) return x <= y ? 1.f : 0.f;
  if constexpr (op == B::eq) return x == y ? 1.f : 0.f;
  return 0.f;
}

template <B op>
void binRun(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) o[i] = bop<op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    float bv = b[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) o[i] = bop<op>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    float av = a[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) o[i] = bop<op>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) o[i] = bop<op>(a[i * sa], b[i * sb]);
  }
}

using BinRun = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t);

BinRun binTable(B op) {
  switch (op) {
    case B::add: return binRun<B::add>;
    case B::sub: return binRun<B::sub>;
    case B::mul: return binRun<B::mul>;
    case B::div: return binRun<B::div>;
    case B::pow: return binRun<B::pow>;
    case B::max: return binRun<B::max>;
    case B::min: return binRun<B::min>;
    case B::gt: return binRun<B::gt>;
    case B::lt: return binRun<B::lt>;
    case B::ge: return binRun<B::ge>;
    case B::le: return binRun<B::le>;
    case B::eq: return binRun<B::eq>;
  }
  return binRun<B::add>;
}

// binary(op, a, aStrides, b, bStrides, out, outShape)
void binary(Args& a) {
  B op = parseBinary(a, a.str(0, "op"));
  F32 A = a.f32(1, "a");
  std::vector<int64_t> sa = a.ints(2, "aStrides");
  F32 Bv = a.f32(3, "b");
  std::vector<int64_t> sb = a.ints(4, "bStrides");
  std::vector<int64_t> shape = a.ints(6, "outShape");
  size_t nd = shape.size();
  if (sa.size() != nd || sb.size() != nd)
    a.fail("aStrides/bStrides must have " + std::to_string(nd) + " entries like outShape");
  int64_t total = 1, needA = 1, needB = 1;
  for (size_t d = 0; d < nd; d++) {
    if (shape[d] < 0 || sa[d] < 0 || sb[d] < 0) a.fail("negative shape or stride");
    total = checkedProd(a, {total, shape[d]});
  }
  F32 O = a.f32Len(5, "out", total, "prod(outShape)");
  if (total == 0) return;
  for (size_t d = 0; d < nd; d++) needA += (shape[d] - 1) * sa[d], needB += (shape[d] - 1) * sb[d];
  if (int64_t(A.n) < needA) a.fail("a has length " + std::to_string(A.n) + ", expected at least " + std::to_string(needA) + " (from aStrides)");
  if (int64_t(Bv.n) < needB) a.fail("b has length " + std::to_string(Bv.n) + ", expected at least " + std::to_string(needB) + " (from bStrides)");
  // Collapse: drop size-1 dims, merge neighbours that are contiguous for both operands.
  std::vector<int64_t> cs, ca, cb;
  for (size_t d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    if (!cs.empty() && ca.back() == sa[d] * shape[d] && cb.back() == sb[d] * shape[d]) {
      cs.back() *= shape[d];
      ca.back() = sa[d];
      cb.back() = sb[d];
    } else {
      cs.push_back(shape[d]);
      ca.push_back(sa[d]);
      cb.push_back(sb[d]);
    }
  }
  if (cs.empty()) cs = {1}, ca = {0}, cb = {0};
  int64_t nIn = cs.back(), inA = ca.back(), inB = cb.back();
  int64_t outerDims = int64_t(cs.size()) - 1;
  BinRun run = binTable(op);
  const float *ap = A.p, *bp = Bv.p;
  float* op_ = O.p;
  parallelRange(total, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    while (i < i1) {
      int64_t row = i / nIn, col = i % nIn, len = std::min(nIn - col, i1 - i);
      int64_t offA = col * inA, offB = col * inB, r = row;
      for (int64_t d = outerDims - 1; d >= 0; d--) {
        int64_t idx = r % cs[d];
        r /= cs[d];
        offA += idx * ca[d];
        offB += idx * cb[d];
      }
      run(ap + offA, inA, bp + offB, inB, op_ + i, len);
      i += len;
    }
  }, op == B::pow ? 4096 : kParallelMin);
}

// affine(x, scale, shift, out)
void affine(Args& a) {
  F32 x = a.f32(0, "x");
  float sc = float(a.num(1, "scale")), sh = float(a.num(2, "shift"));
  F32 y = a.f32Len(3, "out", int64_t(x.n), "x.length");
  const float* xp = x.p;
  float* yp = y.p;
  parallelRange(int64_t(x.n), [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) yp[i] = xp[i] * sc + sh;
  });
}

// adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, step)
void adamw(Args& a) {
  F32 p = a.f32(0, "p");
  int64_t n = int64_t(p.n);
  F32 g = a.f32Len(1, "g", n, "p.length");
  F32 m = a.f32Len(2, "m", n, "p.length");
  F32 v = a.f32Len(3, "v", n, "p.length");
  double lr = a.num(4, "lr"), b1 = a.num(5, "beta1"), b2 = a.num(6, "beta2"), eps = a.num(7, "eps");
  double wd = a.num(8, "weightDecay");
  double step = a.num(9, "step");
  if (!(step >= 1)) a.fail("step must be >= 1, got " + std::to_string(step));
  double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  float decay = float(1.0 - lr * wd), fb1 = float(b1), fb2 = float(b2), c1 = float(1.0 - b1), c2 = float(1.0 - b2);
  float stepSize = float(lr / bc1), sqrtBc2 = float(std::sqrt(bc2)), feps = float(eps);
  float *pp = p.p, *mp = m.p, *vp = v.p;
  const float* gp = g.p;
  parallelRange(n, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      float gi = gp[i];
      float mi = fb1 * mp[i] + c1 * gi;
      float vi = fb2 * vp[i] + c2 * gi * gi;
      mp[i] = mi;
      vp[i] = vi;
      float denom = std::sqrt(vi) / sqrtBc2 + feps;
      pp[i] = pp[i] * decay - stepSize * mi / denom;
    }
  });
}

// reduceSum(x, outer, axis, inner, out): [outer, axis, inner] -> [outer, inner]
void reduceSum(Args& a) {
  int64_t outer = a.dim(1, "outer"), axis = a.dim(2, "axis"), inner = a.dim(3, "inner");
  F32 x = a.f32Len(0, "x", checkedProd(a, {outer, axis, inner}), "outer*axis*inner");
  F32 out = a.f32Len(4, "out", checkedProd(a, {outer, inner}), "outer*inner");
  const float* xp = x.p;
  float* op_ = out.p;
  bool par = int64_t(x.n) > kParallelMin;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (par && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
      const float* r = xp + o * axis;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < axis; j++) s += double(r[j]);
      op_[o] = float(s);
    }
    return;
  }
  constexpr int64_t kBlk = 512;
  int64_t blocks = (inner + kBlk - 1) / kBlk, items = outer * blocks;
#pragma omp parallel for schedule(static) if (par && items > 1)
  for (int64_t it = 0; it < items; it++) {
    int64_t o = it / blocks, j0 = (it % blocks) * kBlk, len = std::min(kBlk, inner - j0);
    double acc[kBlk];
    for (int64_t j = 0; j < len; j++) acc[j] = 0;
    for (int64_t k = 0; k < axis; k++) {
      const float* r = xp + (o * axis + k) * inner + j0;
#pragma omp simd
      for (int64_t j = 0; j < len; j++) acc[j] += double(r[j]);
    }
    for (int64_t j = 0; j < len; j++) op_[o * inner + j0 + j] = float(acc[j]);
  }
}

}  // namespace

void registerElementwise(std::vector<KernelDef>& r) {
  r.push_back({"unary", unary, nullptr});
  r.push_back({"unaryGrad", unaryGrad, nullptr});
  r.push_back({"binary", binary, nullptr});
  r.push_back({"affine", affine, nullptr});
  r.push_back({"adamw", adamw, nullptr});
  r.push_back({"reduceSum", reduceSum, nullptr});
}

}  // namespace ldm
