// The compact `Unet` of lucidrains/denoising-diffusion-pytorch v2.3.1 (denoising_diffusion_pytorch.py,
// faed4db): 7x7 init conv; SinusoidalPosEmb (cat(sin, cos), frequencies exp(-ln(theta)/(half-1) i))
// or RandomOrLearnedSinusoidalPosEmb, then Linear-GELU-Linear; per stage two ResnetBlocks (Block =
// plain 3x3 conv + RMSNorm + scale-shift from the time embedding + SiLU + dropout), an attention
// (LinearAttention, or full Attention at the stages `full_attn` names, both with 4 learned memory
// key/values `mem_kv` and a pre-RMSNorm, residual added by the Unet), and a Downsample
// (pixel-unshuffle 'b c (h p1) (w p2) -> b (c p1 p2) h w' + 1x1 conv) / Upsample (nearest x2 +
// 3x3 conv), a 3x3 conv at the innermost stage; mid ResnetBlock-Attention-ResnetBlock; final
// ResnetBlock on cat(x, init features) and 1x1 conv. RMSNorm = F.normalize(x, dim=1) * g * sqrt(dim).
// Child names equal the official state_dict keys. Weights are initialised with torch's defaults
// (kaiming-uniform convs/linears, mem_kv ~ N(0, 1), g = 1) from our seeded generator.
// What it is not: the diffusion wrapper, LucidrainsDiffusion (models/lucidrains-diffusion.ts).

import { ConfigError, F, ShapeError, checkKwargs, field, fmtShape, kwargs, required, schemaKeys, type Schema } from '../../util/index.ts';
import type { Denoiser } from '../../diffusion/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import {
  Conv2d, Dropout, GELU, Identity, Linear, Module, ModuleList, Sequential, SiLU, normal, type Layer,
} from '../../nn/index.ts';

const f32 = Math.fround;

/** `RMSNorm(dim)`: F.normalize(x, dim=1) * g * sqrt(dim), g [1, dim, 1, 1]. */
export class RMSNorm extends Module implements Layer {
  readonly g: Tensor;
  readonly scale: number;
  constructor(dim: number) {
    super();
    this.scale = dim ** 0.5;
    this.g = this.param('g', T.ones([1, dim, 1, 1]));
  }
  forward(x: Tensor): Tensor {
    // F.normalize: x / max(||x||_2 over dim 1, 1e-12)
    const norm = T.clamp(T.sqrt(T.sum(T.square(x), 1, true)), 1e-12); // [B, 1, H, W]
    return T.mul(T.mul(T.div(x, norm), this.g), this.scale);
  }
}

/** `SinusoidalPosEmb(dim, theta)`: t [B] -> [B, dim] = cat(sin(t f), cos(t f)), f_i = exp(-ln(theta)/(half-1) i). */
export class SinusoidalPosEmb extends Module implements Layer {
  constructor(readonly dim: number, readonly theta = 10000) {
    super();
    if (dim % 2 !== 0 || dim < 4) throw new ConfigError(`lucidrains SinusoidalPosEmb: dim must be even and >= 4, got ${dim}`);
  }
  forward(t: Tensor): Tensor {
    const half = this.dim / 2;
    const step = f32(-(Math.log(this.theta) / (half - 1))); // the python scalar, cast to float32
    const freq = new Float64Array(half);
    for (let i = 0; i < half; i++) freq[i] = f32(Math.exp(f32(i * step)));
    const b = t.size;
    const out = new Float32Array(b * this.dim);
    for (let r = 0; r < b; r++) {
      const tv = f32(t.data[r]!);
      for (let i = 0; i < half; i++) {
        const a = f32(tv * freq[i]!);
        out[r * this.dim + i] = Math.sin(a);
        out[r * this.dim + half + i] = Math.cos(a);
      }
    }
    return new Tensor(out, [b, this.dim]); // [B, dim] (no gradient flows to timesteps)
  }
}

