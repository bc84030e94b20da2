// Entry point of the ldm.ts native addon (build/ldm_native.node): argument readers, the
// error path, the scratch pool, info functions (threads, oneDNN version, measured FP32 peak)
// and the module init that exports every kernel registered by the area files.
// It is not a kernel file: the math lives in conv.cc, conv_direct.cc, matmul.cc, attention.cc, norm.cc,
// elementwise.cc and movement.cc.
#include <immintrin.h>
#include <malloc.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <pthread.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common.h"

namespace ldm {

// ---- argument readers ------------------------------------------------------------------

Args::Args(napi_env e, napi_callback_info info, const char* k) : env(e), kernel(k) {
  argc = sizeof(argv) / sizeof(argv[0]);
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) fail("cannot read arguments");
}

void Args::fail(const std::string& what) const {
  throw ArgError{std::string("ldm native ") + kernel + ": " + what};
}

bool Args::isNullish(size_t i) const {
  if (i >= argc) return true;
  napi_valuetype t;
  if (napi_typeof(env, argv[i], &t) != napi_ok) return true;
  return t == napi_null || t == napi_undefined;
}

F32 Args::f32(size_t i, const char* name) const {
  if (i >= argc) fail(std::string("missing argument ") + name);
  bool is = false;
  napi_is_typedarray(env, argv[i], &is);
  if (!is) fail(std::string(name) + " must be a Float32Array");
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  napi_get_typedarray_info(env, argv[i], &type, &len, &data, nullptr, nullptr);
  if (type != napi_float32_array) fail(std::string(name) + " must be a Float32Array");
  F32 r;
  r.p = static_cast<float*>(data);
  r.n = len;
  if (r.p == nullptr && len > 0) fail(std::string(name) + " has a detached buffer");
  return r;
}

F32 Args::f32OrNull(size_t i, const char* name) const {
  if (isNullish(i)) return F32{};
  return f32(i, name);
}

F32 Args::f32Len(size_t i, const char* name, int64_t expected, const char* formula) const {
  F32 r = f32(i, name);
  if (static_cast<int64_t>(r.n) != expected)
    fail(std::string(name) + " has length " + std::to_string(r.n) + ", expected " + std::to_string(expected) +
         " (" + formula + ")");
  return r;
}

F32 Args::f32LenOrNull(size_t i, const char* name, int64_t expected, const char* formula) const {
  if (isNullish(i)) return F32{};
  return f32Len(i, name, expected, formula);
}

int32_t* Args::i32(size_t i, const char* name, size_t* len) const {
  if (i >= argc) fail(std::string("missing argument ") + name);
  bool is = false;
  napi_is_typedarray(env, argv[i], &is);
  if (!is) fail(std::string(name) + " must be an Int32Array");
  napi_typedarray_type type;
  void* data = nullptr;
  napi_get_typedarray_info(env, argv[i], &type, len, &data, nullptr, nullptr);
  if (type != napi_int32_array) fail(std::string(name) + " must be an Int32Array");
  return static_cast<int32_t*>(data);
}

double Args::num(size_t i, const char* name) const {
  if (i >= argc) fail(std::string("missing argument ") + name);
  double v = 0;
  if (napi_get_value_double(env, argv[i], &v) != napi_ok) fail(std::string(name) + " must be a number");
  return v;
}

