// 2-D convolution kernels (conv2d, conv2dBackwardInput, conv2dBackwardWeight) over oneDNN
// primitives. The API is NCHW data / OIHW weights (PyTorch semantics, asymmetric padding
// [top, bottom, left, right] mapped to oneDNN padding_l / padding_r); inside, each primitive
// runs in the layout oneDNN picks (format_tag::any, blocked nChw16c on AVX-512; LDM_CONV_LAYOUT=nhwc
// forces NHWC) and user buffers are reordered in and out through the thread's scratch pool.
// Primitives and their reorders are cached per geometry in a small LRU map. Optionally the
// batch runs in equal chunks so that the reorders stay in cache (see chunkBudget).
// Not here: grouped or dilated convolution (groups is always 1 in the seeds' networks).
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_map>
#include <memory>

#include "common.h"

namespace ldm {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpuEngine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& cpuStream() {
  thread_local dnnl::stream s(cpuEngine());
  return s;
}

namespace {

enum Dir { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

struct Geom {
  int64_t n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow;
};

/** One tensor of a primitive: the user's plain layout, the primitive's layout, and the
 *  reorder between them when they differ. */
struct Port {
  memory::desc user, prim;
  bool reorder = false;
  dnnl::reorder r;
};

struct Entry {
  dnnl::primitive prim;
  Port src, wei, dst;  // for bwd data: src = diff_src (out), dst = diff_dst (in)
  uint64_t tick = 0;
};

using Key = std::array<int64_t, 17>;

thread_local std::map<Key, std::unique_ptr<Entry>> tCache;
thread_local uint64_t tTick = 0;
constexpr size_t kCacheCap = 48;

tag layoutChoice() {
  static tag t = [] {
    const char* e = std::getenv("LDM_CONV_LAYOUT");
    if (e && std::strcmp(e, "nhwc") == 0) return tag::nhwc;
    return tag::any;
  }();
  return t;
}

/** Images per primitive call: the batch is processed in chunks whose (reordered) input and
 *  output fit in about this many bytes, so reorders and the convolution meet in cache. */
// Off by default: each chunk adds parallel regions, and on a machine shared with other
// processes every region can wait a scheduler slice for a descheduled thread (measured here
// under load: 8 chunks made W1 5x slower, while on a quieter machine chunks of 2 images were
// up to 10-20% faster). LDM_CONV_CHUNK_KB or setConvChunkKB() turn it on.
int64_t gChunkBudget = -1;  // bytes; -1: not read yet (LDM_CONV_CHUNK_KB, default 0 = off)

int64_t chunkBudget() {
  if (gChunkBudget < 0) {
    const char* e = std::getenv("LDM_CONV_CHUNK_KB");
    gChunkBudget = e ? int64_t(std::atoll(e)) * 1024 : 0;
  }
  return gChunkBudget;
}

int64_t chunkImages(const Geom& g) {
  int64_t budget = chunkBudget();
  if (budget <= 0) return g.n;
  int64_t per = (g.cin * g.h * g.w + g.cout * g.oh * g.ow) * int64_t(sizeof(float));
  int64_t nb = budget / (per > 0 ? per : 1);
  if (nb < 1) nb = 1;
  if (nb > g.n) nb = g.n;
  // equal chunks (one primitive, one weight layout): the largest divisor of n that fits
  while (g.n % nb != 0) nb--;
  return nb;
}

void initPort(Port& p, const memory::desc& user, const memory::desc& prim, bool input) {
  dnnl::engine& eng = cpuEngine();
  p.user = user;
  p.prim = prim;
  p.reorder = !(user == prim);
  if (p.reorder) {
    memory u(user, eng, DNNL_MEMORY_NONE), q(prim, eng, DNNL_MEMORY_NONE);
    p.r = input ? dnnl::reorder(u, q) : dnnl::reorder(q, u);
  }
}

/** The memory the primitive sees for this port: the user's buffer, or a scratch buffer (filled
 *  by the reorder when this is an input). */
memory bindIn(Port& p, float* userPtr, int slot, dnnl::stream& s) {
  dnnl::engine& eng = cpuEngine();
  if (!p.reorder) return memory(p.user, eng, userPtr);
  memory u(p.user, eng, userPtr);
  memory q(p.prim, eng, scratch(slot, p.prim.get_size() / sizeof(float) + 16));
  p.r.execute(s, u, q);
  return q;
}

memory bindOut(Port& p, float* userPtr, int slot) {
  dnnl::engine& eng = cpuEngine();
  if (!p.reorder) return memory(p.user, eng, userPtr);
  return memory(p.prim, eng, scratch(slot, p.prim.get_size() / sizeof(float) + 16));
}

void finishOut(Port& p, memory& primMem, float* userPtr, dnnl::stream& s) {
  if (!p.reorder) return;
  memory u(p.user, cpuEngine(), userPtr);
  p.r.execute(s, primMem, u);
}

Geom readGeom(Args& a, size_t i0) {
  Geom g;
  g.n = a.dim(i0 + 0, "n");
  g.cin = a.dim(i0 + 1, "cin", 1);
  g.h = a.dim(i0 + 2, "h", 1);
  g.w = a.dim(i0 + 3, "w", 1);
  g.cout = a.dim(i0 + 4, "cout", 1);
  g.kh = a.dim(i0 + 5, "kh", 1);
  g.kw = a.dim(i0 + 6, "kw", 1);
  g.sh = a.dim(i0 + 7, "strideH", 1);
  g.sw = a.dim(i0 + 8, "strideW", 1);
  g.pt = a.dim(i0 + 9, "padT");
  g.pb = a.dim(i0 + 10, "padB");
  g.pl = a.dim(i0 + 11, "padL");
  g.pr = a.dim(i0 + 12, "padR");
  g.oh = a.dim(i0 + 13, "oh", 1);
  g.ow = a.dim(i0 + 14, "ow", 1);
  int64_t eh = g.h + g.pt + g.pb - g.kh, ew = g.w + g.pl + g.pr - g.kw;
  if (eh < 0 || ew < 0) a.fail("kernel larger than the padded input");
  if (eh / g.sh + 1 != g.oh || ew / g.sw + 1 != g.ow)
    a.fail("oh/ow " + std::to_string(g.oh) + "x" + std::to_string(g.ow) + " do not match the geometry, expected " +
           std::to_string(eh / g.sh + 1) + "x" + std::to_string(ew / g.sw + 1));
  return g;
}

Entry& lookup(Dir dir, const Geom& g, bool hasBias) {
  Key key = {dir, g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.sh, g.sw, g.pt, g.pb, g.pl, g.pr, g.oh, g.ow, hasBias};
  auto it = tCache.find(key);
  if (it != tCache.end()) {
    it->second->tick = ++tTick;
    return *it->second;
  }
  if (tCache.size() >= kCacheCap) {
    auto victim = tCache.begin();
    for (auto j = tCache.begin(); j != tCache.end(); ++j)
      if (j->second->tick < victim->second->tick) victim = j;
    tCache.erase(victim);
  }
  dnnl::engine& eng = cpuEngine();
  tag lt = layoutChoice();
  memory::desc xUser({g.n, g.cin, g.h, g.w}, dt::f32, tag::nchw);
  memory::desc wUser({g.cout, g.cin, g.kh, g.kw}, dt::f32, tag::oihw);
  memory::desc yUser({g.n, g.cout, g.oh, g.ow}, dt::f32, tag::nchw);
  memory::desc xAny({g.n, g.cin, g.h, g.w}, dt::f32, lt);
  memory::desc wAny({g.cout, g.cin, g.kh, g.kw}, dt::f32, tag::any);
  memory::desc yAny({g.n, g.cout, g.oh, g.ow}, dt::f32, lt);
  memory::desc bMd({g.cout}, dt::f32, tag::x);
  memory::dims strides = {g.sh, g.sw}, padL = {g.pt, g.pl}, padR = {g.pb, g.pr};
  auto e = std::make_unique<Entry>();
  auto fwdDesc = hasBias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, xAny, wAny, bMd,
                                                           yAny, strides, padL, padR)
                         : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, xAny, wAny, yAny,
                                                           strides, padL, padR);
  dnnl::convolution_forward::primitive_desc fwdPd(fwdDesc, eng);
  if (dir == kFwd) {
    e->prim = dnnl::convolution_forward(fwdPd);
    initPort(e->src, xUser, fwdPd.src_desc(), true);
    initPort(e->wei, wUser, fwdPd.weights_desc(), true);
    initPort(e->dst, yUser, fwdPd.dst_desc(), false);
  } else if (dir == kBwdData) {
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, xAny, wAny, yAny, strides, padL,
                                            padR);
    dnnl::convolution_backward_data::primitive_desc pd(d, eng, fwdPd);
    e->prim = dnnl::convolution_backward_data(pd);
    initPort(e->src, xUser, pd.diff_src_desc(), false);
    initPort(e->wei, wUser, pd.weights_desc(), true);
    initPort(e->dst, yUser, pd.diff_dst_desc(), true);
  } else {
    auto d = hasBias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xAny, wAny,
                                                                 bMd, yAny, strides, padL, padR)
                     : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xAny, wAny,
                                                                 yAny, strides, padL, padR);
    dnnl::convolution_backward_weights::primitive_desc pd(d, eng, fwdPd);
    e->prim = dnnl::convolution_backward_weights(pd);
    initPort(e->src, xUser, pd.src_desc(), true);
    initPort(e->wei, wUser, pd.diff_weights_desc(), false);
    initPort(e->dst, yUser, pd.diff_dst_desc(), true);
  }
  e->tick = ++tTick;
  Entry& ref = *e;
  tCache.emplace(key, std::move(e));
  return ref;
}

