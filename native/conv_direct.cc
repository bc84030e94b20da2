// Direct stride-1 convolution on NCHW buffers with AVX-512 (no layout reorders): the forward
// pass, and the backward-to-input pass as the same kernel over gy with the weights transposed
// and flipped (padding k-1-p). Each tile keeps 24 accumulators in registers: 12 output
// channels x 32 output columns (2 vectors) of one output row, or 24 channels x 16 columns for
// narrow images; input borders use masked loads, so the input is read in place. Work items
// (image, channel block, row range) share one OpenMP region.
// Not here: strides other than 1, dilation, groups, CPUs without AVX-512 (conv.cc then uses
// oneDNN), and the weight gradient (oneDNN).
// GCC 12 warns about _mm512_undefined_* inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "common.h"

namespace ldm {

namespace {

struct TileArgs {
  const float* x;     // input image [cin, h, w]
  int64_t cin, h, w;
  const float* wb;    // weights of this channel block [cin, kh, kw, cba]
  int64_t cba, kh, kw;
  const float* bias;  // cb values or null
  float* y;           // output at (channel block start, oy, ox0); channel stride ohw
  int64_t ohw;
  int64_t oy, ox0, padT, padL;
  int64_t ci0, ci1;  // input channels of this pass
  const float* zeros;  // a zero row (for tile3), at least ow + 64 floats
  const __mmask16* masks;  // [kw][NV] input-lane masks
  const __mmask16* smask;  // [NV] output-lane masks
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")

/** One output tile: CB channels x NV vectors of one row, over input channels [ci0, ci1).
 *  The accumulators start from the bias (first channel block) or from y (later blocks). KW is
 *  the kernel width when fixed at compile time (masks then stay in mask registers), 0 if not. */
template <int NV, int CB, int KW>
void tile(const TileArgs& t) {
  __m512 acc[CB][NV];
  if (t.ci0 == 0) {
#pragma GCC unroll 24
    for (int c = 0; c < CB; c++) {
      __m512 b0 = t.bias ? _mm512_set1_ps(t.bias[c]) : _mm512_setzero_ps();
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[c][v] = b0;
    }
  } else {
#pragma GCC unroll 24
    for (int c = 0; c < CB; c++) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[c][v] = _mm512_maskz_loadu_ps(t.smask[v], t.y + c * t.ohw + 16 * v);
    }
  }
  int64_t ky0 = t.padT - t.oy > 0 ? t.padT - t.oy : 0;
  int64_t ky1 = t.h + t.padT - t.oy < t.kh ? t.h + t.padT - t.oy : t.kh;
  const int64_t kw = KW > 0 ? KW : t.kw, cba = t.cba;
  __mmask16 mk[KW > 0 ? KW * NV : 1];
  if (KW > 0) {
#pragma GCC unroll 14
    for (int j = 0; j < (KW > 0 ? KW * NV : 1); j++) mk[j] = t.masks[j];
  }
  for (int64_t ci = t.ci0; ci < t.ci1; ci++) {
    const float* xc = t.x + ci * t.h * t.w + t.ox0 - t.padL;
    const float* wci = t.wb + ci * t.kh * kw * cba;
    for (int64_t ky = ky0; ky < ky1; ky++) {
      const float* xr = xc + (t.oy + ky - t.padT) * t.w;
      const float* wk = wci + ky * kw * cba;
#pragma GCC unroll 7
      for (int64_t kx = 0; kx < kw; kx++) {
        __m512 xv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          xv[v] = _mm512_maskz_loadu_ps(KW > 0 ? mk[kx * NV + v] : t.masks[kx * NV + v], xr + kx + 16 * v);
        const float* wc = wk + kx * cba;
#pragma GCC unroll 24
        for (int c = 0; c < CB; c++) {
          __m512 b = _mm512_set1_ps(wc[c]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; v++) acc[c][v] = _mm512_fmadd_ps(b, xv[v], acc[c][v]);
        }
      }
    }
  }
#pragma GCC unroll 24
  for (int c = 0; c < CB; c++) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(t.y + c * t.ohw + 16 * v, t.smask[v], acc[c][v]);
  }
}

/** The 3x3 tile, fully unrolled over (ky, kx): rows above or below the image read a zero row
 *  (pointer stride 0), so the inner loop over input channels has no branches. */
template <int NV, int CB>
void tile3(const TileArgs& t) {
  __m512 acc[CB][NV];
  if (t.ci0 == 0) {
#pragma GCC unroll 24
    for (int c = 0; c < CB; c++) {
      __m512 b0 = t.bias ? _mm512_set1_ps(t.bias[c]) : _mm512_setzero_ps();
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[c][v] = b0;
    }
  } else {
#pragma GCC unroll 24
    for (int c = 0; c < CB; c++) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[c][v] = _mm512_maskz_loadu_ps(t.smask[v], t.y + c * t.ohw + 16 * v);
    }
  }
  const float* rp[3];
  int64_t rs[3];
  for (int ky = 0; ky < 3; ky++) {
    int64_t iy = t.oy + ky - t.padT;
    if (iy >= 0 && iy < t.h) {
      rp[ky] = t.x + t.ci0 * t.h * t.w + iy * t.w + t.ox0 - t.padL;
      rs[ky] = t.h * t.w;
    } else {
      rp[ky] = t.zeros;
      rs[ky] = 0;
    }
  }
  __mmask16 mk[3 * NV];
#pragma GCC unroll 6
  for (int j = 0; j < 3 * NV; j++) mk[j] = t.masks[j];
  const float* wc = t.wb + t.ci0 * 9 * t.cba;
  const int64_t cba = t.cba;
  for (int64_t ci = t.ci0; ci < t.ci1; ci++) {
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; kx++) {
        __m512 xv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) xv[v] = _mm512_maskz_loadu_ps(mk[kx * NV + v], rp[ky] + kx + 16 * v);
        const float* w9 = wc + (ky * 3 + kx) * cba;
#pragma GCC unroll 24
        for (int c = 0; c < CB; c++) {
          __m512 b = _mm512_set1_ps(w9[c]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; v++) acc[c][v] = _mm512_fmadd_ps(b, xv[v], acc[c][v]);
        }
      }
    }
    rp[0] += rs[0];
    rp[1] += rs[1];
    rp[2] += rs[2];
    wc += 9 * cba;
  }