int64_t Args::integer(size_t i, const char* name) const {
  double v = num(i, name);
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9.0e15)
    fail(std::string(name) + " must be an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

int64_t Args::dim(size_t i, const char* name, int64_t minV) const {
  int64_t v = integer(i, name);
  if (v < minV) fail(std::string(name) + " must be >= " + std::to_string(minV) + ", got " + std::to_string(v));
  if (v > (int64_t(1) << 40)) fail(std::string(name) + " is too large: " + std::to_string(v));
  return v;
}

int64_t Args::dimField(size_t i, const char* field, int64_t minV) const {
  if (i >= argc) fail(std::string("missing argument geometry (for ") + field + ")");
  napi_valuetype t;
  if (napi_typeof(env, argv[i], &t) != napi_ok || t != napi_object) fail("geometry must be an object");
  napi_value v;
  double d = 0;
  if (napi_get_named_property(env, argv[i], field, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok)
    fail(std::string("geometry.") + field + " must be a number");
  if (!std::isfinite(d) || d != std::floor(d) || d < double(minV) || d > double(int64_t(1) << 40))
    fail(std::string("geometry.") + field + " must be an integer >= " + std::to_string(minV) + ", got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

bool Args::boolean(size_t i, const char* name) const {
  if (i >= argc) fail(std::string("missing argument ") + name);
  bool v = false;
  if (napi_get_value_bool(env, argv[i], &v) != napi_ok) fail(std::string(name) + " must be a boolean");
  return v;
}

std::string Args::str(size_t i, const char* name) const {
  if (i >= argc) fail(std::string("missing argument ") + name);
  char buf[64];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[i], buf, sizeof(buf), &len) != napi_ok)
    fail(std::string(name) + " must be a string");
  return std::string(buf, len);
}

std::vector<int64_t> Args::ints(size_t i, const char* name, bool* isNull) const {
  std::vector<int64_t> out;
  if (isNull) *isNull = false;
  if (isNullish(i)) {
    if (isNull) {
      *isNull = true;
      return out;
    }
    fail(std::string("missing argument ") + name);
  }
  bool isArr = false;
  napi_is_array(env, argv[i], &isArr);
  if (!isArr) fail(std::string(name) + " must be an array of integers");
  uint32_t len = 0;
  napi_get_array_length(env, argv[i], &len);
  if (len > 16) fail(std::string(name) + " has " + std::to_string(len) + " entries, at most 16 supported");
  out.resize(len);
  for (uint32_t j = 0; j < len; j++) {
    napi_value e;
    double v = 0;
    if (napi_get_element(env, argv[i], j, &e) != napi_ok || napi_get_value_double(env, e, &v) != napi_ok ||
        !std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9.0e15)
      fail(std::string(name) + "[" + std::to_string(j) + "] must be an integer");
    out[j] = static_cast<int64_t>(v);
  }
  return out;
}

int64_t checkedProd(const Args& a, std::initializer_list<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0) a.fail("negative dimension");
    if (d != 0 && p > (int64_t(1) << 46) / d) a.fail("tensor too large");
    p *= d;
  }
  return p;
}

// ---- scratch pool ----------------------------------------------------------------------

namespace {
struct Slot {
  float* p = nullptr;
  size_t cap = 0;
  ~Slot() { std::free(p); }
};
thread_local Slot tSlots[kSlotCount];
}  // namespace

float* scratch(int slot, size_t nFloats) {
  Slot& s = tSlots[slot];
  if (nFloats <= s.cap && s.p) return s.p;
  std::free(s.p);
  size_t bytes = ((nFloats * sizeof(float) + 4095) / 4096) * 4096;
  if (bytes == 0) bytes = 4096;
  s.p = static_cast<float*>(std::aligned_alloc(4096, bytes));
  if (!s.p) {
    s.cap = 0;
    throw ArgError{"ldm native: out of memory allocating a scratch buffer of " + std::to_string(bytes) + " bytes"};
  }
  s.cap = bytes / sizeof(float);
  return s.p;
}

int numThreads() { return omp_get_max_threads(); }

// ---- precision ---------------------------------------------------------------------------

namespace {
bool gBf16 = false, gBf16Emulated = false;
}  // namespace

const char* bf16Isa() {
  const unsigned isa = unsigned(dnnl_get_effective_cpu_isa());
  if ((isa & unsigned(dnnl_cpu_isa_avx512_core_amx)) == unsigned(dnnl_cpu_isa_avx512_core_amx)) return "amx";
  if ((isa & unsigned(dnnl_cpu_isa_avx512_core_bf16)) == unsigned(dnnl_cpu_isa_avx512_core_bf16)) return "avx512_bf16";
  return "";
}

bool precisionBf16() { return gBf16; }
bool precisionBf16Emulated() { return gBf16Emulated; }

const float* roundedToBf16(const float* src, int64_t n, int slot) {
  float* dst = scratch(slot, size_t(n));
  const uint32_t* s = reinterpret_cast<const uint32_t*>(src);
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    const uint32_t u = s[i];
    // NaN stays a (quiet) NaN; everything else rounds to nearest, ties to even (infinities and
    // values past the largest bf16 round to infinity, as in oneDNN's conversion)
    d[i] = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) & 0xffff0000u
                                           : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  }
  return dst;
}

// ---- info --------------------------------------------------------------------------------

