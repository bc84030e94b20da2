// Movement and resampling kernels: stridedCopy / stridedAccumulate over collapsed strides,
// nearest upsampling (+ gradient), average pooling (+ gradient), and the scalar maps clamp and
// powScalar. Memory-bound OpenMP loops; stridedAccumulate runs threaded only when the view
// provably does not overlap itself. Not here: maxPool2d, reduceMax, where (reference).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "common.h"
#include "simd.h"

namespace ldm {

namespace {

/** A strided view over a source buffer, with dims of size 1 dropped and contiguous neighbours merged. */
struct View {
  std::vector<int64_t> shape, strides;
  int64_t offset = 0, total = 1;
};

View readView(Args& a, size_t srcLen, int64_t offset, const std::vector<int64_t>& strides,
              const std::vector<int64_t>& shape) {
  if (strides.size() != shape.size())
    a.fail("strides has " + std::to_string(strides.size()) + " entries, shape has " + std::to_string(shape.size()));
  View v;
  v.offset = offset;
  int64_t lo = offset, hi = offset;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] < 0) a.fail("negative shape");
    v.total = checkedProd(a, {v.total, shape[d]});
  }
  if (v.total == 0) return v;
  for (size_t d = 0; d < shape.size(); d++) {
    int64_t ext = (shape[d] - 1) * strides[d];
    if (ext < 0) lo += ext; else hi += ext;
    if (shape[d] == 1) continue;
    if (!v.shape.empty() && v.strides.back() == strides[d] * shape[d]) {
      v.shape.back() *= shape[d];
      v.strides.back() = strides[d];
    } else {
      v.shape.push_back(shape[d]);
      v.strides.push_back(strides[d]);
    }
  }
  if (lo < 0 || hi >= int64_t(srcLen))
    a.fail("the view reaches elements [" + std::to_string(lo) + ", " + std::to_string(hi) + "] of a buffer of length " +
           std::to_string(srcLen));
  if (v.shape.empty()) v.shape = {1}, v.strides = {1};
  return v;
}

/** Calls body(outIndex, srcIndex, len, innerStride) for runs of the innermost dim within [i0, i1). */
template <class Body>
void walk(const View& v, int64_t i0, int64_t i1, Body&& body) {
  int64_t nIn = v.shape.back(), sIn = v.strides.back();
  int64_t outer = int64_t(v.shape.size()) - 1;
  int64_t i = i0;
  while (i < i1) {
    int64_t row = i / nIn, col = i % nIn, len = std::min(nIn - col, i1 - i);
    int64_t off = v.offset + col * sIn, r = row;
    for (int64_t d = outer - 1; d >= 0; d--) {
      off += (r % v.shape[d]) * v.strides[d];
      r /= v.shape[d];
    }
    body(i, off, len, sIn);
    i += len;
  }
}

// stridedCopy(src, offset, strides, shape, out)
void stridedCopy(Args& a) {
  F32 src = a.f32(0, "src");
  int64_t offset = a.integer(1, "offset");
  std::vector<int64_t> strides = a.ints(2, "strides"), shape = a.ints(3, "shape");
  View v = readView(a, src.n, offset, strides, shape);
  F32 out = a.f32Len(4, "out", v.total, "prod(shape)");
  if (v.total == 0) return;
  const float* s = src.p;
  float* o = out.p;
  parallelRange(v.total, [&](int64_t i0, int64_t i1) {
    walk(v, i0, i1, [&](int64_t oi, int64_t si, int64_t len, int64_t st) {
      if (st == 1) std::memcpy(o + oi, s + si, size_t(len) * sizeof(float));
      else for (int64_t j = 0; j < len; j++) o[oi + j] = s[si + j * st];
    });
  });
}

/** True when no two indices of the view map to the same element (then threads cannot race). */
bool nonOverlapping(const View& v) {
  std::vector<size_t> order(v.shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return std::llabs(v.strides[x]) < std::llabs(v.strides[y]); });
  int64_t extent = 0;  // max index span of the dims seen so far
  for (size_t d : order) {
    int64_t s = std::llabs(v.strides[d]);
    if (s == 0 || s <= extent) return false;
    extent += (v.shape[d] - 1) * s;
  }
  return true;
}

