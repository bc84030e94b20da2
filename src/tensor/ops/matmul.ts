// Matrix products: matmul with batch broadcasting, bmm, linear. Gradients reuse the same kernel
// with transposes folded into its flags (no transposed copies).

import { ShapeError, broadcastShapes, fmtShape, numel } from '../../util/index.ts';
import { K } from '../dispatch.ts';
import { emptyF32 } from '../buffer.ts';
import { Tensor, record } from '../tensor.ts';
import { sumTo } from './elementwise.ts';
import { expand, reshape } from './movement.ts';

/** Raw batched product of contiguous [B, M, K] x [B, K, N] (batch stride 0 broadcasts). */
function mm(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number,
  tA: boolean, tB: boolean, aBS: number, bBS: number): Float32Array {
  const out = emptyF32(batch * m * n);
  K().matmul(a, b, out, batch, m, k, n, tA, tB, aBS, bBS, false);
  return out;
}

/** torch.matmul for rank >= 2 operands (1-D operands are promoted as torch does). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 1) return reshape(matmul(reshape(a, [1, a.size]), b), b.ndim === 1 ? [] : [...b.shape.slice(0, -2), b.shape[b.ndim - 1]!]);
  if (b.ndim === 1) return reshape(matmul(a, reshape(b, [b.size, 1])), a.shape.slice(0, -1));
  const m = a.shape[a.ndim - 2]!, k = a.shape[a.ndim - 1]!;
  const k2 = b.shape[b.ndim - 2]!, n = b.shape[b.ndim - 1]!;
  if (k !== k2) throw new ShapeError(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not chain (${k} vs ${k2})`);
  const ab = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(ab, bb, 'matmul');
  const batch = numel(batchShape);
  // Fast path: a batched, b a single matrix -> one big [batch*m, k] x [k, n] product.
  if (bb.every((d) => d === 1) && numel(ab) === batch) {
    const y = new Tensor(mm(a.f32, b.f32, 1, batch * m, k, n, false, false, 0, 0), [...batchShape, m, n]);
    return record(y, 'matmul', [a, b], (g) => [
      a.requiresGrad ? new Tensor(mm(g.f32, b.f32, 1, batch * m, n, k, false, true, 0, 0), a.shape) : null,
      b.requiresGrad ? new Tensor(mm(a.f32, g.f32, 1, k, batch * m, n, true, false, 0, 0), b.shape) : null,
    ]);
  }
  const ae = numel(ab) === batch ? a : expand(a, [...batchShape, m, k]);
  const be = numel(bb) === batch ? b : numel(bb) === 1 ? b : expand(b, [...batchShape, k, n]);
  const bBS = numel(bb) === 1 ? 0 : k * n;
  const y = new Tensor(mm(ae.f32, be.f32, batch, m, k, n, false, false, m * k, bBS), [...batchShape, m, n]);
  return record(y, 'matmul', [ae, be], (g) => {
    const ga = ae.requiresGrad ? new Tensor(mm(g.f32, be.f32, batch, m, n, k, false, true, m * n, bBS === 0 ? 0 : k * n), ae.shape) : null;
    let gb: Tensor | null = null;
    if (be.requiresGrad) {
      const full = new Tensor(mm(ae.f32, g.f32, batch, k, m, n, true, false, m * k, m * n), [batch, k, n]);
      gb = bBS === 0 ? sumTo(full, [1, k, n]) : full;
      gb = reshape(gb, be.shape);
    }
    return [ga, gb];
  });
}

export const bmm = matmul;

/** y = x @ w^T + b for x [..., in], w [out, in], b [out] (torch.nn.functional.linear). */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const inF = w.shape[1]!, outF = w.shape[0]!;
  if (x.shape[x.ndim - 1] !== inF) throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not end in in_features ${inF} (weight ${fmtShape(w.shape)})`);
  const rows = x.size / inF;
  const out = emptyF32(rows * outF);
  K().matmul(x.f32, w.f32, out, 1, rows, inF, outF, false, true, 0, 0, false);
  if (b) {
    const bd = b.f32;
    for (let r = 0; r < rows; r++) for (let j = 0; j < outF; j++) out[r * outF + j]! += bd[j]!;
  }
  const y = new Tensor(out, [...x.shape.slice(0, -1), outF]);
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, 'linear', inputs, (g) => {
    const gx = x.requiresGrad ? new Tensor(mm(g.f32, w.f32, 1, rows, outF, inF, false, false, 0, 0), x.shape) : null;
    const gw = w.requiresGrad ? new Tensor(mm(g.f32, x.f32, 1, outF, rows, inF, true, false, 0, 0), w.shape) : null;
    const res: (Tensor | null)[] = [gx, gw];
    if (b) {
      const gb = new Float32Array(outF);
      K().reduceSum(g.f32, 1, rows, outF, gb);
      res.push(new Tensor(gb, b.shape));
    }
    return res;
  });
}
