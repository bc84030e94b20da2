// The conditioning encoders of ldm/modules/encoders/modules.py (CompVis/latent-diffusion) and the
// image-conditioning helpers of the LDM scripts:
//  - `ClassEmbedder(embed_dim, n_classes=1000, key='class')`: embedding(batch[key][:, None]) ->
//    [B, 1, embed_dim] (the cross-attention context of class-conditional LDMs). For classifier-free
//    guidance the LAST class (n_classes - 1) is the null class, the convention of the official
//    cin256-v2 notebook (class 1000 of 1001) and of Stability's ClassEmbedder; a model trained with
//    conditioning dropout must therefore be configured with one extra class.
//  - `TransformerEmbedder(n_embed, n_layer, vocab_size, max_seq_len=77)`: token ids [B, N] ->
//    TransformerWrapper(Encoder(dim=n_embed, depth=n_layer)) embeddings [B, N, n_embed]
//    (x-transformer.ts says exactly what it computes);
//  - `BERTEmbedder(n_embed, n_layer, vocab_size=30522, max_seq_len=77, use_tokenizer=True,
//    embedding_dropout=0)`: captions -> BERTTokenizer (tokenizer.ts: built offline from captions,
//    or from a BERT vocab.txt) -> the same transformer -> [B, max_seq_len, n_embed];
//  - `SpatialRescaler(n_stages=1, method='bilinear', multiplier=0.5, in_channels=3,
//    out_channels=None, bias=False)`: n_stages x F.interpolate(scale_factor=multiplier), then an
//    optional 1x1 conv `channel_mapper`;
//  - `interpolate`: torch.nn.functional.interpolate for 4-D tensors (nearest, bilinear, bicubic,
//    area; align_corners False by default), as separable interpolation matrices (differentiable);
//  - concat conditioning: `inpaintingConcat` (scripts/inpaint.py: encode the masked image,
//    resize the mask to the latent with nearest, cat([c, mask], 1)) and `lowResConcat`
//    (super-resolution: the low-resolution image at the latent's size; the official BSR model
//    feeds it unchanged because LR size == latent size; when the sizes differ we resize it,
//    bilinear by default).
// Extensions beyond the official kwargs (documented, optional): `heads` / `dim_head` of the
// transformer (official: 8 x 64) and, for BERTEmbedder, `vocab` / `do_lower_case` (the offline
// vocabulary, so the tokenizer travels inside the model config). `device` is accepted and ignored.
// What it is not: no CLIP embedders (FrozenCLIPTextEmbedder / FrozenClipImageEmbedder need
// pretrained weights), no Hugging Face tokenizer.

import { ConfigError, F, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Conv2d, Embedding, Module } from '../nn/index.ts';
import type { TargetTable } from './targets.ts';
import { BERTTokenizer } from './tokenizer.ts';
import { TransformerWrapper, XEncoder } from './x-transformer.ts';

type Obj = Readonly<Record<string, unknown>>;


