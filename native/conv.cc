// 2-D convolution kernels (conv2d, conv2dBackwardInput, conv2dBackwardWeight) over oneDNN
// primitives. The API is NCHW data / OIHW weights (PyTorch semantics, asymmetric padding
// [top, bottom, left, right] mapped to oneDNN padding_l / padding_r); inside, each primitive
// runs in the layout oneDNN picks (format_tag::any, blocked nChw16c on AVX-512) and user
// buffers are reordered in and out through the thread's scratch pool. Primitives and their
// reorders are cached per geometry in a small LRU map.
// Not here: grouped or dilated convolution (groups is always 1 in the seeds' networks).
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
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
  memory userMem, primMem;
};

struct Entry {
  dnnl::primitive prim;
  Port src, wei, dst;  // for bwd data: src = diff_src (out), dst = diff_dst (in)
  bool hasBias = false;
  memory biasMem;
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

void initPort(Port& p, const memory::desc& user, const memory::desc& prim, bool input, int slot) {
  dnnl::engine& eng = cpuEngine();
  p.user = user;
  p.prim = prim;
  p.reorder = !(user == prim);
  p.userMem = memory(user, eng, DNNL_MEMORY_NONE);
  if (p.reorder) {
    p.primMem = memory(prim, eng, DNNL_MEMORY_NONE);
    p.r = input ? dnnl::reorder(p.userMem, p.primMem) : dnnl::reorder(p.primMem, p.userMem);
  } else {
    p.primMem = p.userMem;
  }
  (void)slot;
}

/** Point the port at the user's buffer (and at scratch when reordering); run the input
 *  reorder when this is an input. */
void bindPort(Port& p, float* userPtr, int slot, bool input, dnnl::stream& s) {
  p.userMem.set_data_handle(userPtr);
  if (!p.reorder) return;
  size_t bytes = p.prim.get_size();
  p.primMem.set_data_handle(scratch(slot, bytes / sizeof(float) + 16));
  if (input) p.r.execute(s, p.userMem, p.primMem);
}

void finishPort(Port& p, dnnl::stream& s) {
  if (p.reorder) p.r.execute(s, p.primMem, p.userMem);
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
  e->hasBias = hasBias;
  auto fwdDesc = hasBias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, xAny, wAny, bMd,
                                                           yAny, strides, padL, padR)
                         : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, xAny, wAny, yAny,
                                                           strides, padL, padR);
  dnnl::convolution_forward::primitive_desc fwdPd(fwdDesc, eng);
  if (dir == kFwd) {
    e->prim = dnnl::convolution_forward(fwdPd);
    initPort(e->src, xUser, fwdPd.src_desc(), true, kSlotConvSrc);
    initPort(e->wei, wUser, fwdPd.weights_desc(), true, kSlotConvWei);
    initPort(e->dst, yUser, fwdPd.dst_desc(), false, kSlotConvDst);
  } else if (dir == kBwdData) {
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, xAny, wAny, yAny, strides, padL,
                                            padR);
    dnnl::convolution_backward_data::primitive_desc pd(d, eng, fwdPd);
    e->prim = dnnl::convolution_backward_data(pd);
    initPort(e->src, xUser, pd.diff_src_desc(), false, kSlotConvSrc);
    initPort(e->wei, wUser, pd.weights_desc(), true, kSlotConvWei);
    initPort(e->dst, yUser, pd.diff_dst_desc(), true, kSlotConvDst);
  } else {
    auto d = hasBias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xAny, wAny,
                                                                 bMd, yAny, strides, padL, padR)
                     : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xAny, wAny,
                                                                 yAny, strides, padL, padR);
    dnnl::convolution_backward_weights::primitive_desc pd(d, eng, fwdPd);
    e->prim = dnnl::convolution_backward_weights(pd);
    initPort(e->src, xUser, pd.src_desc(), true, kSlotConvSrc);
    initPort(e->wei, wUser, pd.diff_weights_desc(), false, kSlotConvWei);
    initPort(e->dst, yUser, pd.diff_dst_desc(), true, kSlotConvDst);
  }
  if (hasBias) e->biasMem = memory(bMd, eng, DNNL_MEMORY_NONE);
  e->tick = ++tTick;
  Entry& ref = *e;
  tCache.emplace(key, std::move(e));
  return ref;
}

