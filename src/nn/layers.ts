// Standard layers with the official parameter names and shapes: Linear, Conv2d, ConvTranspose2d,
// GroupNorm, LayerNorm, BatchNorm2d, Embedding, Dropout, activations, Sequential, ModuleList.

import { Generator, ShapeError, fmtShape } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Module } from './module.ts';
import { defaultBias, defaultWeight, fanIn, initGenerator, normal } from './init.ts';

/** A module that maps one tensor to one tensor (what Sequential chains). */
export interface Layer {
  forward(x: Tensor): Tensor;
}

export class Linear extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.param('weight', defaultWeight([outFeatures, inFeatures]));
    this.bias = bias ? this.param('bias', defaultBias(outFeatures, inFeatures)) : null;
  }
  forward(x: Tensor): Tensor {
    return T.linear(x, this.weight, this.bias);
  }
}

export interface Conv2dOptions {
  stride?: number;
  padding?: T.Padding2d;
  bias?: boolean;
}

export class Conv2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: T.Padding2d;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, opts: Conv2dOptions = {}) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.weight = this.param('weight', defaultWeight([outChannels, inChannels, kernelSize, kernelSize]));
    this.bias = opts.bias === false ? null : this.param('bias', defaultBias(outChannels, fanIn(this.weight.shape)));
  }
  forward(x: Tensor): Tensor {
    return T.conv2d(x, this.weight, this.bias, this.stride, this.padding);
  }
}

export class ConvTranspose2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number,
    readonly stride = 1, readonly padding = 0, readonly outputPadding = 0, bias = true) {
    super();
    // torch computes fan_in from weight.size(1) * k * k for ConvTranspose too.
    this.weight = this.param('weight', defaultWeight([inChannels, outChannels, kernelSize, kernelSize]));
    this.bias = bias ? this.param('bias', defaultBias(outChannels, outChannels * kernelSize * kernelSize)) : null;
  }
  forward(x: Tensor): Tensor {
    return T.convTranspose2d(x, this.weight, this.bias, this.stride, this.padding, this.outputPadding);
  }
}

