// Exponential moving average of parameters with LitEma semantics (ldm/modules/ema.py):
// shadow buffers named after the parameter with dots removed, decay warm-up
// min(decay, (1 + n) / (10 + n)) when use_num_upates, store / copy_to / restore for evaluation.
// State keys: `decay`, `num_updates` (int32 in the official code), and one per parameter.

import { LdmError } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Module } from './module.ts';
import { isShapesOnly, shapeStorage } from './init.ts';

export class LitEma extends Module {
  private readonly names: string[];
  private readonly shadows: Tensor[];
  private stored: Float32Array[] | null = null;

  constructor(private readonly model: Module, decay = 0.9999, readonly useNumUpdates = true) {
    super();
    if (decay < 0 || decay > 1) throw new LdmError(`LitEma: decay must be in [0, 1], got ${decay}`);
    this.buffer('decay', new Tensor(Float32Array.of(decay), []));
    this.buffer('num_updates', new Tensor(Float64Array.of(useNumUpdates ? 0 : -1), [], 'int64'));
    const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
    this.names = params.map(([n]) => n.replaceAll('.', ''));
    this.shadows = params.map(([n, p]) => this.buffer(n.replaceAll('.', ''),
      new Tensor(isShapesOnly() ? shapeStorage(p.size) : p.f32.slice(), p.shape)));
  }

  /** One EMA step: shadow -= (1 - decay) * (shadow - param). */
  update(): void {
    let decay = this.getBuffer('decay').item();
    const nu = this.getBuffer('num_updates');
    if (nu.item() >= 0) {
      const n = nu.item() + 1;
      this.setBuffer('num_updates', new Tensor(Float64Array.of(n), [], 'int64'));
      decay = Math.min(decay, (1 + n) / (10 + n));
    }
    const oneMinus = 1 - decay;
    const params = this.trainable();
    params.forEach((p, i) => {
      const s = this.getBuffer(this.names[i]!).f32;
      const pd = p.f32;
      for (let j = 0; j < s.length; j++) s[j] = s[j]! - oneMinus * (s[j]! - pd[j]!);
    });
  }

  private trainable(): Tensor[] {
    const params = this.model.namedParameters().filter(([, p]) => p.requiresGrad).map(([, p]) => p);
    if (params.length !== this.names.length) throw new LdmError(`LitEma: the model has ${params.length} trainable parameters, the EMA tracks ${this.names.length}`);
    return params;
  }

  /** Copy the averaged weights into the model. */
  copyTo(): void {
    this.trainable().forEach((p, i) => { p.data = this.getBuffer(this.names[i]!).f32.slice(); });
  }

  /** Save the model's current weights (before copyTo for evaluation). */
  store(): void {
    this.stored = this.trainable().map((p) => p.f32.slice());
  }

  /** Put back the weights saved by store(). */
  restore(): void {
    if (!this.stored) throw new LdmError('LitEma.restore() called without store()');
    const s = this.stored;
    this.trainable().forEach((p, i) => { p.data = s[i]!; });
    this.stored = null;
  }

  /** Run fn with the EMA weights swapped in (the official `ema_scope`). */
  scope<T>(fn: () => T): T {
    this.store();
    this.copyTo();
    try {
      return fn();
    } finally {
      this.restore();
    }
  }

  shadowsCount(): number {
    return this.shadows.length;
  }
}
