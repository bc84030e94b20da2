// The transformer of LDM's text encoders: the subset of ldm/modules/x_transformer.py (vendored
// from lucidrains' x-transformers) that `TransformerEmbedder` / `BERTEmbedder` build with
// `TransformerWrapper(num_tokens, max_seq_len, attn_layers=Encoder(dim, depth))`:
//  1. x = token_emb(tokens) + pos_emb(arange(N))   (AbsolutePositionalEmbedding, both N(0, 0.02))
//  2. emb_dropout; project_emb is Identity (emb_dim == dim)
//  3. depth x ['a', 'f'] pre-norm blocks: x = block(LayerNorm(x)) + x, with
//     'a' = Attention(dim, heads=8, dim_head=64): bias-free to_q/to_k/to_v (dim -> 512),
//           softmax(q k^T / sqrt(64)) v over all positions (no padding mask, as the official
//           embedders pass none), to_out Linear(512, dim);
//     'f' = FeedForward(dim, mult=4): Linear(dim, 4 dim), exact GELU, Dropout, Linear(4 dim, dim)
//  4. final LayerNorm(dim) -> embeddings [B, N, dim] (return_embeddings=True); `to_logits`
//     Linear(dim, num_tokens) exists (its weights are in official checkpoints) but is unused.
// State keys are the official ones: token_emb.weight, pos_emb.emb.weight,
// attn_layers.layers.{2i}.0.{weight,bias} (norm), attn_layers.layers.{2i}.1.to_{q,k,v}.weight,
// .to_out.{weight,bias}, attn_layers.layers.{2i+1}.1.net.0.0.* / net.2.*, norm.*, to_logits.*.
// What it is not: no causal / cross-attending / rotary / memory-token / talking-heads variants of
// x-transformers (the official embedders use none of them).

import { ConfigError, ShapeError, fmtShape } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { Dropout, Embedding, GELU, Identity, LayerNorm, Linear, Module, ModuleList, Sequential, normal } from '../nn/index.ts';

export const DEFAULT_DIM_HEAD = 64;

/** `Attention` (self-attention only): [B, N, dim] -> [B, N, dim]. */
export class XAttention extends Module {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  readonly dropout: Dropout;
  constructor(readonly dim: number, readonly heads = 8, readonly dimHead = DEFAULT_DIM_HEAD, dropout = 0) {
    super();
    const inner = heads * dimHead;
    this.to_q = this.child('to_q', new Linear(dim, inner, false));
    this.to_k = this.child('to_k', new Linear(dim, inner, false));
    this.to_v = this.child('to_v', new Linear(dim, inner, false));
    this.dropout = this.child('dropout', new Dropout(dropout));
    this.to_out = this.child('to_out', new Linear(inner, dim));
  }
  forward(x: Tensor): Tensor {
    const [b, n] = x.shape as [number, number, number];
    const h = this.heads, d = this.dimHead;
    // 'b n (h d) -> b h n d'
    const split = (t: Tensor): Tensor => T.permute(T.reshape(t, [b, n, h, d]), [0, 2, 1, 3]); // [B, h, N, d]
    const q = split(this.to_q.forward(x)), k = split(this.to_k.forward(x)), v = split(this.to_v.forward(x));
    let out: Tensor;
    if (this.training && this.dropout.p > 0) {
      // dropout on the attention weights: the unfused path
      const dots = T.mul(T.matmul(q, T.transpose(k, 2, 3)), d ** -0.5); // [B, h, N, N]
      out = T.matmul(this.dropout.forward(T.softmax(dots, -1)), v);
    } else {
      out = T.scaledDotProductAttention(q, k, v, null, d ** -0.5); // [B, h, N, d]
    }
    return this.to_out.forward(T.reshape(T.permute(out, [0, 2, 1, 3]), [b, n, h * d])); // [B, N, dim]
  }
}

