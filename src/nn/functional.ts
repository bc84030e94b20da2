// Loss functions as one-liners over tensor ops (torch.nn.functional names and reductions).

import * as T from '../tensor/index.ts';
import type { Tensor } from '../tensor/index.ts';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(x: Tensor, r: Reduction): Tensor {
  return r === 'mean' ? T.mean(x) : r === 'sum' ? T.sum(x) : x;
}

export const mseLoss = (a: Tensor, b: Tensor, r: Reduction = 'mean'): Tensor => reduce(T.square(T.sub(a, b)), r);
export const l1Loss = (a: Tensor, b: Tensor, r: Reduction = 'mean'): Tensor => reduce(T.abs(T.sub(a, b)), r);

/** Cross entropy of logits [N, C] against int64 targets [N]. */
export function crossEntropy(logits: Tensor, target: Tensor, r: Reduction = 'mean'): Tensor {
  const lp = T.logSoftmax(logits, 1);
  const picked = T.gather(lp, 1, T.reshape(target, [target.size, 1]));
  return reduce(T.neg(T.reshape(picked, [target.size])), r);
}

/** Binary cross entropy with logits (torch: max(x,0) - x*y + log(1 + exp(-|x|))). */
export function bceWithLogits(x: Tensor, y: Tensor, r: Reduction = 'mean'): Tensor {
  const l = T.add(T.sub(T.relu(x), T.mul(x, y)), T.softplus(T.neg(T.abs(x))));
  return reduce(l, r);
}
