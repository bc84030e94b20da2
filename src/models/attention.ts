// The attention modules of the official `ldm/modules/attention.py` (CompVis/latent-diffusion):
// `Normalize` (GroupNorm(32, eps 1e-6)), `GEGLU`, `FeedForward`, `CrossAttention`,
// `BasicTransformerBlock`, `SpatialTransformer` (cross-attention on `context` inside the UNet),
// and `LinearAttention` with the autoencoder's `LinAttnBlock` (diffusionmodules/model.py,
// attn_type 'linear'). Child names are the official state_dict keys.
// Not here: the UNet's own `AttentionBlock` (unet/openai.ts) and the autoencoder's vanilla AttnBlock.

import { ConfigError, ShapeError, checkKwargs, fmtShape } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { Conv2d, Dropout, GELU, GroupNorm, LayerNorm, Linear, Module, ModuleList, Sequential, zeroInit } from '../nn/index.ts';

/** `Normalize(in_channels)` of attention.py / model.py: GroupNorm(32 groups, eps 1e-6, affine). */
export function Normalize(inChannels: number): GroupNorm {
  return new GroupNorm(32, inChannels, 1e-6, true);
}

/** `zero_module`: zero every parameter of a module (official output projections start at 0). */
export function zeroModule<M extends Module>(m: M): M {
  for (const p of m.parameters()) zeroInit(p);
  return m;
}

/** `GEGLU(dim_in, dim_out)`: proj = Linear(dim_in, 2 * dim_out); x, gate = chunk(2); x * gelu(gate)
 *  (exact erf GELU, as F.gelu). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(readonly dimIn: number, readonly dimOut: number) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: Tensor): Tensor {
    const [a, gate] = T.chunk(this.proj.forward(x), 2, -1) as [Tensor, Tensor]; // 2 x [..., dim_out]
    return T.mul(a, T.gelu(gate));
  }
}

export interface FeedForwardOptions {
  dim: number;
  dim_out?: number | null | undefined;
  mult?: number | undefined;
  glu?: boolean | undefined;
  dropout?: number | undefined;
}

/** `FeedForward`: net = Sequential(project_in, Dropout, Linear(inner, dim_out)); project_in is
 *  GEGLU(dim, inner) when glu, else Sequential(Linear(dim, inner), GELU) (keys net.0.0). */