const asLabels = (v: unknown, where: string): Tensor => {
  if (v instanceof Tensor) return v.dtype === 'int64' ? v : T.toInt64(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return new Tensor(Float64Array.from(v as number[]), [v.length], 'int64');
  throw new ConfigError(`${where}: expected class labels (an int64 tensor [B] or a list of integers), got ${v === undefined ? 'nothing' : typeof v}`);
};

// ---- options: the official kwargs, and the schemas a config is read with -----------------------------

/** `ClassEmbedder(embed_dim, n_classes=1000, key='class')`. */
export interface ClassEmbedderOptions {
  embed_dim: number;
  n_classes?: number;
  key?: string;
}

/** `TransformerEmbedder(n_embed, n_layer, vocab_size, max_seq_len=77, device)`, plus the
 *  transformer's heads / dim_head (official: 8 x 64). */
export interface TransformerEmbedderOptions {
  n_embed: number;
  n_layer: number;
  vocab_size: number;
  max_seq_len?: number;
  /** accepted and ignored */
  device?: string;
  heads?: number;
  dim_head?: number;
}

/** `BERTEmbedder(n_embed, n_layer, vocab_size=30522, max_seq_len=77, device, use_tokenizer=True,
 *  embedding_dropout=0.0)`, plus heads / dim_head and the offline vocabulary (`vocab`, `do_lower_case`). */
export interface BERTEmbedderOptions extends Omit<TransformerEmbedderOptions, 'vocab_size'> {
  vocab_size?: number;
  use_tokenizer?: boolean;
  embedding_dropout?: number;
  /** the tokenizer's vocabulary (tokens in id order) */
  vocab?: readonly string[];
  do_lower_case?: boolean;
}

/** The official method names (torch's F.interpolate modes; only the 4-D ones run here). */
export type SpatialRescalerMethod = 'nearest' | 'linear' | 'bilinear' | 'trilinear' | 'bicubic' | 'area';

/** `SpatialRescaler(n_stages=1, method='bilinear', multiplier=0.5, in_channels=3, out_channels=None, bias=False)`. */
export interface SpatialRescalerOptions {
  n_stages?: number;
  method?: SpatialRescalerMethod;
  multiplier?: number;
  in_channels?: number;
  out_channels?: number | null;
  bias?: boolean;
}

export const CLASS_EMBEDDER_SCHEMA: Schema<ClassEmbedderOptions> = { embed_dim: required(F.int), n_classes: F.int, key: F.str };
export const TRANSFORMER_EMBEDDER_SCHEMA: Schema<TransformerEmbedderOptions> = {
  n_embed: required(F.int), n_layer: required(F.int), vocab_size: required(F.int), max_seq_len: F.int, device: F.str, heads: F.int, dim_head: F.int,
};
export const BERT_EMBEDDER_SCHEMA: Schema<BERTEmbedderOptions> = {
  n_embed: required(F.int), n_layer: required(F.int), vocab_size: F.int, max_seq_len: F.int, device: F.str,
  use_tokenizer: F.bool, embedding_dropout: F.num, vocab: F.strList, do_lower_case: F.bool, heads: F.int, dim_head: F.int,
};
export const SPATIAL_RESCALER_SCHEMA: Schema<SpatialRescalerOptions> = {
  n_stages: F.int, method: F.oneOf('nearest', 'linear', 'bilinear', 'trilinear', 'bicubic', 'area'), multiplier: F.num,
  in_channels: F.int, out_channels: F.int, bias: F.bool,
};

// ---- ClassEmbedder ---------------------------------------------------------------------------------

export class ClassEmbedder extends Module {
  readonly key: string;
  readonly nClasses: number;
  readonly embedDim: number;
  readonly embedding: Embedding;
  constructor(params: ClassEmbedderOptions) {
    super();
    const O = 'ClassEmbedder';
    checkKwargs(O, params, schemaKeys(CLASS_EMBEDDER_SCHEMA));
    this.embedDim = kwargs(O, params).int('embed_dim', undefined, 1);
    this.nClasses = kwargs(O, params).int('n_classes', 1000, 1);
    const key = params['key'] ?? 'class';
    if (typeof key !== 'string') throw new ConfigError(`${O}: 'key' must be a string`);
    this.key = key;
    this.embedding = this.child('embedding', new Embedding(this.nClasses, this.embedDim));
  }

  /** `forward(batch, key)`: batch[key] [B] -> embedding(labels[:, None]) [B, 1, embed_dim]. A bare label tensor is accepted too. */
  forward(batch: Obj | Tensor | readonly number[], key?: string): Tensor {
    const k = key ?? this.key;
    const raw = batch instanceof Tensor || Array.isArray(batch) ? batch : (batch as Obj)[k];
    const labels = asLabels(raw, `ClassEmbedder(key '${k}')`);
    for (const v of labels.data) {
      if (v < 0 || v >= this.nClasses) throw new ShapeError(`ClassEmbedder: class ${v} is outside 0..${this.nClasses - 1}`);
    }
    return this.embedding.forward(T.unsqueeze(labels, 1)); // [B, 1, D]
  }

  /** The null class of classifier-free guidance: n_classes - 1. */
  get nullClass(): number {
    return this.nClasses - 1;
  }

  /** The raw unconditional input for bs rows: {key: [null class] * bs}. */
  unconditionalInput(bs: number): Record<string, Tensor> {
    return { [this.key]: T.full([bs], this.nullClass, 'int64') };
  }
}

// ---- text ------------------------------------------------------------------------------------------

function makeTransformer(o: Omit<TransformerEmbedderOptions, 'vocab_size'>, owner: string, vocabSize: number, embDropout: number): TransformerWrapper {
  const encoder = new XEncoder({
    dim: kwargs(owner, o).int('n_embed', undefined, 1), depth: kwargs(owner, o).int('n_layer', undefined, 0),
    heads: kwargs(owner, o).int('heads', 8, 1), dim_head: kwargs(owner, o).int('dim_head', 64, 1),
  });
  return new TransformerWrapper({ num_tokens: vocabSize, max_seq_len: kwargs(owner, o).int('max_seq_len', 77, 1), attn_layers: encoder, emb_dropout: embDropout });
}

/** `TransformerEmbedder`: token ids [B, N] -> [B, N, n_embed]; encode = forward. */
export class TransformerEmbedder extends Module {
  readonly transformer: TransformerWrapper;
  constructor(params: TransformerEmbedderOptions) {
    super();
    const O = 'TransformerEmbedder';
    checkKwargs(O, params, schemaKeys(TRANSFORMER_EMBEDDER_SCHEMA));
    this.transformer = this.child('transformer', makeTransformer(params, O, kwargs(O, params).int('vocab_size', undefined, 1), 0));
  }
  forward(tokens: Tensor): Tensor {
    return this.transformer.forward(tokens, true);
  }
  encode(tokens: Tensor): Tensor {
    return this.forward(tokens);
  }
}

/** `BERTEmbedder`: captions (or token ids when use_tokenizer is false) -> [B, max_seq_len, n_embed]. */
export class BERTEmbedder extends Module {
  readonly useTokenizer: boolean;
  readonly maxSeqLen: number;
  readonly vocabSize: number;
  readonly transformer: TransformerWrapper;
  #tokenizer: BERTTokenizer | null = null;
  constructor(params: BERTEmbedderOptions) {
    super();
    const O = 'BERTEmbedder';
    checkKwargs(O, params, schemaKeys(BERT_EMBEDDER_SCHEMA));
    this.useTokenizer = (params['use_tokenizer'] ?? true) as boolean;
    this.maxSeqLen = kwargs(O, params).int('max_seq_len', 77, 1);
    const vocab = params['vocab'];
    if (vocab !== undefined && vocab !== null) {
      if (!Array.isArray(vocab)) throw new ConfigError(`${O}: 'vocab' must be a list of tokens`);
      this.#tokenizer = new BERTTokenizer(vocab as string[], { doLowerCase: (params['do_lower_case'] ?? true) as boolean, maxLength: this.maxSeqLen });
    }
    this.vocabSize = kwargs(O, params).int('vocab_size', this.#tokenizer ? this.#tokenizer.vocabSize : 30522, 1);
    if (this.#tokenizer && this.#tokenizer.vocabSize > this.vocabSize) {
      throw new ConfigError(`${O}: the vocabulary has ${this.#tokenizer.vocabSize} tokens but vocab_size is ${this.vocabSize}`);
    }
    const drop = params['embedding_dropout'] ?? 0;
    if (typeof drop !== 'number') throw new ConfigError(`${O}: 'embedding_dropout' must be a number`);
    this.transformer = this.child('transformer', makeTransformer(params, O, this.vocabSize, drop));
  }

  /** The tokenizer (set from `vocab`, or later with setTokenizer). */
  get tokenizer(): BERTTokenizer {
    if (!this.#tokenizer) {
      throw new ConfigError('BERTEmbedder: no vocabulary: build one from the captions (BERTTokenizer.build) and pass it as the `vocab` parameter, or call setTokenizer()');
    }
    return this.#tokenizer;
  }

  get hasTokenizer(): boolean {
    return this.#tokenizer !== null;
  }

  setTokenizer(tok: BERTTokenizer): void {
    if (tok.vocabSize > this.vocabSize) throw new ConfigError(`BERTEmbedder: the tokenizer has ${tok.vocabSize} tokens but vocab_size is ${this.vocabSize}`);
    if (tok.maxLength !== this.maxSeqLen) throw new ConfigError(`BERTEmbedder: the tokenizer pads to ${tok.maxLength}, max_seq_len is ${this.maxSeqLen}`);
    this.#tokenizer = tok;
  }

  /** `forward(text)`: tokens = tknz_fn(text) if use_tokenizer else text; transformer embeddings. */
  forward(text: readonly string[] | Tensor): Tensor {
    let tokens: Tensor;
    if (this.useTokenizer) {
      if (text instanceof Tensor) throw new ConfigError('BERTEmbedder(use_tokenizer=True): expected a list of captions, got a tensor');
      tokens = this.tokenizer.call(text);
    } else {
      if (!(text instanceof Tensor)) throw new ConfigError('BERTEmbedder(use_tokenizer=False): expected token ids (int64 [B, N])');
      tokens = text;
    }
    return this.transformer.forward(tokens, true); // [B, N, n_embed]
  }

  encode(text: readonly string[] | Tensor): Tensor {
    return this.forward(text);
  }

  /** The raw unconditional input for bs rows: empty captions. */
  unconditionalInput(bs: number): string[] {
    return new Array<string>(bs).fill('');
  }
}

// ---- interpolation ---------------------------------------------------------------------------------

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic' | 'area';
const MODES: readonly string[] = ['nearest', 'bilinear', 'bicubic', 'area'];

/** One axis's interpolation matrix W [out, in] (row o holds the weights of output o), torch semantics. */
export function interpolationMatrix(inSize: number, outSize: number, mode: InterpolateMode, scale?: number, alignCorners = false): Float32Array {
  const W = new Float32Array(outSize * inSize);
  const f = Math.fround;
  // area_pixel_compute_scale: 1/scale_factor when given (recompute_scale_factor off), else in/out
  const ratio = alignCorners
    ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0)
    : (scale !== undefined && scale > 0 ? 1 / scale : inSize / outSize);
  const clampI = (i: number): number => Math.min(Math.max(i, 0), inSize - 1);
  for (let o = 0; o < outSize; o++) {
    const row = o * inSize;
    switch (mode) {
      case 'nearest': {
        const r = f(scale !== undefined && scale > 0 ? 1 / scale : inSize / outSize);
        W[row + Math.min(Math.floor(f(o * r)), inSize - 1)] = 1;
        break;
      }
      case 'bilinear': {
        let src = alignCorners ? ratio * o : ratio * (o + 0.5) - 0.5;
        if (src < 0) src = 0;
        const i0 = Math.floor(src), i1 = i0 < inSize - 1 ? i0 + 1 : i0;
        const l1 = src - i0;
        W[row + i0] = W[row + i0]! + (1 - l1);
        W[row + i1] = W[row + i1]! + l1;
        break;
      }
      case 'bicubic': {
        const src = alignCorners ? ratio * o : ratio * (o + 0.5) - 0.5;
        const i = Math.floor(src), t = src - i;
        const A = -0.75;
        const c1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
        const c2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
        const w = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
        for (let k = 0; k < 4; k++) W[row + clampI(i - 1 + k)] = W[row + clampI(i - 1 + k)]! + w[k]!;
        break;
      }
      case 'area': {
        const s = Math.floor((o * inSize) / outSize), e = Math.ceil(((o + 1) * inSize) / outSize);
        for (let i = s; i < e; i++) W[row + i] = 1 / (e - s);
        break;
      }
      default:
        throw new ConfigError(`interpolate: mode '${String(mode)}' is not supported for 4-D input (use ${MODES.join(', ')})`);
    }
  }
  return W;
}

export interface InterpolateOptions {
  /** output [H, W] (or one number for both) */
  size?: number | readonly [number, number];
  /** multiplier of H and W (output floor(H * s)) */
  scaleFactor?: number;
  mode?: InterpolateMode;
  alignCorners?: boolean;
}

/** `F.interpolate(x, size | scale_factor, mode)` for x [N, C, H, W] -> [N, C, OH, OW]. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`interpolate: expected [N, C, H, W], got ${fmtShape(x.shape)}`);
  const mode = o.mode ?? 'nearest';
  if (!MODES.includes(mode)) throw new ConfigError(`interpolate: mode '${mode}' is not supported for 4-D input (use ${MODES.join(', ')})`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  let oh: number, ow: number;
  if (o.size !== undefined) {
    [oh, ow] = typeof o.size === 'number' ? [o.size, o.size] : o.size;
  } else if (o.scaleFactor !== undefined) {
    oh = Math.floor(h * o.scaleFactor);
    ow = Math.floor(w * o.scaleFactor);
  } else {
    throw new ConfigError('interpolate: give size or scaleFactor');
  }
  if (oh < 1 || ow < 1) throw new ShapeError(`interpolate: output size ${oh}x${ow} from ${h}x${w} is empty`);
  if (oh === h && ow === w && (o.scaleFactor === undefined || o.scaleFactor === 1)) return x;
  const scale = o.size === undefined ? o.scaleFactor : undefined;
  const wh = new Tensor(interpolationMatrix(h, oh, mode, scale, o.alignCorners ?? false), [oh, h]);
  const ww = new Tensor(interpolationMatrix(w, ow, mode, scale, o.alignCorners ?? false), [ow, w]);
  const a = T.matmul(T.reshape(x, [n * c, h, w]), T.transpose(ww, 0, 1)); // [NC, H, OW]
  const b = T.matmul(T.transpose(a, 1, 2), T.transpose(wh, 0, 1)); // [NC, OW, OH]
  return T.reshape(T.transpose(b, 1, 2), [n, c, oh, ow]);
}

// ---- SpatialRescaler -------------------------------------------------------------------------------

export class SpatialRescaler extends Module {
  readonly nStages: number;
  readonly method: InterpolateMode;
  readonly multiplier: number;
  readonly channel_mapper: Conv2d | null;
  constructor(params: SpatialRescalerOptions) {
    super();
    const O = 'SpatialRescaler';
    checkKwargs(O, params, schemaKeys(SPATIAL_RESCALER_SCHEMA));
    this.nStages = kwargs(O, params).int('n_stages', 1, 0);
    const method = (params['method'] ?? 'bilinear') as string;
    if (!['nearest', 'linear', 'bilinear', 'trilinear', 'bicubic', 'area'].includes(method)) throw new ConfigError(`${O}: unknown method '${method}'`);
    if (!MODES.includes(method)) throw new ConfigError(`${O}: method '${method}' does not apply to images (torch rejects it for 4-D input); use ${MODES.join(', ')}`);
    this.method = method as InterpolateMode;
    const m = params['multiplier'] ?? 0.5;
    if (typeof m !== 'number' || !(m > 0)) throw new ConfigError(`${O}: 'multiplier' must be a positive number`);
    this.multiplier = m;
    const out = params['out_channels'] ?? null;
    this.channel_mapper = this.optionalChild('channel_mapper', out === null ? null
      : new Conv2d(kwargs(O, params).int('in_channels', 3, 1), kwargs(O, params).int('out_channels', undefined, 1), 1, { bias: (params['bias'] ?? false) as boolean }));
  }
  /** x [N, C, H, W] -> n_stages rescalings by `multiplier` -> optional 1x1 conv. */
  forward(x: Tensor): Tensor {
    let h = x;
    for (let s = 0; s < this.nStages; s++) h = interpolate(h, { scaleFactor: this.multiplier, mode: this.method });
    return this.channel_mapper ? this.channel_mapper.forward(h) : h;
  }
  encode(x: Tensor): Tensor {
    return this.forward(x);
  }
}