/** `RandomOrLearnedSinusoidalPosEmb(dim, is_random)`: t [B] -> [B, dim + 1] = cat(t, sin(2 pi t w), cos(2 pi t w)). */
export class RandomOrLearnedSinusoidalPosEmb extends Module implements Layer {
  readonly weights: Tensor;
  constructor(dim: number, isRandom = false) {
    super();
    if (dim % 2 !== 0) throw new ConfigError(`lucidrains RandomOrLearnedSinusoidalPosEmb: dim must be even, got ${dim}`);
    this.weights = this.param('weights', normal([dim / 2], 0, 1));
    if (isRandom) this.weights.requiresGrad = false;
  }
  forward(t: Tensor): Tensor {
    const x = T.reshape(T.toFloat(t), [t.size, 1]); // [B, 1]
    const freqs = T.mul(T.mul(T.mul(x, T.reshape(this.weights, [1, this.weights.size])), 2), Math.PI); // [B, half]
    return T.cat([x, T.sin(freqs), T.cos(freqs)], 1);
  }
}

/** `Block(dim, dim_out, dropout)`: conv3x3 -> RMSNorm -> (x * (scale + 1) + shift) -> SiLU -> dropout. */
export class Block extends Module {
  readonly proj: Conv2d;
  readonly norm: RMSNorm;
  readonly act: SiLU;
  readonly dropout: Dropout;
  constructor(dim: number, dimOut: number, dropout = 0) {
    super();
    this.proj = this.child('proj', new Conv2d(dim, dimOut, 3, { padding: 1 }));
    this.norm = this.child('norm', new RMSNorm(dimOut));
    this.act = this.child('act', new SiLU());
    this.dropout = this.child('dropout', new Dropout(dropout));
  }
  forward(x: Tensor, scaleShift: [Tensor, Tensor] | null = null): Tensor {
    let h = this.norm.forward(this.proj.forward(x));
    if (scaleShift) h = T.add(T.mul(h, T.add(scaleShift[0], 1)), scaleShift[1]);
    return this.dropout.forward(this.act.forward(h));
  }
}

/** `ResnetBlock(dim, dim_out, time_emb_dim, dropout)`: block2(block1(x, scale-shift(t))) + res_conv(x). */
export class ResnetBlock extends Module {
  readonly mlp: Sequential | null;
  readonly block1: Block;
  readonly block2: Block;
  readonly res_conv: Conv2d | Identity;
  constructor(dim: number, dimOut: number, timeEmbDim: number | null = null, dropout = 0) {
    super();
    this.mlp = this.optionalChild('mlp', timeEmbDim !== null ? new Sequential(new SiLU(), new Linear(timeEmbDim, dimOut * 2)) : null);
    this.block1 = this.child('block1', new Block(dim, dimOut, dropout));
    this.block2 = this.child('block2', new Block(dimOut, dimOut));
    this.res_conv = this.child('res_conv', dim !== dimOut ? new Conv2d(dim, dimOut, 1) : new Identity());
  }
  forward(x: Tensor, timeEmb: Tensor | null = null): Tensor {
    let ss: [Tensor, Tensor] | null = null;
    if (this.mlp && timeEmb) {
      const te = this.mlp.forward(timeEmb); // [B, 2 dim_out]
      const [scale, shift] = T.chunk(T.reshape(te, [te.dim(0), te.dim(1), 1, 1]), 2, 1);
      ss = [scale!, shift!];
    }
    const h = this.block2.forward(this.block1.forward(x, ss));
    return T.add(h, this.res_conv.forward(x));
  }
}

/** The memory key/values repeated over the batch: mem [heads, a, b] -> [B, heads, a, b]. */
function repeatBatch(mem: Tensor, b: number): Tensor {
  return T.expand(T.unsqueeze(mem, 0), [b, ...mem.shape]);
}