export class FeedForward extends Module {
  readonly net: Sequential;
  constructor(o: FeedForwardOptions) {
    super();
    checkKwargs('FeedForward', o, ['dim', 'dim_out', 'mult', 'glu', 'dropout']);
    const inner = Math.trunc(o.dim * (o.mult ?? 4));
    const dimOut = o.dim_out ?? o.dim;
    const projectIn = o.glu ? new GEGLU(o.dim, inner) : new Sequential(new Linear(o.dim, inner), new GELU());
    this.net = this.child('net', new Sequential(projectIn, new Dropout(o.dropout ?? 0), new Linear(inner, dimOut)));
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

export interface CrossAttentionOptions {
  query_dim: number;
  context_dim?: number | null | undefined;
  heads?: number | undefined;
  dim_head?: number | undefined;
  dropout?: number | undefined;
}

/** `CrossAttention`: to_q / to_k / to_v (no bias), to_out = Sequential(Linear, Dropout);
 *  softmax(q k^T * dim_head^-0.5) v per head. Without `context` it attends to x itself. */
export class CrossAttention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly scale: number;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Sequential;
  constructor(o: CrossAttentionOptions) {
    super();
    checkKwargs('CrossAttention', o, ['query_dim', 'context_dim', 'heads', 'dim_head', 'dropout']);
    this.heads = o.heads ?? 8;
    this.dimHead = o.dim_head ?? 64;
    const inner = this.dimHead * this.heads;
    const contextDim = o.context_dim ?? o.query_dim;
    this.scale = this.dimHead ** -0.5;
    this.to_q = this.child('to_q', new Linear(o.query_dim, inner, false));
    this.to_k = this.child('to_k', new Linear(contextDim, inner, false));
    this.to_v = this.child('to_v', new Linear(contextDim, inner, false));
    this.to_out = this.child('to_out', new Sequential(new Linear(inner, o.query_dim), new Dropout(o.dropout ?? 0)));
  }

  /** x [B, N, query_dim], context [B, M, context_dim] (default x), mask [B, ...] with nonzero =
   *  attend (the official boolean mask; masked positions get -finfo(float32).max). */
  forward(x: Tensor, context: Tensor | null = null, mask: Tensor | null = null): Tensor {
    const h = this.heads, d = this.dimHead;
    const ctx = context ?? x;
    if (x.ndim !== 3 || ctx.ndim !== 3 || ctx.shape[0] !== x.shape[0]) {
      throw new ShapeError(`CrossAttention: x ${fmtShape(x.shape)} and context ${fmtShape(ctx.shape)} must be [B, N, C] with the same B`);
    }
    const [b, n] = x.shape as [number, number, number];
    const m = ctx.shape[1]!;
    // 'b n (h d) -> (b h) n d', kept 4-D: [B, H, N, D]
    const split = (t: Tensor, len: number): Tensor => T.permute(T.reshape(t, [b, len, h, d]), [0, 2, 1, 3]);
    const q = split(this.to_q.forward(x), n);
    const k = split(this.to_k.forward(ctx), m);
    const v = split(this.to_v.forward(ctx), m);
    let add: Tensor | null = null;
    if (mask) {
      if (mask.shape[0] !== b || mask.size !== b * m) {
        throw new ShapeError(`CrossAttention: mask ${fmtShape(mask.shape)} must flatten to [${b}, ${m}] (batch, context length)`);
      }
      // rearrange 'b ... -> b (...)', repeat 'b j -> (b h) () j', masked_fill(~mask, -finfo.max)
      const neg = -3.4028234663852886e38;
      const md = new Float32Array(b * h * m);
      for (let bi = 0; bi < b; bi++) for (let hi = 0; hi < h; hi++) for (let j = 0; j < m; j++) {
        md[(bi * h + hi) * m + j] = mask.data[bi * m + j]! !== 0 ? 0 : neg;
      }
      add = T.tensor(md, [b, h, 1, m]);
    }
    const out = T.scaledDotProductAttention(q, k, v, add, this.scale); // [B, H, N, D]
    return this.to_out.forward(T.reshape(T.permute(out, [0, 2, 1, 3]), [b, n, h * d])); // [B, N, query_dim]
  }
}

export interface BasicTransformerBlockOptions {
  dim: number;
  n_heads: number;
  d_head: number;
  dropout?: number | undefined;
  context_dim?: number | null | undefined;
  gated_ff?: boolean | undefined;
  checkpoint?: boolean | undefined;
}

/** `BasicTransformerBlock`: x += attn1(norm1(x)) (self); x += attn2(norm2(x), context) (cross);
 *  x += ff(norm3(x)) (GEGLU). LayerNorm eps 1e-5. `checkpoint` is accepted and has no effect. */
export class BasicTransformerBlock extends Module {
  readonly attn1: CrossAttention;
  readonly ff: FeedForward;
  readonly attn2: CrossAttention;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  constructor(o: BasicTransformerBlockOptions) {
    super();
    checkKwargs('BasicTransformerBlock', o, ['dim', 'n_heads', 'd_head', 'dropout', 'context_dim', 'gated_ff', 'checkpoint']);
    const dropout = o.dropout ?? 0;
    this.attn1 = this.child('attn1', new CrossAttention({ query_dim: o.dim, heads: o.n_heads, dim_head: o.d_head, dropout }));
    this.ff = this.child('ff', new FeedForward({ dim: o.dim, dropout, glu: o.gated_ff ?? true }));
    this.attn2 = this.child('attn2', new CrossAttention({ query_dim: o.dim, context_dim: o.context_dim ?? null, heads: o.n_heads, dim_head: o.d_head, dropout }));
    this.norm1 = this.child('norm1', new LayerNorm(o.dim));
    this.norm2 = this.child('norm2', new LayerNorm(o.dim));
    this.norm3 = this.child('norm3', new LayerNorm(o.dim));
  }
  /** x [B, N, dim], context [B, M, context_dim] or null (then attn2 is self-attention). */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    let h = T.add(this.attn1.forward(this.norm1.forward(x)), x);
    h = T.add(this.attn2.forward(this.norm2.forward(h), context), h);
    return T.add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

export interface SpatialTransformerOptions {
  in_channels: number;
  n_heads: number;
  d_head: number;
  depth?: number | undefined;
  dropout?: number | undefined;
  context_dim?: number | null | undefined;
}

/** `SpatialTransformer`: norm (GroupNorm 32, eps 1e-6) -> proj_in (1x1 conv to n_heads*d_head)
 *  -> 'b c h w -> b (h w) c' -> transformer_blocks -> back -> proj_out (1x1 conv, zero-init) + x. */
export class SpatialTransformer extends Module {
  readonly inChannels: number;
  readonly norm: GroupNorm;
  readonly proj_in: Conv2d;
  readonly transformer_blocks: ModuleList<BasicTransformerBlock>;
  readonly proj_out: Conv2d;
  constructor(o: SpatialTransformerOptions) {
    super();
    checkKwargs('SpatialTransformer', o, ['in_channels', 'n_heads', 'd_head', 'depth', 'dropout', 'context_dim']);
    if (!(o.n_heads > 0 && o.d_head > 0)) throw new ConfigError(`SpatialTransformer: n_heads ${o.n_heads} and d_head ${o.d_head} must be positive`);
    this.inChannels = o.in_channels;
    const inner = o.n_heads * o.d_head;
    this.norm = this.child('norm', Normalize(o.in_channels));
    this.proj_in = this.child('proj_in', new Conv2d(o.in_channels, inner, 1));
    const blocks: BasicTransformerBlock[] = [];
    for (let i = 0; i < (o.depth ?? 1); i++) {
      blocks.push(new BasicTransformerBlock({ dim: inner, n_heads: o.n_heads, d_head: o.d_head, dropout: o.dropout ?? 0, context_dim: o.context_dim ?? null }));
    }
    this.transformer_blocks = this.child('transformer_blocks', new ModuleList(blocks));
    this.proj_out = this.child('proj_out', zeroModule(new Conv2d(inner, o.in_channels, 1)));
  }
  /** x [B, C, H, W], context [B, M, context_dim] or null -> [B, C, H, W]. */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) throw new ShapeError(`SpatialTransformer(${this.inChannels}): input ${fmtShape(x.shape)} is not [B, ${this.inChannels}, H, W]`);
    const [b, , hh, ww] = x.shape as [number, number, number, number];
    let h = this.proj_in.forward(this.norm.forward(x)); // [B, inner, H, W]
    const inner = h.shape[1]!;
    h = T.transpose(T.reshape(h, [b, inner, hh * ww]), 1, 2); // [B, HW, inner]
    for (const blk of this.transformer_blocks) h = blk.forward(h, context);
    h = T.reshape(T.transpose(h, 1, 2), [b, inner, hh, ww]); // [B, inner, H, W]
    return T.add(this.proj_out.forward(h), x);
  }
}