/** `FeedForward(dim, mult=4, glu=False)`: net = Sequential(Sequential(Linear, GELU), Dropout, Linear). */
export class XFeedForward extends Module {
  readonly net: Sequential;
  constructor(dim: number, mult = 4, dropout = 0) {
    super();
    const inner = Math.trunc(dim * mult);
    this.net = this.child('net', new Sequential(new Sequential(new Linear(dim, inner), new GELU()), new Dropout(dropout), new Linear(inner, dim)));
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

/** `Residual`: out + residual (no weights; the third entry of each layer's ModuleList). */
export class Residual extends Module {
  forward(x: Tensor, residual: Tensor): Tensor {
    return T.add(x, residual);
  }
}

export interface EncoderOptions {
  dim: number;
  depth: number;
  heads?: number;
  /** `attn_dim_head` of x-transformers (default 64) */
  dim_head?: number;
  ff_mult?: number;
  attn_dropout?: number;
  ff_dropout?: number;
}

/** `Encoder(dim, depth)` = AttentionLayers(causal=False, pre_norm=True), layer types ('a', 'f') * depth. */
export class XEncoder extends Module {
  readonly dim: number;
  readonly depth: number;
  readonly layerTypes: readonly ('a' | 'f')[];
  readonly layers: ModuleList<ModuleList>;
  constructor(o: EncoderOptions) {
    super();
    if (!Number.isInteger(o.dim) || o.dim <= 0 || !Number.isInteger(o.depth) || o.depth < 0) {
      throw new ConfigError(`x_transformer.Encoder: dim and depth must be non-negative integers, got dim ${o.dim}, depth ${o.depth}`);
    }
    this.dim = o.dim;
    this.depth = o.depth;
    const types: ('a' | 'f')[] = [];
    for (let i = 0; i < o.depth; i++) types.push('a', 'f');
    this.layerTypes = types;
    this.layers = this.child('layers', new ModuleList<ModuleList>());
    for (const t of types) {
      const block: Module = t === 'a'
        ? new XAttention(o.dim, o.heads ?? 8, o.dim_head ?? DEFAULT_DIM_HEAD, o.attn_dropout ?? 0)
        : new XFeedForward(o.dim, o.ff_mult ?? 4, o.ff_dropout ?? 0);
      this.layers.push(new ModuleList([new LayerNorm(o.dim), block, new Residual()]));
    }
  }
  /** [B, N, dim] -> [B, N, dim]: residual = x; x = block(norm(x)); x = x + residual. */
  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) {
      const norm = layer.at(0) as LayerNorm, block = layer.at(1) as XAttention | XFeedForward, res = layer.at(2) as Residual;
      h = res.forward(block.forward(norm.forward(h)), h);
    }
    return h;
  }
}

/** `AbsolutePositionalEmbedding(dim, max_seq_len)`: emb(arange(N))[None]. */
export class AbsolutePositionalEmbedding extends Module {
  readonly emb: Embedding;
  constructor(readonly dim: number, readonly maxSeqLen: number) {
    super();
    this.emb = this.child('emb', new Embedding(maxSeqLen, dim));
    this.emb.weight.data = normal([maxSeqLen, dim], 0, 0.02).f32; // init_: normal_(std=0.02)
  }
  /** x [B, N, ...] -> [1, N, dim] */
  forward(x: Tensor): Tensor {
    const n = x.shape[1]!;
    if (n > this.maxSeqLen) throw new ShapeError(`AbsolutePositionalEmbedding: sequence length ${n} exceeds max_seq_len ${this.maxSeqLen}`);
    return T.unsqueeze(this.emb.forward(T.arange(0, n)), 0);
  }
}

export interface TransformerWrapperOptions {
  num_tokens: number;
  max_seq_len: number;
  attn_layers: XEncoder;
  emb_dropout?: number;
}

/** `TransformerWrapper(num_tokens, max_seq_len, attn_layers, emb_dropout)` (steps 1-4 above). */
export class TransformerWrapper extends Module {
  readonly numTokens: number;
  readonly maxSeqLen: number;
  readonly token_emb: Embedding;
  readonly pos_emb: AbsolutePositionalEmbedding;
  readonly emb_dropout: Dropout;
  readonly project_emb: Identity;
  readonly attn_layers: XEncoder;
  readonly norm: LayerNorm;
  readonly to_logits: Linear;
  constructor(o: TransformerWrapperOptions) {
    super();
    const dim = o.attn_layers.dim;
    this.numTokens = o.num_tokens;
    this.maxSeqLen = o.max_seq_len;
    this.token_emb = this.child('token_emb', new Embedding(o.num_tokens, dim));
    this.pos_emb = this.child('pos_emb', new AbsolutePositionalEmbedding(dim, o.max_seq_len));
    this.emb_dropout = this.child('emb_dropout', new Dropout(o.emb_dropout ?? 0));
    this.project_emb = this.child('project_emb', new Identity());
    this.attn_layers = this.child('attn_layers', o.attn_layers);
    this.norm = this.child('norm', new LayerNorm(dim));
    this.token_emb.weight.data = normal([o.num_tokens, dim], 0, 0.02).f32; // init_
    this.to_logits = this.child('to_logits', new Linear(dim, o.num_tokens));
  }

  /** tokens int64 [B, N] -> embeddings [B, N, dim] (returnEmbeddings, the default) or logits [B, N, num_tokens]. */
  forward(tokens: Tensor, returnEmbeddings = true): Tensor {
    if (tokens.ndim !== 2 || tokens.dtype !== 'int64') throw new ShapeError(`TransformerWrapper: tokens must be int64 [B, N], got ${tokens.dtype} ${fmtShape(tokens.shape)}`);
    const ids = tokens.data;
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (v < 0 || v >= this.numTokens) throw new ShapeError(`TransformerWrapper: token id ${v} is outside the vocabulary of ${this.numTokens}`);
    }
    let x = this.token_emb.forward(tokens); // [B, N, dim]
    x = T.add(x, this.pos_emb.forward(x));
    x = this.project_emb.forward(this.emb_dropout.forward(x));
    x = this.norm.forward(this.attn_layers.forward(x));
    return returnEmbeddings ? x : this.to_logits.forward(x);
  }
}