/** `LinearAttention(dim, heads, dim_head, num_mem_kv)` (no residual; the Unet adds it). */
export class LinearAttention extends Module implements Layer {
  readonly mem_kv: Tensor;
  readonly norm: RMSNorm;
  readonly to_qkv: Conv2d;
  readonly to_out: Sequential;
  readonly scale: number;
  constructor(dim: number, readonly heads = 4, readonly dimHead = 32, numMemKv = 4) {
    super();
    this.scale = dimHead ** -0.5;
    const hidden = dimHead * heads;
    this.norm = this.child('norm', new RMSNorm(dim));
    this.mem_kv = this.param('mem_kv', normal([2, heads, dimHead, numMemKv], 0, 1));
    this.to_qkv = this.child('to_qkv', new Conv2d(dim, hidden * 3, 1, { bias: false }));
    this.to_out = this.child('to_out', new Sequential(new Conv2d(hidden, dim, 1), new RMSNorm(dim)));
  }
  forward(x: Tensor): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    const n = h * w;
    const qkv = T.chunk(this.to_qkv.forward(this.norm.forward(x)), 3, 1);
    // 'b (h c) x y -> b h c (x y)'
    const [q0, k0, v0] = qkv.map((t) => T.reshape(t, [b, this.heads, this.dimHead, n])) as [Tensor, Tensor, Tensor];
    const mk = repeatBatch(T.select(this.mem_kv, 0, 0), b), mv = repeatBatch(T.select(this.mem_kv, 0, 1), b);
    const k1 = T.cat([mk, k0], -1), v1 = T.cat([mv, v0], -1); // [B, h, d, m + n]
    const q = T.mul(T.softmax(q0, -2), this.scale);
    const k = T.softmax(k1, -1);
    const context = T.matmul(k, T.transpose(v1, -1, -2)); // einsum 'b h d n, b h e n -> b h d e'
    const out = T.matmul(T.transpose(context, -1, -2), q); // einsum 'b h d e, b h d n -> b h e n'
    return this.to_out.forward(T.reshape(out, [b, this.heads * this.dimHead, h, w]));
  }
}

/** `Attention(dim, heads, dim_head, num_mem_kv, flash)`: softmax attention over the pixels plus memory. */
export class Attention extends Module implements Layer {
  readonly mem_kv: Tensor;
  readonly norm: RMSNorm;
  readonly to_qkv: Conv2d;
  readonly to_out: Conv2d;
  constructor(dim: number, readonly heads = 4, readonly dimHead = 32, numMemKv = 4) {
    super();
    const hidden = dimHead * heads;
    this.norm = this.child('norm', new RMSNorm(dim));
    this.mem_kv = this.param('mem_kv', normal([2, heads, numMemKv, dimHead], 0, 1));
    this.to_qkv = this.child('to_qkv', new Conv2d(dim, hidden * 3, 1, { bias: false }));
    this.to_out = this.child('to_out', new Conv2d(hidden, dim, 1));
  }
  forward(x: Tensor): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    const n = h * w;
    const qkv = T.chunk(this.to_qkv.forward(this.norm.forward(x)), 3, 1);
    // 'b (h c) x y -> b h (x y) c'
    const [q, k0, v0] = qkv.map((t) => T.transpose(T.reshape(t, [b, this.heads, this.dimHead, n]), -1, -2)) as [Tensor, Tensor, Tensor];
    const mk = repeatBatch(T.select(this.mem_kv, 0, 0), b), mv = repeatBatch(T.select(this.mem_kv, 0, 1), b);
    const k = T.cat([mk, k0], -2), v = T.cat([mv, v0], -2); // [B, h, m + n, d]
    const out = T.scaledDotProductAttention(q, k, v, null, this.dimHead ** -0.5); // Attend: [B, h, n, d]
    // 'b h (x y) d -> b (h d) x y'
    return this.to_out.forward(T.reshape(T.transpose(out, -1, -2), [b, this.heads * this.dimHead, h, w]));
  }
}

