// Test helpers: allclose, finite-difference gradient checks, and checkOp, which runs an op on
// every available backend and compares values and gradients with the reference backend
// (tinygrad `helper_test_op`, ggml `test-backend-ops`).

import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { Generator } from '../../src/util/index.ts';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) { if (!(Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) return Infinity; continue; }
    m = Math.max(m, d);
  }
  return m;
}

export function assertClose(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, tol = 1e-5, what = 'value'): void {
  const a = actual instanceof Tensor ? actual.data : actual;
  const e = expected instanceof Tensor ? expected.data : expected;
  if (actual instanceof Tensor && expected instanceof Tensor) assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  let scale = 1;
  for (let i = 0; i < e.length; i++) scale = Math.max(scale, Math.abs(e[i]!));
  const d = maxAbsDiff(a, e);
  assert.ok(d <= tol * scale, `${what}: max |diff| ${d} > ${tol} * ${scale}`);
}

/** Random float32 tensor with a fixed seed. */
export function rnd(shape: readonly number[], seed = 1, scale = 1, shift = 0): Tensor {
  const t = T.randn(shape, new Generator(seed));
  return scale === 1 && shift === 0 ? t : T.noGrad(() => T.affine(t, scale, shift));
}

/** Central finite differences of sum(f(inputs) * w) vs autograd, for up to `probes` entries per input. */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; tol?: number; probes?: number } = {}): void {
  const eps = opts.eps ?? 1e-2, tol = opts.tol ?? 2e-2, probes = opts.probes ?? 6;
  const xs = inputs.map((x) => new Tensor(x.f32.slice(), x.shape).requireGrad());
  const out0 = f(...xs);
  const w = rnd(out0.shape, 99);
  const loss = (): number => T.noGrad(() => T.sum(T.mul(f(...xs), w)).item());
  const grads = T.grad(T.sum(T.mul(out0, w)), xs);
  xs.forEach((x, xi) => {
    const g = grads[xi];
    assert.ok(g, `input ${xi} got no gradient`);
    const n = x.size;
    const step = Math.max(1, Math.floor(n / probes));
    for (let i = 0; i < n; i += step) {
      const d = x.f32;
      const v = d[i]!;
      d[i] = v + eps; const lp = loss();
      d[i] = v - eps; const lm = loss();
      d[i] = v;
      const fd = (lp - lm) / (2 * eps);
      const an = g.f32[i]!;
      assert.ok(Math.abs(fd - an) <= tol * Math.max(1, Math.abs(fd)), `input ${xi}[${i}]: finite difference ${fd} vs autograd ${an}`);
    }
  });
}

/** Every backend that runs here: the reference first, then the WebAssembly SIMD kernels (Node 20 has
 *  them everywhere), then the native addon when it is built (left active after each check). */
export const BACKENDS: ('reference' | 'native' | 'wasm')[] = T.nativeAvailable() ? ['reference', 'wasm', 'native'] : ['reference', 'wasm'];

/** Run fn on every backend; outputs and input gradients must match the reference within tol. */
export function checkOp(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], tol = 1e-4): void {
  const results: { out: Tensor; grads: (Tensor | null)[] }[] = [];
  for (const b of BACKENDS) {
    T.setBackend(b);
    const xs = inputs.map((x) => new Tensor(x.f32.slice(), x.shape).requireGrad());
    const out = f(...xs);
    const w = rnd(out.shape, 7);
    const grads = T.grad(T.sum(T.mul(out, w)), xs);
    results.push({ out, grads });
  }
  T.setBackend(BACKENDS[BACKENDS.length - 1]!);
  const ref = results[0]!;
  for (let i = 1; i < results.length; i++) {
    assertClose(results[i]!.out, ref.out, tol, `${name} on ${BACKENDS[i]}: output`);
    results[i]!.grads.forEach((g, j) => {
      const rg = ref.grads[j];
      if (g && rg) assertClose(g, rg, tol, `${name} on ${BACKENDS[i]}: grad of input ${j}`);
    });
  }
}
