// Shared plumbing of the ldm.ts native addon: argument readers over plain node_api.h,
// the error path (a C++ ArgError becomes a JS Error naming the kernel), the scratch pool,
// and the registry each area file (conv.cc, matmul.cc, ...) adds its kernels to.
// It holds no math; the kernels live in the area files.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace ldm {

/** Thrown by argument checks; turned into a JS Error by the binding wrapper. */
struct ArgError {
  std::string msg;
};

struct F32 {
  float* p = nullptr;
  size_t n = 0;
};

/** The arguments of one kernel call, with typed readers that throw ArgError. */
class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* kernel);
  napi_env env;
  const char* kernel;
  size_t argc = 0;
  napi_value argv[24];

  [[noreturn]] void fail(const std::string& what) const;
  /** A Float32Array argument. */
  F32 f32(size_t i, const char* name) const;
  /** A Float32Array or null/undefined (p == nullptr). */
  F32 f32OrNull(size_t i, const char* name) const;
  /** A Float32Array whose length must be exactly `expected`. */
  F32 f32Len(size_t i, const char* name, int64_t expected, const char* formula) const;
  F32 f32LenOrNull(size_t i, const char* name, int64_t expected, const char* formula) const;
  /** An Int32Array argument (raw pointer + length). */
  int32_t* i32(size_t i, const char* name, size_t* len) const;
  double num(size_t i, const char* name) const;
  /** A non-negative integer (dims); `minV` lets callers require >= 1. */
  int64_t dim(size_t i, const char* name, int64_t minV = 0) const;
  /** A signed integer. */
  int64_t integer(size_t i, const char* name) const;
  /** A non-negative integer field of the object argument i (e.g. Conv2dGeom.cin), >= minV. */
  int64_t dimField(size_t i, const char* field, int64_t minV = 0) const;
  bool boolean(size_t i, const char* name) const;
  std::string str(size_t i, const char* name) const;
  /** An array of integers (strides, shapes); may be null -> empty + *isNull = true. */
  std::vector<int64_t> ints(size_t i, const char* name, bool* isNull = nullptr) const;
  bool isNullish(size_t i) const;
};

/** Product of dims with overflow check (throws through a). */
int64_t checkedProd(const Args& a, std::initializer_list<int64_t> dims);

using KernelFn = void (*)(Args&);
/** For kernels that return a value (info functions). */
using ValueFn = napi_value (*)(Args&);

struct KernelDef {
  const char* name;
  KernelFn fn;
  ValueFn vfn;
};

void registerConv(std::vector<KernelDef>& r);
void registerMatmul(std::vector<KernelDef>& r);
void registerAttention(std::vector<KernelDef>& r);
void registerNorm(std::vector<KernelDef>& r);
void registerElementwise(std::vector<KernelDef>& r);
void registerMovement(std::vector<KernelDef>& r);

/** A grow-only 64-byte aligned float buffer owned by the calling thread's pool. slot names a
 *  role ("conv.src", ...) so that buffers live across calls: a fresh large allocation per call
 *  costs page faults. */
float* scratch(int slot, size_t nFloats);
enum ScratchSlot {
  kSlotConvSrc = 0, kSlotConvWei, kSlotConvDst, kSlotConvWeiTmp, kSlotConvBiasTmp, kSlotMisc,
  kSlotWinoU, kSlotWinoV, kSlotWinoM, kSlotBf16A, kSlotBf16B, kSlotCount
};

/** Direct stride-1 NCHW convolution (conv_direct.cc); false when the shape or CPU is outside
 *  its range (nothing written). transposeFlip: wsrc holds forward weights [ci, co, kh, kw] and
 *  the kernel uses them transposed and flipped (the backward-to-input pass). */
bool convDirectS1(const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t kh, int64_t kw,
                  int64_t padT, int64_t padL, int64_t oh, int64_t ow, const float* bias, float* y,
                  const float* wsrc, bool transposeFlip);
/** 0 off (or no AVX-512), 1 always for stride 1, 2 auto: when a channel count is not a
 *  multiple of 16 (LDM_CONV_DIRECT=0/1, default auto). */
int convDirectMode();
void setConvDirect(int mode);
bool convDirectWanted(int64_t cin, int64_t cout);

/** Winograd F(2x2,3x3) or F(4x4,3x3) stride-1 convolution (conv_winograd.cc), same arguments as
 *  convDirectS1 for a 3x3 kernel, and the tile (4 for F(4x4), else F(2x2); conv.cc takes it from
 *  winogradTileFor or from tuning); false when the shape is outside its range (nothing written). */
