// The building blocks of the official `ldm/modules/diffusionmodules/openaimodel.py` and
// `util.py`: `timestep_embedding`, `Conv1d` (kernel 1), `Upsample`, `Downsample`, `ResBlock`,
// `QKVAttentionLegacy`, `QKVAttention`, `AttentionBlock`, `TimestepEmbedSequential`.
// Child names are the official state_dict keys. Only dims=2 (images) is built; `use_checkpoint`
// (gradient checkpointing) is accepted and has no effect. The UNetModel itself is in openai.ts.

import { ConfigError, ShapeError, fmtShape } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import {
  Conv2d, Dropout, GroupNorm, Identity, Linear, Module, SiLU, Sequential, defaultBias, defaultWeight,
  type Layer,
} from '../../nn/index.ts';
import { SpatialTransformer, zeroModule } from '../attention.ts';

/** `timestep_embedding(timesteps, dim, max_period=10000)` of diffusionmodules/util.py:
 *  cat([cos(t * f), sin(t * f)]) with f_i = exp(-ln(max_period) * i / half), i < half = dim // 2,
 *  and one zero column when dim is odd. Computed in float32 step by step as torch does.
 *  `repeat_only` returns the timesteps repeated `dim` times. timesteps [N] -> [N, dim]. */
export function timestepEmbedding(timesteps: Tensor, dim: number, maxPeriod = 10000, repeatOnly = false): Tensor {
  if (timesteps.ndim !== 1) throw new ShapeError(`timestep_embedding: timesteps must be 1-D [N], got ${fmtShape(timesteps.shape)}`);
  const n = timesteps.size;
  const out = new Float32Array(n * dim);
  const f = Math.fround;
  if (repeatOnly) {
    for (let i = 0; i < n; i++) out.fill(f(timesteps.data[i]!), i * dim, (i + 1) * dim);
    return new Tensor(out, [n, dim]);
  }
  const half = Math.floor(dim / 2);
  const negLog = f(-Math.log(maxPeriod));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.exp(f(f(negLog * i) / half));
  for (let r = 0; r < n; r++) {
    const t = f(timesteps.data[r]!); // timesteps[:, None].float()
    for (let i = 0; i < half; i++) {
      const a = f(t * freqs[i]!);
      out[r * dim + i] = Math.cos(a);
      out[r * dim + half + i] = Math.sin(a);
    }
  }
  return new Tensor(out, [n, dim]);
}

/** nn.Conv1d with kernel size 1 (what `conv_nd(1, ..., 1)` builds in AttentionBlock): weight
 *  [out, in, 1] exactly as the official shape, applied as a matmul over [N, in, T]. */
export class Conv1d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly inChannels: number, readonly outChannels: number) {
    super();
    this.weight = this.param('weight', defaultWeight([outChannels, inChannels, 1]));
    this.bias = this.param('bias', defaultBias(outChannels, inChannels));
  }
  /** x [N, in, T] -> [N, out, T]. */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 3 || x.shape[1] !== this.inChannels) throw new ShapeError(`Conv1d(${this.inChannels}, ${this.outChannels}, 1): input ${fmtShape(x.shape)} is not [N, ${this.inChannels}, T]`);
    const y = T.matmul(T.reshape(this.weight, [this.outChannels, this.inChannels]), x);
    return T.add(y, T.reshape(this.bias, [1, this.outChannels, 1]));
  }
}

/** `normalization(channels)` = GroupNorm32(32, channels), eps 1e-5 (computed in float32). */
export function normalization(channels: number): GroupNorm {
  return new GroupNorm(32, channels, 1e-5, true);
}

function checkDims(dims: number, owner: string): void {
  if (dims !== 2) throw new ConfigError(`${owner}: dims=${dims} is not supported (only dims=2, image UNets, is implemented)`);
}

/** `Upsample(channels, use_conv, dims=2, out_channels=None, padding=1)`: nearest x2, then an
 *  optional 3x3 conv (key `conv`). */