export class GroupNorm extends Module implements Layer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5, affine = true) {
    super();
    if (numChannels % numGroups !== 0) throw new ShapeError(`GroupNorm: ${numGroups} groups do not divide ${numChannels} channels`);
    this.weight = affine ? this.param('weight', T.ones([numChannels])) : null;
    this.bias = affine ? this.param('bias', T.zeros([numChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    return T.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
  /** silu(forward(x)) as one fused op (Sequential uses it for a GroupNorm, SiLU pair). */
  forwardSilu(x: Tensor): Tensor {
    return T.groupNormSilu(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export class LayerNorm extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', T.ones([dim]));
    this.bias = this.param('bias', T.zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return T.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** BatchNorm2d (eps 1e-5, momentum 0.1): train mode normalises with the biased batch variance
 *  and updates running_var with the unbiased one, as torch does. */
export class BatchNorm2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly numFeatures: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.param('weight', T.ones([numFeatures]));
    this.bias = this.param('bias', T.zeros([numFeatures]));
    this.buffer('running_mean', T.zeros([numFeatures]));
    this.buffer('running_var', T.ones([numFeatures]));
    this.buffer('num_batches_tracked', T.zeros([], 'int64'));
  }
  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== this.numFeatures) throw new ShapeError(`BatchNorm2d(${this.numFeatures}): input ${fmtShape(x.shape)} is not [N, ${this.numFeatures}, H, W]`);
    const c = this.numFeatures;
    const w = T.reshape(this.weight, [1, c, 1, 1]), b = T.reshape(this.bias, [1, c, 1, 1]);
    let mean: Tensor, v: Tensor;
    if (this.training) {
      mean = T.mean(x, [0, 2, 3], true);
      v = T.variance(x, [0, 2, 3], true, false);
      const n = x.size / c;
      T.noGrad(() => {
        const rm = this.getBuffer('running_mean'), rv = this.getBuffer('running_var');
        const m = this.momentum;
        this.setBuffer('running_mean', T.add(T.mul(rm, 1 - m), T.mul(T.reshape(mean, [c]), m)));
        this.setBuffer('running_var', T.add(T.mul(rv, 1 - m), T.mul(T.reshape(v, [c]), m * n / (n - 1))));
        const nb = this.getBuffer('num_batches_tracked');
        this.setBuffer('num_batches_tracked', new Tensor(Float64Array.of(nb.item() + 1), [], 'int64'));
      });
    } else {
      mean = T.reshape(this.getBuffer('running_mean'), [1, c, 1, 1]);
      v = T.reshape(this.getBuffer('running_var'), [1, c, 1, 1]);
    }
    const xhat = T.div(T.sub(x, mean), T.sqrt(T.add(v, this.eps)));
    return T.add(T.mul(xhat, w), b);
  }
}

export class Embedding extends Module implements Layer {
  readonly weight: Tensor;
  constructor(readonly num: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', normal([num, dim], 0, 1));
  }
  /** idx: int64 of any shape -> [...idx.shape, dim]. */
  forward(idx: Tensor): Tensor {
    const flat = T.reshape(idx, [idx.size]);
    return T.reshape(T.indexSelect(this.weight, 0, flat), [...idx.shape, this.dim]);
  }
}

/** Inverted dropout with a seedable generator (identity in eval mode or p = 0). */
export function dropout(x: Tensor, p: number, training: boolean, gen: Generator = initGenerator()): Tensor {
  if (!training || p === 0) return x;
  const keep = gen.rand(x.size);
  const mask = new Float32Array(x.size);
  const scale = 1 / (1 - p);
  for (let i = 0; i < x.size; i++) mask[i] = keep[i]! < p ? 0 : scale;
  return T.mul(x, new Tensor(mask, x.shape));
}

export class Dropout extends Module implements Layer {
  generator: Generator | null = null;
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator ?? initGenerator());
  }
}

export class SiLU extends Module implements Layer {
  forward(x: Tensor): Tensor { return T.silu(x); }
}
export class GELU extends Module implements Layer {
  forward(x: Tensor): Tensor { return T.gelu(x); }
}
export class ReLU extends Module implements Layer {
  forward(x: Tensor): Tensor { return T.relu(x); }
}
export class LeakyReLU extends Module implements Layer {
  constructor(readonly slope = 0.01) { super(); }
  forward(x: Tensor): Tensor { return T.leakyRelu(x, this.slope); }
}
export class Tanh extends Module implements Layer {
  forward(x: Tensor): Tensor { return T.tanh(x); }
}
export class Identity extends Module implements Layer {
  forward(x: Tensor): Tensor { return x; }
}

/** Children named "0", "1", ...; forward chains them. */
export class Sequential extends Module implements Layer {
  readonly layers: (Module & Layer)[];
  constructor(...layers: (Module & Layer)[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    const ls = this.layers;
    for (let i = 0; i < ls.length; i++) {
      const l = ls[i]!;
      // GroupNorm followed by SiLU (every UNet block opens with the pair) runs as one fused op.
      if (l instanceof GroupNorm && ls[i + 1] instanceof SiLU) { h = l.forwardSilu(h); i++; continue; }
      h = l.forward(h);
    }
    return h;
  }
  at(i: number): Module & Layer {
    const l = this.layers[i < 0 ? i + this.layers.length : i];
    if (!l) throw new ShapeError(`Sequential has no layer ${i}`);
    return l;
  }
}

/** Children named "0", "1", ... of any module type (nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: readonly M[] = []) {
    super();
    for (const m of items) this.push(m);
  }
  push<N extends M>(m: N): N {
    this.child(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new ShapeError(`ModuleList has no item ${i} (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
