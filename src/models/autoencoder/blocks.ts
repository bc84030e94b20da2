// Building blocks of ldm/modules/diffusionmodules/model.py (the first-stage autoencoder and the
// DDPM-style `Model`): Normalize, nonlinearity, ResnetBlock, AttnBlock, make_attn (its LinAttnBlock
// comes from models/attention.ts), Downsample, Upsample and that module's get_timestep_embedding.
// Child names are the official state_dict keys. Not here: Encoder / Decoder / Model (encoder.ts), AutoencoderKL (kl.ts), and
// the UNet blocks of openaimodel.py (whose GroupNorm eps, embedding order and names differ).

import { ConfigError, ShapeError, fmtShape, type Kwargs } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Conv2d, Dropout, GroupNorm, Identity, Linear, Module } from '../../nn/index.ts';
import { LinAttnBlock } from '../attention.ts';

/** `LinAttnBlock` (LinearAttention with heads=1, dim_head=in_channels, no residual) lives with
 *  LinearAttention in models/attention.ts; re-exported for make_attn users. */
export { LinAttnBlock };

/** Anything that maps one feature map to one feature map (AttnBlock, LinAttnBlock, Identity). */
export interface FeatureLayer extends Module {
  forward(x: Tensor): Tensor;
}

/** `Normalize`: GroupNorm(num_groups=32, eps=1e-6, affine=True). */
export function Normalize(inChannels: number, numGroups = 32): GroupNorm {
  if (inChannels % numGroups !== 0) {
    throw new ConfigError(`Normalize: GroupNorm(${numGroups}) needs a channel count divisible by ${numGroups}, got ${inChannels} (ch and ch * ch_mult must be multiples of 32)`);
  }
  return new GroupNorm(numGroups, inChannels, 1e-6);
}

/** `nonlinearity`: swish, x * sigmoid(x). */
export const nonlinearity = (x: Tensor): Tensor => T.silu(x);

/** `get_timestep_embedding` of model.py (DDPM / fairseq): [sin, cos] with divisor half-1, zero
 *  padded for odd dims. NOT the openaimodel `timestep_embedding` ([cos, sin], divisor half).
 *  timesteps [N] (int64 or float) -> [N, dim]. */
export function getTimestepEmbedding(timesteps: Tensor, embeddingDim: number): Tensor {
  if (timesteps.ndim !== 1) throw new ShapeError(`get_timestep_embedding: timesteps must be 1-D, got ${fmtShape(timesteps.shape)}`);
  const half = Math.floor(embeddingDim / 2);
  const n = timesteps.shape[0]!;
  // emb = exp(arange(half, float32) * -(log(10000) / (half - 1))) in float32, as torch computes it.
  const step = Math.fround(Math.log(10000) / (half - 1));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.exp(Math.fround(i * -step));
  const out = new Float32Array(n * embeddingDim);
  const t = timesteps.data;
  for (let r = 0; r < n; r++) {
    const tv = Math.fround(t[r]!);
    for (let i = 0; i < half; i++) {
      const a = Math.fround(tv * freqs[i]!);
      out[r * embeddingDim + i] = Math.sin(a);
      out[r * embeddingDim + half + i] = Math.cos(a);
    }
  }
  return T.tensor(out, [n, embeddingDim]);
}

export interface ResnetBlockOptions {
  in_channels: number;
  out_channels?: number | null;
  conv_shortcut?: boolean;
  dropout: number;
  /** 512 in the official signature; the Encoder / Decoder pass 0 (no temb_proj). */
  temb_channels?: number;
}

/** `ResnetBlock`: norm1 -> swish -> conv1 (+ temb_proj(swish(temb))) -> norm2 -> swish -> dropout
 *  -> conv2, plus the input (through nin_shortcut / conv_shortcut when channels change). */
export class ResnetBlock extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly useConvShortcut: boolean;
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly temb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly shortcut: Conv2d | null;

  constructor(o: ResnetBlockOptions) {
    super();
    const cin = o.in_channels, cout = o.out_channels ?? o.in_channels;
    const tembCh = o.temb_channels ?? 512;
    this.inChannels = cin;
    this.outChannels = cout;
    this.useConvShortcut = o.conv_shortcut ?? false;
    this.norm1 = this.child('norm1', Normalize(cin));
    this.conv1 = this.child('conv1', new Conv2d(cin, cout, 3, { padding: 1 }));
    this.temb_proj = tembCh > 0 ? this.child('temb_proj', new Linear(tembCh, cout)) : null;
    this.norm2 = this.child('norm2', Normalize(cout));
    this.dropout = this.child('dropout', new Dropout(o.dropout));
    this.conv2 = this.child('conv2', new Conv2d(cout, cout, 3, { padding: 1 }));
    this.shortcut = cin === cout ? null : this.useConvShortcut
      ? this.child('conv_shortcut', new Conv2d(cin, cout, 3, { padding: 1 }))
      : this.child('nin_shortcut', new Conv2d(cin, cout, 1));
  }

  /** x [N, Cin, H, W], temb [N, temb_channels] or null -> [N, Cout, H, W]. */
  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    let h = this.conv1.forward(nonlinearity(this.norm1.forward(x)));
    if (temb !== null) {
      if (!this.temb_proj) throw new ShapeError('ResnetBlock: a timestep embedding was given but the block has temb_channels = 0');
      const e = this.temb_proj.forward(nonlinearity(temb)); // [N, Cout]
      h = T.add(h, T.reshape(e, [e.shape[0]!, this.outChannels, 1, 1]));
    }
    h = this.conv2.forward(this.dropout.forward(nonlinearity(this.norm2.forward(h))));
    const s = this.shortcut ? this.shortcut.forward(x) : x;
    return T.add(s, h);
  }
}

