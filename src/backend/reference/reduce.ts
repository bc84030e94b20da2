// Reference reductions over one axis of a [outer, axis, inner] view, and softmax over rows.

export function reduceSum(x: Float32Array, outer: number, axis: number, inner: number, out: Float32Array): void {
  // Accumulate in float64: the reference is the specification, so it should be the most accurate.
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    const base = o * axis * inner;
    for (let a = 0; a < axis; a++) {
      const row = base + a * inner;
      for (let i = 0; i < inner; i++) acc[i]! += x[row + i]!;
    }
    for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i]!;
  }
}

export function reduceMax(x: Float32Array, outer: number, axis: number, inner: number, out: Float32Array,
  idx?: Float32Array): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = -Infinity, bi = 0;
      for (let a = 0; a < axis; a++) {
        const v = x[(o * axis + a) * inner + i]!;
        if (v > best || Number.isNaN(v)) { best = v; bi = a; if (Number.isNaN(v)) break; }
      }
      out[o * inner + i] = best;
      if (idx) idx[o * inner + i] = bi;
    }
  }
}

export function softmax(x: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const b = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[b + c]!);
    if (m === -Infinity) m = 0; // fully masked row: exp(-inf - 0) = 0, giving NaN like torch (0/0)
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[b + c]! - m);
    if (log) {
      const ls = Math.log(s) + m;
      for (let c = 0; c < cols; c++) out[b + c] = x[b + c]! - ls;
    } else {
      for (let c = 0; c < cols; c++) out[b + c] = Math.exp(x[b + c]! - m) / s;
    }
  }
}

export function softmaxGrad(y: Float32Array, gy: Float32Array, rows: number, cols: number, out: Float32Array,
  log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const b = r * cols;
    let s = 0;
    if (log) {
      // d logsoftmax: gx = gy - softmax * sum(gy)
      for (let c = 0; c < cols; c++) s += gy[b + c]!;
      for (let c = 0; c < cols; c++) out[b + c] = gy[b + c]! - Math.exp(y[b + c]!) * s;
    } else {
      // d softmax: gx = y * (gy - sum(gy * y))
      for (let c = 0; c < cols; c++) s += gy[b + c]! * y[b + c]!;
      for (let c = 0; c < cols; c++) out[b + c] = y[b + c]! * (gy[b + c]! - s);
    }
  }
}
