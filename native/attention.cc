// Fused scaled dot-product attention: for each (batch, block of query rows), in parallel over
// the OpenMP pool: S = q k^T * scale (dnnl_sgemm, written straight into probs), + mask, row
// softmax in place (AVX2 exp), out = P v (dnnl_sgemm). Each block's S stays in L2 between the
// three steps. probs keeps softmax(q k^T * scale + mask) for the backward pass, which the
// tensor layer builds from matmul and softmaxGrad (no fused backward here).
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <cstring>

#include "common.h"
#include "simd.h"

namespace ldm {

namespace {

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
  int64_t m0 = 0, m1 = 0, m2 = 0;
  if (mask.p) {
    if (stridesNull) {  // contiguous [b, sq, sk]
      m0 = sq * sk, m1 = sk, m2 = 1;
    } else {
      if (ms.size() != 3) a.fail("maskStrides must have 3 entries [b, sq, sk], got " + std::to_string(ms.size()));
      m0 = ms[0], m1 = ms[1], m2 = ms[2];
      if (m0 < 0 || m1 < 0 || m2 < 0) a.fail("maskStrides must be non-negative");
    }
    if (b > 0 && sq > 0 && sk > 0) {
      int64_t need = (b - 1) * m0 + (sq - 1) * m1 + (sk - 1) * m2 + 1;
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
  int nt = omp_get_max_threads();
  int64_t rb = 64;
  while (rb > 8 && b * ((sq + rb - 1) / rb) < 4 * nt) rb /= 2;
  if (rb > sq) rb = sq;
  int64_t blocks = (sq + rb - 1) / rb, items = b * blocks;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (items > 1 && double(b) * sq * sk * (d + dv) > 1.0e5)
  for (int64_t it = 0; it < items; it++) {
    int64_t i = it / blocks, r0 = (it % blocks) * rb, rows = std::min(rb, sq - r0);
    float* S = probs.p + (i * sq + r0) * sk;
    dnnl_status_t st = dnnl_success;
    if (d > 0) {
      st = dnnl_sgemm('N', 'T', rows, sk, d, scale, q.p + (i * sq + r0) * d, d, k.p + i * sk * d, d, 0.f, S, sk);
    } else {
      std::memset(S, 0, size_t(rows * sk) * sizeof(float));
    }
    if (st != dnnl_success) {
#pragma omp atomic write
      failed = 1;
      continue;
    }
    for (int64_t r = 0; r < rows; r++) {
      float* row = S + r * sk;
      if (mask.p) {
        const float* mr = mask.p + i * m0 + (r0 + r) * m1;
        if (m2 == 1) {
#pragma omp simd
          for (int64_t j = 0; j < sk; j++) row[j] += mr[j];
        } else {
          for (int64_t j = 0; j < sk; j++) row[j] += mr[j * m2];
        }
      }
      softmaxRow(row, row, sk, false);
    }
    if (dv > 0) {
      st = dnnl_sgemm('N', 'N', rows, dv, sk, 1.f, S, sk, v.p + i * sk * dv, dv, 0.f, out.p + (i * sq + r0) * dv, dv);
      if (st != dnnl_success) {
#pragma omp atomic write
        failed = 1;
      }
    }
  }
  if (failed) a.fail("dnnl_sgemm failed");
}

}  // namespace

void registerAttention(std::vector<KernelDef>& r) { r.push_back({"attention", attention, nullptr}); }

}  // namespace ldm