#pragma GCC unroll 24
  for (int c = 0; c < CB; c++) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(t.y + c * t.ohw + 16 * v, t.smask[v], acc[c][v]);
  }
}

#pragma GCC pop_options

using TileFn = void (*)(const TileArgs&);

// [kw == 3 ? 1 : 0][cb - 1] -> tile<NV, cb, 3 or 0>
#define LDM_T12(NV, KW)                                                                                      \
  {tile<NV, 1, KW>, tile<NV, 2, KW>, tile<NV, 3, KW>, tile<NV, 4, KW>, tile<NV, 5, KW>, tile<NV, 6, KW>,    \
   tile<NV, 7, KW>, tile<NV, 8, KW>, tile<NV, 9, KW>, tile<NV, 10, KW>, tile<NV, 11, KW>, tile<NV, 12, KW>}
#define LDM_T24(KW)                                                                                           \
  {tile<1, 1, KW>,  tile<1, 2, KW>,  tile<1, 3, KW>,  tile<1, 4, KW>,  tile<1, 5, KW>,  tile<1, 6, KW>,      \
   tile<1, 7, KW>,  tile<1, 8, KW>,  tile<1, 9, KW>,  tile<1, 10, KW>, tile<1, 11, KW>, tile<1, 12, KW>,     \
   tile<1, 13, KW>, tile<1, 14, KW>, tile<1, 15, KW>, tile<1, 16, KW>, tile<1, 17, KW>, tile<1, 18, KW>,     \
   tile<1, 19, KW>, tile<1, 20, KW>, tile<1, 21, KW>, tile<1, 22, KW>, tile<1, 23, KW>, tile<1, 24, KW>}