namespace {

// Each thread runs independent FMA chains (enough to cover latency x pipes) on registers.
// Distinct starting values keep the 12 chains distinct: with equal ones the compiler merges
// them into one chain and the "peak" comes out wrong.
volatile float gSeed = 1.f;

__attribute__((target("avx512f"))) double fmaLoop512(long iters) {
  const float sd = gSeed;
  __m512 a = _mm512_set1_ps(0.999999f * sd), b = _mm512_set1_ps(1e-6f * sd);
  __m512 c0 = _mm512_set1_ps(sd), c1 = _mm512_set1_ps(sd + 1), c2 = _mm512_set1_ps(sd + 2), c3 = _mm512_set1_ps(sd + 3),
         c4 = _mm512_set1_ps(sd + 4), c5 = _mm512_set1_ps(sd + 5), c6 = _mm512_set1_ps(sd + 6), c7 = _mm512_set1_ps(sd + 7),
         c8 = _mm512_set1_ps(sd + 8), c9 = _mm512_set1_ps(sd + 9), c10 = _mm512_set1_ps(sd + 10), c11 = _mm512_set1_ps(sd + 11);
  for (long i = 0; i < iters; i++) {
    c0 = _mm512_fmadd_ps(c0, a, b); c1 = _mm512_fmadd_ps(c1, a, b); c2 = _mm512_fmadd_ps(c2, a, b);
    c3 = _mm512_fmadd_ps(c3, a, b); c4 = _mm512_fmadd_ps(c4, a, b); c5 = _mm512_fmadd_ps(c5, a, b);
    c6 = _mm512_fmadd_ps(c6, a, b); c7 = _mm512_fmadd_ps(c7, a, b); c8 = _mm512_fmadd_ps(c8, a, b);
    c9 = _mm512_fmadd_ps(c9, a, b); c10 = _mm512_fmadd_ps(c10, a, b); c11 = _mm512_fmadd_ps(c11, a, b);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  float t[16];
  _mm512_storeu_ps(t, s);
  return double(t[0] + t[15]) + double(iters) * 12 * 16 * 2;  // flops, plus a use of s
}

__attribute__((target("avx2,fma"))) double fmaLoop256(long iters) {
  const float sd = gSeed;
  __m256 a = _mm256_set1_ps(0.999999f * sd), b = _mm256_set1_ps(1e-6f * sd);
  __m256 c0 = _mm256_set1_ps(sd), c1 = _mm256_set1_ps(sd + 1), c2 = _mm256_set1_ps(sd + 2), c3 = _mm256_set1_ps(sd + 3),
         c4 = _mm256_set1_ps(sd + 4), c5 = _mm256_set1_ps(sd + 5), c6 = _mm256_set1_ps(sd + 6), c7 = _mm256_set1_ps(sd + 7),
         c8 = _mm256_set1_ps(sd + 8), c9 = _mm256_set1_ps(sd + 9), c10 = _mm256_set1_ps(sd + 10), c11 = _mm256_set1_ps(sd + 11);
  for (long i = 0; i < iters; i++) {
    c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b); c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b); c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b); c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b); c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                           _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  float t[8];
  _mm256_storeu_ps(t, s);
  return (t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]) + double(iters) * 12 * 8 * 2;
}

/** Best of six ~15 ms runs of the FMA loop on all OpenMP threads, in GFLOP/s (about 0.1 s). */
double measurePeak() {
  const bool wide = cpuHasAvx512();
  const long iters = 8000000;
  double best = 0;
  for (int rep = 0; rep < 6; rep++) {
    double flops = 0;
    double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : flops)
    {
      double r = wide ? fmaLoop512(iters) : fmaLoop256(iters);
      flops += std::floor(r / 1e6) * 1e6;  // drop the checksum part
    }
    double dt = omp_get_wtime() - t0;
    if (dt > 0) best = std::max(best, flops / dt / 1e9);
  }
  return best;
}

