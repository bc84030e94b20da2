// Optimisers with PyTorch semantics: AdamW (decoupled weight decay; torch.optim.AdamW defaults
// lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2) and Adam (the same kernel with L2
// decay folded into the gradient, default 0). Gradient-norm clipping. The update runs in one
// fused kernel per parameter (native: an OpenMP loop).

import { LdmError } from '../util/index.ts';
import { K, Tensor, noGrad } from '../tensor/index.ts';

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroup {
  params: Tensor[];
  lr: number;
}

/** Serialisable optimiser state: per-parameter moments in parameter order plus the step. */
export interface AdamState {
  step: number;
  lr: number;
  exp_avg: Float32Array[];
  exp_avg_sq: Float32Array[];
}

export class AdamW {
  lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  step_ = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(readonly params: readonly Tensor[], opts: AdamOptions = {}, readonly decoupled = true) {
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? (decoupled ? 1e-2 : 0);
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  step(): void {
    this.step_ += 1;
    const k = K();
    noGrad(() => {
      this.params.forEach((p, i) => {
        if (!p.grad) return;
        let g = p.grad.f32;
        if (!this.decoupled && this.weightDecay !== 0) {
          // torch.optim.Adam: grad = grad + wd * p
          const gg = new Float32Array(g.length);
          const pd = p.f32;
          for (let j = 0; j < g.length; j++) gg[j] = g[j]! + this.weightDecay * pd[j]!;
          g = gg;
        }
        k.adamw(p.f32, g, this.m[i]!, this.v[i]!, this.lr, this.betas[0], this.betas[1], this.eps,
          this.decoupled ? this.weightDecay : 0, this.step_);
      });
    });
  }

  stateDict(): AdamState {
    return { step: this.step_, lr: this.lr, exp_avg: this.m.map((a) => a.slice()), exp_avg_sq: this.v.map((a) => a.slice()) };
  }

  loadStateDict(s: AdamState): void {
    if (s.exp_avg.length !== this.m.length) throw new LdmError(`optimizer state has ${s.exp_avg.length} parameters, the model has ${this.m.length}`);
    s.exp_avg.forEach((a, i) => {
      if (a.length !== this.m[i]!.length) throw new LdmError(`optimizer state: parameter ${i} has ${a.length} values, expected ${this.m[i]!.length}`);
      this.m[i]!.set(a);
      this.v[i]!.set(s.exp_avg_sq[i]!);
    });
    this.step_ = s.step;
    this.lr = s.lr;
  }
}

/** torch.optim.Adam: L2 weight decay in the gradient (default 0). */
export class Adam extends AdamW {
  constructor(params: readonly Tensor[], opts: AdamOptions = {}) {
    super(params, { ...opts, weightDecay: opts.weightDecay ?? 0 }, false);
  }
}

/** torch.nn.utils.clip_grad_norm_ (L2): scales gradients in place, returns the total norm. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  let ss = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.f32;
    for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  }
  const total = Math.sqrt(ss);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.f32.slice();
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
      p.grad = new Tensor(g, p.grad.shape);
    }
  }
  return total;
}
