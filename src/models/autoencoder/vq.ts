// The vector-quantised first stages: `VQModel` and `VQModelInterface` of ldm/models/autoencoder.py
// (CompVis/latent-diffusion a506df5) and `VQModel` of taming/models/vqgan.py (taming-transformers
// 3ba01b2), with this family's TargetTable. Children under the official keys, in the official
// registration order: encoder.*, decoder.*, loss.*, quantize.embedding.weight (+ quantize.used with
// remap), quant_conv.*, post_quant_conv.*, colorize. Not here: the training loss
// (VQLPIPSWithDiscriminator, built from `lossconfig` through the registry), the optimisation steps
// (vq-training.ts), checkpoint reading (`ckpt_path` is refused, as AutoencoderKL does).
//
// Official facts kept:
//  - the quantizer is VectorQuantizer2(n_embed, embed_dim, beta=0.25, remap, sane_index_shape)
//    with the default legacy=True; quant_conv maps z_channels -> embed_dim (no double_z);
//  - VQModel.encode -> (quant, emb_loss, info); forward(x, return_pred_indices) -> (dec, diff[, ind]);
//  - VQModelInterface.encode -> the PRE-quantisation h (quant_conv output); decode(h,
//    force_not_quantize=False) quantises h first unless force_not_quantize; its inherited
//    forward() would unpack that tensor as a tuple, so it cannot train (we say so instead);
//  - ldm's VQModel with use_ema=True, batch_resize_range or scheduler_config runs code that is
//    not imported in the official file (LitEma, np, LambdaLR: NameError); refused here by name.

import { ConfigError, F, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../../util/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Conv2d } from '../../nn/index.ts';
import type { BuildFn, TargetConfig, TargetTable } from '../targets.ts';
import { DDCONFIG_SCHEMA } from './encoder.ts';
import { FirstStageBase, type FirstStageOptions } from './first-stage.ts';
import { type QuantizeOptions, type QuantizeResult, REMAP_FIELD, VectorQuantizer2, type VectorQuantizer2Options, makeVectorQuantizer2 } from './quantize.ts';

/** ldm's `VQModel(ddconfig, lossconfig, n_embed, embed_dim, ckpt_path=None, ignore_keys=[],
 *  image_key="image", colorize_nlabels=None, monitor=None, batch_resize_range=None,
 *  scheduler_config=None, lr_g_factor=1.0, remap=None, sane_index_shape=False, use_ema=False)`. */
export interface VQModelOptions extends FirstStageOptions {
  n_embed: number;
  batch_resize_range?: readonly number[] | null;
  scheduler_config?: TargetConfig | null;
  lr_g_factor?: number;
  /** the used codes (see VectorQuantizer2Options) */
  remap?: VectorQuantizer2Options['remap'];
  sane_index_shape?: boolean;
  use_ema?: boolean;
}

/** taming's VQModel takes fewer options. */
export type TamingVQModelOptions = Omit<VQModelOptions, 'batch_resize_range' | 'scheduler_config' | 'lr_g_factor' | 'use_ema'>;


/** The kwargs of ldm's VQModel / VQModelInterface as a config gives them (readOptions). */
export const LDM_VQMODEL_SCHEMA: Schema<VQModelOptions> = {
  ddconfig: required(F.nested(DDCONFIG_SCHEMA)), lossconfig: required(F.config), n_embed: required(F.int), embed_dim: required(F.int),
  ckpt_path: F.str, ignore_keys: F.strList, image_key: F.str, colorize_nlabels: F.int, monitor: F.str,
  batch_resize_range: F.numList, scheduler_config: F.config, lr_g_factor: F.num, remap: REMAP_FIELD, sane_index_shape: F.bool, use_ema: F.bool,
};

/** The kwargs of taming's VQModel. */
export const TAMING_VQMODEL_SCHEMA: Schema<TamingVQModelOptions> = {
  ddconfig: required(F.nested(DDCONFIG_SCHEMA)), lossconfig: required(F.config), n_embed: required(F.int), embed_dim: required(F.int),
  ckpt_path: F.str, ignore_keys: F.strList, image_key: F.str, colorize_nlabels: F.int, monitor: F.str,
  remap: REMAP_FIELD, sane_index_shape: F.bool,
};

export const LDM_VQMODEL_KEYS = schemaKeys(LDM_VQMODEL_SCHEMA);
export const TAMING_VQMODEL_KEYS = schemaKeys(TAMING_VQMODEL_SCHEMA);

