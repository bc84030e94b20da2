// The WebAssembly SIMD kernels against the reference kernels on shapes that exercise every edge of
// the packed GEMM (M not a multiple of 4, N not a multiple of 8, transposes, broadcast batches,
// accumulation) and of im2col (stride, asymmetric padding, 1x1 direct path, bias and its gradient).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as backend from '../../src/backend/index.ts';
import type { Conv2dGeom } from '../../src/backend/index.ts';

const wasm = backend.loadWasm();
const ref = backend.reference;

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 2 ** 31 - 1; }
  return a;
}

function close(a: Float32Array, b: Float32Array, what: string, tol = 1e-4): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `${what}[${i}]: wasm ${a[i]} vs reference ${b[i]}`);
  }
}

test('wasm backend loads (WebAssembly SIMD) and is partial', () => {
  assert.ok(wasm, 'WebAssembly SIMD module failed to instantiate');
  assert.equal(wasm!.name, 'wasm');
  assert.ok(backend.wasmSupported());
});

test('wasm matmul = reference on ragged shapes, transposes, broadcast batches and accumulate', () => {
  const cases: [number, number, number, number, boolean, boolean, boolean, boolean][] = [
    [1, 1, 1, 1, false, false, false, false], [3, 5, 7, 9, false, false, false, false], [2, 13, 37, 11, true, false, false, true],
    [2, 6, 4, 17, false, true, true, false], [3, 9, 33, 8, true, true, false, true], [1, 64, 96, 50, false, false, false, false],
    [2, 5, 0, 3, false, false, false, false],
  ];
  for (const [batch, m, k, n, tA, tB, bcastA, acc] of cases) {
    const a = rand((bcastA ? 1 : batch) * m * k, 1), b = rand(batch * k * n, 2);
    const o1 = rand(batch * m * n, 3), o2 = o1.slice();
    wasm!.matmul!(a, b, o1, batch, m, k, n, tA, tB, bcastA ? 0 : m * k, k * n, acc);
    ref.matmul(a, b, o2, batch, m, k, n, tA, tB, bcastA ? 0 : m * k, k * n, acc);
    close(o1, o2, `matmul ${[batch, m, k, n, tA, tB, bcastA, acc].join(',')}`);
  }
});

function geom(n: number, cin: number, h: number, w: number, cout: number, k: number, s: number, pad: [number, number, number, number]): Conv2dGeom {
  const [padT, padB, padL, padR] = pad;
  return { n, cin, h, w, cout, kh: k, kw: k, strideH: s, strideW: s, padT, padB, padL, padR,
    oh: Math.floor((h + padT + padB - k) / s) + 1, ow: Math.floor((w + padL + padR - k) / s) + 1 };
}

test('wasm conv2d and both backward passes = reference', () => {
  const gs = [geom(2, 3, 9, 7, 5, 3, 1, [1, 1, 1, 1]), geom(1, 4, 8, 8, 6, 3, 2, [0, 1, 0, 1]), geom(3, 5, 6, 6, 7, 1, 1, [0, 0, 0, 0]),
    geom(2, 16, 14, 14, 32, 3, 1, [1, 1, 1, 1]), geom(1, 2, 5, 5, 3, 4, 2, [1, 1, 1, 1])];
  for (const g of gs) {
    const x = rand(g.n * g.cin * g.h * g.w, 4), w = rand(g.cout * g.cin * g.kh * g.kw, 5), b = rand(g.cout, 6);
    const gy = rand(g.n * g.cout * g.oh * g.ow, 7);
    const tag = JSON.stringify(g);
    for (const bias of [b, null]) {
      const o1 = new Float32Array(gy.length), o2 = new Float32Array(gy.length);
      wasm!.conv2d!(x, w, bias, g, o1);
      ref.conv2d(x, w, bias, g, o2);
      close(o1, o2, `conv2d ${tag}`);
    }
    const gx1 = rand(x.length, 8), gx2 = new Float32Array(x.length); // wasm must overwrite, not add
    wasm!.conv2dBackwardInput!(gy, w, g, gx1);
    ref.conv2dBackwardInput(gy, w, g, gx2);
    close(gx1, gx2, `conv2dBackwardInput ${tag}`);
    const gw1 = rand(w.length, 9), gw2 = new Float32Array(w.length), gb1 = new Float32Array(g.cout), gb2 = new Float32Array(g.cout);
    wasm!.conv2dBackwardWeight!(gy, x, g, gw1, gb1);
    ref.conv2dBackwardWeight(gy, x, g, gw2, gb2);
    close(gw1, gw2, `conv2dBackwardWeight ${tag}`);
    close(gb1, gb2, `conv2d bias grad ${tag}`);
  }
});
