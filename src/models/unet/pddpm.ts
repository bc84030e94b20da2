// The DDPM-paper UNet of w86763777/pytorch-ddpm (model.py, f804ccb): TimeEmbedding (a frozen
// sinusoidal table with sin and cos INTERLEAVED, then Linear-Swish-Linear), DownSample (3x3
// stride-2 conv, symmetric padding 1), UpSample (nearest x2 + 3x3 conv), AttnBlock (single-head
// self-attention with a residual), ResBlock (GroupNorm32-Swish-conv, time projection added,
// GroupNorm32-Swish-Dropout-conv, shortcut; attention applied AFTER the residual sum) and UNet
// (head 3->ch, downblocks, middleblocks, upblocks with skip concatenation, tail ch->3), with the
// official xavier_uniform initialisation. Child names equal the official state_dict keys.
// What it is not: the diffusion (trainer / sampler) wrappers, which live in models/pddpm-diffusion.ts.

import { ConfigError, F, ShapeError, checkKwargs, fmtShape, required, schemaKeys, type Schema } from '../../util/index.ts';
import type { Denoiser } from '../../diffusion/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import {
  Conv2d, Dropout, Embedding, GroupNorm, Identity, Linear, Module, ModuleList, Sequential, SiLU, xavierUniform, zeroInit,
} from '../../nn/index.ts';

const f32 = Math.fround;

/** init.xavier_uniform_(weight, gain) and init.zeros_(bias), as every pytorch-ddpm `initialize` does. */
function xavierInit(layer: Conv2d | Linear, gain = 1): void {
  layer.weight.data = xavierUniform(layer.weight.shape, gain).f32;
  if (layer.bias) zeroInit(layer.bias);
}

/**
 * The frozen table of `TimeEmbedding.__init__`, in float32 as torch computes it:
 *  1. freq_i = exp(-(2i / d) * ln(10000))  (arange(0, d, 2) / d * log(10000), then exp(-.));
 *  2. arg[t, i] = t * freq_i;
 *  3. row t = [sin(arg_0), cos(arg_0), sin(arg_1), cos(arg_1), ...]  (stack([sin, cos], -1).view(T, d)).
 * Returns [T, d].
 */
export function pddpmTimeTable(T_: number, dModel: number): Tensor {
  if (dModel % 2 !== 0) throw new ConfigError(`pytorch-ddpm TimeEmbedding: d_model must be even, got ${dModel}`);
  const half = dModel / 2;
  const freq = new Float64Array(half);
  const ln = f32(Math.log(10000)); // the python scalar is cast to the float32 tensor's dtype
  for (let i = 0; i < half; i++) freq[i] = f32(Math.exp(-f32(f32((2 * i) / dModel) * ln)));
  const out = new Float32Array(T_ * dModel);
  for (let t = 0; t < T_; t++) {
    for (let i = 0; i < half; i++) {
      const a = f32(t * freq[i]!);
      out[t * dModel + 2 * i] = Math.sin(a);
      out[t * dModel + 2 * i + 1] = Math.cos(a);
    }
  }
  return new Tensor(out, [T_, dModel]);
}

/** Swish = x * sigmoid(x) (pytorch-ddpm's own module; numerically SiLU). */
class Swish extends SiLU {}

/** `TimeEmbedding(T, d_model, dim)`: t (int64 [B]) -> [B, dim]. */
export class TimeEmbedding extends Module {
  readonly timembedding: Sequential;
  constructor(T_: number, dModel: number, dim: number) {
    super();
    // nn.Embedding.from_pretrained(emb): a frozen parameter holding the table
    const emb = new Embedding(T_, dModel);
    emb.weight.data = pddpmTimeTable(T_, dModel).f32;
    emb.weight.requiresGrad = false;
    const l1 = new Linear(dModel, dim), l2 = new Linear(dim, dim);
    this.timembedding = this.child('timembedding', new Sequential(emb, l1, new Swish(), l2));
    xavierInit(l1);
    xavierInit(l2);
  }
  forward(t: Tensor): Tensor {
    if (t.dtype !== 'int64') throw new ShapeError(`pytorch-ddpm TimeEmbedding: timesteps must be int64 (an embedding lookup), got ${t.dtype}`);
    return this.timembedding.forward(t); // [B, dim]
  }
}

/** A block of the down/up paths: called with the activations and the time embedding. */
interface TembLayer extends Module {
  forward(x: Tensor, temb: Tensor): Tensor;
}

export class DownSample extends Module implements TembLayer {
  readonly main: Conv2d;
  constructor(inCh: number) {
    super();
    this.main = this.child('main', new Conv2d(inCh, inCh, 3, { stride: 2, padding: 1 }));
    xavierInit(this.main);
  }
  forward(x: Tensor, _temb: Tensor): Tensor {
    return this.main.forward(x); // [B, C, H/2, W/2]
  }
}