constexpr TileFn kTiles2[2][12] = {LDM_T12(2, 0), LDM_T12(2, 3)};
constexpr TileFn kTiles1[2][24] = {LDM_T24(0), LDM_T24(3)};
#define tile tile3
#define LDM_T3(NV) {tile<NV, 1>, tile<NV, 2>, tile<NV, 3>, tile<NV, 4>, tile<NV, 5>, tile<NV, 6>, \
                    tile<NV, 7>, tile<NV, 8>, tile<NV, 9>, tile<NV, 10>, tile<NV, 11>, tile<NV, 12>}
constexpr TileFn kTiles3w[12] = LDM_T3(2);
constexpr TileFn kTiles3n[12] = LDM_T3(1);
#undef LDM_T3
#undef tile
#undef LDM_T12
#undef LDM_T24

bool hasAvx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }();
  return has;
}

int gDirect = -1;  // -1: read LDM_CONV_DIRECT; 0 off, 1 always (stride 1), 2 auto (default)
constexpr int64_t kCiBlockKB = 16;  // weights of one input-channel pass (measured: no gain beyond)

}  // namespace

int convDirectMode() {
  if (gDirect < 0) gDirect = envMode("LDM_CONV_DIRECT");
  return hasAvx512() ? gDirect : 0;
}

// Measured here (2 Xeon cores, 3x3 stride 1, N=16): the direct kernels beat oneDNN 1.5-5x when a
// channel count is small or not a multiple of 16 (3->64: 156 vs 99 GFLOP/s forward, 186 vs 47
// backward; 64->3: 192 vs 44), tie at 32x32 with 64 channels, and lose on 16x16 and smaller
// images with many channels (222 vs 334 at 16x16, 115 vs 340 at 8x8).
bool convDirectWanted(int64_t cin, int64_t cout) {
  int m = convDirectMode();
  return m == 1 || (m == 2 && (cin % 16 != 0 || cout % 16 != 0));
}

void setConvDirect(int mode) { gDirect = mode; }

/** y [n, co, oh, ow] = conv_s1(x [n, ci, h, w], weights) (+ bias); weights come from wsrc as
 *  [co, ci, kh, kw], or transposed and flipped from [ci, co, kh, kw] forward weights. Returns
 *  false (doing nothing) when the shape is outside this kernel's range; the caller then uses
 *  oneDNN. */