// conv2d(x, w, bias|null, out, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
void conv2d(Args& a) {
  Geom g = readGeom(a, 4);
  F32 x = a.f32Len(0, "x", checkedProd(a, {g.n, g.cin, g.h, g.w}), "n*cin*h*w");
  F32 w = a.f32Len(1, "w", checkedProd(a, {g.cout, g.cin, g.kh, g.kw}), "cout*cin*kh*kw");
  F32 b = a.f32LenOrNull(2, "bias", g.cout, "cout");
  F32 y = a.f32Len(3, "out", checkedProd(a, {g.n, g.cout, g.oh, g.ow}), "n*cout*oh*ow");
  if (g.n == 0) return;
  Entry& e = lookup(kFwd, g, b.p != nullptr);
  dnnl::stream& s = cpuStream();
  bindPort(e.src, x.p, kSlotConvSrc, true, s);
  bindPort(e.wei, w.p, kSlotConvWei, true, s);
  bindPort(e.dst, y.p, kSlotConvDst, false, s);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, e.src.primMem}, {DNNL_ARG_WEIGHTS, e.wei.primMem}, {DNNL_ARG_DST, e.dst.primMem}};
  if (b.p) {
    e.biasMem.set_data_handle(b.p);
    args[DNNL_ARG_BIAS] = e.biasMem;
  }
  e.prim.execute(s, args);
  finishPort(e.dst, s);
  s.wait();
}

// conv2dBackwardInput(gy, w, gx, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
void conv2dBackwardInput(Args& a) {
  Geom g = readGeom(a, 3);
  F32 gy = a.f32Len(0, "gy", checkedProd(a, {g.n, g.cout, g.oh, g.ow}), "n*cout*oh*ow");
  F32 w = a.f32Len(1, "w", checkedProd(a, {g.cout, g.cin, g.kh, g.kw}), "cout*cin*kh*kw");
  F32 gx = a.f32Len(2, "gx", checkedProd(a, {g.n, g.cin, g.h, g.w}), "n*cin*h*w");
  if (g.n == 0) return;
  Entry& e = lookup(kBwdData, g, false);
  dnnl::stream& s = cpuStream();
  bindPort(e.dst, gy.p, kSlotConvDst, true, s);
  bindPort(e.wei, w.p, kSlotConvWei, true, s);
  bindPort(e.src, gx.p, kSlotConvSrc, false, s);
  e.prim.execute(s, {{DNNL_ARG_DIFF_DST, e.dst.primMem},
                     {DNNL_ARG_WEIGHTS, e.wei.primMem},
                     {DNNL_ARG_DIFF_SRC, e.src.primMem}});
  finishPort(e.src, s);
  s.wait();
}

// conv2dBackwardWeight(gy, x, gw, gb|null, n, cin, h, w, cout, kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
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
  Entry& e = lookup(kBwdWeights, g, gb.p != nullptr);
  dnnl::stream& s = cpuStream();
  bindPort(e.dst, gy.p, kSlotConvDst, true, s);
  bindPort(e.src, x.p, kSlotConvSrc, true, s);
  bindPort(e.wei, gw.p, kSlotConvWei, false, s);
  std::unordered_map<int, memory> args = {{DNNL_ARG_DIFF_DST, e.dst.primMem},
                                          {DNNL_ARG_SRC, e.src.primMem},
                                          {DNNL_ARG_DIFF_WEIGHTS, e.wei.primMem}};
  if (gb.p) {
    e.biasMem.set_data_handle(gb.p);
    args[DNNL_ARG_DIFF_BIAS] = e.biasMem;
  }
  e.prim.execute(s, args);
  finishPort(e.wei, s);
  s.wait();
}

}  // namespace

void registerConv(std::vector<KernelDef>& r) {
  r.push_back({"conv2d", conv2d, nullptr});
  r.push_back({"conv2dBackwardInput", conv2dBackwardInput, nullptr});
  r.push_back({"conv2dBackwardWeight", conv2dBackwardWeight, nullptr});
}

}  // namespace ldm
