// Classifier-FID: the Fréchet distance between two sets of images, measured on the features of
// our own evaluation classifier (the 64 ReLU units of `fc1` of the MNIST / Fashion-MNIST CNN of
// classifier.ts), not on Inception-v3 features (no Inception weights exist offline). The formula
// is Heusel et al. 2017's:
//   FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^1/2 S2 S1^1/2)^1/2 )
// with sample means mu and unbiased covariances S (numpy.cov's N-1) of the feature vectors.
// tr(sqrt(S1 S2)) is computed from symmetric eigen-decompositions in float64 (cyclic Jacobi: exact
// to rounding for the 64x64 matrices here), which avoids scipy's complex `sqrtm` of a
// non-symmetric product. Numbers are therefore comparable between runs of ldm.ts, not with
// published Inception-FIDs. What it is not: an image loader or sampler (eval.ts feeds it).

import { ShapeError, fmtShape } from '../util/index.ts';
import type { Tensor } from '../tensor/index.ts';

/** Mean [D] and unbiased covariance [D, D] (row-major, float64) of feature rows. */
export interface FeatureStats {
  n: number;
  dim: number;
  mean: Float64Array;
  cov: Float64Array;
}

/** Statistics of features f [N, D] (N >= 2). */
export function featureStats(f: Tensor): FeatureStats {
  if (f.ndim !== 2 || f.shape[0]! < 2) throw new ShapeError(`featureStats: expected features [N >= 2, D], got ${fmtShape(f.shape)}`);
  const [n, d] = f.shape as [number, number];
  const x = f.toArray();
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += x[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = x[i * d + j]! - mean[j]!;
    for (let a = 0; a < d; a++) {
      const ca = c[a]!;
      if (ca === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b]! += ca * c[b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b]! / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { n, dim: d, mean, cov };
}

/**
 * Eigen-decomposition of a symmetric matrix a [n, n] (row-major, float64) by cyclic Jacobi
 * rotations: returns eigenvalues [n] and eigenvectors as the columns of v [n, n].
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < n; p++) {
      diag += m[p * n + p]! * m[p * n + p]!;
      for (let q = p + 1; q < n; q++) off += m[p * n + q]! * m[p * n + q]!;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const app = m[p * n + p]!, aqq = m[q * n + q]!;
        // the rotation angle that zeroes a[p][q] (Golub & Van Loan, Algorithm 8.4.1)
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p]!, akq = m[k * n + q]!;
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k]!, aqk = m[q * n + k]!;
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!, vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = m[i * n + i]!;
  return { values, vectors: v };
}

/** a [n, n] @ b [n, n] (row-major float64). */
function matmul64(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b[k * n + j]!;
    }
  }
  return out;
}

/** Symmetric PSD square root: V sqrt(max(D, 0)) V^T. */
function sqrtPsd(a: Float64Array, n: number): Float64Array {
  const { values, vectors: v } = symmetricEigen(a, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = v[i * n + k]! * s;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * v[j * n + k]!;
    }
  }
  return out;
}

/** Fréchet distance between two Gaussians fitted to feature sets (see the file comment). */
export function frechetDistance(s1: FeatureStats, s2: FeatureStats): number {
  if (s1.dim !== s2.dim) throw new ShapeError(`frechetDistance: feature sizes differ (${s1.dim} vs ${s2.dim})`);
  const d = s1.dim;
  let meanTerm = 0, tr1 = 0, tr2 = 0;
  for (let j = 0; j < d; j++) {
    const dm = s1.mean[j]! - s2.mean[j]!;
    meanTerm += dm * dm;
    tr1 += s1.cov[j * d + j]!;
    tr2 += s2.cov[j * d + j]!;
  }
  // tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2): the inner matrix is symmetric PSD
  const r1 = sqrtPsd(s1.cov, d);
  const inner = matmul64(matmul64(r1, s2.cov, d), r1, d);
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const avg = 0.5 * (inner[i * d + j]! + inner[j * d + i]!); // symmetrise rounding
      inner[i * d + j] = avg;
      inner[j * d + i] = avg;
    }
  }
  const { values } = symmetricEigen(inner, d);
  let trSqrt = 0;
  for (const v of values) trSqrt += Math.sqrt(Math.max(v, 0));
  return Math.max(0, meanTerm + tr1 + tr2 - 2 * trSqrt);
}
