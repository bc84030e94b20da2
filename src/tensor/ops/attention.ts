// Fused scaled-dot-product attention: softmax(q k^T * scale + mask) v, one kernel forward, and
// a backward pass from the saved probabilities (three matmuls and a softmax gradient).

import { ShapeError, broadcastStrides, fmtShape } from '../../util/index.ts';
import { K } from '../dispatch.ts';
import { emptyF32 } from '../buffer.ts';
import { Tensor, record } from '../tensor.ts';

/** q [..., Sq, D], k [..., Sk, D], v [..., Sk, Dv] -> [..., Sq, Dv]. mask: additive, broadcastable to
 *  [..., Sq, Sk] with the leading dims flattened (use -Infinity or a large negative value to mask). */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null = null,
  scale?: number): Tensor {
  const d = q.shape[q.ndim - 1]!, sq = q.shape[q.ndim - 2]!;
  const sk = k.shape[k.ndim - 2]!, dv = v.shape[v.ndim - 1]!;
  const b = q.size / (sq * d);
  if (k.size !== b * sk * d || v.size !== b * sk * dv || k.shape[k.ndim - 1] !== d) {
    throw new ShapeError(`attention: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} do not agree`);
  }
  const sc = scale ?? 1 / Math.sqrt(d);
  let maskData: Float32Array | null = null, maskStrides: number[] | null = null;
  if (mask) {
    const m3 = mask.ndim >= 3 ? [mask.size / (mask.shape[mask.ndim - 2]! * mask.shape[mask.ndim - 1]!), mask.shape[mask.ndim - 2]!, mask.shape[mask.ndim - 1]!] : [1, ...(mask.ndim === 2 ? mask.shape : [1, mask.shape[0]!])];
    if ((m3[0] !== 1 && m3[0] !== b) || (m3[1] !== 1 && m3[1] !== sq) || m3[2] !== sk) {
      throw new ShapeError(`attention: mask ${fmtShape(mask.shape)} does not broadcast to [${b}, ${sq}, ${sk}]`);
    }
    maskData = mask.f32;
    maskStrides = broadcastStrides(m3 as number[], [b, sq, sk]);
  }
  const out = emptyF32(b * sq * dv);
  const probs = emptyF32(b * sq * sk);
  K().attention(q.f32, k.f32, v.f32, b, sq, sk, d, dv, sc, maskData, maskStrides, out, probs);
  const y = new Tensor(out, [...q.shape.slice(0, -1), dv]);
  return record(y, 'attention', [q, k, v], (g) => {
    const kk = K();
    // dV = P^T dO ; dP = dO V^T ; dS = softmax'(P, dP) * scale ; dQ = dS K ; dK = dS^T Q
    const gv = new Float32Array(v.size);
    kk.matmul(probs, g.f32, gv, b, sk, sq, dv, true, false, sq * sk, sq * dv, false);
    const gp = new Float32Array(b * sq * sk);
    kk.matmul(g.f32, v.f32, gp, b, sq, dv, sk, false, true, sq * dv, sk * dv, false);
    const gs = new Float32Array(b * sq * sk);
    kk.softmaxGrad(probs, gp, b * sq, sk, gs, false);
    kk.affine(gs, sc, 0, gs);
    const gq = new Float32Array(q.size);
    kk.matmul(gs, k.f32, gq, b, sq, sk, d, false, false, sq * sk, sk * d, false);
    const gk = new Float32Array(k.size);
    kk.matmul(gs, q.f32, gk, b, sk, sq, d, true, false, sq * sk, sq * d, false);
    return [new Tensor(gq, q.shape), new Tensor(gk, k.shape), new Tensor(gv, v.shape)];
  });
}
