// Reference scaled dot-product attention forward: out = softmax(q k^T * scale + mask) v.
// The backward pass is composed in tensor/ops/attention.ts from matmul and softmaxGrad.

import { matmul } from './matmul.ts';
import { softmax } from './reduce.ts';

export function attention(q: Float32Array, k: Float32Array, v: Float32Array, b: number, sq: number, sk: number,
  d: number, dv: number, scale: number, mask: Float32Array | null, maskStrides: readonly number[] | null,
  out: Float32Array, probs: Float32Array): void {
  // probs [b, sq, sk] = q [b, sq, d] @ k^T [b, d, sk]
  matmul(q, k, probs, b, sq, d, sk, false, true, sq * d, sk * d, false);
  for (let i = 0; i < probs.length; i++) probs[i] = probs[i]! * scale;
  if (mask && maskStrides) {
    const [s0, s1, s2] = maskStrides as [number, number, number];
    for (let bi = 0; bi < b; bi++) for (let i = 0; i < sq; i++) for (let j = 0; j < sk; j++) {
      probs[(bi * sq + i) * sk + j]! += mask[bi * s0 + i * s1 + j * s2]!;
    }
  }
  softmax(probs, b * sq, sk, probs, false);
  matmul(probs, v, out, b, sq, sk, dv, false, false, sq * sk, sk * dv, false);
}
