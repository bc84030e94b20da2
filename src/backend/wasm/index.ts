// The `wasm` backend: WebAssembly SIMD kernels (native/wasm/kernels.c, embedded in module.ts) for
// matmul and the three convolution passes, the compute-bound kernels of a UNet. It runs wherever
// WebAssembly SIMD does (Node 20, every current browser) and is the fast backend of the page.
// Like the native backend it is partial: dispatch lays it over the reference kernels, so every
// other kernel is the reference one. It computes what the reference computes, in float32 sums
// (the reference sums in float64), so results agree to float32 rounding, not bit for bit.
// Buffers are copied into the module's linear memory for each call (O(size) against the
// O(size * K) of the compute) and the results copied back.

import type { Conv2dGeom, PartialKernels } from '../types.ts';
import { WASM_KERNELS_BASE64 } from './module.ts';

interface WasmExports {
  __heap_base: WebAssembly.Global;
  matmul(a: number, b: number, out: number, batch: number, m: number, k: number, n: number, transA: number, transB: number,
    aBatchStride: number, bBatchStride: number, acc: number, scratch: number): void;
  conv2d(x: number, w: number, bias: number, g: number, out: number, col: number, scratch: number): void;
  conv2d_backward_input(gy: number, w: number, g: number, gx: number, col: number, scratch: number): void;
  conv2d_backward_weight(gy: number, x: number, g: number, gw: number, gb: number, col: number, scratch: number): void;
}

const PAGE = 65536;
let compiled: WebAssembly.Module | null = null;
let instance: { exports: WasmExports; memory: WebAssembly.Memory } | null = null;
let kernels: PartialKernels | null = null;

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const s = atob(WASM_KERNELS_BASE64);
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

function instantiate(mod: WebAssembly.Module): void {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const inst = new WebAssembly.Instance(mod, { env: { memory } });
  // WebAssembly types exports as an untyped record; this is our own module, whose exports are WasmExports.
  instance = { exports: inst.exports as unknown as WasmExports, memory };
}

/** Whether this JavaScript engine validates the SIMD module (WebAssembly SIMD support). */
export function wasmSupported(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(moduleBytes());
  } catch {
    return false;
  }
}

/** Compile asynchronously (browsers limit synchronous compilation on the main thread). */
export async function initWasm(): Promise<void> {
  if (instance) return;
  compiled ??= await WebAssembly.compile(moduleBytes());
  instantiate(compiled);
}

/** A bump layout of one kernel call in linear memory (16-byte aligned blocks). */
class Layout {
  private top: number;
  constructor(base: number) { this.top = (base + 15) & ~15; }
  take(floats: number): number {
    const p = this.top;
    this.top = (this.top + floats * 4 + 15) & ~15;
    return p;
  }
  get end(): number { return this.top; }
}

function memoryFor(layout: Layout): Float32Array {
  const mem = instance!.memory;
  const need = layout.end - mem.buffer.byteLength;
  if (need > 0) mem.grow(Math.ceil(need / PAGE));
  return new Float32Array(mem.buffer);
}

const base = (): number => instance!.exports.__heap_base.value as number;
const up = (v: number, m: number): number => Math.ceil(v / m) * m;
const gemmScratch = (m: number, n: number, k: number): number => (up(m, 4) + up(n, 8)) * Math.max(k, 1);

function writeGeom(mem: Float32Array, ptr: number, g: Conv2dGeom): void {
  const i32 = new Int32Array(mem.buffer, ptr, 15);
  i32.set([g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.strideH, g.strideW, g.padT, g.padB, g.padL, g.padR, g.oh, g.ow]);
}

const isDirect = (g: Conv2dGeom): boolean =>
  g.kh === 1 && g.kw === 1 && g.strideH === 1 && g.strideW === 1 && g.padT === 0 && g.padB === 0 && g.padL === 0 && g.padR === 0;

function build(): PartialKernels {
  const ex = instance!.exports;
  return {
    name: 'wasm',
    matmul(a, b, out, batch, m, k, n, transA, transB, aBatchStride, bBatchStride, accumulate): void {
      const L = new Layout(base());
      const pa = L.take(a.length), pb = L.take(b.length), pc = L.take(out.length), ps = L.take(gemmScratch(m, n, k));
      const mem = memoryFor(L);
      mem.set(a, pa / 4);
      mem.set(b, pb / 4);
      if (accumulate) mem.set(out, pc / 4);
      ex.matmul(pa, pb, pc, batch, m, k, n, transA ? 1 : 0, transB ? 1 : 0, aBatchStride, bBatchStride, accumulate ? 1 : 0, ps);
      out.set(mem.subarray(pc / 4, pc / 4 + out.length));
    },
    conv2d(x, w, bias, g, out): void {
      const K = g.cin * g.kh * g.kw, P = g.oh * g.ow;
      const L = new Layout(base());
      const pg = L.take(16), px = L.take(x.length), pw = L.take(w.length), pbias = bias ? L.take(bias.length) : 0;
      const po = L.take(out.length), pcol = L.take(isDirect(g) ? 0 : K * P), ps = L.take(gemmScratch(g.cout, P, K));
      const mem = memoryFor(L);
      writeGeom(mem, pg, g);
      mem.set(x, px / 4);
      mem.set(w, pw / 4);
      if (bias) mem.set(bias, pbias / 4);
      ex.conv2d(px, pw, pbias, pg, po, pcol, ps);
      out.set(mem.subarray(po / 4, po / 4 + out.length));
    },
    conv2dBackwardInput(gy, w, g, gx): void {
      const K = g.cin * g.kh * g.kw, P = g.oh * g.ow;
      const L = new Layout(base());
      const pg = L.take(16), pgy = L.take(gy.length), pw = L.take(w.length), pgx = L.take(gx.length);
      const pcol = L.take(isDirect(g) ? 0 : K * P), ps = L.take(gemmScratch(K, P, g.cout));
      const mem = memoryFor(L);
      writeGeom(mem, pg, g);
      mem.set(gy, pgy / 4);
      mem.set(w, pw / 4);
      ex.conv2d_backward_input(pgy, pw, pg, pgx, pcol, ps);
      gx.set(mem.subarray(pgx / 4, pgx / 4 + gx.length));
    },
    conv2dBackwardWeight(gy, x, g, gw, gb): void {
      const K = g.cin * g.kh * g.kw, P = g.oh * g.ow;
      const L = new Layout(base());
      const pg = L.take(16), pgy = L.take(gy.length), px = L.take(x.length), pgw = L.take(gw.length), pgb = gb ? L.take(gb.length) : 0;
      const pcol = L.take(isDirect(g) ? 0 : K * P), ps = L.take(gemmScratch(g.cout, K, P));
      const mem = memoryFor(L);
      writeGeom(mem, pg, g);
      mem.set(gy, pgy / 4);
      mem.set(x, px / 4);
      ex.conv2d_backward_weight(pgy, px, pg, pgw, pgb, pcol, ps);
      gw.set(mem.subarray(pgw / 4, pgw / 4 + gw.length));
      if (gb) gb.set(mem.subarray(pgb / 4, pgb / 4 + gb.length));
    },
  };
}

/** The wasm kernels, compiling synchronously if initWasm() has not run (fine in Node and in
 *  workers); null when this engine has no WebAssembly SIMD. */
export function loadWasm(): PartialKernels | null {
  if (kernels) return kernels;
  if (!instance) {
    try {
      compiled ??= new WebAssembly.Module(moduleBytes());
      instantiate(compiled);
    } catch {
      return null;
    }
  }
  kernels = build();
  return kernels;
}