bool convDirectS1(const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t kh, int64_t kw,
                  int64_t padT, int64_t padL, int64_t oh, int64_t ow, const float* bias, float* y,
                  const float* wsrc, bool transposeFlip) {
  if (convDirectMode() == 0) return false;
  if (kh < 1 || kw < 1 || kh > 7 || kw > 7 || ow < 8 || n < 1 || ci < 1 || co < 1) return false;
  if (padT < 0 || padL < 0 || padT >= kh || padL >= kw) return false;
  const bool wide = ow > 16;
  const int64_t NV = wide ? 2 : 1, CBmax = wide ? 12 : 24;
  const int64_t blocks = (co + CBmax - 1) / CBmax, cba = CBmax;
  // weights [block][ci][kh][kw][cba], zero-padded in the last block
  const size_t wn = size_t(blocks * ci * kh * kw * cba);
  float* wr = scratch(kSlotMisc, wn);
  std::memset(wr, 0, wn * sizeof(float));
  for (int64_t o = 0; o < co; o++) {
    float* wo = wr + (o / cba) * ci * kh * kw * cba + (o % cba);
    for (int64_t i = 0; i < ci; i++)
      for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++) {
          // forward: W[o][i][ky][kx]; backward-to-input: W[i][o][kh-1-ky][kw-1-kx] of the forward weights [i=cout][o=cin]
          float v = transposeFlip ? wsrc[((i * co + o) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)]
                                  : wsrc[((o * ci + i) * kh + ky) * kw + kx];
          wo[((i * kh + ky) * kw + kx) * cba] = v;
        }
  }
  // column tiles and their lane masks
  const int64_t tileW = 16 * NV, colTiles = (ow + tileW - 1) / tileW;
  const size_t maskN = size_t(colTiles * kw * NV);
  __mmask16* masks = static_cast<__mmask16*>(std::malloc((maskN + size_t(colTiles * NV)) * sizeof(__mmask16)));
  if (!masks) return false;
  __mmask16* smasks = masks + maskN;
  float* zeros = static_cast<float*>(std::calloc(size_t(ow + 128), sizeof(float)));
  if (!zeros) {
    std::free(masks);
    return false;
  }
  for (int64_t tcol = 0; tcol < colTiles; tcol++) {
    int64_t ox0 = tcol * tileW;
    for (int64_t v = 0; v < NV; v++) {
      unsigned sm = 0;
      for (int l = 0; l < 16; l++)
        if (ox0 + 16 * v + l < ow) sm |= 1u << l;
      smasks[tcol * NV + v] = __mmask16(sm);
      for (int64_t kx = 0; kx < kw; kx++) {
        unsigned m = 0;
        for (int l = 0; l < 16; l++) {
          int64_t ix = ox0 + 16 * v + l + kx - padL;
          if (ix >= 0 && ix < w && ox0 + 16 * v + l < ow) m |= 1u << l;
        }
        masks[(tcol * kw + kx) * NV + v] = __mmask16(m);
      }
    }
  }
  // work items: (image, channel block, row chunk)
  const int nt = omp_get_max_threads();
  int64_t rowChunks = 1;
  while (n * blocks * rowChunks < 4 * nt && rowChunks < oh) rowChunks *= 2;
  if (rowChunks > oh) rowChunks = oh;
  const int64_t rowsPer = (oh + rowChunks - 1) / rowChunks;
  const int64_t items = n * blocks * rowChunks;
  // input channels per pass: the block's weights (ciBlock*kh*kw*cba floats) in about 16 KiB
  int64_t ciBlock = (kCiBlockKB * 256) / (kh * kw * cba);
  if (ciBlock < 1) ciBlock = 1;
  const int64_t ohw = oh * ow;
  const double flop = 2.0 * double(n) * co * ohw * ci * kh * kw;
#pragma omp parallel for schedule(dynamic, 1) if (items > 1 && flop > 2.0e6)
  for (int64_t it = 0; it < items; it++) {
    int64_t img = it / (blocks * rowChunks), rem = it % (blocks * rowChunks);
    int64_t blk = rem / rowChunks, rc = rem % rowChunks;
    int64_t co0 = blk * cba, cb = co - co0 < cba ? co - co0 : cba;
    int64_t oy0 = rc * rowsPer, oy1 = oy0 + rowsPer < oh ? oy0 + rowsPer : oh;
    TileArgs t;
    t.x = x + img * ci * h * w;
    t.cin = ci, t.h = h, t.w = w;
    t.wb = wr + blk * ci * kh * kw * cba;
    t.cba = cba, t.kh = kh, t.kw = kw;
    t.bias = bias ? bias + co0 : nullptr;
    t.ohw = ohw, t.padT = padT, t.padL = padL;
    TileFn fn = wide ? kTiles2[kw == 3][cb - 1] : kTiles1[kw == 3][cb - 1];
    if (kh == 3 && kw == 3 && (wide || cb <= 12)) fn = wide ? kTiles3w[cb - 1] : kTiles3n[cb - 1];
    t.zeros = zeros + 32;
    for (int64_t c0 = 0; c0 < ci; c0 += ciBlock) {  // input-channel blocks: weights stay in L1
      t.ci0 = c0;
      t.ci1 = c0 + ciBlock < ci ? c0 + ciBlock : ci;
      for (int64_t oy = oy0; oy < oy1; oy++) {
        t.oy = oy;
        for (int64_t tcol = 0; tcol < colTiles; tcol++) {
          t.ox0 = tcol * tileW;
          t.y = y + (img * co + co0) * ohw + oy * ow + t.ox0;
          t.masks = masks + tcol * kw * NV;
          t.smask = smasks + tcol * NV;
          fn(t);
        }
      }
    }
  }
  std::free(masks);
  std::free(zeros);
  return true;
}

}  // namespace ldm