/** `(quant, emb_loss, (perplexity, min_encodings, indices))` of VQModel.encode. */
export type VQEncodeResult = [Tensor, Tensor, [null, null, Tensor]];

/** What VQModel, VQModelInterface and taming's VQModel share beyond FirstStageBase: the quantizer, encode to the
 *  pre-quantisation latent, quantise, decode a quantised latent, the Lightning helpers. */
export abstract class VQModelBase extends FirstStageBase {
  readonly nEmbed: number;
  /** the optimiser of the autoencoder uses lr_g_factor * lr (ldm's VQModel; 1 for taming's) */
  readonly lrGFactor: number;
  readonly quantize: VectorQuantizer2;
  readonly quant_conv: Conv2d;
  readonly post_quant_conv: Conv2d;

  protected constructor(owner: string, opts: VQModelOptions, allowed: readonly string[], build?: BuildFn) {
    const p = kwargs(owner, opts).params;
    checkKwargs(owner, p, allowed);
    super(owner, p, build);
    const O = owner;
    if (p['use_ema'] === true) throw new ConfigError(`${O}: use_ema=True is not supported: the official VQModel calls LitEma without importing it (NameError), so no official checkpoint has model_ema.*`);
    if (p['use_ema'] !== undefined && p['use_ema'] !== false) throw new ConfigError(`${O}: 'use_ema' must be a boolean, got ${JSON.stringify(p['use_ema'])}`);
    if (p['batch_resize_range'] !== undefined && p['batch_resize_range'] !== null) {
      throw new ConfigError(`${O}: batch_resize_range is not supported (the official get_input draws with np, which autoencoder.py does not import, and resizes bicubically); remove it`);
    }
    if (p['scheduler_config'] !== undefined && p['scheduler_config'] !== null) {
      throw new ConfigError(`${O}: scheduler_config is not supported (the official configure_optimizers calls LambdaLR, which autoencoder.py does not import); remove it`);
    }
    const ed = this.embedDim;
    const ne = kwargs(O, p).posInt('n_embed');
    const lrg = p['lr_g_factor'] ?? 1.0;
    if (typeof lrg !== 'number' || !Number.isFinite(lrg)) throw new ConfigError(`${O}: 'lr_g_factor' must be a number, got ${JSON.stringify(lrg)}`);
    this.nEmbed = ne;
    this.lrGFactor = lrg;
    const qp: Record<string, unknown> = { n_e: ne, e_dim: ed, beta: 0.25, sane_index_shape: p['sane_index_shape'] ?? false };
    if (p['remap'] !== undefined && p['remap'] !== null) qp['remap'] = p['remap'];
    this.quantize = this.child('quantize', makeVectorQuantizer2(qp));
    const z = this.encoder.zChannels;
    this.quant_conv = this.child('quant_conv', new Conv2d(z, ed, 1));
    this.post_quant_conv = this.child('post_quant_conv', new Conv2d(ed, z, 1));
    this.addColorize(p['colorize_nlabels']);
  }

  /** `encode_to_prequant`: x [N, C, H, W] -> h [N, embed_dim, H/f, W/f] (quant_conv output). */
  encodeToPrequant(x: Tensor): Tensor {
    if (this.encoder.doubleZ) throw new ConfigError(`${this.owner}: ddconfig.double_z is true, so the encoder gives 2*z_channels channels but quant_conv takes z_channels (${this.encoder.zChannels}); set double_z: false`);
    return this.quant_conv.forward(this.encoder.forward(x));
  }

  /** `quantize(h)`. */
  quantizeLatent(h: Tensor, opts: QuantizeOptions = {}): QuantizeResult {
    return this.quantize.forward(h, opts);
  }

  /** VQModel.decode: quant [N, embed_dim, h, w] -> post_quant_conv -> decoder -> [N, out_ch, H, W]. */
  decodeQuant(quant: Tensor): Tensor {
    if (quant.ndim !== 4 || quant.shape[1] !== this.embedDim) throw new ShapeError(`${this.owner}.decode: latent ${fmtShape(quant.shape)} is not [N, ${this.embedDim}, h, w]`);
    return this.decoder.forward(this.post_quant_conv.forward(quant));
  }