// stridedAccumulate(src, dst, offset, strides, shape): dst[view] += src
void stridedAccumulate(Args& a) {
  F32 src = a.f32(0, "src");
  F32 dst = a.f32(1, "dst");
  int64_t offset = a.integer(2, "offset");
  std::vector<int64_t> strides = a.ints(3, "strides"), shape = a.ints(4, "shape");
  View v = readView(a, dst.n, offset, strides, shape);
  if (int64_t(src.n) != v.total)
    a.fail("src has length " + std::to_string(src.n) + ", expected " + std::to_string(v.total) + " (prod(shape))");
  if (v.total == 0) return;
  const float* s = src.p;
  float* d = dst.p;
  auto body = [&](int64_t i0, int64_t i1) {
    walk(v, i0, i1, [&](int64_t si, int64_t di, int64_t len, int64_t st) {
      if (st == 1) {
#pragma omp simd
        for (int64_t j = 0; j < len; j++) d[di + j] += s[si + j];
      } else {
        for (int64_t j = 0; j < len; j++) d[di + j * st] += s[si + j];
      }
    });
  };
  if (nonOverlapping(v)) parallelRange(v.total, body);
  else body(0, v.total);
}

// upsampleNearest(x, nc, h, w, sh, sw, out)
void upsampleNearest(Args& a) {
  int64_t nc = a.dim(1, "nc"), h = a.dim(2, "h"), w = a.dim(3, "w"), sh = a.dim(4, "sh", 1), sw = a.dim(5, "sw", 1);
  F32 x = a.f32Len(0, "x", checkedProd(a, {nc, h, w}), "nc*h*w");
  F32 out = a.f32Len(6, "out", checkedProd(a, {nc, h, sh, w, sw}), "nc*h*sh*w*sw");
  int64_t rows = nc * h, OW = w * sw;
  const float* xp = x.p;
  float* op = out.p;
#pragma omp parallel for schedule(static) if (int64_t(out.n) > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) {
    const float* src = xp + r * w;
    float* dst = op + r * sh * OW;
    if (sw == 2) {
      for (int64_t j = 0; j < w; j++) dst[2 * j] = dst[2 * j + 1] = src[j];
    } else {
      for (int64_t j = 0; j < w; j++)
        for (int64_t b = 0; b < sw; b++) dst[j * sw + b] = src[j];
    }
    for (int64_t k = 1; k < sh; k++) std::memcpy(dst + k * OW, dst, size_t(OW) * sizeof(float));
  }
}

// upsampleNearestGrad(gy, nc, h, w, sh, sw, gx)
void upsampleNearestGrad(Args& a) {
  int64_t nc = a.dim(1, "nc"), h = a.dim(2, "h"), w = a.dim(3, "w"), sh = a.dim(4, "sh", 1), sw = a.dim(5, "sw", 1);
  F32 gy = a.f32Len(0, "gy", checkedProd(a, {nc, h, sh, w, sw}), "nc*h*sh*w*sw");
  F32 gx = a.f32Len(6, "gx", checkedProd(a, {nc, h, w}), "nc*h*w");
  int64_t rows = nc * h, OW = w * sw;
  const float* gp = gy.p;
  float* xp = gx.p;
#pragma omp parallel for schedule(static) if (int64_t(gy.n) > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) {
    float* dst = xp + r * w;
    const float* src = gp + r * sh * OW;
    for (int64_t j = 0; j < w; j++) {
      float s = 0;
      for (int64_t k = 0; k < sh; k++)
        for (int64_t b = 0; b < sw; b++) s += src[k * OW + j * sw + b];
      dst[j] = s;
    }
  }
}

void poolDims(Args& a, int64_t& nc, int64_t& h, int64_t& w, int64_t& k, int64_t& s, int64_t& oh, int64_t& ow) {
  int64_t n = a.dim(1, "n"), c = a.dim(2, "c");
  h = a.dim(3, "h");
  w = a.dim(4, "w");
  k = a.dim(5, "k", 1);
  s = a.dim(6, "s", 1);
  if (k > h || k > w) a.fail("kernel larger than the input");
  nc = checkedProd(a, {n, c});
  oh = (h - k) / s + 1;
  ow = (w - k) / s + 1;
}

