// Module: a tree of named children, parameters and buffers whose dotted paths are exactly the
// official PyTorch state_dict keys (e.g. `input_blocks.1.0.in_layers.2.weight`), so official
// weights load with no renaming. Not here: layers (layers.ts), optimisers (optim.ts).

import { StateDictError, fmtShape, shapesEqual } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export class Module {
  training = true;
  private readonly _children = new Map<string, Module | null>();
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, { t: Tensor; persistent: boolean }>();

  /** Register a child under its official key and return it. */
  child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** Register a child slot that may be empty (torch's `self.x = None`); it owns no keys. */
  optionalChild<M extends Module>(name: string, m: M | null): M | null {
    if (m) this._children.set(name, m);
    return m;
  }

  /** Register a trainable parameter (requires grad). */
  param(name: string, t: Tensor): Tensor {
    t.requireGrad(true);
    this._params.set(name, t);
    return t;
  }

  /** Register a buffer (saved in the state dict unless persistent is false). */
  buffer(name: string, t: Tensor, persistent = true): Tensor {
    this._buffers.set(name, { t, persistent });
    return t;
  }

  /** Replace a buffer's tensor (e.g. running statistics, scale_factor). */
  setBuffer(name: string, t: Tensor): void {
    const b = this._buffers.get(name);
    if (!b) throw new StateDictError(`no buffer named '${name}' on ${this.constructor.name}`);
    b.t = t;
  }

  getBuffer(name: string): Tensor {
    const b = this._buffers.get(name);
    if (!b) throw new StateDictError(`no buffer named '${name}' on ${this.constructor.name}`);
    return b.t;
  }

  namedChildren(): [string, Module][] {
    return [...this._children.entries()].filter((e): e is [string, Module] => e[1] !== null);
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this.namedChildren()) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<number>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, p] of m._params) {
        if (p && !seen.has(p.id)) {
          seen.add(p.id);
          out.push([mp ? `${mp}.${n}` : n, p]);
        }
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, b] of m._buffers) {
        if (!persistentOnly || b.persistent) out.push([mp ? `${mp}.${n}` : n, b.t]);
      }
    }
    return out;
  }

  /** Parameters and persistent buffers under their official keys, in registration order. */
  stateDict(prefix = ''): Map<string, Tensor> {
    const sd = new Map<string, Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      const key = (n: string): string => (mp ? `${mp}.${n}` : n);
      for (const [n, p] of m._params) if (p) sd.set(key(n), p);
      for (const [n, b] of m._buffers) if (b.persistent) sd.set(key(n), b.t);
    }
    return sd;
  }

  /** Copy values from a state dict. strict: throws listing missing and unexpected keys; shape
   *  mismatches always throw naming the key and both shapes. Parameter objects are kept (their
   *  storage is replaced), so optimisers holding them stay valid. */
  loadStateDict(sd: ReadonlyMap<string, Tensor>, strict = true, source = 'state dict'): LoadResult {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !own.has(k));
    const bad: string[] = [];
    for (const [k, t] of own) {
      const src = sd.get(k);
      if (!src) continue;
      if (!shapesEqual(src.shape, t.shape)) bad.push(`${k}: checkpoint ${fmtShape(src.shape)} vs model ${fmtShape(t.shape)}`);
    }
    if (bad.length > 0) throw new StateDictError(`${source}: shape mismatch for ${bad.length} key(s):\n  ${bad.join('\n  ')}`);
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const show = (l: string[]): string => (l.length > 12 ? `${l.slice(0, 12).join(', ')}, … (${l.length} in all)` : l.join(', '));
      throw new StateDictError(`${source}: keys do not match ${this.constructor.name}` +
        (missing.length ? `\n  missing: ${show(missing)}` : '') +
        (unexpected.length ? `\n  unexpected: ${show(unexpected)}` : ''));
    }
    for (const [k, t] of own) {
      const src = sd.get(k);
      if (!src) continue;
      if (t.dtype === 'float32') t.data = src.dtype === 'float32' ? Float32Array.from(src.data) : Float32Array.from(src.data);
      else t.data = Float64Array.from(src.data);
    }
    return { missing, unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Stop gradients for every parameter (a frozen first stage). */
  freeze(): this {
    for (const p of this.parameters()) p.requiresGrad = false;
    return this;
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }
}