// ---- concat conditioning (inpainting, super-resolution) ------------------------------------------

/**
 * Inpainting conditioning of scripts/inpaint.py: mask [B, 1, H, W] with 1 = the hole to fill,
 * image [B, C, H, W] in [-1, 1]; masked = (1 - mask) * image; c = encode(masked) [B, Cz, h, w];
 * returns cat([c, nearest(mask, (h, w))], 1) [B, Cz + 1, h, w] (for c_concat).
 */
export function inpaintingConcat(encode: (x: Tensor) => Tensor, image: Tensor, mask: Tensor): Tensor {
  if (mask.ndim !== 4 || mask.shape[1] !== 1 || mask.shape[0] !== image.shape[0] || mask.shape[2] !== image.shape[2] || mask.shape[3] !== image.shape[3]) {
    throw new ShapeError(`inpaintingConcat: mask ${fmtShape(mask.shape)} must be [B, 1, H, W] for image ${fmtShape(image.shape)}`);
  }
  const masked = T.mul(T.sub(1, mask), image);
  const c = encode(masked);
  const cc = interpolate(mask, { size: [c.shape[2]!, c.shape[3]!], mode: 'nearest' });
  return T.cat([c, cc], 1);
}

/**
 * Super-resolution conditioning: the low-resolution image [B, C, h, w] at the latent's spatial
 * size [H, W] (unchanged when equal, as in the official BSR model; else resized, default bilinear).
 */