/** Rearrange('b c (h p1) (w p2) -> b (c p1 p2) h w', p1 = 2, p2 = 2). */
export class PixelUnshuffle2 extends Module implements Layer {
  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    if (h % 2 !== 0 || w % 2 !== 0) throw new ShapeError(`lucidrains Downsample: ${fmtShape(x.shape)} has an odd side`);
    const y = T.permute(T.reshape(x, [b, c, h / 2, 2, w / 2, 2]), [0, 1, 3, 5, 2, 4]);
    return T.reshape(y, [b, c * 4, h / 2, w / 2]);
  }
}

/** nn.Upsample(scale_factor = 2, mode = 'nearest'). */
export class NearestUpsample2 extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return T.upsampleNearest(x, 2);
  }
}

/** `Downsample(dim, dim_out)` = Sequential(pixel-unshuffle, Conv2d(4 dim, dim_out, 1)). */
export const Downsample = (dim: number, dimOut = dim): Sequential => new Sequential(new PixelUnshuffle2(), new Conv2d(dim * 4, dimOut, 1));
/** `Upsample(dim, dim_out)` = Sequential(nearest x2, Conv2d(dim, dim_out, 3, padding 1)). */
export const Upsample = (dim: number, dimOut = dim): Sequential => new Sequential(new NearestUpsample2(), new Conv2d(dim, dimOut, 3, { padding: 1 }));

type AttnLayer = LinearAttention | Attention;

/** One stage: [block1, block2, attn, down/up-sample] under keys 0..3. */
class Stage extends ModuleList {
  constructor(readonly block1: ResnetBlock, readonly block2: ResnetBlock, readonly attn: AttnLayer, readonly resample: Module & Layer) {
    super([block1, block2, attn, resample]);
  }
}

/** lucidrains `Unet(dim, init_dim=None, out_dim=None, dim_mults=(1, 2, 4, 8), channels=3, ...)` v2.3.1
 *  (a tuple kwarg is a list here; a single value stands for every stage, as cast_tuple does). */
export interface LucidrainsUnetOptions {
  dim: number;
  init_dim?: number | null;
  out_dim?: number | null;
  dim_mults?: readonly number[];
  channels?: number;
  self_condition?: boolean;
  learned_variance?: boolean;
  learned_sinusoidal_cond?: boolean;
  random_fourier_features?: boolean;
  learned_sinusoidal_dim?: number;
  sinusoidal_pos_emb_theta?: number;
  dropout?: number;
  attn_dim_head?: number | readonly number[];
  attn_heads?: number | readonly number[];
  /** per stage (default: only the innermost stage) */
  full_attn?: boolean | readonly boolean[] | null;
  /** accepted: torch SDPA computes the same attention */
  flash_attn?: boolean;
}

const intOrList = F.either(F.int, F.intList, 'an integer or a list of integers (one per stage)');

/** The Unet kwargs as a config gives them (readOptions; the constructor checks the ranges). */
export const LUCIDRAINS_UNET_SCHEMA: Schema<LucidrainsUnetOptions> = {
  dim: required(F.int), init_dim: F.int, out_dim: F.int, dim_mults: F.intList, channels: F.int, self_condition: F.bool,
  learned_variance: F.bool, learned_sinusoidal_cond: F.bool, random_fourier_features: F.bool, learned_sinusoidal_dim: F.int,
  sinusoidal_pos_emb_theta: F.num, dropout: F.num, attn_dim_head: intOrList, attn_heads: intOrList,
  full_attn: F.either(F.bool, field('a list of booleans', (v): v is boolean[] => Array.isArray(v) && v.every((b) => typeof b === 'boolean')),
    'a boolean or a list of booleans (one per stage)'),
  flash_attn: F.bool,
};
const UNET_KEYS = schemaKeys(LUCIDRAINS_UNET_SCHEMA);

/** `cast_tuple(t, length)`: a list (python tuple) is kept, anything else repeated. */
function castTuple<V>(v: V | readonly V[], n: number): readonly V[] {
  return Array.isArray(v) ? (v as readonly V[]) : new Array<V>(n).fill(v as V);
}


