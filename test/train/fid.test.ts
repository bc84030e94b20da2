// Classifier-FID: the Jacobi eigen-solver, the Fréchet distance against closed forms, and evalFid
// on real MNIST digits with the shipped classifier (real set A against itself is 0, the floor is
// small, shuffled pixels are far).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadMnist, loadWeightsInto, makeBatch, readWeights } from '../../src/io/index.ts';
import { Tensor, permute } from '../../src/tensor/index.ts';
import { Generator } from '../../src/util/index.ts';
import { MnistClassifier, evalFid, featureStats, frechetDistance, symmetricEigen, type FeatureStats } from '../../src/train/index.ts';

/** A random orthogonal matrix [n, n] by Gram-Schmidt of Gaussian columns. */
function orthogonal(n: number, gen: Generator): Float64Array {
  const g = gen.randn(n * n);
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const v = Array.from({ length: n }, (_, i) => g[i * n + j]!);
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i]! * q[i * n + k]!;
      for (let i = 0; i < n; i++) v[i]! -= dot * q[i * n + k]!;
    }
    const norm = Math.hypot(...v);
    for (let i = 0; i < n; i++) q[i * n + j] = v[i]! / norm;
  }
  return q;
}

/** Q diag(d) Q^T */
function fromEigen(q: Float64Array, d: number[]): Float64Array {
  const n = d.length;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += q[i * n + k]! * d[k]! * q[j * n + k]!;
    out[i * n + j] = s;
  }
  return out;
}

test('symmetricEigen recovers the spectrum and A V = V D', () => {
  const n = 12, gen = new Generator(3);
  const d = Array.from({ length: n }, (_, i) => (i - 4) * 0.7 + 0.01 * i * i);
  const a = fromEigen(orthogonal(n, gen), d);
  const { values, vectors } = symmetricEigen(a, n);
  assert.deepEqual([...values].sort((x, y) => x - y).map((v) => v.toFixed(9)), [...d].sort((x, y) => x - y).map((v) => v.toFixed(9)));
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) {
    let av = 0;
    for (let j = 0; j < n; j++) av += a[i * n + j]! * vectors[j * n + k]!;
    assert.ok(Math.abs(av - values[k]! * vectors[i * n + k]!) < 1e-9);
  }
});

test('Fréchet distance: 0 for equal Gaussians, the closed form for commuting covariances', () => {
  const n = 16, gen = new Generator(7);
  const q = orthogonal(n, gen);
  const a = Array.from({ length: n }, (_, i) => 0.1 + i * 0.3);
  const b = Array.from({ length: n }, (_, i) => 2.5 - i * 0.12);
  const m1 = Float64Array.from(gen.randn(n)), m2 = Float64Array.from(gen.randn(n));
  const s1: FeatureStats = { n: 100, dim: n, mean: m1, cov: fromEigen(q, a) };
  const s2: FeatureStats = { n: 100, dim: n, mean: m2, cov: fromEigen(q, b) };
  assert.ok(frechetDistance(s1, s1) < 1e-9);
  let want = 0;
  for (let i = 0; i < n; i++) want += (m1[i]! - m2[i]!) ** 2 + a[i]! + b[i]! - 2 * Math.sqrt(a[i]! * b[i]!);
  const got = frechetDistance(s1, s2);
  assert.ok(Math.abs(got - want) < 1e-9 * want, `${got} vs ${want}`);
  assert.ok(Math.abs(frechetDistance(s2, s1) - want) < 1e-9 * want, 'symmetric');
});

test('featureStats: mean and the unbiased covariance', () => {
  const f = new Tensor(Float32Array.from([1, 2, 3, 6, 5, 10]), [3, 2]);
  const s = featureStats(f);
  assert.deepEqual([...s.mean], [3, 6]);
  assert.deepEqual([...s.cov], [4, 8, 8, 16]);
  assert.throws(() => featureStats(new Tensor(Float32Array.from([1, 2]), [1, 2])), /N >= 2/);
});

test('evalFid on real digits: the floor is small, shuffled pixels are far, too few real images is an error', () => {
  const path = join(import.meta.dirname, '../../models/mnist-classifier.safetensors');
  const c = new MnistClassifier();
  loadWeightsInto(c, readWeights(path).tensors, path, true);
  c.eval();
  const real = loadMnist({ split: 'test', limit: 400 });
  const n = 150;
  const a = permute(makeBatch(real, Array.from({ length: n }, (_, i) => i)).image, [0, 3, 1, 2]); // [N, 1, 28, 28]
  const same = evalFid(a, real, c);
  assert.ok(same.fid < 1e-6, `set A against itself: ${same.fid}`);
  assert.ok(same.floor > 0 && same.floor < 50, `floor ${same.floor}`);
  assert.equal(same.n, n);
  // every image's pixels permuted: not digits any more
  const gen = new Generator(1), perm = gen.randperm(28 * 28);
  const src = a.toArray(), shuffled = new Float32Array(src.length);
  for (let i = 0; i < n; i++) for (let p = 0; p < 784; p++) shuffled[i * 784 + p] = src[i * 784 + perm[p]!]!;
  const far = evalFid(new Tensor(shuffled, [n, 1, 28, 28]), real, c);
  assert.ok(far.fid > 10 * same.floor, `shuffled ${far.fid} vs floor ${same.floor}`);
  assert.throws(() => evalFid(a, loadMnist({ split: 'test', limit: 200 }), c), /300 needed/);
});
