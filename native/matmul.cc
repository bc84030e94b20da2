// Batched matmul over oneDNN's dnnl_sgemm (row-major, runtime ISA dispatch, OpenMP inside).
// C[b] = op(A[b]) @ op(B[b]) (+ C[b] with accumulate); a batch stride of 0 broadcasts an
// operand. Strategy: a broadcast B with a contiguous, untransposed A folds the batch into M
// (one large gemm); many small gemms run one per OpenMP thread (oneDNN runs a gemm called
// inside a parallel region on that thread alone); large ones run one after another, each
// using the whole pool. Not here: strided (non-contiguous) operands.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <cstring>

#include "common.h"

namespace ldm {

void sgemm(const char* what, char ta, char tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.f, A, lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success) throw ArgError{std::string(what) + ": dnnl_sgemm failed with status " + std::to_string(int(st))};
}

namespace {

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.f) std::memset(C, 0, size_t(m * n) * sizeof(float));
    return;
  }
  sgemm("ldm native matmul", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, A, ta ? m : k, B, tb ? k : n, beta, C, n);
}

// matmul(a, b, out, batch, m, k, n, transA, transB, aBatchStride, bBatchStride, accumulate)
void matmul(Args& a) {
  int64_t batch = a.dim(3, "batch"), m = a.dim(4, "m"), k = a.dim(5, "k"), n = a.dim(6, "n");
  bool ta = a.boolean(7, "transA"), tb = a.boolean(8, "transB");
  int64_t sa = a.dim(9, "aBatchStride"), sb = a.dim(10, "bBatchStride");
  bool acc = a.boolean(11, "accumulate");
  int64_t mk = checkedProd(a, {m, k}), kn = checkedProd(a, {k, n}), mn = checkedProd(a, {m, n});
  F32 A = a.f32(0, "a"), B = a.f32(1, "b");
  F32 C = a.f32Len(2, "out", checkedProd(a, {batch, mn}), "batch*m*n");
  if (batch == 0) return;
  int64_t needA = (batch - 1) * sa + mk, needB = (batch - 1) * sb + kn;
  if (int64_t(A.n) < needA)
    a.fail("a has length " + std::to_string(A.n) + ", expected at least " + std::to_string(needA) +
           " ((batch-1)*aBatchStride + m*k)");
  if (int64_t(B.n) < needB)
    a.fail("b has length " + std::to_string(B.n) + ", expected at least " + std::to_string(needB) +
           " ((batch-1)*bBatchStride + k*n)");
  float beta = acc ? 1.f : 0.f;
  if (batch == 1) {
    gemm(ta, tb, m, n, k, A.p, B.p, C.p, beta);
    return;
  }
  if (sb == 0 && !ta && sa == mk) {  // [batch*m, k] @ [k, n]
    gemm(false, tb, batch * m, n, k, A.p, B.p, C.p, beta);
    return;
  }
  double flop = 2.0 * double(m) * double(n) * double(k);
  int nt = omp_get_max_threads();
  if (nt > 1 && batch >= nt && flop < 64.0e6) {
    bool failed = false;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < batch; i++) {
      try {
        gemm(ta, tb, m, n, k, A.p + i * sa, B.p + i * sb, C.p + i * mn, beta);
      } catch (...) {
#pragma omp atomic write
        failed = true;
      }
    }
    if (failed) a.fail("dnnl_sgemm failed");
    return;
  }
  for (int64_t i = 0; i < batch; i++) gemm(ta, tb, m, n, k, A.p + i * sa, B.p + i * sb, C.p + i * mn, beta);
}

}  // namespace

void registerMatmul(std::vector<KernelDef>& r) { r.push_back({"matmul", matmul, nullptr}); }

}  // namespace ldm