/** lucidrains `Unet(dim, ...)` v2.3.1: forward(x [B, C, H, W], time [B], x_self_cond?) -> [B, out_dim, H, W]. */
export class LucidrainsUnet extends Module {
  readonly channels: number;
  readonly self_condition: boolean;
  readonly random_or_learned_sinusoidal_cond: boolean;
  readonly out_dim: number;
  readonly init_conv: Conv2d;
  readonly time_mlp: Sequential;
  readonly downs: ModuleList<Stage>;
  readonly ups: ModuleList<Stage>;
  readonly mid_block1: ResnetBlock;
  readonly mid_attn: Attention;
  readonly mid_block2: ResnetBlock;
  readonly final_res_block: ResnetBlock;
  readonly final_conv: Conv2d;

  constructor(params: LucidrainsUnetOptions) {
    super();
    const owner = 'lucidrains Unet';
    checkKwargs(owner, params, UNET_KEYS);
    const dim = kwargs(owner, params).int('dim', undefined, 1);
    const dimMults = (params['dim_mults'] ?? [1, 2, 4, 8]) as number[];
    if (!Array.isArray(dimMults) || dimMults.length === 0 || !dimMults.every((m) => Number.isInteger(m) && m > 0)) {
      throw new ConfigError(`${owner}: 'dim_mults' must be a non-empty list of positive integers, got ${JSON.stringify(dimMults)}`);
    }
    this.channels = kwargs(owner, params).int('channels', 3, 1);
    this.self_condition = Boolean(params['self_condition'] ?? false);
    const inputChannels = this.channels * (this.self_condition ? 2 : 1);
    const initDim = kwargs(owner, params).int('init_dim', dim, 1);
    this.init_conv = this.child('init_conv', new Conv2d(inputChannels, initDim, 7, { padding: 3 }));
    const dims = [initDim, ...dimMults.map((m) => dim * m)];
    const inOut = dims.slice(0, -1).map((d, i) => [d, dims[i + 1]!] as const);

    // time embeddings
    const timeDim = dim * 4;
    const learned = Boolean(params['learned_sinusoidal_cond'] ?? false), randomFF = Boolean(params['random_fourier_features'] ?? false);
    this.random_or_learned_sinusoidal_cond = learned || randomFF;
    let sinu: Module & Layer, fourierDim: number;
    if (this.random_or_learned_sinusoidal_cond) {
      const ld = kwargs(owner, params).int('learned_sinusoidal_dim', 16, 1);
      sinu = new RandomOrLearnedSinusoidalPosEmb(ld, randomFF);
      fourierDim = ld + 1;
    } else {
      sinu = new SinusoidalPosEmb(dim, (params['sinusoidal_pos_emb_theta'] ?? 10000) as number);
      fourierDim = dim;
    }
    this.time_mlp = this.child('time_mlp', new Sequential(sinu, new Linear(fourierDim, timeDim), new GELU(), new Linear(timeDim, timeDim)));

    // attention per stage (full attention only at the innermost stage by default)
    const stages = dimMults.length;
    let fullAttnIn = params['full_attn'] ?? null;
    if (!fullAttnIn || (Array.isArray(fullAttnIn) && fullAttnIn.length === 0)) fullAttnIn = [...new Array<boolean>(stages - 1).fill(false), true];
    const fullAttn = castTuple(fullAttnIn as boolean | boolean[], stages);
    const heads = castTuple((params['attn_heads'] ?? 4) as number | number[], stages);
    const dimHead = castTuple((params['attn_dim_head'] ?? 32) as number | number[], stages);
    if (fullAttn.length !== stages || heads.length !== stages || dimHead.length !== stages) {
      throw new ConfigError(`${owner}: full_attn, attn_heads and attn_dim_head must have one entry per stage (${stages})`);
    }
    const dropout = (params['dropout'] ?? 0) as number;
    const resnet = (a: number, b: number): ResnetBlock => new ResnetBlock(a, b, timeDim, dropout);
    // flash_attn computes the same attention (torch SDPA); accepted, numerically identical here.
    const attn = (full: boolean, d: number, nh: number, dh: number): AttnLayer => (full ? new Attention(d, nh, dh) : new LinearAttention(d, nh, dh));

    this.downs = this.child('downs', new ModuleList<Stage>());
    this.ups = this.child('ups', new ModuleList<Stage>());
    inOut.forEach(([dIn, dOut], i) => {
      const last = i >= inOut.length - 1;
      this.downs.push(new Stage(resnet(dIn, dIn), resnet(dIn, dIn), attn(Boolean(fullAttn[i]), dIn, heads[i]!, dimHead[i]!),
        last ? new Conv2d(dIn, dOut, 3, { padding: 1 }) : Downsample(dIn, dOut)));
    });
    const midDim = dims[dims.length - 1]!;
    this.mid_block1 = this.child('mid_block1', resnet(midDim, midDim));
    this.mid_attn = this.child('mid_attn', new Attention(midDim, heads[stages - 1]!, dimHead[stages - 1]!));
    this.mid_block2 = this.child('mid_block2', resnet(midDim, midDim));
    for (let j = 0; j < inOut.length; j++) {
      const i = inOut.length - 1 - j;
      const [dIn, dOut] = inOut[i]!;
      const last = j === inOut.length - 1;
      this.ups.push(new Stage(resnet(dOut + dIn, dOut), resnet(dOut + dIn, dOut), attn(Boolean(fullAttn[i]), dOut, heads[i]!, dimHead[i]!),
        last ? new Conv2d(dOut, dIn, 3, { padding: 1 }) : Upsample(dOut, dIn)));
    }
    this.out_dim = params['out_dim'] === undefined || params['out_dim'] === null
      ? this.channels * (params['learned_variance'] ? 2 : 1) : kwargs(owner, params).int('out_dim', undefined, 1);
    this.final_res_block = this.child('final_res_block', resnet(initDim * 2, initDim));
    this.final_conv = this.child('final_conv', new Conv2d(initDim, this.out_dim, 1));
  }