/** `AttnBlock`: single-head self-attention over the H*W positions with 1x1 conv q, k, v and
 *  proj_out, scale C^-0.5, softmax over keys, residual. */
export class AttnBlock extends Module implements FeatureLayer {
  readonly norm: GroupNorm;
  readonly q: Conv2d;
  readonly k: Conv2d;
  readonly v: Conv2d;
  readonly proj_out: Conv2d;

  constructor(readonly inChannels: number) {
    super();
    this.norm = this.child('norm', Normalize(inChannels));
    this.q = this.child('q', new Conv2d(inChannels, inChannels, 1));
    this.k = this.child('k', new Conv2d(inChannels, inChannels, 1));
    this.v = this.child('v', new Conv2d(inChannels, inChannels, 1));
    this.proj_out = this.child('proj_out', new Conv2d(inChannels, inChannels, 1));
  }

  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const hn = this.norm.forward(x);
    // [B, C, H, W] -> [B, HW, C]
    const tok = (t: Tensor): Tensor => T.transpose(T.reshape(t, [b, c, h * w]), 1, 2);
    const q = tok(this.q.forward(hn)), k = tok(this.k.forward(hn)), v = tok(this.v.forward(hn));
    // w_[b,i,j] = softmax_j(q_i . k_j * C^-0.5); h_[b,:,i] = sum_j w_[b,i,j] v[b,:,j]
    const att = T.scaledDotProductAttention(q, k, v, null, c ** -0.5); // [B, HW, C]
    const o = T.reshape(T.transpose(att, 1, 2), [b, c, h, w]);
    return T.add(x, this.proj_out.forward(o));
  }
}

export type AttnType = 'vanilla' | 'linear' | 'none';

/** `make_attn`: 'vanilla' AttnBlock, 'linear' LinAttnBlock, 'none' nn.Identity (no keys). */
export function makeAttn(inChannels: number, attnType: AttnType = 'vanilla'): FeatureLayer {
  switch (attnType) {
    case 'vanilla': return new AttnBlock(inChannels);
    case 'linear': return new LinAttnBlock(inChannels);
    case 'none': return new Identity();
    default: throw new ConfigError(`make_attn: attn_type ${String(attnType)} unknown (expected 'vanilla', 'linear' or 'none')`);
  }
}

/** `Downsample`: with_conv pads (left 0, right 1, top 0, bottom 1) then a 3x3 stride-2 conv
 *  with padding 0; otherwise avg_pool2d(2, 2). [N, C, H, W] -> [N, C, H/2, W/2] */
export class Downsample extends Module implements FeatureLayer {
  readonly conv: Conv2d | null;
  constructor(inChannels: number, readonly withConv: boolean) {
    super();
    this.conv = withConv ? this.child('conv', new Conv2d(inChannels, inChannels, 3, { stride: 2, padding: 0 })) : null;
  }
  forward(x: Tensor): Tensor {
    if (this.conv) return this.conv.forward(T.pad(x, [0, 1, 0, 1]));
    return T.avgPool2d(x, 2, 2);
  }
}

/** `Upsample`: nearest x2, then an optional 3x3 conv. [N, C, H, W] -> [N, C, 2H, 2W] */
export class Upsample extends Module implements FeatureLayer {
  readonly conv: Conv2d | null;
  constructor(inChannels: number, readonly withConv: boolean) {
    super();
    this.conv = withConv ? this.child('conv', new Conv2d(inChannels, inChannels, 3, { padding: 1 })) : null;
  }
  forward(x: Tensor): Tensor {
    const u = T.upsampleNearest(x, 2);
    return this.conv ? this.conv.forward(u) : u;
  }
}

/** The attention type of a ddconfig read by Encoder / Decoder / Model: use_linear_attn wins, else
 *  attn_type ('vanilla' by default). */
export function attnTypeOf(kw: Kwargs): AttnType {
  if (kw.bool('use_linear_attn', false)) return 'linear';
  const v = kw.raw('attn_type') ?? 'vanilla';
  if (v !== 'vanilla' && v !== 'linear' && v !== 'none') {
    throw new ConfigError(`${kw.owner}: attn_type ${JSON.stringify(v)} unknown (expected 'vanilla', 'linear' or 'none')`);
  }
  return v;
}