Geom withN(Geom g, int64_t n) {
  g.n = n;
  return g;
}

// conv2d(x, w, bias|null, out, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
void conv2d(Args& a) {
  Geom g = readGeom(a, 4);
  F32 x = a.f32Len(0, "x", checkedProd(a, {g.n, g.cin, g.h, g.w}), "n*cin*h*w");
  F32 w = a.f32Len(1, "w", checkedProd(a, {g.cout, g.cin, g.kh, g.kw}), "cout*cin*kh*kw");
  F32 b = a.f32LenOrNull(2, "bias", g.cout, "cout");
  F32 y = a.f32Len(3, "out", checkedProd(a, {g.n, g.cout, g.oh, g.ow}), "n*cout*oh*ow");
  if (g.n == 0) return;
  if (g.sh == 1 && g.sw == 1 &&
      convDirectS1(x.p, g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.pt, g.pl, g.oh, g.ow, b.p, y.p, w.p, false))
    return;
  dnnl::stream& s = cpuStream();
  const int64_t nb = chunkImages(g), xs = g.cin * g.h * g.w, ys = g.cout * g.oh * g.ow;
  memory wMem, bMem;
  for (int64_t i0 = 0; i0 < g.n; i0 += nb) {
    const int64_t cn = std::min(nb, g.n - i0);
    Entry& e = lookup(kFwd, withN(g, cn), b.p != nullptr);
    if (i0 == 0) {
      wMem = bindIn(e.wei, w.p, kSlotConvWei, s);
      if (b.p) bMem = memory(memory::desc({g.cout}, dt::f32, tag::x), cpuEngine(), b.p);
    }
    memory xm = bindIn(e.src, x.p + i0 * xs, kSlotConvSrc, s);
    memory ym = bindOut(e.dst, y.p + i0 * ys, kSlotConvDst);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wMem}, {DNNL_ARG_DST, ym}};
    if (b.p) args[DNNL_ARG_BIAS] = bMem;
    e.prim.execute(s, args);
    finishOut(e.dst, ym, y.p + i0 * ys, s);
  }
  s.wait();
}