// avgPool2d(x, n, c, h, w, k, s, out)
void avgPool2d(Args& a) {
  int64_t nc, h, w, k, s, oh, ow;
  poolDims(a, nc, h, w, k, s, oh, ow);
  F32 x = a.f32Len(0, "x", checkedProd(a, {nc, h, w}), "n*c*h*w");
  F32 out = a.f32Len(7, "out", checkedProd(a, {nc, oh, ow}), "n*c*oh*ow");
  float inv = 1.f / float(k * k);
  int64_t rows = nc * oh;
#pragma omp parallel for schedule(static) if (int64_t(x.n) > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; r++) {
    int64_t p = r / oh, oy = r % oh;
    const float* base = x.p + p * h * w + oy * s * w;
    float* o = out.p + r * ow;
    for (int64_t ox = 0; ox < ow; ox++) {
      float acc = 0;
      for (int64_t ky = 0; ky < k; ky++)
        for (int64_t kx = 0; kx < k; kx++) acc += base[ky * w + ox * s + kx];
      o[ox] = acc * inv;
    }
  }
}

// avgPool2dGrad(gy, n, c, h, w, k, s, gx)
void avgPool2dGrad(Args& a) {
  int64_t nc, h, w, k, s, oh, ow;
  poolDims(a, nc, h, w, k, s, oh, ow);
  F32 gy = a.f32Len(0, "gy", checkedProd(a, {nc, oh, ow}), "n*c*oh*ow");
  F32 gx = a.f32Len(7, "gx", checkedProd(a, {nc, h, w}), "n*c*h*w");
  float inv = 1.f / float(k * k);
#pragma omp parallel for schedule(static) if (int64_t(gx.n) > kParallelMin && nc > 1)
  for (int64_t p = 0; p < nc; p++) {  // one plane per iteration: overlapping windows stay on one thread
    float* g = gx.p + p * h * w;
    std::memset(g, 0, size_t(h * w) * sizeof(float));
    const float* src = gy.p + p * oh * ow;
    for (int64_t oy = 0; oy < oh; oy++)
      for (int64_t ox = 0; ox < ow; ox++) {
        float v = src[oy * ow + ox] * inv;
        for (int64_t ky = 0; ky < k; ky++)
          for (int64_t kx = 0; kx < k; kx++) g[(oy * s + ky) * w + ox * s + kx] += v;
      }
  }
}

// clamp(x, lo, hi, out): NaN passes through
void clamp(Args& a) {
  F32 x = a.f32(0, "x");
  float lo = float(a.num(1, "lo")), hi = float(a.num(2, "hi"));
  F32 y = a.f32Len(3, "out", int64_t(x.n), "x.length");
  const float* xp = x.p;
  float* yp = y.p;
  parallelRange(int64_t(x.n), [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      float v = xp[i];
      yp[i] = v < lo ? lo : (v > hi ? hi : v);
    }
  });
}

// powScalar(x, p, out)
void powScalar(Args& a) {
  F32 x = a.f32(0, "x");
  double p = a.num(1, "p");
  F32 y = a.f32Len(2, "out", int64_t(x.n), "x.length");
  const float* xp = x.p;
  float* yp = y.p;
  if (p == 2.0) {
    parallelRange(int64_t(x.n), [&](int64_t i0, int64_t i1) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) yp[i] = xp[i] * xp[i];
    });
    return;
  }
  parallelRange(int64_t(x.n), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) yp[i] = float(std::pow(double(xp[i]), p));
  }, 4096);
}

}  // namespace

void registerMovement(std::vector<KernelDef>& r) {
  r.push_back({"stridedCopy", stridedCopy, nullptr});
  r.push_back({"stridedAccumulate", stridedAccumulate, nullptr});
  r.push_back({"upsampleNearest", upsampleNearest, nullptr});
  r.push_back({"upsampleNearestGrad", upsampleNearestGrad, nullptr});
  r.push_back({"avgPool2d", avgPool2d, nullptr});
  r.push_back({"avgPool2dGrad", avgPool2dGrad, nullptr});
  r.push_back({"clamp", clamp, nullptr});
  r.push_back({"powScalar", powScalar, nullptr});
}

}  // namespace ldm