export function lowResConcat(lowRes: Tensor, size: readonly [number, number], mode: InterpolateMode = 'bilinear'): Tensor {
  if (lowRes.ndim !== 4) throw new ShapeError(`lowResConcat: expected [B, C, h, w], got ${fmtShape(lowRes.shape)}`);
  if (lowRes.shape[2] === size[0] && lowRes.shape[3] === size[1]) return lowRes;
  return interpolate(lowRes, { size, mode });
}

/** Official class paths of this file -> constructors (merged into MODEL_TARGETS). */
export const conditioningTargets = {
  'ldm.modules.encoders.modules.ClassEmbedder': (p) => new ClassEmbedder(readOptions('ClassEmbedder', p, CLASS_EMBEDDER_SCHEMA)),
  'ldm.modules.encoders.modules.TransformerEmbedder': (p) => new TransformerEmbedder(readOptions('TransformerEmbedder', p, TRANSFORMER_EMBEDDER_SCHEMA)),
  'ldm.modules.encoders.modules.BERTEmbedder': (p) => new BERTEmbedder(readOptions('BERTEmbedder', p, BERT_EMBEDDER_SCHEMA)),
  'ldm.modules.encoders.modules.SpatialRescaler': (p) => new SpatialRescaler(readOptions('SpatialRescaler', p, SPATIAL_RESCALER_SCHEMA)),
} satisfies TargetTable;