// conv2dBackwardInput(gy, w, gx, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
void conv2dBackwardInput(Args& a) {
  Geom g = readGeom(a, 3);
  F32 gy = a.f32Len(0, "gy", checkedProd(a, {g.n, g.cout, g.oh, g.ow}), "n*cout*oh*ow");
  F32 w = a.f32Len(1, "w", checkedProd(a, {g.cout, g.cin, g.kh, g.kw}), "cout*cin*kh*kw");
  F32 gx = a.f32Len(2, "gx", checkedProd(a, {g.n, g.cin, g.h, g.w}), "n*cin*h*w");
  if (g.n == 0) return;
  // stride 1: gx = conv(gy, w transposed and flipped) with padding k-1-p
  if (g.sh == 1 && g.sw == 1 && g.pt < g.kh && g.pl < g.kw &&
      convDirectS1(gy.p, g.n, g.cout, g.oh, g.ow, g.cin, g.kh, g.kw, g.kh - 1 - g.pt, g.kw - 1 - g.pl, g.h, g.w,
                   nullptr, gx.p, w.p, true))
    return;
  dnnl::stream& s = cpuStream();
  const int64_t nb = chunkImages(g), xs = g.cin * g.h * g.w, ys = g.cout * g.oh * g.ow;
  memory wMem;
  for (int64_t i0 = 0; i0 < g.n; i0 += nb) {
    const int64_t cn = std::min(nb, g.n - i0);
    Entry& e = lookup(kBwdData, withN(g, cn), false);
    if (i0 == 0) wMem = bindIn(e.wei, w.p, kSlotConvWei, s);
    memory gym = bindIn(e.dst, gy.p + i0 * ys, kSlotConvDst, s);
    memory gxm = bindOut(e.src, gx.p + i0 * xs, kSlotConvSrc);
    e.prim.execute(s, {{DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_WEIGHTS, wMem}, {DNNL_ARG_DIFF_SRC, gxm}});
    finishOut(e.src, gxm, gx.p + i0 * xs, s);
  }
  s.wait();
}