  get downsampleFactor(): number {
    return 2 ** (this.downs.length - 1);
  }

  forward(x: Tensor, time: Tensor, xSelfCond: Tensor | null = null): Tensor {
    const f = this.downsampleFactor;
    if (x.ndim !== 4 || x.dim(2) % f !== 0 || x.dim(3) % f !== 0) {
      throw new ShapeError(`lucidrains Unet: your input dimensions ${fmtShape(x.shape)} need to be divisible by ${f}, given the unet`);
    }
    if (this.self_condition) x = T.cat([xSelfCond ?? T.zerosLike(x), x], 1);
    if (x.dim(1) !== this.init_conv.inChannels) throw new ShapeError(`lucidrains Unet: input ${fmtShape(x.shape)} has ${x.dim(1)} channels, expected ${this.init_conv.inChannels}`);
    let h = this.init_conv.forward(x); // [B, init_dim, H, W]
    const r = h;
    const t = this.time_mlp.forward(time); // [B, 4 dim]
    const hs: Tensor[] = [];
    for (const s of this.downs) {
      h = s.block1.forward(h, t);
      hs.push(h);
      h = s.block2.forward(h, t);
      h = T.add(s.attn.forward(h), h);
      hs.push(h);
      h = s.resample.forward(h);
    }
    h = this.mid_block1.forward(h, t);
    h = T.add(this.mid_attn.forward(h), h);
    h = this.mid_block2.forward(h, t);
    for (const s of this.ups) {
      h = s.block1.forward(T.cat([h, hs.pop()!], 1), t);
      h = s.block2.forward(T.cat([h, hs.pop()!], 1), t);
      h = T.add(s.attn.forward(h), h);
      h = s.resample.forward(h);
    }
    h = this.final_res_block.forward(T.cat([h, r], 1), t);
    return this.final_conv.forward(h); // [B, out_dim, H, W]
  }

  /** The network as a diffusion/ Denoiser (unconditional; self-conditioning input left at zeros). */
  denoiser(): Denoiser {
    return (x, t) => T.inference(() => this.forward(x, t));
  }
}