export class Upsample extends Module implements Layer {
  readonly outChannels: number;
  readonly conv: Conv2d | null;
  constructor(readonly channels: number, readonly useConv: boolean, dims = 2, outChannels: number | null = null, padding = 1) {
    super();
    checkDims(dims, 'Upsample');
    this.outChannels = outChannels || channels;
    this.conv = this.optionalChild('conv', useConv ? new Conv2d(channels, this.outChannels, 3, { padding }) : null);
  }
  forward(x: Tensor): Tensor {
    if (x.shape[1] !== this.channels) throw new ShapeError(`Upsample(${this.channels}): input ${fmtShape(x.shape)} has ${x.shape[1]} channels`);
    const h = T.upsampleNearest(x, 2);
    return this.conv ? this.conv.forward(h) : h;
  }
}

/** Average pooling 2x2 stride 2 (nn.AvgPool2d; no parameters). */
class AvgPool2x2 extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return T.avgPool2d(x, 2, 2);
  }
}

/** `Downsample(channels, use_conv, dims=2, out_channels=None, padding=1)`: key `op` = 3x3 conv
 *  stride 2, or 2x2 average pooling (then out_channels must equal channels). */
export class Downsample extends Module implements Layer {
  readonly outChannels: number;
  readonly op: Module & Layer;
  constructor(readonly channels: number, readonly useConv: boolean, dims = 2, outChannels: number | null = null, padding = 1) {
    super();
    checkDims(dims, 'Downsample');
    this.outChannels = outChannels || channels;
    if (useConv) {
      this.op = this.child('op', new Conv2d(channels, this.outChannels, 3, { stride: 2, padding }));
    } else {
      if (this.outChannels !== channels) throw new ConfigError(`Downsample: average pooling cannot change channels (${channels} -> ${this.outChannels})`);
      this.op = this.child('op', new AvgPool2x2());
    }
  }
  forward(x: Tensor): Tensor {
    if (x.shape[1] !== this.channels) throw new ShapeError(`Downsample(${this.channels}): input ${fmtShape(x.shape)} has ${x.shape[1]} channels`);
    return this.op.forward(x);
  }
}

export interface ResBlockOptions {
  channels: number;
  emb_channels: number;
  dropout: number;
  out_channels?: number | null | undefined;
  use_conv?: boolean | undefined;
  use_scale_shift_norm?: boolean | undefined;
  dims?: number | undefined;
  use_checkpoint?: boolean | undefined;
  up?: boolean | undefined;
  down?: boolean | undefined;
}

/** `ResBlock`: in_layers = [GroupNorm32, SiLU, conv3x3], emb_layers = [SiLU, Linear] (2x out
 *  channels with use_scale_shift_norm), out_layers = [GroupNorm32, SiLU, Dropout, zero conv3x3],
 *  skip_connection = Identity | conv3x3 (use_conv) | conv1x1; up/down resample inside (h_upd/x_upd). */
export class ResBlock extends Module {
  readonly channels: number;
  readonly outChannels: number;
  readonly useScaleShiftNorm: boolean;
  readonly updown: boolean;
  readonly in_layers: Sequential;
  readonly h_upd: Module & Layer;
  readonly x_upd: Module & Layer;
  readonly emb_layers: Sequential;
  readonly out_layers: Sequential;
  readonly skip_connection: Module & Layer;
  constructor(o: ResBlockOptions) {
    super();
    const dims = o.dims ?? 2;
    checkDims(dims, 'ResBlock');
    this.channels = o.channels;
    this.outChannels = o.out_channels || o.channels;
    this.useScaleShiftNorm = o.use_scale_shift_norm ?? false;
    const ch = o.channels, out = this.outChannels;
    this.in_layers = this.child('in_layers', new Sequential(normalization(ch), new SiLU(), new Conv2d(ch, out, 3, { padding: 1 })));
    this.updown = !!(o.up || o.down);
    if (o.up) {
      this.h_upd = this.child('h_upd', new Upsample(ch, false, dims));
      this.x_upd = this.child('x_upd', new Upsample(ch, false, dims));
    } else if (o.down) {
      this.h_upd = this.child('h_upd', new Downsample(ch, false, dims));
      this.x_upd = this.child('x_upd', new Downsample(ch, false, dims));
    } else {
      this.h_upd = this.x_upd = this.child('h_upd', new Identity());
      this.child('x_upd', this.x_upd);
    }
    this.emb_layers = this.child('emb_layers', new Sequential(new SiLU(), new Linear(o.emb_channels, this.useScaleShiftNorm ? 2 * out : out)));
    this.out_layers = this.child('out_layers', new Sequential(
      normalization(out), new SiLU(), new Dropout(o.dropout), zeroModule(new Conv2d(out, out, 3, { padding: 1 }))));
    if (out === ch) this.skip_connection = this.child('skip_connection', new Identity());
    else if (o.use_conv) this.skip_connection = this.child('skip_connection', new Conv2d(ch, out, 3, { padding: 1 }));
    else this.skip_connection = this.child('skip_connection', new Conv2d(ch, out, 1));
  }