void addInto(float* acc, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; i++) acc[i] += x[i];
}

// conv2dBackwardWeight(gy, x, gw, gb|null, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
// Chunks after the first write into temporaries that are added to the first chunk's result.
void conv2dBackwardWeight(Args& a) {
  Geom g = readGeom(a, 4);
  F32 gy = a.f32Len(0, "gy", checkedProd(a, {g.n, g.cout, g.oh, g.ow}), "n*cout*oh*ow");
  F32 x = a.f32Len(1, "x", checkedProd(a, {g.n, g.cin, g.h, g.w}), "n*cin*h*w");
  F32 gw = a.f32Len(2, "gw", checkedProd(a, {g.cout, g.cin, g.kh, g.kw}), "cout*cin*kh*kw");
  F32 gb = a.f32LenOrNull(3, "gb", g.cout, "cout");
  if (g.n == 0) {
    std::memset(gw.p, 0, gw.n * sizeof(float));
    if (gb.p) std::memset(gb.p, 0, gb.n * sizeof(float));
    return;
  }
  dnnl::stream& s = cpuStream();
  dnnl::engine& eng = cpuEngine();
  const int64_t nb = chunkImages(g), xs = g.cin * g.h * g.w, ys = g.cout * g.oh * g.ow;
  memory::desc bMd({g.cout}, dt::f32, tag::x);
  memory accW, tmpW, tmpB;
  Port* weiPort = nullptr;
  for (int64_t i0 = 0; i0 < g.n; i0 += nb) {
    const int64_t cn = std::min(nb, g.n - i0);
    Entry& e = lookup(kBwdWeights, withN(g, cn), gb.p != nullptr);
    memory xm = bindIn(e.src, x.p + i0 * xs, kSlotConvSrc, s);
    memory gym = bindIn(e.dst, gy.p + i0 * ys, kSlotConvDst, s);
    const bool first = i0 == 0;
    if (first) {
      weiPort = &e.wei;
      accW = bindOut(e.wei, gw.p, kSlotConvWei);
    } else if (!tmpW) {
      tmpW = memory(e.wei.prim, eng, scratch(kSlotConvWeiTmp, e.wei.prim.get_size() / sizeof(float) + 16));
      if (gb.p) tmpB = memory(bMd, eng, scratch(kSlotConvBiasTmp, size_t(g.cout)));
    }
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_DIFF_WEIGHTS, first ? accW : tmpW}};
    if (gb.p) args[DNNL_ARG_DIFF_BIAS] = first ? memory(bMd, eng, gb.p) : tmpB;
    e.prim.execute(s, args);
    if (!first) {
      s.wait();
      addInto(static_cast<float*>(accW.get_data_handle()), static_cast<float*>(tmpW.get_data_handle()),
              int64_t(e.wei.prim.get_size() / sizeof(float)));
      if (gb.p) addInto(gb.p, static_cast<float*>(tmpB.get_data_handle()), g.cout);
    }
  }
  finishOut(*weiPort, accW, gw.p, s);
  s.wait();
}

// convChunkKB(kb | -1): sets the chunk budget (0 = whole batch per call) and returns it in KiB;
// -1 only reads it. A tuning knob for benchmarks.
// convDirect(on: 1 | 0 | -1): turns the direct stride-1 AVX-512 kernels on or off (-1 only
// reads); returns whether they are in use. A tuning knob for benchmarks and tests.
napi_value convDirect(Args& a) {
  int64_t on = a.integer(0, "on");
  if (on >= 0) setConvDirect(on != 0);
  if (!a.isNullish(1)) setConvDirectCiBlockKB(a.integer(1, "ciBlockKB"));
  if (!a.isNullish(2)) setConvDirectTile3(a.integer(2, "tile3") != 0);
  napi_value r;
  napi_get_boolean(a.env, convDirectEnabled(), &r);
  return r;
}

napi_value convChunkKB(Args& a) {
  int64_t kb = a.integer(0, "kb");
  if (kb >= 0) gChunkBudget = kb * 1024;
  napi_value r;
  napi_create_int64(a.env, chunkBudget() / 1024, &r);
  return r;
}

}  // namespace

void registerConv(std::vector<KernelDef>& r) {
  r.push_back({"conv2d", conv2d, nullptr});
  r.push_back({"conv2dBackwardInput", conv2dBackwardInput, nullptr});
  r.push_back({"conv2dBackwardWeight", conv2dBackwardWeight, nullptr});
  r.push_back({"convChunkKB", nullptr, convChunkKB});
  r.push_back({"convDirect", nullptr, convDirect});
}

}  // namespace ldm
