// WebAssembly SIMD kernels of the `wasm` backend: a packed, register-blocked SGEMM (4x8 f32x4
// micro-kernel) and the three 2-D convolution passes written over it (im2col / col2im).
// They compute what the reference kernels compute (src/backend/reference/{matmul,conv}.ts); only
// the summation order differs (float32 rounding, well inside the 1e-4 tolerance).
// What it is not: no allocator and no libc. The JS side (src/backend/wasm/index.ts) lays every
// buffer out in linear memory and passes pointers, including the scratch space for packing.
// Build: node scripts/build-wasm.mjs (clang --target=wasm32 -msimd128 -O3, wasm-ld), which writes
// the module as base64 into src/backend/wasm/module.ts so that Node and the browser load it alike.

#include <wasm_simd128.h>

#define MR 4
#define NR 8

// Bp[(j0 / NR) panel][k][NR]: B(k, j) = B[k * brs + j * bcs], zero-padded past N.
static void pack_b(const float* B, int brs, int bcs, int K, int N, float* Bp) {
  for (int j0 = 0; j0 < N; j0 += NR) {
    int nb = N - j0 < NR ? N - j0 : NR;
    float* dst = Bp + j0 * K;
    if (bcs == 1 && nb == NR) {
      for (int k = 0; k < K; k++) {
        const float* s = B + k * brs + j0;
        wasm_v128_store(dst + k * NR, wasm_v128_load(s));
        wasm_v128_store(dst + k * NR + 4, wasm_v128_load(s + 4));
      }
    } else {
      for (int k = 0; k < K; k++) {
        for (int jj = 0; jj < NR; jj++) dst[k * NR + jj] = jj < nb ? B[k * brs + (j0 + jj) * bcs] : 0.0f;
      }
    }
  }
}

// Ap[(i0 / MR) panel][k][MR]: A(i, k) = A[i * ars + k * acs], zero-padded past M.
static void pack_a(const float* A, int ars, int acs, int M, int K, float* Ap) {
  for (int i0 = 0; i0 < M; i0 += MR) {
    int mb = M - i0 < MR ? M - i0 : MR;
    float* dst = Ap + i0 * K;
    if (mb == MR && ars == 1) {
      for (int k = 0; k < K; k++) wasm_v128_store(dst + k * MR, wasm_v128_load(A + i0 + k * acs));
    } else {
      for (int k = 0; k < K; k++) {
        for (int ii = 0; ii < MR; ii++) dst[k * MR + ii] = ii < mb ? A[(i0 + ii) * ars + k * acs] : 0.0f;
      }
    }
  }
}

// C[mb x nb] (+)= Ap-panel @ Bp-panel over all K; 8 f32x4 accumulators.
static void micro(int K, const float* Ap, const float* Bp, float* C, int ldc, int mb, int nb, int acc) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < K; k++) {
    v128_t b0 = wasm_v128_load(Bp + k * NR), b1 = wasm_v128_load(Bp + k * NR + 4);
    v128_t a = wasm_v128_load(Ap + k * MR);
    v128_t a0 = wasm_i32x4_shuffle(a, a, 0, 0, 0, 0);
    v128_t a1 = wasm_i32x4_shuffle(a, a, 1, 1, 1, 1);
    v128_t a2 = wasm_i32x4_shuffle(a, a, 2, 2, 2, 2);
    v128_t a3 = wasm_i32x4_shuffle(a, a, 3, 3, 3, 3);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a0, b0)); c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a0, b1));
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a1, b0)); c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a1, b1));
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a2, b0)); c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a2, b1));
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a3, b0)); c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a3, b1));
  }
  if (mb == MR && nb == NR) {
    v128_t* rows[4][2] = {{&c00, &c01}, {&c10, &c11}, {&c20, &c21}, {&c30, &c31}};
    for (int i = 0; i < MR; i++) {
      float* c = C + i * ldc;
      v128_t v0 = *rows[i][0], v1 = *rows[i][1];
      if (acc) { v0 = wasm_f32x4_add(v0, wasm_v128_load(c)); v1 = wasm_f32x4_add(v1, wasm_v128_load(c + 4)); }
      wasm_v128_store(c, v0);
      wasm_v128_store(c + 4, v1);
    }
    return;
  }
  float t[MR * NR] __attribute__((aligned(16)));
  wasm_v128_store(t + 0, c00); wasm_v128_store(t + 4, c01); wasm_v128_store(t + 8, c10); wasm_v128_store(t + 12, c11);
  wasm_v128_store(t + 16, c20); wasm_v128_store(t + 20, c21); wasm_v128_store(t + 24, c30); wasm_v128_store(t + 28, c31);
  for (int i = 0; i < mb; i++) {
    for (int j = 0; j < nb; j++) C[i * ldc + j] = acc ? C[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
  }
}