  /** x [N, C, H, W], emb [N, emb_channels] -> [N, out_channels, H', W']. */
  forward(x: Tensor, emb: Tensor): Tensor {
    let h: Tensor;
    let xs = x;
    if (this.updown) {
      h = this.in_layers.at(1).forward(this.in_layers.at(0).forward(x)); // in_rest
      h = this.h_upd.forward(h);
      xs = this.x_upd.forward(x);
      h = this.in_layers.at(2).forward(h); // in_conv
    } else {
      h = this.in_layers.forward(x);
    }
    const e = this.emb_layers.forward(emb); // [N, out or 2*out]
    const embOut = T.reshape(e, [e.shape[0]!, e.shape[1]!, 1, 1]); // emb_out[..., None, None]
    if (this.useScaleShiftNorm) {
      const [scale, shift] = T.chunk(embOut, 2, 1) as [Tensor, Tensor];
      h = T.add(T.mul(this.out_layers.at(0).forward(h), T.add(scale, 1)), shift);
      for (let i = 1; i < 4; i++) h = this.out_layers.at(i).forward(h);
    } else {
      h = this.out_layers.forward(T.add(h, embOut));
    }
    return T.add(this.skip_connection.forward(xs), h);
  }
}

/** Attention over [N*H, ch, T] q, k, v: softmax over s of sum_c q[c,t] k[c,s] / sqrt(ch), then
 *  a[c,t] = sum_s w[t,s] v[c,s] (the two einsums of QKVAttention*). Returns [N*H, ch, T]. */
function qkvCore(q: Tensor, k: Tensor, v: Tensor, ch: number): Tensor {
  const qt = T.transpose(q, 1, 2), kt = T.transpose(k, 1, 2), vt = T.transpose(v, 1, 2); // [NH, T, ch]
  // The official code scales q and k each by ch^-1/4 (for fp16); the product is ch^-1/2.
  return T.transpose(T.scaledDotProductAttention(qt, kt, vt, null, 1 / Math.sqrt(ch)), 1, 2);
}

/** `QKVAttentionLegacy(n_heads)`: qkv [N, H*3*ch, T] split heads first, then q, k, v. */
export class QKVAttentionLegacy extends Module {
  constructor(readonly nHeads: number) { super(); }
  forward(qkv: Tensor): Tensor {
    const [bs, width, length] = qkv.shape as [number, number, number];
    if (width % (3 * this.nHeads) !== 0) throw new ShapeError(`QKVAttentionLegacy: width ${width} is not divisible by 3 * ${this.nHeads} heads`);
    const ch = width / (3 * this.nHeads);
    const [q, k, v] = T.split(T.reshape(qkv, [bs * this.nHeads, ch * 3, length]), ch, 1) as [Tensor, Tensor, Tensor];
    return T.reshape(qkvCore(q, k, v, ch), [bs, this.nHeads * ch, length]);
  }
}