  /** encode + quantize + decode: (dec, diff, indices), as VQModel.forward(x, return_pred_indices=True). */
  reconstruct(x: Tensor, opts: QuantizeOptions = {}): [Tensor, Tensor, Tensor] {
    const q = this.quantizeLatent(this.encodeToPrequant(x), opts);
    return [this.decodeQuant(q.zQ), q.loss, q.indices];
  }

  /** Parameters of opt_ae: encoder, decoder, quantize, quant_conv, post_quant_conv (in that order). */
  autoencoderParameters(): Tensor[] {
    return [...this.encoder.parameters(), ...this.decoder.parameters(), ...this.quantize.parameters(),
      ...this.quant_conv.parameters(), ...this.post_quant_conv.parameters()];
  }
}

/** `ldm.models.autoencoder.VQModel`. */
export class VQModel extends VQModelBase {
  constructor(opts: VQModelOptions, build?: BuildFn, owner = 'VQModel', allowed: readonly string[] = LDM_VQMODEL_KEYS) {
    super(owner, opts, allowed, build);
  }

  /** `encode(x)` -> (quant, emb_loss, (None, None, indices)). */
  encode(x: Tensor, opts: QuantizeOptions = {}): VQEncodeResult {
    const q = this.quantizeLatent(this.encodeToPrequant(x), opts);
    return [q.zQ, q.loss, [null, null, q.indices]];
  }

  decode(quant: Tensor): Tensor {
    return this.decodeQuant(quant);
  }

  /** `forward(input, return_pred_indices=False)` -> (dec, diff) or (dec, diff, ind). */
  forward(input: Tensor, returnPredIndices = false, opts: QuantizeOptions = {}): [Tensor, Tensor] | [Tensor, Tensor, Tensor] {
    const [dec, diff, ind] = this.reconstruct(input, opts);
    return returnPredIndices ? [dec, diff, ind] : [dec, diff];
  }
}

/** `taming.models.vqgan.VQModel`: the same modules and calls, fewer constructor options. */
export class TamingVQModel extends VQModel {
  constructor(opts: TamingVQModelOptions, build?: BuildFn) {
    super(opts, build, 'taming VQModel', TAMING_VQMODEL_KEYS);
  }

  /** taming's forward(input) -> (dec, diff). */
  override forward(input: Tensor, _returnPredIndices = false, opts: QuantizeOptions = {}): [Tensor, Tensor] {
    const [dec, diff] = this.reconstruct(input, opts);
    return [dec, diff];
  }
}

/** `ldm.models.autoencoder.VQModelInterface`: the first stage of VQ latent diffusion models. */
export class VQModelInterface extends VQModelBase {
  constructor(opts: VQModelOptions, build?: BuildFn) {
    super('VQModelInterface', opts, LDM_VQMODEL_KEYS, build);
  }

  /** `encode(x)` -> h, the pre-quantisation latent [N, embed_dim, h, w]. */
  encode(x: Tensor): Tensor {
    return this.encodeToPrequant(x);
  }

  /** `decode(h, force_not_quantize=False)`: quantise h (unless forced not to), then decode. */
  decode(h: Tensor, forceNotQuantize = false, opts: QuantizeOptions = {}): Tensor {
    const quant = forceNotQuantize ? h : this.quantizeLatent(h, opts).zQ;
    return this.decodeQuant(quant);
  }

  /** The inherited official forward unpacks encode()'s tensor as (quant, diff, info) and fails. */
  forward(): never {
    throw new ConfigError('VQModelInterface.forward: the official class inherits VQModel.forward, which unpacks the pre-quantisation tensor of its encode() as a tuple and fails; train a first stage with ldm.models.autoencoder.VQModel and load its weights into VQModelInterface');
  }
}

/** Official class paths of the VQ family -> constructors (merged in models/index.ts). */
export const vqTargets = {
  'ldm.models.autoencoder.VQModel': (p, build) => new VQModel(readOptions('VQModel', p, LDM_VQMODEL_SCHEMA), build),
  'ldm.models.autoencoder.VQModelInterface': (p, build) => new VQModelInterface(readOptions('VQModelInterface', p, LDM_VQMODEL_SCHEMA), build),
  'taming.models.vqgan.VQModel': (p, build) => new TamingVQModel(readOptions('taming VQModel', p, TAMING_VQMODEL_SCHEMA), build),
  'taming.modules.vqvae.quantize.VectorQuantizer2': (p) => makeVectorQuantizer2(p),
} satisfies TargetTable;