export class UpSample extends Module implements TembLayer {
  readonly main: Conv2d;
  constructor(inCh: number) {
    super();
    this.main = this.child('main', new Conv2d(inCh, inCh, 3, { padding: 1 }));
    xavierInit(this.main);
  }
  forward(x: Tensor, _temb: Tensor): Tensor {
    return this.main.forward(T.upsampleNearest(x, 2)); // [B, C, 2H, 2W]
  }
}

/** `AttnBlock`: x + proj(softmax(q k^T / sqrt(C)) v) over the H*W positions, one head. */
export class AttnBlock extends Module {
  readonly group_norm: GroupNorm;
  readonly proj_q: Conv2d;
  readonly proj_k: Conv2d;
  readonly proj_v: Conv2d;
  readonly proj: Conv2d;
  constructor(inCh: number) {
    super();
    this.group_norm = this.child('group_norm', new GroupNorm(32, inCh));
    this.proj_q = this.child('proj_q', new Conv2d(inCh, inCh, 1));
    this.proj_k = this.child('proj_k', new Conv2d(inCh, inCh, 1));
    this.proj_v = this.child('proj_v', new Conv2d(inCh, inCh, 1));
    this.proj = this.child('proj', new Conv2d(inCh, inCh, 1));
    for (const m of [this.proj_q, this.proj_k, this.proj_v, this.proj]) xavierInit(m);
    xavierInit(this.proj, 1e-5);
  }
  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const hn = this.group_norm.forward(x);
    const tokens = (t: Tensor): Tensor => T.permute(T.reshape(t, [b, c, h * w]), [0, 2, 1]); // [B, HW, C]
    const q = tokens(this.proj_q.forward(hn));
    const k = tokens(this.proj_k.forward(hn));
    const v = tokens(this.proj_v.forward(hn));
    const a = T.scaledDotProductAttention(q, k, v, null, c ** -0.5); // [B, HW, C]
    const out = T.reshape(T.permute(a, [0, 2, 1]), [b, c, h, w]); // [B, C, H, W]
    return T.add(x, this.proj.forward(out));
  }
}

export class ResBlock extends Module implements TembLayer {
  readonly block1: Sequential;
  readonly temb_proj: Sequential;
  readonly block2: Sequential;
  readonly shortcut: Conv2d | Identity;
  readonly attn: AttnBlock | Identity;
  constructor(inCh: number, outCh: number, tdim: number, dropout: number, attn = false) {
    super();
    const c1 = new Conv2d(inCh, outCh, 3, { padding: 1 });
    const lin = new Linear(tdim, outCh);
    const c2 = new Conv2d(outCh, outCh, 3, { padding: 1 });
    this.block1 = this.child('block1', new Sequential(new GroupNorm(32, inCh), new Swish(), c1));
    this.temb_proj = this.child('temb_proj', new Sequential(new Swish(), lin));
    this.block2 = this.child('block2', new Sequential(new GroupNorm(32, outCh), new Swish(), new Dropout(dropout), c2));
    this.shortcut = inCh !== outCh ? this.child('shortcut', new Conv2d(inCh, outCh, 1)) : this.child('shortcut', new Identity());
    this.attn = attn ? this.child('attn', new AttnBlock(outCh)) : this.child('attn', new Identity());
    // ResBlock.initialize: xavier on every conv/linear of the block (including the attention's,
    // whose own proj gain 1e-5 is thus overwritten by gain 1, as in the official order), then
    // gain 1e-5 on block2's conv.
    for (const [, m] of this.namedModules()) if (m instanceof Conv2d || m instanceof Linear) xavierInit(m);
    xavierInit(c2, 1e-5);
  }
  forward(x: Tensor, temb: Tensor): Tensor {
    let h = this.block1.forward(x); // [B, out, H, W]
    const tp = this.temb_proj.forward(temb); // [B, out]
    h = T.add(h, T.reshape(tp, [tp.dim(0), tp.dim(1), 1, 1]));
    h = this.block2.forward(h);
    h = T.add(h, this.shortcut.forward(x));
    return this.attn.forward(h);
  }
}

/** pytorch-ddpm `UNet(T, ch, ch_mult, attn, num_res_blocks, dropout)` (all required). */
export interface PddpmUNetOptions {
  T: number;
  ch: number;
  ch_mult: readonly number[];
  attn: readonly number[];
  num_res_blocks: number;
  dropout: number;
}

/** The UNet kwargs as a config gives them (readOptions; the constructor checks the ranges). */
export const PDDPM_UNET_SCHEMA: Schema<PddpmUNetOptions> = {
  T: required(F.int), ch: required(F.int), ch_mult: required(F.intList), attn: required(F.intList),
  num_res_blocks: required(F.int), dropout: required(F.num),
};
const UNET_KEYS = schemaKeys(PDDPM_UNET_SCHEMA);

