// Reference AdamW step (torch.optim.AdamW semantics; Adam is the same with weightDecay 0).

export function adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number,
  beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const stepSize = lr / bc1;
  const bc2s = Math.sqrt(bc2);
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * gi;
    const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
    m[i] = mi; v[i] = vi;
    p[i] = p[i]! * decay - stepSize * mi / (Math.sqrt(vi) / bc2s + eps);
  }
}
