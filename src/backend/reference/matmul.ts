// Reference batched matrix multiply: C[b] (+)= op(A[b]) @ op(B[b]).

export function matmul(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, m: number,
  k: number, n: number, transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number,
  accumulate: boolean): void {
  // Strides of A as [m, k] and B as [k, n] views.
  const ar = transA ? 1 : k, ac = transA ? m : 1;
  const br = transB ? 1 : n, bc = transB ? k : 1;
  const row = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * aBatchStride, bo = bi * bBatchStride, co = bi * m * n;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = a[ao + i * ar + p * ac]!;
        const bb = bo + p * br;
        for (let j = 0; j < n; j++) row[j]! += av * b[bb + j * bc]!;
      }
      const c = co + i * n;
      if (accumulate) for (let j = 0; j < n; j++) out[c + j]! += row[j]!;
      else for (let j = 0; j < n; j++) out[c + j] = row[j]!;
    }
  }
}