function need<V>(owner: string, params: PddpmUNetOptions, key: keyof PddpmUNetOptions, check: (v: unknown) => boolean, what: string): V {
  const v = params[key];
  if (v === undefined) throw new ConfigError(`${owner}: missing required parameter '${key}' (${what})`);
  if (!check(v)) throw new ConfigError(`${owner}: parameter '${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v as V;
}

const isPosInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
const isIntList = (v: unknown): boolean => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);

/** pytorch-ddpm `UNet(T, ch, ch_mult, attn, num_res_blocks, dropout)`: eps_theta(x [B,3,H,W], t int64 [B]). */
export class PddpmUNet extends Module {
  readonly options: PddpmUNetOptions;
  readonly time_embedding: TimeEmbedding;
  readonly head: Conv2d;
  readonly downblocks: ModuleList<TembLayer>;
  readonly middleblocks: ModuleList<ResBlock>;
  readonly upblocks: ModuleList<TembLayer>;
  readonly tail: Sequential;
  /** The number of DownSample layers (H and W must be divisible by 2^this). */
  readonly numDown: number;

  constructor(params: PddpmUNetOptions) {
    super();
    const owner = 'pytorch-ddpm UNet';
    checkKwargs(owner, params, UNET_KEYS);
    const o: PddpmUNetOptions = {
      T: need(owner, params, 'T', isPosInt, 'a positive integer'),
      ch: need(owner, params, 'ch', isPosInt, 'a positive integer'),
      ch_mult: need(owner, params, 'ch_mult', (v) => isIntList(v) && (v as number[]).length > 0, 'a non-empty list of integers'),
      attn: need(owner, params, 'attn', isIntList, 'a list of level indices'),
      num_res_blocks: need(owner, params, 'num_res_blocks', isPosInt, 'a positive integer'),
      dropout: need(owner, params, 'dropout', (v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)'),
    };
    this.options = o;
    if (!o.attn.every((i) => i < o.ch_mult.length)) throw new ConfigError(`${owner}: attn index out of bound (attn ${JSON.stringify(o.attn)}, ${o.ch_mult.length} levels)`);
    const tdim = o.ch * 4;
    this.time_embedding = this.child('time_embedding', new TimeEmbedding(o.T, o.ch, tdim));
    this.head = this.child('head', new Conv2d(3, o.ch, 3, { padding: 1 }));
    this.downblocks = this.child('downblocks', new ModuleList<TembLayer>());
    const chs = [o.ch]; // output channels of every down layer, popped by the up path
    let now = o.ch;
    let numDown = 0;
    o.ch_mult.forEach((mult, i) => {
      const out = o.ch * mult;
      for (let r = 0; r < o.num_res_blocks; r++) {
        this.downblocks.push(new ResBlock(now, out, tdim, o.dropout, o.attn.includes(i)));
        now = out;
        chs.push(now);
      }
      if (i !== o.ch_mult.length - 1) {
        this.downblocks.push(new DownSample(now));
        chs.push(now);
        numDown++;
      }
    });
    this.numDown = numDown;
    this.middleblocks = this.child('middleblocks', new ModuleList([
      new ResBlock(now, now, tdim, o.dropout, true),
      new ResBlock(now, now, tdim, o.dropout, false),
    ]));
    this.upblocks = this.child('upblocks', new ModuleList<TembLayer>());
    for (let i = o.ch_mult.length - 1; i >= 0; i--) {
      const out = o.ch * o.ch_mult[i]!;
      for (let r = 0; r < o.num_res_blocks + 1; r++) {
        this.upblocks.push(new ResBlock(chs.pop()! + now, out, tdim, o.dropout, o.attn.includes(i)));
        now = out;
      }
      if (i !== 0) this.upblocks.push(new UpSample(now));
    }
    const tailConv = new Conv2d(now, 3, 3, { padding: 1 });
    this.tail = this.child('tail', new Sequential(new GroupNorm(32, now), new Swish(), tailConv));
    // UNet.initialize
    xavierInit(this.head);
    xavierInit(tailConv, 1e-5);
  }

  /** x [B, 3, H, W], t int64 [B] -> eps [B, 3, H, W]. */
  forward(x: Tensor, t: Tensor): Tensor {
    const f = 2 ** this.numDown;
    if (x.ndim !== 4 || x.dim(1) !== 3 || x.dim(2) % f !== 0 || x.dim(3) % f !== 0) {
      throw new ShapeError(`pytorch-ddpm UNet: input ${fmtShape(x.shape)} must be [B, 3, H, W] with H and W divisible by ${f}`);
    }
    if (t.size !== x.dim(0)) throw new ShapeError(`pytorch-ddpm UNet: ${t.size} timesteps for a batch of ${x.dim(0)}`);
    const temb = this.time_embedding.forward(t); // [B, 4ch]
    let h = this.head.forward(x); // [B, ch, H, W]
    const hs: Tensor[] = [h];
    for (const layer of this.downblocks) {
      h = layer.forward(h, temb);
      hs.push(h);
    }
    for (const layer of this.middleblocks) h = layer.forward(h, temb);
    for (const layer of this.upblocks) {
      if (layer instanceof ResBlock) h = T.cat([h, hs.pop()!], 1);
      h = layer.forward(h, temb);
    }
    return this.tail.forward(h); // [B, 3, H, W]
  }

  /** eps_theta as a diffusion/ Denoiser (no conditioning). */
  denoiser(): Denoiser {
    return (x, t) => T.inference(() => this.forward(x, t));
  }
}
