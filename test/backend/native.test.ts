// The native backend against the reference backend: every kernel the addon exports, on seeded
// random inputs with odd sizes, stride 2, asymmetric padding, 1x1 / 4x4 kernels, broadcast
// matmul operands and attention masks, plus the length checks. When the addon is not built the
// file passes by checking that loadNative() reports null with a reason.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { erf as refErf, reference } from '../../src/backend/reference/index.ts';
import { NATIVE_EXTRAS, convTunedRoutes, loadNative, nativeExports, nativeInfo, nativeLoadError, setConvChunkKB, setConvDirect, setConvGemm1x1, setConvTune, setConvWinograd, setConvWinogradSplit, setConvWinogradTile, setNativeIsa, setNativePrecision } from '../../src/backend/native/index.ts';
import type { BinaryOp, Conv2dGeom, Kernels, UnaryOp } from '../../src/backend/types.ts';

const nat = loadNative();
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

function close(name: string, got: Float32Array, want: Float32Array, rtol = 1e-4, atol = 1e-5): void {
  assert.equal(got.length, want.length, `${name}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i]!)) scale = Math.max(scale, Math.abs(want[i]!));
  const tol = atol + rtol * scale;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if ((Number.isNaN(w) && Number.isNaN(g)) || g === w) continue;
    if (!(Math.abs(g - w) <= tol + rtol * Math.abs(w))) {
      assert.fail(`${name}: element ${i}: native ${g}, reference ${w} (tolerance ${tol})`);
    }
  }
}

function geom(n: number, cin: number, h: number, w: number, cout: number, kh: number, kw: number, s: number,
  pad: [number, number, number, number]): Conv2dGeom {
  const [padT, padB, padL, padR] = pad;
  return {
    n, cin, h, w, cout, kh, kw, strideH: s, strideW: s, padT, padB, padL, padR,
    oh: Math.floor((h + padT + padB - kh) / s) + 1, ow: Math.floor((w + padL + padR - kw) / s) + 1,
  };
}

/** erf to double accuracy (Maclaurin series below 3, continued fraction for erfc above): an
 *  oracle for erf/gelu while the reference erf is off (it must give erf(2) = 0.99532226...). */
function erfExact(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let k = 1; k < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); k++) {
      term *= -ax * ax / k;
      sum += term / (2 * k + 1);
    }
    r = sum * 2 / Math.sqrt(Math.PI);
  } else {
    let K = ax;
    for (let k = 80; k >= 1; k--) K = ax + (k / 2) / K;
    r = 1 - Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * K);
  }
  return x < 0 ? -r : r;
}
const referenceErfOk = Math.abs(refErf(2) - 0.9953222650189527) < 1e-6 && Math.abs(refErf(-0.9) + 0.7969082124228322) < 1e-6;

/** The reference for unary / unaryGrad, with erf and gelu taken from erfExact when the
 *  reference erf is off. */
function oracleUnary(op: UnaryOp, x: Float32Array, out: Float32Array): void {
  if (referenceErfOk || (op !== 'erf' && op !== 'gelu')) { reference.unary(op, x, out); return; }
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = op === 'erf' ? erfExact(v) : 0.5 * v * (1 + erfExact(v * Math.SQRT1_2));
  }
}
function oracleUnaryGrad(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, out: Float32Array): void {
  if (referenceErfOk || op !== 'gelu') { reference.unaryGrad(op, x, y, gy, out); return; }
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = gy[i]! * (0.5 * (1 + erfExact(v * Math.SQRT1_2)) + v * Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI));
  }
}

if (!nat) {
  describe('native backend (not built)', () => {
    it('loadNative() returns null with a reason', () => {
      const reason = nativeLoadError();
      assert.ok(reason && reason.length > 0);
      assert.equal(nativeInfo().available, false);
      console.log(`native backend not tested: ${reason}`);
    });
  });
} else {
  const n = nat as Required<typeof nat> & Pick<Kernels, 'name'>;
  const ref: Kernels = reference;

  if (!referenceErfOk) {
    console.log('note: reference erf is inaccurate on [0.5, 4) (erf(2) gives ' + refErf(2) +
      '); erf/gelu are checked against a series oracle instead');
  }

  describe('native backend: info', () => {
    it('reports threads and the oneDNN version', () => {
      const info = nativeInfo();
      assert.equal(info.available, true);
      assert.ok(info.threads >= 1);
      assert.match(info.onednnVersion ?? '', /^\d+\.\d+/);
    });
    it('reports the ISA and the FMA width as /proc/cpuinfo describes the CPU', (t) => {
      if (!existsSync('/proc/cpuinfo')) { t.skip('no /proc/cpuinfo'); return; }
      const cpu = readFileSync('/proc/cpuinfo', 'utf8');
      const field = (name: string): string => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpu)?.[1]?.trim() ?? '';
      const avx512 = field('flags').split(/\s+/).includes('avx512f');
      const zen4 = avx512 && field('vendor_id') === 'AuthenticAMD' && field('cpu family') === '25';
      const info = nativeInfo();
      assert.equal(info.isa, avx512 ? 'avx512' : 'avx2');
      assert.equal(info.fmaBits, avx512 && !zen4 ? 512 : 256);
    });
  });

  describe('native backend: conv2d', () => {
    const cases: [string, Conv2dGeom, boolean][] = [
      ['3x3 pad 1', geom(2, 3, 7, 9, 5, 3, 3, 1, [1, 1, 1, 1]), true],
      ['3x3 stride 2 pad 1', geom(2, 4, 9, 8, 6, 3, 3, 2, [1, 1, 1, 1]), false],
      ['3x3 stride 2 asymmetric (0,1,0,1)', geom(3, 5, 8, 8, 4, 3, 3, 2, [0, 1, 0, 1]), true],
      ['1x1', geom(2, 7, 5, 6, 3, 1, 1, 1, [0, 0, 0, 0]), true],
      ['4x4 stride 2 pad 1', geom(1, 3, 10, 11, 4, 4, 4, 2, [1, 1, 1, 1]), true],
      ['3x3 64 channels', geom(2, 64, 8, 8, 32, 3, 3, 1, [1, 1, 1, 1]), true],
      ['odd channels no pad', geom(1, 17, 6, 7, 19, 3, 3, 1, [0, 0, 0, 0]), false],
      ['wide rows (ow 40: a full and a masked column tile)', geom(3, 16, 20, 40, 13, 3, 3, 1, [1, 1, 1, 1]), true],
      ['narrow rows, 30 output channels (blocks of 24 + 6)', geom(2, 5, 6, 12, 30, 3, 3, 1, [1, 1, 1, 1]), true],
      ['5x5 pad 2', geom(2, 4, 9, 20, 6, 5, 5, 1, [2, 2, 2, 2]), true],
    ];
    cases.push(
      ['Winograd tiles: 3x3 pad 1, odd 7x9, 16->20', geom(2, 16, 7, 9, 20, 3, 3, 1, [1, 1, 1, 1]), true],
      ['Winograd tiles: 3x3 asymmetric (2,0,1,2), 32->16 (8-channel blocks and tails)', geom(3, 32, 5, 5, 16, 3, 3, 1, [2, 0, 1, 2]), true],
      ['Winograd tiles: 3x3 pad 1, 8x8 with 9 images (chunked batch), 24->40', geom(9, 24, 8, 8, 40, 3, 3, 1, [1, 1, 1, 1]), true],
      // F(4x4): ragged 4x4 tiles in both directions, more than one 8-column phase block (ow 37),
      // and a batch split into chunks (40x40 planes: 2 images of 16+16 channels per chunk)
      ['Winograd tiles: 3x3 pad 1, 18x37, 16->24', geom(2, 16, 18, 37, 24, 3, 3, 1, [1, 1, 1, 1]), true],
      ['Winograd tiles: 3x3 pad 1, 40x40 with 5 images, 16->16', geom(5, 16, 40, 40, 16, 3, 3, 1, [1, 1, 1, 1]), false],
    );
    // 1x1 stride-1 unpadded: the GEMM path (odd channel counts, planes of 35, 130 and 144 pixels,
    // not multiples of 8; 3 x 130 and 1 x 144 columns split between threads inside an image; a
    // 512-pixel plane takes the copied-columns path)
    cases.push(
      ['1x1 no pad: 3->5, one image 5x7, bias', geom(1, 3, 5, 7, 5, 1, 1, 1, [0, 0, 0, 0]), true],
      ['1x1 no pad: 7->16, 3 images 5x7, no bias', geom(3, 7, 5, 7, 16, 1, 1, 1, [0, 0, 0, 0]), false],
      ['1x1 no pad: 24->40, 3 images 10x13, bias', geom(3, 24, 10, 13, 40, 1, 1, 1, [0, 0, 0, 0]), true],
      ['1x1 no pad: 33->17, one image 12x12, bias', geom(1, 33, 12, 12, 17, 1, 1, 1, [0, 0, 0, 0]), true],
      ['1x1 no pad: 5->9, 2 images 16x32 (2 KiB rows: columns copied to a buffer first)', geom(2, 5, 16, 32, 9, 1, 1, 1, [0, 0, 0, 0]), true],
    );
    // Every case on each path: the direct stride-1 AVX-512 kernels (where they apply; without
    // AVX-512 this runs oneDNN too), oneDNN on the whole batch, oneDNN one image per call
    // (weight gradients summed over the calls), and Winograd F(2x2) and F(4x4) for every 3x3
    // stride-1 case. All within 1e-4 of the largest reference value; measured on 64-256 channel
    // layers F(2x2) stays within 6e-7 of it and F(4x4) within 1.5e-5 (a wrong transform is off
    // by O(1)).
    // The GEMM mode runs the 1x1 stride-1 unpadded cases as plain sgemm products on the NCHW
    // buffers (the others keep it off, so that their 1x1 cases test oneDNN).
    // Winograd runs split by tile positions and by images (each thread whole chunks of images: the
    // 2-, 3-, 5- and 9-image cases end on a partial chunk where there are 2 threads).
    const modes = [['direct', 'on', 0, 'off', 'auto', 'off', 'auto'], ['oneDNN', 'off', 0, 'off', 'auto', 'off', 'auto'],
      ['oneDNN one image at a time', 'off', 1, 'off', 'auto', 'off', 'auto'],
      ['Winograd F(2x2) by tiles', 'off', 0, 'on', 2, 'off', 'tiles'], ['Winograd F(4x4) by tiles', 'off', 0, 'on', 4, 'off', 'tiles'],
      ['Winograd F(2x2) by images', 'off', 0, 'on', 2, 'off', 'images'], ['Winograd F(4x4) by images', 'off', 0, 'on', 4, 'off', 'images'],
      ['GEMM 1x1', 'off', 0, 'off', 'auto', 'on', 'auto']] as const;
    const gemm1x1Case = (g: Conv2dGeom): boolean => g.kh === 1 && g.kw === 1 && g.strideH === 1 && g.strideW === 1 &&
      g.padT + g.padB + g.padL + g.padR === 0;
    for (const [mode, direct, chunkKB, wino, tile, gemm1x1, split] of modes) for (const [label, g, withBias] of cases) {
      if (gemm1x1 === 'on' && !gemm1x1Case(g)) continue;
      it(`${mode}: ${label}`, () => {
        const wasDirect = setConvDirect() ?? 'auto', wasChunk = setConvChunkKB(-1) ?? 0, wasWino = setConvWinograd() ?? 'auto';
        const wasTile = setConvWinogradTile() ?? 'auto', wasGemm = setConvGemm1x1() ?? 'auto';
        const wasSplit = setConvWinogradSplit() ?? 'auto';
        setConvDirect(direct);
        setConvChunkKB(chunkKB);
        setConvWinograd(wino);
        setConvWinogradTile(tile);
        setConvGemm1x1(gemm1x1);
        setConvWinogradSplit(split);
        try {
          checkConv(g, withBias);
        } finally {
          setConvDirect(wasDirect);
          setConvChunkKB(wasChunk);
          setConvWinograd(wasWino);
          setConvWinogradTile(wasTile);
          setConvGemm1x1(wasGemm);
          setConvWinogradSplit(wasSplit);
        }
      });
    }
    // Tuned routes: each case's passes are tuned on the first call (every route that computes
    // them runs; the output is the last one's) and run by the kept route on the second, both
    // checked against the reference. Each choice lists its candidates' times and keeps the fastest;
    // the 3x3 stride-1 passes have Winograd and oneDNN among them, the 1x1 stride-1 unpadded ones
    // the GEMMs; a knob at 'off' takes its route out, one at 'on' forces it (nothing tuned).
    it('tuned routes: every case, twice; the choices and the knobs', () => {
      const was = setConvTune() ?? 'off', wasWino = setConvWinograd() ?? 'auto', wasGemm = setConvGemm1x1() ?? 'auto';
      convTunedRoutes(true);
      setConvTune('on');
      try {
        for (const [, g, withBias] of cases) { checkConv(g, withBias); checkConv(g, withBias); }
        const tuned = convTunedRoutes(true);
        const s1x3 = cases.filter(([, g]) => g.kh === 3 && g.kw === 3 && g.strideH === 1 && g.strideW === 1);
        assert.equal(tuned.filter((t) => t.kh === 3 && t.strideH === 1).length, 3 * s1x3.length, 'three passes tuned per 3x3 stride-1 case');
        for (const t of tuned) {
          const times = Object.values(t.ms) as number[];
          assert.ok(t.route in t.ms, `${t.pass} ${JSON.stringify(t)}: the kept route was timed`);
          assert.equal(t.ms[t.route], Math.min(...times), `${t.pass} ${JSON.stringify(t)}: the fastest is kept`);
          if (t.kh === 3 && t.kw === 3 && t.strideH === 1 && t.strideW === 1)
            assert.ok('winograd2' in t.ms && 'oneDNN' in t.ms, `3x3 stride 1 candidates: ${JSON.stringify(t.ms)}`);
          // F(4x4) only where its auto rule allows it: output planes of 12x12 and up
          const side = t.pass === 'input-gradient' ? Math.min(t.h, t.w) : Math.min(t.oh, t.ow);
          assert.equal('winograd4' in t.ms, t.kh === 3 && t.strideH === 1 && side >= 12, `F(4x4) timed where planes allow: ${JSON.stringify(t)}`);
        }
        const g3 = cases.find(([, g]) => g.kh === 3 && g.strideH === 1)!;
        const g1 = cases.find(([, g]) => g.kh === 1 && g.strideH === 1 && g.padT + g.padB + g.padL + g.padR === 0)!;
        checkConv(g1[1], g1[2]);
        assert.ok(convTunedRoutes(true).every((t) => 'gemm1x1' in t.ms), 'the 1x1 passes time the GEMMs');
        setConvWinograd('off');
        setConvGemm1x1('on');
        checkConv(g3[1], g3[2]);
        checkConv(g1[1], g1[2]);
        const off = convTunedRoutes(true);
        // (on AVX2 oneDNN is then the 3x3 pass's only route: nothing is tuned at all)
        assert.ok(off.every((t) => !('winograd2' in t.ms) && !('winograd4' in t.ms) && t.kh === 3), `winograd off, 1x1 forced: ${JSON.stringify(off)}`);
      } finally {
        setConvTune(was);
        setConvWinograd(wasWino);
        setConvGemm1x1(wasGemm);
        convTunedRoutes(true);
      }
    });
    // Reference results per case, computed once and shared by the three paths.
    const refCache = new Map<Conv2dGeom, { y: Float32Array; gx: Float32Array; gw: Float32Array; gb: Float32Array | null }>();
    function checkConv(g: Conv2dGeom, withBias: boolean): void {
      const xs = g.n * g.cin * g.h * g.w, ws = g.cout * g.cin * g.kh * g.kw, ys = g.n * g.cout * g.oh * g.ow;
      const x = rand(xs, 1), w = rand(ws, 2, -0.3, 0.3), b = withBias ? rand(g.cout, 3) : null, gy = rand(ys, 4);
      let want = refCache.get(g);
      if (!want) {
        want = { y: new Float32Array(ys), gx: new Float32Array(xs), gw: new Float32Array(ws), gb: withBias ? new Float32Array(g.cout) : null };
        ref.conv2d(x, w, b, g, want.y);
        ref.conv2dBackwardInput(gy, w, g, want.gx);
        ref.conv2dBackwardWeight(gy, x, g, want.gw, want.gb);
        refCache.set(g, want);
      }
      const y = new Float32Array(ys).fill(7), gx = new Float32Array(xs).fill(7), gw = new Float32Array(ws).fill(7);
      const gb = withBias ? new Float32Array(g.cout).fill(7) : null;
      n.conv2d(x, w, b, g, y);
      close('conv2d', y, want.y);
      n.conv2dBackwardInput(gy, w, g, gx);
      close('conv2dBackwardInput', gx, want.gx);
      n.conv2dBackwardWeight(gy, x, g, gw, gb);
      close('conv2dBackwardWeight', gw, want.gw);
      if (gb && want.gb) close('conv2dBackwardWeight bias', gb, want.gb);
    }
    it('rejects a wrong buffer length with the expected length', () => {
      const g = geom(1, 2, 4, 4, 3, 3, 3, 1, [1, 1, 1, 1]);
      assert.throws(() => n.conv2d(new Float32Array(31), new Float32Array(54), null, g, new Float32Array(48)),
        /conv2d.*expected 32/);
      assert.throws(() => n.conv2d(new Float32Array(32), new Float32Array(54), null, { ...g, oh: 5 }, new Float32Array(60)),
        /conv2d.*oh/);
    });
  });

  describe('native backend: matmul', () => {
    const cases: [number, number, number, number, boolean, boolean, 'both' | 'a0' | 'b0', boolean][] = [
      [1, 5, 7, 3, false, false, 'both', false],
      [3, 17, 9, 13, false, true, 'both', false],
      [4, 8, 33, 5, true, false, 'both', true],
      [2, 6, 4, 11, true, true, 'both', false],
      [5, 7, 6, 9, false, false, 'b0', false],
      [5, 7, 6, 9, false, true, 'a0', true],
      [6, 3, 8, 4, true, false, 'b0', false],
      [64, 16, 32, 16, false, true, 'both', false],
      [1, 130, 70, 65, false, false, 'both', true],
    ];
    for (const [batch, m, k, nn, ta, tb, bc, acc] of cases) {
      it(`batch ${batch} ${m}x${k}x${nn} transA=${ta} transB=${tb} ${bc}${acc ? ' accumulate' : ''}`, () => {
        const sa = bc === 'a0' ? 0 : m * k, sb = bc === 'b0' ? 0 : k * nn;
        const a = rand(bc === 'a0' ? m * k : batch * m * k, 5), b = rand(bc === 'b0' ? k * nn : batch * k * nn, 6);
        const c1 = rand(batch * m * nn, 7), c2 = c1.slice();
        n.matmul(a, b, c1, batch, m, k, nn, ta, tb, sa, sb, acc);
        ref.matmul(a, b, c2, batch, m, k, nn, ta, tb, sa, sb, acc);
        close('matmul', c1, c2);
      });
    }
    it('rejects a short operand', () => {
      assert.throws(() => n.matmul(new Float32Array(5), new Float32Array(6), new Float32Array(4), 1, 2, 3, 2, false, false, 6, 6, false),
        /matmul.*expected at least 6/);
    });
  });

  describe('native backend: attention', () => {
    const cases: [number, number, number, number, number, 'none' | 'full' | 'row' | 'batch1'][] = [
      [2, 5, 7, 3, 4, 'none'],
      [3, 9, 9, 8, 8, 'full'],
      [4, 6, 11, 5, 3, 'row'],
      [3, 17, 13, 16, 9, 'batch1'],
      [64, 32, 32, 32, 32, 'none'],
      [1, 100, 70, 40, 24, 'full'],
      [2, 64, 512, 32, 48, 'row'],
      [3, 1, 1, 1, 1, 'none'],
      [2, 3, 4, 0, 5, 'none'],
    ];
    it('masks of -FLT_MAX (PyTorch masked_fill with -finfo.max): a fully masked row attends uniformly', () => {
      const b = 2, sq = 5, sk = 40, d = 8, neg = -3.4028234663852886e38;
      const q = rand(b * sq * d, 46), k = rand(b * sk * d, 47), v = rand(b * sk * d, 48);
      const mask = new Float32Array(b * sk);
      for (let j = 0; j < sk; j++) { mask[j] = j % 3 === 0 ? neg : 0; mask[sk + j] = neg; }
      for (const isa of ['auto', 'avx2'] as const) {
        setNativeIsa(isa);
        const o1 = new Float32Array(b * sq * d), o2 = new Float32Array(b * sq * d);
        const p1 = new Float32Array(b * sq * sk), p2 = new Float32Array(b * sq * sk);
        n.attention(q, k, v, b, sq, sk, d, d, 0.3, mask, [sk, 0, 1], o1, p1);
        ref.attention(q, k, v, b, sq, sk, d, d, 0.3, mask, [sk, 0, 1], o2, p2);
        setNativeIsa('auto');
        close(`attention out (${isa})`, o1, o2);
        close(`attention probs (${isa})`, p1, p2);
        assert.ok(Math.abs(p1[sq * sk + 3]! - 1 / sk) < 1e-6, 'uniform row');
      }
      const x = rand(3 * 7, 49), y1 = new Float32Array(21), y2 = new Float32Array(21);
      x.fill(neg, 7, 14);
      n.softmax(x, 3, 7, y1, false);
      ref.softmax(x, 3, 7, y2, false);
      close('softmax -FLT_MAX row', y1, y2);
    });
    for (const isa of ['auto', 'avx2'] as const) for (const [b, sq, sk, d, dv, mk] of cases) {
      it(`${isa}: b ${b} sq ${sq} sk ${sk} d ${d} dv ${dv} mask ${mk}`, () => {
        setNativeIsa(isa);
        const q = rand(b * sq * d, 8), k = rand(b * sk * d, 9), v = rand(b * sk * dv, 10);
        let mask: Float32Array | null = null, strides: number[] | null = null;
        if (mk === 'full') { mask = rand(b * sq * sk, 11, -2, 2); strides = [sq * sk, sk, 1]; }
        if (mk === 'row') { mask = rand(b * sk, 12, -2, 2); strides = [sk, 0, 1]; }
        if (mk === 'batch1') {
          mask = new Float32Array(sq * sk);
          for (let i = 0; i < sq; i++) for (let j = 0; j < sk; j++) mask[i * sk + j] = j > i ? -Infinity : 0;
          strides = [0, sk, 1];
        }
        const scale = 1 / Math.sqrt(d);
        const o1 = new Float32Array(b * sq * dv), o2 = new Float32Array(b * sq * dv);
        const p1 = new Float32Array(b * sq * sk), p2 = new Float32Array(b * sq * sk);
        n.attention(q, k, v, b, sq, sk, d, dv, scale, mask, strides, o1, p1);
        ref.attention(q, k, v, b, sq, sk, d, dv, scale, mask, strides, o2, p2);
        setNativeIsa('auto');
        close('attention out', o1, o2);
        close('attention probs', p1, p2);
      });
    }
    it('large (streaming stores to probs): b 33 sq 256 sk 256 d 8', () => {
      const b = 33, s = 256, d = 8;
      const q = rand(b * s * d, 43), k = rand(b * s * d, 44), v = rand(b * s * d, 45);
      const o1 = new Float32Array(b * s * d), o2 = new Float32Array(b * s * d);
      const p1 = new Float32Array(b * s * s), p2 = new Float32Array(b * s * s);
      n.attention(q, k, v, b, s, s, d, d, 0.2, null, null, o1, p1);
      ref.attention(q, k, v, b, s, s, d, d, 0.2, null, null, o2, p2);
      close('attention out', o1, o2);
      close('attention probs', p1, p2);
    });
  });

  describe('native backend: normalisation', () => {
    // hw 3 (< one vector), 17 and 100 (vector tails; 100 spans the 32- and 64-element summing
    // blocks), 256 with 65536 elements (the threaded path, whole vectors).
    for (const [nb, c, hw, groups, affine] of [[2, 6, 5, 3, true], [3, 64, 17, 32, true], [2, 8, 9, 4, false],
      [2, 4, 3, 2, true], [2, 64, 100, 32, true], [4, 64, 256, 32, true]] as const) {
      it(`groupNorm n ${nb} c ${c} hw ${hw} groups ${groups}${affine ? '' : ' no affine'}`, () => {
        const x = rand(nb * c * hw, 13, -2, 3), gamma = affine ? rand(c, 14) : null, beta = affine ? rand(c, 15) : null;
        const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
        const m1 = new Float32Array(nb * groups), m2 = new Float32Array(nb * groups);
        const r1 = new Float32Array(nb * groups), r2 = new Float32Array(nb * groups);
        n.groupNorm(x, nb, c, hw, groups, 1e-5, gamma, beta, y1, m1, r1);
        ref.groupNorm(x, nb, c, hw, groups, 1e-5, gamma, beta, y2, m2, r2);
        close('groupNorm out', y1, y2);
        close('groupNorm mean', m1, m2);
        close('groupNorm rstd', r1, r2);
        const gy = rand(x.length, 16);
        const gx1 = new Float32Array(x.length), gx2 = new Float32Array(x.length);
        const gg1 = affine ? new Float32Array(c).fill(9) : null, gg2 = affine ? new Float32Array(c) : null;
        const gb1 = affine ? new Float32Array(c).fill(9) : null, gb2 = affine ? new Float32Array(c) : null;
        n.groupNormGrad(gy, x, nb, c, hw, groups, gamma, m2, r2, gx1, gg1, gb1);
        ref.groupNormGrad(gy, x, nb, c, hw, groups, gamma, m2, r2, gx2, gg2, gb2);
        close('groupNormGrad gx', gx1, gx2, 2e-4, 1e-5);
        if (gg1 && gg2 && gb1 && gb2) { close('groupNormGrad ggamma', gg1, gg2); close('groupNormGrad gbeta', gb1, gb2); }
      });
      it(`groupNormSilu (+ grad) n ${nb} c ${c} hw ${hw} groups ${groups}${affine ? '' : ' no affine'}`, () => {
        const x = rand(nb * c * hw, 23, -2, 3), gamma = affine ? rand(c, 24) : null, beta = affine ? rand(c, 25) : null;
        const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
        const m1 = new Float32Array(nb * groups), m2 = new Float32Array(nb * groups);
        const r1 = new Float32Array(nb * groups), r2 = new Float32Array(nb * groups);
        n.groupNormSilu(x, nb, c, hw, groups, 1e-5, gamma, beta, y1, m1, r1);
        ref.groupNormSilu(x, nb, c, hw, groups, 1e-5, gamma, beta, y2, m2, r2);
        close('groupNormSilu out', y1, y2);
        close('groupNormSilu mean', m1, m2);
        const gy = rand(x.length, 26);
        const gx1 = new Float32Array(x.length), gx2 = new Float32Array(x.length);
        const gg1 = affine ? new Float32Array(c).fill(9) : null, gg2 = affine ? new Float32Array(c) : null;
        const gb1 = affine ? new Float32Array(c).fill(9) : null, gb2 = affine ? new Float32Array(c) : null;
        n.groupNormSiluGrad(gy, x, nb, c, hw, groups, gamma, beta, m2, r2, gx1, gg1, gb1);
        ref.groupNormSiluGrad(gy, x, nb, c, hw, groups, gamma, beta, m2, r2, gx2, gg2, gb2);
        close('groupNormSiluGrad gx', gx1, gx2, 2e-4, 1e-5);
        if (gg1 && gg2 && gb1 && gb2) { close('groupNormSiluGrad ggamma', gg1, gg2, 2e-4); close('groupNormSiluGrad gbeta', gb1, gb2, 2e-4); }
      });
    }
    it('groupNorm statistics of data far from zero (mean 1000, spread 0.01) match the float64 reference', () => {
      const nb = 2, c = 8, hw = 300, groups = 4;
      const x = rand(nb * c * hw, 31, 999.99, 1000.01);
      const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
      const m1 = new Float32Array(nb * groups), m2 = new Float32Array(nb * groups);
      const r1 = new Float32Array(nb * groups), r2 = new Float32Array(nb * groups);
      n.groupNorm(x, nb, c, hw, groups, 1e-5, null, null, y1, m1, r1);
      ref.groupNorm(x, nb, c, hw, groups, 1e-5, null, null, y2, m2, r2);
      close('mean', m1, m2, 1e-7, 0);
      close('rstd', r1, r2, 1e-5, 0);
    });
    it('groupNormSilu (+ grad) at large |z|, a NaN group, and a hw that is not a multiple of 8', () => {
      // beta per channel puts z near +-20, +-60, +-90, +-1e4 (exp(-z) over- and underflows);
      // one x of sample 1, group 2 is NaN: that group's outputs and its channels' gamma/beta
      // gradients are NaN, as in the reference, and nothing else is.
      const nb = 2, c = 16, hw = 37, groups = 8;
      const x = rand(nb * c * hw, 33, -2, 2), gamma = rand(c, 34, 0.5, 1.5);
      const beta = Float32Array.from([20, -20, 60, -60, 90, -90, 1e4, -1e4, 0, 3, -3, 87.7, -87.7, 88.5, -88.5, 0.5]);
      x[(1 * c + 2 * 2) * hw + 5] = NaN;
      const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
      const m1 = new Float32Array(nb * groups), m2 = new Float32Array(nb * groups);
      const r1 = new Float32Array(nb * groups), r2 = new Float32Array(nb * groups);
      n.groupNormSilu(x, nb, c, hw, groups, 1e-5, gamma, beta, y1, m1, r1);
      ref.groupNormSilu(x, nb, c, hw, groups, 1e-5, gamma, beta, y2, m2, r2);
      let nans = 0;
      for (let i = 0; i < x.length; i++) {
        const g = y1[i]!, w = y2[i]!;
        if (Number.isNaN(w)) { nans++; assert.ok(Number.isNaN(g), `out[${i}]: ${g}, want NaN`); continue; }
        // 1e-6 absolute: z = x * scale + shift is rounded in float near its zero crossing
        assert.ok(Math.abs(g - w) <= 1e-5 * Math.abs(w) + 1e-6, `out[${i}]: ${g}, want ${w}`);
      }
      assert.equal(nans, 2 * hw);
      const gy = rand(x.length, 35);
      const gx1 = new Float32Array(x.length), gx2 = new Float32Array(x.length);
      const gg1 = new Float32Array(c), gg2 = new Float32Array(c), gb1 = new Float32Array(c), gb2 = new Float32Array(c);
      n.groupNormSiluGrad(gy, x, nb, c, hw, groups, gamma, beta, m2, r2, gx1, gg1, gb1);
      ref.groupNormSiluGrad(gy, x, nb, c, hw, groups, gamma, beta, m2, r2, gx2, gg2, gb2);
      for (const [name, a, b] of [['gx', gx1, gx2], ['ggamma', gg1, gg2], ['gbeta', gb1, gb2]] as const) {
        assert.equal(a.filter(Number.isNaN).length, b.filter(Number.isNaN).length, `${name}: NaN count`);
        assert.ok(b.some(Number.isNaN), `${name}: the reference has NaNs`);
        close(`groupNormSiluGrad ${name}`, a, b, 2e-4, 1e-5);
      }
    });
    it('sigmoid, silu and the silu gradient at large |x|, infinities and NaN, element by element', () => {
      const xs = [0, -0, 1e-3, 0.5, -0.5, 3, -3, 15, -15, 20, -20, 40, -40, 80, -80, 87, -87, 87.7, -87.7, 88.5, -88.5,
        89, -89, 100, -100, 104, -104, 1e4, -1e4, 1e30, -1e30, Infinity, -Infinity, NaN];
      const x = Float32Array.from([...xs, ...xs.map((v) => v * 0.37)]);
      for (const op of ['sigmoid', 'silu'] as const) {
        const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
        n.unary(op, x, y1);
        oracleUnary(op, x, y2);
        for (let i = 0; i < x.length; i++) {
          const g = y1[i]!, w = y2[i]!;
          if (Number.isNaN(w)) { assert.ok(Number.isNaN(g), `${op}(${x[i]}): ${g}, want NaN`); continue; }
          assert.ok(g === w || Math.abs(g - w) <= 1e-6 * Math.abs(w) + 1e-36, `${op}(${x[i]}): ${g}, want ${w}`);
        }
      }
      const gy = new Float32Array(x.length).fill(1), y = new Float32Array(x.length);
      const g1 = new Float32Array(x.length), g2 = new Float32Array(x.length);
      oracleUnary('silu', x, y);
      n.unaryGrad('silu', x, y, gy, g1);
      oracleUnaryGrad('silu', x, y, gy, g2);
      for (let i = 0; i < x.length; i++) {
        const g = g1[i]!, w = g2[i]!;
        if (Number.isNaN(w)) { assert.ok(Number.isNaN(g), `silu'(${x[i]}): ${g}, want NaN`); continue; }
        assert.ok(g === w || Math.abs(g - w) <= 1e-6 * Math.abs(w) + 1e-34, `silu'(${x[i]}): ${g}, want ${w}`);
      }
    });
    for (const [rows, d, affine] of [[7, 13, true], [40, 64, true], [5, 33, false]] as const) {
      it(`layerNorm rows ${rows} d ${d}${affine ? '' : ' no affine'}`, () => {
        const x = rand(rows * d, 17, -1, 2), gamma = affine ? rand(d, 18) : null, beta = affine ? rand(d, 19) : null;
        const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
        const m1 = new Float32Array(rows), m2 = new Float32Array(rows), r1 = new Float32Array(rows), r2 = new Float32Array(rows);
        n.layerNorm(x, rows, d, 1e-5, gamma, beta, y1, m1, r1);
        ref.layerNorm(x, rows, d, 1e-5, gamma, beta, y2, m2, r2);
        close('layerNorm out', y1, y2);
        close('layerNorm mean', m1, m2);
        close('layerNorm rstd', r1, r2);
        const gy = rand(x.length, 20);
        const gx1 = new Float32Array(x.length), gx2 = new Float32Array(x.length);
        const gg1 = affine ? new Float32Array(d).fill(9) : null, gg2 = affine ? new Float32Array(d) : null;
        const gb1 = affine ? new Float32Array(d).fill(9) : null, gb2 = affine ? new Float32Array(d) : null;
        n.layerNormGrad(gy, x, rows, d, gamma, m2, r2, gx1, gg1, gb1);
        ref.layerNormGrad(gy, x, rows, d, gamma, m2, r2, gx2, gg2, gb2);
        close('layerNormGrad gx', gx1, gx2, 2e-4, 1e-5);
        if (gg1 && gg2 && gb1 && gb2) { close('layerNormGrad ggamma', gg1, gg2); close('layerNormGrad gbeta', gb1, gb2); }
      });
    }
    for (const log of [false, true]) {
      it(`${log ? 'log-' : ''}softmax and its gradient (odd sizes)`, () => {
        for (const [rows, cols] of [[3, 1], [5, 7], [9, 33], [300, 129]] as const) {
          const x = rand(rows * cols, 21, -6, 6), gy = rand(rows * cols, 22);
          const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
          n.softmax(x, rows, cols, y1, log);
          ref.softmax(x, rows, cols, y2, log);
          close('softmax', y1, y2);
          const g1 = new Float32Array(x.length), g2 = new Float32Array(x.length);
          n.softmaxGrad(y2, gy, rows, cols, g1, log);
          ref.softmaxGrad(y2, gy, rows, cols, g2, log);
          close('softmaxGrad', g1, g2);
        }
      });
    }
  });

  describe('native backend: elementwise', () => {
    const ops: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'tanh', 'sigmoid', 'silu', 'gelu', 'relu',
      'softplus', 'sin', 'cos', 'sign', 'square', 'reciprocal', 'erf'];
    const positive = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt', 'reciprocal']);
    for (const op of ops) {
      it(`unary ${op} and unaryGrad`, () => {
        // 1003 elements: vector body + tail; a wide range plus a large array for the threaded path.
        for (const len of [1003, 70001]) {
          const x = positive.has(op) ? rand(len, 23, 0.05, 9) : rand(len, 23, -9, 9);
          if (!positive.has(op)) { x[0] = 0; x[1] = 1e-4; x[2] = -1e-4; x[3] = 25; x[4] = -25; x[5] = 0.3; }
          const y1 = new Float32Array(len), y2 = new Float32Array(len);
          n.unary(op, x, y1);
          oracleUnary(op, x, y2);
          close(`unary ${op}`, y1, y2, 2e-6, 1e-7);
          const gy = rand(len, 24);
          const g1 = new Float32Array(len), g2 = new Float32Array(len);
          n.unaryGrad(op, x, y2, gy, g1);
          oracleUnaryGrad(op, x, y2, gy, g2);
          close(`unaryGrad ${op}`, g1, g2, 2e-6, 1e-7);
        }
      });
    }
    const bops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'gt', 'lt', 'ge', 'le', 'eq'];
    // [name, outShape, aStrides, bStrides, aLen, bLen]
    const layouts: [string, number[], number[], number[], number, number][] = [
      ['same shape', [3, 5, 7], [35, 7, 1], [35, 7, 1], 105, 105],
      ['[C] broadcast', [4, 6, 9], [54, 9, 1], [0, 0, 1], 216, 9],
      ['[N,C,1,1] broadcast', [2, 3, 5, 5], [75, 25, 5, 1], [3, 1, 0, 0], 150, 6],
      ['[1,C,1,1] broadcast, large', [4, 64, 16, 16], [16384, 256, 16, 1], [0, 1, 0, 0], 65536, 64],
      ['scalar first', [5, 11], [0, 0], [11, 1], 1, 55],
      ['transposed a', [6, 4], [1, 6], [4, 1], 24, 24],
      ['rank 0', [], [], [], 1, 1],
    ];
    for (const op of bops) {
      it(`binary ${op}`, () => {
        for (const [label, shape, sa, sb, la, lb] of layouts) {
          const a = op === 'pow' ? rand(la, 25, 0.1, 3) : rand(la, 25, -2, 2);
          const b = rand(lb, 26, -2, 2);
          if (op === 'eq' || op === 'ge' || op === 'le') { for (let i = 0; i < Math.min(la, lb); i += 3) a[i] = b[i]!; }
          const total = shape.reduce((p, d) => p * d, 1);
          const o1 = new Float32Array(total), o2 = new Float32Array(total);
          n.binary(op, a, sa, b, sb, o1, shape);
          ref.binary(op, a, sa, b, sb, o2, shape);
          close(`binary ${op} ${label}`, o1, o2, 1e-6, 1e-7);
        }
      });
    }
    it('affine', () => {
      const x = rand(40001, 27), y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
      n.affine(x, 0.37, -1.5, y1);
      ref.affine(x, 0.37, -1.5, y2);
      close('affine', y1, y2, 1e-6, 1e-7);
    });
    it('adamw: three steps in place', () => {
      const len = 50001;
      const p1 = rand(len, 28), p2 = p1.slice(), m1 = new Float32Array(len), m2 = new Float32Array(len);
      const v1 = new Float32Array(len), v2 = new Float32Array(len);
      for (let step = 1; step <= 3; step++) {
        const g = rand(len, 29 + step);
        n.adamw(p1, g, m1, v1, 1e-3, 0.9, 0.999, 1e-8, 0.01, step);
        ref.adamw(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-8, 0.01, step);
      }
      close('adamw p', p1, p2, 1e-6, 1e-7);
      close('adamw m', m1, m2, 1e-6, 1e-7);
      close('adamw v', v1, v2, 1e-6, 1e-9);
    });
    it('reduceSum over inner / outer axes', () => {
      for (const [outer, axis, inner] of [[3, 7, 1], [1, 100000, 1], [2, 9, 5], [16, 64, 1024], [1, 3, 1030]] as const) {
        const x = rand(outer * axis * inner, 33);
        const o1 = new Float32Array(outer * inner).fill(5), o2 = new Float32Array(outer * inner);
        n.reduceSum(x, outer, axis, inner, o1);
        ref.reduceSum(x, outer, axis, inner, o2);
        close(`reduceSum ${outer}x${axis}x${inner}`, o1, o2, 1e-5, 1e-5);
      }
    });
    it('stridedCopy and stridedAccumulate (permute, slice, broadcast, flip)', () => {
      // [name, offset, strides, shape, srcLen]
      const views: [string, number, number[], number[], number][] = [
        ['contiguous', 0, [35, 7, 1], [3, 5, 7], 105],
        ['permute 0,2,1', 0, [35, 1, 5], [3, 7, 5], 105],
        ['slice with offset', 13, [40, 8, 1], [2, 3, 5], 100],
        ['broadcast (stride 0)', 2, [0, 1], [4, 9], 11],
        ['flip', 20, [-1], [21], 21],
        ['large permute', 0, [4096, 1, 64], [16, 64, 64], 65536],
        ['rank 0', 3, [], [], 5],
      ];
      for (const [label, offset, strides, shape, srcLen] of views) {
        const src = rand(srcLen, 34), total = shape.reduce((p, d) => p * d, 1);
        const o1 = new Float32Array(total), o2 = new Float32Array(total);
        n.stridedCopy(src, offset, strides, shape, o1);
        ref.stridedCopy(src, offset, strides, shape, o2);
        close(`stridedCopy ${label}`, o1, o2, 0, 0);
        const add = rand(total, 35), d1 = rand(srcLen, 36), d2 = d1.slice();
        n.stridedAccumulate(add, d1, offset, strides, shape);
        ref.stridedAccumulate(add, d2, offset, strides, shape);
        close(`stridedAccumulate ${label}`, d1, d2, 1e-6, 1e-6);
      }
      assert.throws(() => n.stridedCopy(new Float32Array(10), 5, [1], [6], new Float32Array(6)), /stridedCopy.*length 10/);
    });
    it('upsampleNearest, avgPool2d and their gradients', () => {
      for (const [nc, h, w, sh, sw] of [[3, 5, 7, 2, 2], [2, 4, 3, 3, 1], [128, 16, 16, 2, 2]] as const) {
        const x = rand(nc * h * w, 37), gy = rand(nc * h * sh * w * sw, 38);
        const y1 = new Float32Array(gy.length), y2 = new Float32Array(gy.length);
        n.upsampleNearest(x, nc, h, w, sh, sw, y1);
        ref.upsampleNearest(x, nc, h, w, sh, sw, y2);
        close('upsampleNearest', y1, y2, 0, 0);
        const g1 = new Float32Array(x.length).fill(3), g2 = new Float32Array(x.length);
        n.upsampleNearestGrad(gy, nc, h, w, sh, sw, g1);
        ref.upsampleNearestGrad(gy, nc, h, w, sh, sw, g2);
        close('upsampleNearestGrad', g1, g2);
      }
      for (const [nb, c, h, w, k, st] of [[2, 3, 8, 8, 2, 2], [1, 2, 7, 9, 3, 2], [8, 64, 16, 16, 2, 2]] as const) {
        const oh = Math.floor((h - k) / st) + 1, ow = Math.floor((w - k) / st) + 1;
        const x = rand(nb * c * h * w, 39), gy = rand(nb * c * oh * ow, 40);
        const y1 = new Float32Array(gy.length), y2 = new Float32Array(gy.length);
        n.avgPool2d(x, nb, c, h, w, k, st, y1);
        ref.avgPool2d(x, nb, c, h, w, k, st, y2);
        close('avgPool2d', y1, y2);
        const g1 = new Float32Array(x.length).fill(3), g2 = new Float32Array(x.length);
        n.avgPool2dGrad(gy, nb, c, h, w, k, st, g1);
        ref.avgPool2dGrad(gy, nb, c, h, w, k, st, g2);
        close('avgPool2dGrad', g1, g2);
      }
    });
    it('clamp and powScalar', () => {
      const x = rand(40003, 41, -3, 3);
      x[7] = Number.NaN;
      const y1 = new Float32Array(x.length), y2 = new Float32Array(x.length);
      n.clamp(x, -1, 2, y1);
      ref.clamp(x, -1, 2, y2);
      close('clamp', y1, y2, 0, 0);
      const xp = rand(40003, 42, 0.01, 3);
      for (const p of [2, 0.5, -1.5, 3]) {
        n.powScalar(xp, p, y1);
        ref.powScalar(xp, p, y2);
        close(`powScalar ${p}`, y1, y2, 1e-6, 1e-7);
      }
    });
    it('exports only kernels of the contract (same names) plus the documented extras', () => {
      const exports = nativeExports();
      assert.ok(exports);
      const contract = new Set(Object.keys(reference).filter((k) => k !== 'name'));
      const extras = new Set<string>(NATIVE_EXTRAS);
      for (const [k, v] of Object.entries(exports)) {
        assert.equal(typeof v, 'function', `export ${k}`);
        assert.ok(contract.has(k) || extras.has(k), `addon export '${k}' is neither a Kernels member nor a documented extra`);
      }
      for (const k of Object.keys(n)) if (k !== 'name') assert.ok(contract.has(k), `loadNative() kernel '${k}'`);
      for (const e of NATIVE_EXTRAS) assert.ok(!(e in n), `extra '${e}' leaks into the kernels`);
    });
    it('bf16 precision: convolutions within bf16 rounding of fp32 (or a clear fp32 fallback), exact again after', () => {
      const g = geom(2, 32, 9, 7, 48, 3, 3, 1, [1, 1, 1, 1]);
      const x = rand(g.n * g.cin * g.h * g.w, 61), w = rand(g.cout * g.cin * 9, 62, -0.1, 0.1), b = rand(g.cout, 63);
      const gy = rand(g.n * g.cout * g.oh * g.ow, 64);
      const run = (): Float32Array[] => {
        const y = new Float32Array(gy.length), gx = new Float32Array(x.length), gw = new Float32Array(w.length), gb = new Float32Array(g.cout);
        n.conv2d(x, w, b, g, y); n.conv2dBackwardInput(gy, w, g, gx); n.conv2dBackwardWeight(gy, x, g, gw, gb);
        return [y, gx, gw, gb];
      };
      const exact = run();
      const got = setNativePrecision('bf16');
      try {
        if (!nativeInfo().bf16) { assert.equal(got, 'fp32'); return; }
        assert.equal(got, 'bf16');
        const mixed = run();
        // bf16 keeps 8 bits of mantissa: products of rounded operands, summed in f32 (K = 288..)
        ['conv2d', 'backward input', 'backward weight', 'backward bias'].forEach((name, i) => close(`bf16 ${name}`, mixed[i]!, exact[i]!, 2e-2, 2e-2));
        assert.ok(mixed[0]!.some((v, i) => v !== exact[0]![i]), 'bf16 run should differ from fp32 in the last bits');
      } finally { setNativePrecision('fp32'); }
      run().forEach((a, i) => close(`fp32 again ${i}`, a, exact[i]!, 0, 0));
    });
    it('emulated bf16: the multiplied operands rounded to bf16 (nearest, ties to even), f32 sums; weight gradient f32', () => {
      // 1x1, 3x3 and strided 3x3: every route the fp32 kernels would take goes through oneDNN here
      const cases = [geom(2, 32, 9, 7, 48, 3, 3, 1, [1, 1, 1, 1]), geom(3, 40, 6, 6, 24, 1, 1, 1, [0, 0, 0, 0]),
        geom(2, 16, 10, 10, 32, 3, 3, 2, [1, 1, 1, 1])];
      // bf16 by hand: round to nearest even on the bit pattern (no NaN among these inputs)
      const toBf16 = (a: Float32Array): Float32Array => {
        const u = new Uint32Array(a.slice().buffer);
        for (let i = 0; i < u.length; i++) u[i] = ((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) & 0xffff0000) >>> 0;
        return new Float32Array(u.buffer);
      };
      const edge = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -(1 + 2 ** -8 + 2 ** -20), 3.4e38, 0]);
      assert.deepEqual([...toBf16(edge)], [1, 1 + 2 ** -6, 1, -(1 + 2 ** -7), Number.POSITIVE_INFINITY, 0], 'toBf16 itself');
      assert.equal(setNativePrecision('bf16-emulated'), 'bf16-emulated');
      try {
        cases.forEach((g, ci) => {
          const x = rand(g.n * g.cin * g.h * g.w, 71 + ci), w = rand(g.cout * g.cin * g.kh * g.kw, 81 + ci, -0.2, 0.2), b = rand(g.cout, 91 + ci);
          const gy = rand(g.n * g.cout * g.oh * g.ow, 101 + ci);
          const y = new Float32Array(gy.length), gx = new Float32Array(x.length), gw = new Float32Array(w.length), gb = new Float32Array(g.cout);
          n.conv2d(x, w, b, g, y); n.conv2dBackwardInput(gy, w, g, gx); n.conv2dBackwardWeight(gy, x, g, gw, gb);
          const [xr, wr, gyr] = [toBf16(x), toBf16(w), toBf16(gy)];
          const want = (f: (o: Float32Array) => void, len: number): Float32Array => { const o = new Float32Array(len); f(o); return o; };
          const yRounded = want((o) => reference.conv2d(xr, wr, b, g, o), y.length);
          const yExact = want((o) => reference.conv2d(x, w, b, g, o), y.length);
          close(`case ${ci} conv2d`, y, yRounded, 1e-5, 1e-6);
          close(`case ${ci} backward input`, gx, want((o) => reference.conv2dBackwardInput(gyr, wr, g, o), x.length), 1e-5, 1e-6);
          const gbWant = new Float32Array(g.cout);
          close(`case ${ci} backward weight (f32)`, gw, want((o) => reference.conv2dBackwardWeight(gy, x, g, o, gbWant), w.length), 1e-5, 1e-6);
          close(`case ${ci} backward bias`, gb, gbWant, 1e-5, 1e-6);
          // and it is bf16, not fp32: the forward output is off the exact one by far more than f32 rounding
          let worst = 0;
          for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! - yExact[i]!));
          assert.ok(worst > 1e-3, `case ${ci}: emulated bf16 within ${worst} of fp32, expected bf16-sized differences`);
        });
      } finally { setNativePrecision('fp32'); }
    });
    it('keeps the heap whole when signals arrive during kernels (node --cpu-prof samples with SIGPROF)', () => {
      // Before asynchronous signals were held back around kernels, a signal handler running inside
      // oneDNN's gemm corrupted the heap: this child aborted ("corrupted size vs. prev_size") every run.
      const dir = mkdtempSync(join(tmpdir(), 'ldm-sig-'));
      try {
        const script = join(dir, 'mm.ts');
        writeFileSync(script, `import { loadNative } from ${JSON.stringify(join(ROOT, 'src/backend/native/index.ts'))};
const n = loadNative()!;
const a = new Float32Array(128 * 256).fill(0.5), c = new Float32Array(128 * 128);
for (let i = 0; i < 400; i++) n.matmul(a, a, c, 1, 128, 256, 128, false, false, 0, 0, false);
console.log('done', c[0]);
`);
        const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '50', '--import', 'tsx', script],
          { cwd: ROOT, encoding: 'utf8', timeout: 120000 });
        assert.equal(r.status, 0, `child exited with ${r.status} (${r.signal ?? ''}): ${r.stderr.slice(-400)}`);
        assert.match(r.stdout, /^done 64\n/);
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
    it('LDM_CONV_TUNE=1 turns tuning on for the process; unset, the rules run', () => {
      const dir = mkdtempSync(join(tmpdir(), 'ldm-tune-'));
      try {
        const script = join(dir, 'tune.ts');
        writeFileSync(script, `import { loadNative, setConvTune, convTunedRoutes } from ${JSON.stringify(join(ROOT, 'src/backend/native/index.ts'))};
const n = loadNative()!;
const g = { n: 2, cin: 16, h: 16, w: 16, cout: 16, kh: 3, kw: 3, strideH: 1, strideW: 1, padT: 1, padB: 1, padL: 1, padR: 1, oh: 16, ow: 16 };
n.conv2d(new Float32Array(8192).fill(1), new Float32Array(2304).fill(0.1), null, g, new Float32Array(8192));
console.log(setConvTune(), convTunedRoutes().map((t) => t.pass + ':' + Object.keys(t.ms).sort().join('+')).join(' '));
`);
        const child = (env: Record<string, string>): string => {
          const e = { ...process.env, ...env };
          if (!env.LDM_CONV_TUNE) delete e.LDM_CONV_TUNE;
          const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, encoding: 'utf8', timeout: 120000, env: e });
          assert.equal(r.status, 0, r.stderr.slice(-400));
          return r.stdout.trim();
        };
        const direct = nativeInfo().isa === 'avx512' ? 'direct+' : '';  // the direct kernels are AVX-512 code
        assert.equal(child({ LDM_CONV_TUNE: '1' }), `on forward:${direct}oneDNN+winograd2+winograd4`);
        assert.equal(child({}), 'off');
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
    it('reads the convolution geometry by field name', () => {
      const g = geom(1, 2, 4, 4, 3, 3, 3, 1, [1, 1, 1, 1]);
      const x = rand(32, 51), w = rand(54, 52), y = new Float32Array(48);
      const { padB: _drop, ...partial } = g;
      assert.throws(() => n.conv2d(x, w, null, partial as Conv2dGeom, y), /conv2d: geometry\.padB must be a number/);
      assert.throws(() => n.conv2dBackwardInput(y, w, { ...g, oh: 5 }, x), /conv2dBackwardInput: oh\/ow 5x4 do not match/);
    });
    it('rejects mismatched lengths naming the kernel', () => {
      assert.throws(() => n.unary('exp', new Float32Array(4), new Float32Array(5)), /unary.*expected 4/);
      assert.throws(() => n.softmax(new Float32Array(6), 2, 4, new Float32Array(8), false), /softmax.*expected 8/);
      assert.throws(() => n.binary('add', new Float32Array(3), [1], new Float32Array(4), [1], new Float32Array(4), [4]),
        /binary.*expected at least 4/);
      assert.throws(() => n.groupNorm(new Float32Array(12), 1, 6, 2, 4, 1e-5, null, null, new Float32Array(12),
        new Float32Array(4), new Float32Array(4)), /groupNorm.*divisible/);
    });
  });
}