/** `QKVAttention(n_heads)` (use_new_attention_order): qkv [N, 3*H*ch, T] split q, k, v first. */
export class QKVAttention extends Module {
  constructor(readonly nHeads: number) { super(); }
  forward(qkv: Tensor): Tensor {
    const [bs, width, length] = qkv.shape as [number, number, number];
    if (width % (3 * this.nHeads) !== 0) throw new ShapeError(`QKVAttention: width ${width} is not divisible by 3 * ${this.nHeads} heads`);
    const ch = width / (3 * this.nHeads);
    const heads = (t: Tensor): Tensor => T.reshape(t, [bs * this.nHeads, ch, length]);
    const [q, k, v] = T.chunk(qkv, 3, 1) as [Tensor, Tensor, Tensor];
    return T.reshape(qkvCore(heads(q), heads(k), heads(v), ch), [bs, this.nHeads * ch, length]);
  }
}

export interface AttentionBlockOptions {
  channels: number;
  num_heads?: number | undefined;
  num_head_channels?: number | undefined;
  use_checkpoint?: boolean | undefined;
  use_new_attention_order?: boolean | undefined;
}

/** `AttentionBlock`: x + proj_out(attention(qkv(norm(x)))) over the flattened positions; norm is
 *  GroupNorm32, qkv and proj_out are kernel-1 Conv1d (proj_out zero-initialised). Heads =
 *  num_heads, or channels // num_head_channels when num_head_channels != -1. */
export class AttentionBlock extends Module {
  readonly channels: number;
  readonly numHeads: number;
  readonly norm: GroupNorm;
  readonly qkv: Conv1d;
  readonly attention: QKVAttention | QKVAttentionLegacy;
  readonly proj_out: Conv1d;
  constructor(o: AttentionBlockOptions) {
    super();
    const c = o.channels, nhc = o.num_head_channels ?? -1;
    this.channels = c;
    if (nhc === -1) {
      this.numHeads = o.num_heads ?? 1;
    } else {
      if (c % nhc !== 0) throw new ConfigError(`AttentionBlock: q,k,v channels ${c} is not divisible by num_head_channels ${nhc}`);
      this.numHeads = c / nhc;
    }
    if (!(this.numHeads > 0) || c % this.numHeads !== 0) throw new ConfigError(`AttentionBlock: ${this.numHeads} heads do not divide ${c} channels`);
    this.norm = this.child('norm', normalization(c));
    this.qkv = this.child('qkv', new Conv1d(c, c * 3));
    // A parameter-free child: it owns no state_dict keys.
    this.attention = this.child('attention', o.use_new_attention_order ? new QKVAttention(this.numHeads) : new QKVAttentionLegacy(this.numHeads));
    this.proj_out = this.child('proj_out', zeroModule(new Conv1d(c, c)));
  }
  /** x [N, C, H, W] -> [N, C, H, W]. */
  forward(x: Tensor): Tensor {
    const [b, c] = x.shape as [number, number];
    const flat = T.reshape(x, [b, c, x.size / (b * c)]); // [N, C, T]
    const h = this.proj_out.forward(this.attention.forward(this.qkv.forward(this.norm.forward(flat))));
    return T.reshape(T.add(flat, h), x.shape);
  }
}

/** A child of TimestepEmbedSequential: ResBlocks take the embedding, SpatialTransformers the
 *  context, every other layer only x. */
export type TimestepChild = ResBlock | SpatialTransformer | (Module & Layer);

/** `TimestepEmbedSequential`: children "0", "1", ...; forward(x, emb, context). */
export class TimestepEmbedSequential extends Module {
  readonly layers: TimestepChild[];
  constructor(...layers: TimestepChild[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.child(String(i), l));
  }
  forward(x: Tensor, emb: Tensor, context: Tensor | null = null): Tensor {
    let h = x;
    for (const l of this.layers) {
      if (l instanceof ResBlock) h = l.forward(h, emb);
      else if (l instanceof SpatialTransformer) h = l.forward(h, context);
      else h = l.forward(h);
    }
    return h;
  }
}