/** `LinearAttention(dim, heads=4, dim_head=32)`: to_qkv (1x1 conv, no bias), softmax of k over
 *  positions, context = k v^T per head, out = context^T q, to_out (1x1 conv). No residual. */
export class LinearAttention extends Module {
  readonly to_qkv: Conv2d;
  readonly to_out: Conv2d;
  constructor(readonly dim: number, readonly heads = 4, readonly dimHead = 32) {
    super();
    const hidden = dimHead * heads;
    this.to_qkv = this.child('to_qkv', new Conv2d(dim, hidden * 3, 1, { bias: false }));
    this.to_out = this.child('to_out', new Conv2d(hidden, dim, 1));
  }
  /** x [B, dim, H, W] -> [B, dim, H, W]. */
  forward(x: Tensor): Tensor {
    const [b, , hh, ww] = x.shape as [number, number, number, number];
    const qkv = T.reshape(this.to_qkv.forward(x), [b, 3, this.heads, this.dimHead, hh * ww]); // 'b (qkv heads c) (h w)'
    const q = T.select(qkv, 1, 0), v = T.select(qkv, 1, 2); // [B, heads, c, n]
    const k = T.softmax(T.select(qkv, 1, 1), -1);
    const context = T.matmul(k, T.transpose(v, -1, -2)); // einsum 'bhdn,bhen->bhde': [B, heads, d, e]
    const out = T.matmul(T.transpose(context, -1, -2), q); // einsum 'bhde,bhdn->bhen': [B, heads, e, n]
    return this.to_out.forward(T.reshape(out, [b, this.heads * this.dimHead, hh, ww]));
  }
}

/** `LinAttnBlock(in_channels)` of diffusionmodules/model.py: LinearAttention(dim=in_channels,
 *  heads=1, dim_head=in_channels), used by the autoencoder with attn_type 'linear'. */
export class LinAttnBlock extends LinearAttention {
  constructor(readonly inChannels: number) {
    super(inChannels, 1, inChannels);
  }
}