napi_value infoImpl(Args& a) {
  napi_value obj, v;
  napi_create_object(a.env, &obj);
  napi_create_int32(a.env, numThreads(), &v);
  napi_set_named_property(a.env, obj, "threads", v);
  const dnnl_version_t* ver = dnnl_version();
  std::string vs = std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." + std::to_string(ver->patch);
  napi_create_string_utf8(a.env, vs.c_str(), vs.size(), &v);
  napi_set_named_property(a.env, obj, "onednnVersion", v);
  const char* isa = cpuHasAvx512() ? "avx512" : "avx2";
  napi_create_string_utf8(a.env, isa, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(a.env, obj, "isa", v);
  napi_create_int32(a.env, cpuFullWidthAvx512() ? 512 : 256, &v);
  napi_set_named_property(a.env, obj, "fmaBits", v);
  napi_create_string_utf8(a.env, bf16Isa(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(a.env, obj, "bf16", v);
  return obj;
}

// precision(mode): "fp32", "bf16" or "bf16-emulated" sets the convolutions' precision, "" only
// reads; returns the precision in effect: "bf16" only where bf16Isa() is not empty (else it stays
// "fp32"), "bf16-emulated" anywhere.
napi_value precisionImpl(Args& a) {
  const std::string m = a.str(0, "mode");
  if (m == "bf16") gBf16 = bf16Isa()[0] != 0, gBf16Emulated = false;
  else if (m == "bf16-emulated") gBf16 = gBf16Emulated = true;
  else if (m == "fp32") gBf16 = gBf16Emulated = false;
  else if (!m.empty()) a.fail("mode must be 'fp32', 'bf16', 'bf16-emulated' or '' (read), got '" + m + "'");
  napi_value v;
  const char* r = gBf16Emulated ? "bf16-emulated" : gBf16 ? "bf16" : "fp32";
  napi_create_string_utf8(a.env, r, NAPI_AUTO_LENGTH, &v);
  return v;
}

napi_value peakImpl(Args& a) {
  napi_value v;
  napi_create_double(a.env, measurePeak(), &v);
  return v;
}

std::vector<KernelDef>& registry() {
  static std::vector<KernelDef> r;
  return r;
}

/** The asynchronous signals (all but the fault signals, which V8's WebAssembly trap handler and
 *  crash reporting need at once). */
sigset_t asyncSignals() {
  sigset_t s;
  sigfillset(&s);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT}) sigdelset(&s, sig);
  return s;
}

/** Holds asynchronous signals back while a kernel runs; they are delivered when it returns.
 *  Why: a handler running on a thread inside oneDNN's JIT gemm (dnnl_sgemm) corrupts the heap
 *  (measured: `node --cpu-prof`, whose SIGPROF samples the main thread, aborted with "corrupted
 *  size vs. prev_size" within 200 matmuls, every run; Ctrl-C's SIGINT or a child's SIGCHLD would
 *  land the same way). The OpenMP workers block them for good (Init). */
struct AsyncSignalsHeld {
  sigset_t old;
  AsyncSignalsHeld() {
    static const sigset_t all = asyncSignals();
    pthread_sigmask(SIG_BLOCK, &all, &old);
  }
  ~AsyncSignalsHeld() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

napi_value dispatch(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  const KernelDef* def = static_cast<const KernelDef*>(data);
  AsyncSignalsHeld held;
  try {
    Args a(env, info, def->name);
    if (def->vfn) return def->vfn(a);
    def->fn(a);
  } catch (const ArgError& e) {
    napi_throw_error(env, "LDM_NATIVE_ARG", e.msg.c_str());
  } catch (const std::exception& e) {
    std::string m = std::string("ldm native ") + def->name + ": " + e.what();
    napi_throw_error(env, "LDM_NATIVE", m.c_str());
  } catch (...) {
    std::string m = std::string("ldm native ") + def->name + ": unknown C++ exception";
    napi_throw_error(env, "LDM_NATIVE", m.c_str());
  }
  return nullptr;
}

}  // namespace

}  // namespace ldm

/** Keeps freed tensor buffers in glibc's heap for reuse instead of returning them to the kernel:
 *  Node allocates every Float32Array with calloc, and above glibc's default 128 KiB threshold
 *  each one is a fresh mmap whose pages fault in on first touch (0.2-0.8 ms per large buffer)
 *  and are unmapped again on free. With the threshold at glibc's maximum (32 MiB on 64-bit)
 *  and no trimming, a training step reuses the previous step's memory (the peak RSS stays
 *  mapped). The same setting as the tuned PyTorch anchor (MALLOC_MMAP_THRESHOLD_ /
 *  MALLOC_TRIM_THRESHOLD_); LDM_MALLOC_TUNE=0 leaves glibc's defaults. */
static void tuneMalloc() {
  const char* e = std::getenv("LDM_MALLOC_TUNE");
  if (e && std::strcmp(e, "0") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

static napi_value Init(napi_env env, napi_value exports) {
  using namespace ldm;
  static bool tuned = false;
  if (!tuned) {
    tuneMalloc();
    // The OpenMP pool starts here with the asynchronous signals blocked, and its threads keep
    // that mask: process-directed signals then always go to the main thread, never to a worker
    // inside a kernel (see AsyncSignalsHeld).
    AsyncSignalsHeld held;
#pragma omp parallel
    { (void)omp_get_thread_num(); }
    tuned = true;
  }
  std::vector<KernelDef>& r = registry();
  if (r.empty()) {
    r.push_back({"info", nullptr, infoImpl});
    r.push_back({"peakGflops", nullptr, peakImpl});
    r.push_back({"precision", nullptr, precisionImpl});
    registerConv(r);
    registerMatmul(r);
    registerAttention(r);
    registerNorm(r);
    registerElementwise(r);
    registerMovement(r);
  }
  for (const KernelDef& d : r) {
    napi_value fn;
    napi_create_function(env, d.name, NAPI_AUTO_LENGTH, dispatch, const_cast<KernelDef*>(&d), &fn);
    napi_set_named_property(env, exports, d.name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
