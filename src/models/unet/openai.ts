// `UNetModel` of the official `ldm/modules/diffusionmodules/openaimodel.py` (CompVis/
// latent-diffusion): sinusoidal timestep embedding + time_embed MLP, optional label_emb,
// input_blocks / middle_block / output_blocks with skip connections, ResBlocks, AttentionBlocks or
// SpatialTransformers at the resolutions in `attention_resolutions`. Every official constructor
// option is accepted with the official defaults; child names equal the official state_dict keys.
// Not supported (clear errors): dims != 2, use_fp16 = true, n_embed (codebook-id prediction).
// `use_checkpoint` is accepted and has no effect. Blocks are in openai-blocks.ts.

import { ConfigError, F, ShapeError, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { Conv2d, Embedding, Linear, Module, ModuleList, SiLU, Sequential } from '../../nn/index.ts';
import { SpatialTransformer, zeroModule } from '../attention.ts';
import type { TargetTable } from '../targets.ts';
import {
  AttentionBlock, Downsample, ResBlock, TimestepEmbedSequential, Upsample, normalization, timestepEmbedding,
  type TimestepChild,
} from './openai-blocks.ts';

export * from './openai-blocks.ts';

/** The constructor kwargs of the official UNetModel (snake_case, as in the YAML configs). */
export interface UNetOptions {
  image_size: number | readonly number[];
  in_channels: number;
  model_channels: number;
  out_channels: number;
  num_res_blocks: number;
  attention_resolutions: readonly number[];
  dropout?: number;
  channel_mult?: readonly number[];
  conv_resample?: boolean;
  dims?: number;
  num_classes?: number | null;
  use_checkpoint?: boolean;
  use_fp16?: boolean;
  num_heads?: number;
  num_head_channels?: number;
  num_heads_upsample?: number;
  use_scale_shift_norm?: boolean;
  resblock_updown?: boolean;
  use_new_attention_order?: boolean;
  use_spatial_transformer?: boolean;
  transformer_depth?: number;
  context_dim?: number | readonly number[] | null;
  n_embed?: number | null;
  legacy?: boolean;
}

/** The UNetModel kwargs as a config gives them (read by readOptions; the constructor checks ranges). */
export const UNET_SCHEMA: Schema<UNetOptions> = {
  image_size: required(F.either(F.int, F.intList, 'an integer or a list of integers')),
  in_channels: required(F.int), model_channels: required(F.int), out_channels: required(F.int),
  num_res_blocks: required(F.int), attention_resolutions: required(F.intList),
  dropout: F.num, channel_mult: F.intList, conv_resample: F.bool, dims: F.int, num_classes: F.int,
  use_checkpoint: F.bool, use_fp16: F.bool, num_heads: F.int, num_head_channels: F.int, num_heads_upsample: F.int,
  use_scale_shift_norm: F.bool, resblock_updown: F.bool, use_new_attention_order: F.bool,
  use_spatial_transformer: F.bool, transformer_depth: F.int,
  context_dim: F.either(F.int, F.intList, 'an integer or a list of one integer'), n_embed: F.int, legacy: F.bool,
};
const UNET_KWARGS = schemaKeys(UNET_SCHEMA);

/** Conditioning of one UNet call: cross-attention context [N, M, context_dim] and/or labels y [N]. */
export interface UNetCond {
  context?: Tensor | null | undefined;
  y?: Tensor | null | undefined;
}




/** Python floor division (`//`), as the official head arithmetic uses it; like Python it refuses
 *  a zero divisor (num_head_channels wider than a block gives 0 heads there). */
const fdiv = (a: number, b: number): number => {
  if (b === 0) throw new ConfigError(`UNetModel: attention head arithmetic divides ${a} channels by 0 heads (num_head_channels is wider than a block's ${a} channels)`);
  return Math.floor(a / b);
};

export class UNetModel extends Module {
  /** Stored only (the official model does not use it). */
  readonly imageSize: number | readonly number[];
  readonly inChannels: number;
  readonly modelChannels: number;
  readonly outChannels: number;
  readonly numClasses: number | null;
  readonly useSpatialTransformer: boolean;
  readonly contextDim: number | null;
  /** len(channel_mult): the number of resolutions. */
  readonly levels: number;
  readonly time_embed: Sequential;
  readonly label_emb: Embedding | null;
  readonly input_blocks: ModuleList<TimestepEmbedSequential>;
  readonly middle_block: TimestepEmbedSequential;
  readonly output_blocks: ModuleList<TimestepEmbedSequential>;
  readonly out: Sequential;
  /** The options as given (for saving a config). */
  readonly config: Readonly<UNetOptions>;

  constructor(opts: UNetOptions) {
    super();
    const kw = kwargs('UNetModel', opts, UNET_KWARGS), o = kw.params;
    for (const k of ['image_size', 'in_channels', 'model_channels', 'out_channels', 'num_res_blocks', 'attention_resolutions']) {
      if (o[k] === undefined || o[k] === null) throw new ConfigError(`UNetModel: required parameter '${k}' is missing`);
    }
    this.config = { ...opts };
    this.imageSize = typeof o['image_size'] === 'number' ? o['image_size'] : kw.intList('image_size');
    const inChannels = this.inChannels = kw.int('in_channels');
    const mc = this.modelChannels = kw.int('model_channels');
    const outChannels = this.outChannels = kw.int('out_channels');
    const numResBlocks = kw.int('num_res_blocks');
    const attnRes = kw.intList('attention_resolutions');
    const dropout = (o['dropout'] ?? 0) as number;
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new ConfigError(`UNetModel: 'dropout' must be a number in [0, 1), got ${JSON.stringify(o['dropout'])}`);
    const channelMult = kw.intList('channel_mult', [1, 2, 4, 8]);
    const convResample = kw.bool('conv_resample', true);
    const dims = kw.int('dims', 2);
    const numClasses = this.numClasses = o['num_classes'] === undefined || o['num_classes'] === null ? null : kw.int('num_classes');
    kw.bool('use_checkpoint', false); // gradient checkpointing: accepted, no effect here
    const useFp16 = kw.bool('use_fp16', false);
    let numHeads = kw.int('num_heads', -1);
    const numHeadChannels = kw.int('num_head_channels', -1);
    let numHeadsUpsample = kw.int('num_heads_upsample', -1);
    const useScaleShiftNorm = kw.bool('use_scale_shift_norm', false);
    const resblockUpdown = kw.bool('resblock_updown', false);
    const useNewAttentionOrder = kw.bool('use_new_attention_order', false);
    const useST = this.useSpatialTransformer = kw.bool('use_spatial_transformer', false);
    const transformerDepth = kw.int('transformer_depth', 1);
    const legacy = kw.bool('legacy', true);

    if (dims !== 2) throw new ConfigError(`UNetModel: dims=${dims} is not supported (only dims=2, image UNets, is implemented)`);
    if (useFp16) throw new ConfigError('UNetModel: use_fp16=true is not supported (ldm.ts computes in float32); set use_fp16: false');
    if (o['n_embed'] !== undefined && o['n_embed'] !== null) {
      throw new ConfigError('UNetModel: n_embed (predicting codebook ids of a VQ first stage, `id_predictor`) is not supported; remove n_embed');
    }
    let contextDim: number | null = null;
    const cd = o['context_dim'];
    if (cd !== undefined && cd !== null) {
      // The official code turns a ListConfig into a list; SpatialTransformer then needs one int.
      const v = Array.isArray(cd) && cd.length === 1 ? cd[0] : cd;
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(`UNetModel: 'context_dim' must be an integer, got ${JSON.stringify(cd)}`);
      contextDim = v;
    }
    this.contextDim = contextDim;
    if (useST && contextDim === null) throw new ConfigError('UNetModel: use_spatial_transformer needs context_dim (the dimension of the cross-attention conditioning)');
    if (contextDim !== null && !useST) throw new ConfigError('UNetModel: context_dim is set but use_spatial_transformer is false (cross-attention needs the spatial transformer)');
    if (numHeadsUpsample === -1) numHeadsUpsample = numHeads;
    if (numHeads === -1 && numHeadChannels === -1) throw new ConfigError('UNetModel: either num_heads or num_head_channels has to be set');
    if (channelMult.length === 0) throw new ConfigError('UNetModel: channel_mult must not be empty');
    this.levels = channelMult.length;
    if (channelMult[0] !== 1) {
      // The official `out` conv takes model_channels inputs while the last block yields
      // model_channels * channel_mult[0]: such a model cannot run forward.
      throw new ConfigError(`UNetModel: channel_mult[0] must be 1 (got ${channelMult[0]}); the official out conv expects model_channels inputs`);
    }

    const timeEmbedDim = mc * 4;
    this.time_embed = this.child('time_embed', new Sequential(new Linear(mc, timeEmbedDim), new SiLU(), new Linear(timeEmbedDim, timeEmbedDim)));
    this.label_emb = this.optionalChild('label_emb', numClasses !== null ? new Embedding(numClasses, timeEmbedDim) : null);

    // The head arithmetic of the official constructor, block by block. With num_head_channels set,
    // num_heads is overwritten with ch // num_head_channels before each use. legacy=True keeps
    // num_heads (the official `num_heads = 1` under `if legacy:` is commented out) and only changes
    // dim_head: ch // num_heads for SpatialTransformer, num_head_channels (maybe -1) otherwise.
    // AttentionBlock receives dim_head as its num_head_channels, so it has ch // dim_head heads
    // whenever dim_head != -1, and num_heads (num_heads_upsample in output blocks) only when -1.
    const dimHeadFor = (ch: number): number => {
      let dimHead: number;
      if (numHeadChannels === -1) dimHead = fdiv(ch, numHeads);
      else { numHeads = fdiv(ch, numHeadChannels); dimHead = numHeadChannels; }
      if (legacy) dimHead = useST ? fdiv(ch, numHeads) : numHeadChannels;
      return dimHead;
    };
    const attention = (ch: number, dimHead: number, heads: number): TimestepChild => useST
      ? new SpatialTransformer({ in_channels: ch, n_heads: numHeads, d_head: dimHead, depth: transformerDepth, context_dim: contextDim })
      : new AttentionBlock({ channels: ch, num_heads: heads, num_head_channels: dimHead, use_new_attention_order: useNewAttentionOrder });
    const resBlock = (ch: number, out: number | null, extra: { up?: boolean; down?: boolean } = {}): ResBlock =>
      new ResBlock({ channels: ch, emb_channels: timeEmbedDim, dropout, out_channels: out, dims, use_scale_shift_norm: useScaleShiftNorm, ...extra });

    const input = new ModuleList<TimestepEmbedSequential>([new TimestepEmbedSequential(new Conv2d(inChannels, mc, 3, { padding: 1 }))]);
    const inputBlockChans = [mc];
    let ch = mc, ds = 1;
    channelMult.forEach((mult, level) => {
      for (let r = 0; r < numResBlocks; r++) {
        const layers: TimestepChild[] = [resBlock(ch, mult * mc)];
        ch = mult * mc;
        if (attnRes.includes(ds)) {
          const dimHead = dimHeadFor(ch);
          layers.push(attention(ch, dimHead, numHeads));
        }
        input.push(new TimestepEmbedSequential(...layers));
        inputBlockChans.push(ch);
      }
      if (level !== channelMult.length - 1) {
        const outCh = ch;
        input.push(new TimestepEmbedSequential(resblockUpdown ? resBlock(ch, outCh, { down: true }) : new Downsample(ch, convResample, dims, outCh)));
        ch = outCh;
        inputBlockChans.push(ch);
        ds *= 2;
      }
    });
    this.input_blocks = this.child('input_blocks', input);

    const midDimHead = dimHeadFor(ch);
    this.middle_block = this.child('middle_block', new TimestepEmbedSequential(
      resBlock(ch, null), attention(ch, midDimHead, numHeads), resBlock(ch, null)));

    const output = new ModuleList<TimestepEmbedSequential>();
    [...channelMult.entries()].reverse().forEach(([level, mult]) => {
      for (let i = 0; i < numResBlocks + 1; i++) {
        const ich = inputBlockChans.pop()!;
        const layers: TimestepChild[] = [resBlock(ch + ich, mc * mult)];
        ch = mc * mult;
        if (attnRes.includes(ds)) {
          const dimHead = dimHeadFor(ch);
          // Upsampling path: AttentionBlock gets num_heads_upsample, SpatialTransformer num_heads.
          layers.push(attention(ch, dimHead, numHeadsUpsample));
        }
        if (level && i === numResBlocks) {
          const outCh = ch;
          layers.push(resblockUpdown ? resBlock(ch, outCh, { up: true }) : new Upsample(ch, convResample, dims, outCh));
          ds = fdiv(ds, 2);
        }
        output.push(new TimestepEmbedSequential(...layers));
      }
    });
    this.output_blocks = this.child('output_blocks', output);

    this.out = this.child('out', new Sequential(normalization(ch), new SiLU(), zeroModule(new Conv2d(mc, outChannels, 3, { padding: 1 }))));
  }

  /** UNetModel.forward(x, timesteps, context=None, y=None): x [N, in_channels, H, W], timesteps
   *  [N] (int64 or float; a number is used for the whole batch), context [N, M, context_dim],
   *  y [N] class labels (exactly when num_classes is set) -> [N, out_channels, H, W]. */
  forward(x: Tensor, timesteps: Tensor | number, cond: UNetCond = {}): Tensor {
    const y = cond.y ?? null, context = cond.context ?? null;
    if ((y !== null) !== (this.numClasses !== null)) {
      throw new ShapeError(`UNetModel: must specify y if and only if the model is class-conditional (num_classes ${this.numClasses ?? 'None'}, y ${y ? 'given' : 'missing'})`);
    }
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) throw new ShapeError(`UNetModel: x ${fmtShape(x.shape)} is not [N, ${this.inChannels}, H, W]`);
    const n = x.shape[0]!;
    const ts = typeof timesteps === 'number' ? T.full([n], timesteps) : timesteps;
    if (ts.ndim !== 1 || ts.size !== n) throw new ShapeError(`UNetModel: timesteps ${fmtShape(ts.shape)} must be [${n}]`);
    let emb = this.time_embed.forward(timestepEmbedding(ts, this.modelChannels)); // [N, 4*mc]
    if (this.label_emb && y) {
      if (y.ndim !== 1 || y.size !== n) throw new ShapeError(`UNetModel: y ${fmtShape(y.shape)} must be [${n}] (one label per sample)`);
      emb = T.add(emb, this.label_emb.forward(y));
    }
    if (context !== null && (context.ndim !== 3 || context.shape[0] !== n)) {
      throw new ShapeError(`UNetModel: context ${fmtShape(context.shape)} must be [${n}, M, ${this.contextDim ?? 'context_dim'}]`);
    }
    const hs: Tensor[] = [];
    let h = x;
    // Each block in T.tidy: under T.inference (sampling) the buffers that die in a block serve the
    // next one while still in cache; in training it changes nothing.
    for (const m of this.input_blocks) {
      const hi = h;
      h = T.tidy(() => m.forward(hi, emb, context));
      hs.push(h);
    }
    const hm = h;
    h = T.tidy(() => this.middle_block.forward(hm, emb, context));
    for (const m of this.output_blocks) {
      const skip = hs.pop()!;
      if (skip.shape[2] !== h.shape[2] || skip.shape[3] !== h.shape[3]) {
        throw new ShapeError(`UNetModel: skip ${fmtShape(skip.shape)} and ${fmtShape(h.shape)} differ in size; H and W must be divisible by 2^${this.levels - 1}`);
      }
      const hi = h;
      h = T.tidy(() => m.forward(T.cat([hi, skip], 1), emb, context));
    }
    return this.out.forward(h);
  }

  /** The model as a denoiser callback: (x_t, t, cond) -> model output. A tensor `cond` is the
   *  class labels of a class-conditional model, otherwise the cross-attention context. */
  apply(x: Tensor, t: Tensor | number, cond?: UNetCond | Tensor | null): Tensor {
    if (cond instanceof Tensor) return this.forward(x, t, this.numClasses !== null ? { y: cond } : { context: cond });
    return this.forward(x, t, cond ?? {});
  }

  /** `apply` bound to this model, to hand to a sampler. */
  denoiser(): (x: Tensor, t: Tensor | number, cond?: UNetCond | Tensor | null) => Tensor {
    return (x, t, cond) => this.apply(x, t, cond);
  }
}

/** Official class paths of this file -> constructors (merged into MODEL_TARGETS). */
export const openaiTargets = {
  'ldm.modules.diffusionmodules.openaimodel.UNetModel': (params) => new UNetModel(readOptions('UNetModel', params, UNET_SCHEMA)),
} satisfies TargetTable;