bool convWinogradS1(const float* x, int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t padT,
                    int64_t padL, int64_t oh, int64_t ow, const float* bias, float* y, const float* wsrc,
                    bool transposeFlip, int tile);
/** The weight (and bias, when gb is not null) gradient of a 3x3 stride-1 convolution by Winograd. */
bool convWinogradS1BackwardWeight(const float* gy, const float* x, int64_t n, int64_t ci, int64_t h, int64_t w,
                                  int64_t co, int64_t padT, int64_t padL, int64_t oh, int64_t ow, float* gw,
                                  float* gb, int tile);
/** The tile the knob or the auto rule gives n output planes of oh x ow (2 or 4). */
int winogradTileFor(int64_t n, int64_t oh, int64_t ow, bool weightGrad);
/** 0 off, 1 always (3x3 stride 1), 2 auto: with 256-bit FMAs (!cpuFullWidthAvx512()), at least
 *  16 channels in and out, 192 together on planes of at least 7x7, 128 on 8x8 or 64 on 14x14; or
 *  at least 32 in and under 16 out on planes of at least 14x14 (LDM_CONV_WINOGRAD=0/1, default
 *  auto). */
int convWinogradMode();
void setConvWinograd(int mode);
/** The Winograd output tile: 2 (F(2x2,3x3)), 4 (F(4x4,3x3)) or 0 auto: 4 for output planes of at
 *  least 12x12 in batches with enough tiles, 2 otherwise (LDM_WINO_TILE=2/4, default auto).
 *  setWinogradTile takes 0, 2 or 4. */
int winogradTile();
void setWinogradTile(int tile);
/** How the Winograd passes (all three) share out work: 0 by tile positions within chunks of
 *  images, 1 whole chunks of images a thread, 2 auto (LDM_WINO_SPLIT=0|1). */
int winogradSplitMode();
void setWinogradSplit(int mode);
/** Bytes of transformed tiles per chunk of images, in KiB (LDM_WINO_CHUNK_KB, default 1024). */
void setWinogradChunkKB(int64_t kb);
/** Whether a 3x3 stride-1 pass with cin -> cout channels and oh x ow output planes goes to
 *  Winograd (mode 1: always; auto: see conv_winograd.cc). */
bool convWinogradWanted(int64_t cin, int64_t cout, int64_t oh, int64_t ow);

/** Mixed precision: true when convolutions multiply in bf16 (f32 in and out, like
 *  torch.autocast): natively where oneDNN's ISA has bf16 (avx512_bf16, AMX), or emulated. */
bool precisionBf16();
/** True when bf16 is emulated (precision "bf16-emulated", any CPU): the convolutions take the
 *  same oneDNN path as native bf16 but in f32 on operands rounded to bf16 first (round to
 *  nearest even, as oneDNN converts), so the numerics are bf16's (rounded operands, exact
 *  products, f32 sums) and the speed is not. For checking bf16's effect on training. */
bool precisionBf16Emulated();
/** src rounded to bf16 (kept as f32, low 16 bits zero) in the thread's scratch slot. */
const float* roundedToBf16(const float* src, int64_t n, int slot);
/** "amx" / "avx512_bf16" when oneDNN runs bf16 natively here, "" when it does not. */
const char* bf16Isa();

/** True when the CPU has AVX-512F (info's isa, the peak loop's width); there oneDNN's blocked
 *  1x1 kernels are the measured choice and the 1x1-GEMM path steps aside in its auto mode. */
bool cpuHasAvx512();

/** True when the CPU runs AVX-512 at full width (512-bit FMAs: every AVX-512 CPU but AMD's Zen 4,
 *  family 19h, which splits each 512-bit operation into two 256-bit halves and so has AVX2's FMA
 *  throughput per cycle). There oneDNN's direct kernels run at up to twice their AVX2 rate and
 *  the Winograd auto rule (measured on AVX2) steps aside. */
bool cpuFullWidthAvx512();

/** C = A.B (+ beta C), row-major, over dnnl_sgemm (matmul.cc); a failure throws an ArgError that
 *  names `what` (the kernel) and oneDNN's status. */
void sgemm(const char* what, char ta, char tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/** A path's mode from environment variable `var`: 0 ("0..."), 1 ("1...") or 2 (auto: unset or
 *  anything else). The convolution knobs read theirs once, on first use. */
inline int envMode(const char* var) {
  const char* e = std::getenv(var);
  return !e ? 2 : e[0] == '0' ? 0 : e[0] == '1' ? 1 : 2;
}

/** Number of OpenMP threads used by parallel regions. */
int numThreads();

/** The element count below which elementwise loops stay on one thread. */
constexpr int64_t kParallelMin = 1 << 15;

}  // namespace ldm