// C[M, N] (row stride ldc) (+)= A(M x K) @ B(K x N), A and B given by element strides.
// scratch: at least (ceil(M/MR)*MR + ceil(N/NR)*NR) * K floats, 16-byte aligned.
void sgemm(int M, int N, int K, const float* A, int ars, int acs, const float* B, int brs, int bcs,
           float* C, int ldc, int acc, float* scratch) {
  if (K == 0) {
    if (!acc) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
    return;
  }
  float* Ap = scratch;
  float* Bp = scratch + ((M + MR - 1) / MR) * MR * K;
  pack_a(A, ars, acs, M, K, Ap);
  pack_b(B, brs, bcs, K, N, Bp);
  for (int j0 = 0; j0 < N; j0 += NR) {
    int nb = N - j0 < NR ? N - j0 : NR;
    for (int i0 = 0; i0 < M; i0 += MR) {
      int mb = M - i0 < MR ? M - i0 : MR;
      micro(K, Ap + i0 * K, Bp + j0 * K, C + i0 * ldc + j0, ldc, mb, nb, acc);
    }
  }
}

// Batched matmul with the Kernels contract's arguments (see backend/types.ts).
void matmul(const float* a, const float* b, float* out, int batch, int m, int k, int n, int transA, int transB,
            int aBatchStride, int bBatchStride, int acc, float* scratch) {
  for (int i = 0; i < batch; i++) {
    const float* A = a + i * aBatchStride;
    const float* B = b + i * bBatchStride;
    // A is [m, k] (or [k, m] when transA); B is [k, n] (or [n, k] when transB)
    sgemm(m, n, k, A, transA ? 1 : k, transA ? m : 1, B, transB ? 1 : n, transB ? k : 1, out + i * m * n, n, acc, scratch);
  }
}

typedef struct {
  int n, cin, h, w, cout, kh, kw, sh, sw, padT, padB, padL, padR, oh, ow;
} Geom;

// col[(c*kh + ki)*kw + kj][oy*ow + ox] = x[c][oy*sh - padT + ki][ox*sw - padL + kj] (0 outside)
static void im2col(const float* x, const Geom* g, float* col) {
  int P = g->oh * g->ow;
  for (int c = 0; c < g->cin; c++) {
    for (int ki = 0; ki < g->kh; ki++) {
      for (int kj = 0; kj < g->kw; kj++) {
        float* dst = col + ((c * g->kh + ki) * g->kw + kj) * P;
        for (int oy = 0; oy < g->oh; oy++) {
          int iy = oy * g->sh - g->padT + ki;
          float* d = dst + oy * g->ow;
          if (iy < 0 || iy >= g->h) { for (int ox = 0; ox < g->ow; ox++) d[ox] = 0.0f; continue; }
          const float* src = x + (c * g->h + iy) * g->w;
          for (int ox = 0; ox < g->ow; ox++) {
            int ix = ox * g->sw - g->padL + kj;
            d[ox] = (ix >= 0 && ix < g->w) ? src[ix] : 0.0f;
          }
        }
      }
    }
  }
}

// gx[c][iy][ix] += col[...] over every kernel tap (the adjoint of im2col)
static void col2im(const float* col, const Geom* g, float* gx) {
  int P = g->oh * g->ow;
  for (int c = 0; c < g->cin; c++) {
    for (int ki = 0; ki < g->kh; ki++) {
      for (int kj = 0; kj < g->kw; kj++) {
        const float* s = col + ((c * g->kh + ki) * g->kw + kj) * P;
        for (int oy = 0; oy < g->oh; oy++) {
          int iy = oy * g->sh - g->padT + ki;
          if (iy < 0 || iy >= g->h) continue;
          float* dst = gx + (c * g->h + iy) * g->w;
          const float* row = s + oy * g->ow;
          for (int ox = 0; ox < g->ow; ox++) {
            int ix = ox * g->sw - g->padL + kj;
            if (ix >= 0 && ix < g->w) dst[ix] += row[ox];
          }
        }
      }
    }
  }
}

static int direct(const Geom* g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->padT == 0 && g->padB == 0 && g->padL == 0 && g->padR == 0;
}

// out[n] [cout, P] = W [cout, K] @ col(x[n]) [K, P] + bias
void conv2d(const float* x, const float* w, const float* bias, const Geom* g, float* out, float* col, float* scratch) {
  int K = g->cin * g->kh * g->kw, P = g->oh * g->ow;
  for (int b = 0; b < g->n; b++) {
    const float* xb = x + b * g->cin * g->h * g->w;
    float* ob = out + b * g->cout * P;
    const float* cb = xb;
    if (!direct(g)) { im2col(xb, g, col); cb = col; }
    if (bias) {
      for (int co = 0; co < g->cout; co++) { float v = bias[co]; for (int p = 0; p < P; p++) ob[co * P + p] = v; }
    }
    sgemm(g->cout, P, K, w, K, 1, cb, P, 1, ob, P, bias != 0, scratch);
  }
}

// gx[n] = col2im(W^T [K, cout] @ gy[n] [cout, P])
void conv2d_backward_input(const float* gy, const float* w, const Geom* g, float* gx, float* col, float* scratch) {
  int K = g->cin * g->kh * g->kw, P = g->oh * g->ow, HW = g->h * g->w;
  for (int b = 0; b < g->n; b++) {
    const float* gyb = gy + b * g->cout * P;
    float* gxb = gx + b * g->cin * HW;
    if (direct(g)) { sgemm(K, P, g->cout, w, 1, K, gyb, P, 1, gxb, P, 0, scratch); continue; }
    sgemm(K, P, g->cout, w, 1, K, gyb, P, 1, col, P, 0, scratch);
    for (int i = 0; i < g->cin * HW; i++) gxb[i] = 0.0f;
    col2im(col, g, gxb);
  }
}

// gw [cout, K] = sum_n gy[n] [cout, P] @ col(x[n])^T [P, K]; gb[co] = sum of gy over n and P
void conv2d_backward_weight(const float* gy, const float* x, const Geom* g, float* gw, float* gb, float* col, float* scratch) {
  int K = g->cin * g->kh * g->kw, P = g->oh * g->ow;
  for (int b = 0; b < g->n; b++) {
    const float* xb = x + b * g->cin * g->h * g->w;
    const float* gyb = gy + b * g->cout * P;
    const float* cb = xb;
    if (!direct(g)) { im2col(xb, g, col); cb = col; }
    sgemm(g->cout, K, P, gyb, P, 1, cb, 1, P, gw, K, b > 0, scratch);
  }
  if (gb) {
    for (int co = 0; co < g->cout; co++) {
      double s = 0;
      for (int b = 0; b < g->n; b++) { const float* r = gy + (b * g->cout + co) * P; for (int p = 0; p < P; p++) s += r[p]; }
      gb[co] = (float)s;
    }
  }
}
