// What the first stages of ldm/models/autoencoder.py (and taming's VQModel) share, written once:
// the Lightning-side attributes (image_key, ignore_keys, monitor), the Encoder and Decoder of one
// ddconfig, the loss built from `lossconfig` through the registry (if that fails, the error is kept
// and only reading `.loss` throws, so encode / decode still work), the optional random `colorize`
// buffer, get_input, get_last_layer and to_rgb. AutoencoderKL (kl.ts) and the VQ models (vq.ts)
// add their latent head after the base (KL: quant_conv to the posterior's 2*embed_dim channels; VQ:
// the quantizer), so children register in the official order: encoder, decoder, loss, head, colorize.

import { ConfigError } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Module, initGenerator } from '../../nn/index.ts';
import type { BuildFn, TargetConfig } from '../targets.ts';
import { type DDConfig, Decoder, Encoder } from './encoder.ts';

/** The options every first stage takes (the official names). */
export interface FirstStageOptions {
  ddconfig: DDConfig;
  lossconfig: TargetConfig;
  embed_dim: number;
  ckpt_path?: string | null;
  ignore_keys?: readonly string[];
  image_key?: string;
  colorize_nlabels?: number | null;
  monitor?: string | null;
}

function isTargetConfig(v: unknown): v is TargetConfig {
  return typeof v === 'object' && v !== null && typeof (v as { target?: unknown }).target === 'string';
}

export abstract class FirstStageBase extends Module {
  /** the class name, for messages */
  readonly owner: string;
  readonly imageKey: string;
  readonly embedDim: number;
  readonly ignoreKeys: readonly string[];
  readonly monitor: string | null;
  readonly lossconfig: TargetConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  #loss: unknown = null;
  #lossError: Error | null = null;

  /** `p`: the options (checked again here: JavaScript callers pass anything). */
  protected constructor(owner: string, p: Readonly<Record<string, unknown>>, build?: BuildFn) {
    super();
    const O = owner;
    this.owner = O;
    if (p['ckpt_path'] !== undefined && p['ckpt_path'] !== null) {
      throw new ConfigError(`${O}: ckpt_path '${String(p['ckpt_path'])}' is not loaded by the constructor; build the model without it and load the weights with the checkpoint loader (io/)`);
    }
    const dd = p['ddconfig'];
    if (typeof dd !== 'object' || dd === null || Array.isArray(dd)) throw new ConfigError(`${O}: 'ddconfig' must be a mapping of Encoder/Decoder parameters`);
    const lc = p['lossconfig'];
    if (!isTargetConfig(lc)) throw new ConfigError(`${O}: 'lossconfig' must be a {target, params} mapping, got ${JSON.stringify(lc)}`);
    const ed = p['embed_dim'];
    if (typeof ed !== 'number' || !Number.isInteger(ed) || ed <= 0) throw new ConfigError(`${O}: 'embed_dim' must be a positive integer, got ${JSON.stringify(ed)}`);
    const ddc = dd as DDConfig; // Encoder and Decoder check its keys and values
    this.imageKey = (p['image_key'] as string | undefined) ?? 'image';
    this.ignoreKeys = (p['ignore_keys'] as string[] | undefined) ?? [];
    this.monitor = (p['monitor'] as string | null | undefined) ?? null;
    this.embedDim = ed;
    this.lossconfig = lc;
    this.encoder = this.child('encoder', new Encoder(ddc));
    this.decoder = this.child('decoder', new Decoder(ddc));
    if (build) {
      try {
        this.#loss = build(lc, `${O}.lossconfig`);
        if (this.#loss instanceof Module) this.child('loss', this.#loss);
      } catch (e) {
        this.#lossError = e instanceof Error ? e : new Error(String(e));
      }
    } else {
      this.#lossError = new ConfigError(`${O}: built without a registry, so lossconfig '${lc.target}' was not instantiated`);
    }
  }

  /** `colorize_nlabels`: the random `colorize` buffer [3, n, 1, 1] (registered last, as the official __init__). */
  protected addColorize(nl: unknown): void {
    if (nl === undefined || nl === null) return;
    if (typeof nl !== 'number' || !Number.isInteger(nl)) throw new ConfigError(`${this.owner}: colorize_nlabels must be an integer, got ${JSON.stringify(nl)}`);
    this.buffer('colorize', T.randn([3, nl, 1, 1], initGenerator()));
  }

  /** The module built from `lossconfig`; throws the construction error if it could not be built. */
  get loss(): unknown {
    if (this.#lossError) throw new ConfigError(`${this.owner}: lossconfig '${this.lossconfig.target}' could not be built: ${this.#lossError.message}`);
    return this.#loss;
  }

  /** Whether the loss was built (false while its target is not registered). */
  get hasLoss(): boolean {
    return this.#lossError === null;
  }

  /** `get_input`: batch[k] channels-last [N, H, W(, C)] -> [N, C, H, W] float. */
  get_input(batch: Readonly<Record<string, Tensor>>, k: string = this.imageKey): Tensor {
    const x = batch[k];
    if (!x) throw new ConfigError(`${this.owner}.get_input: batch has no '${k}' (keys: ${Object.keys(batch).join(', ')})`);
    const x4 = x.ndim === 3 ? T.unsqueeze(x, 3) : x;
    return T.permute(T.toFloat(x4), [0, 3, 1, 2]);
  }

  /** `get_last_layer`: decoder.conv_out.weight (for the adaptive GAN weight). */
  get_last_layer(): Tensor {
    return this.decoder.conv_out.weight;
  }

  /** `to_rgb`: project a segmentation map to 3 channels with the random `colorize` buffer, in [-1, 1]. */
  to_rgb(x: Tensor): Tensor {
    if (this.imageKey !== 'segmentation') throw new ConfigError(`${this.owner}.to_rgb: only for image_key 'segmentation' (is '${this.imageKey}')`);
    let w: Tensor;
    try {
      w = this.getBuffer('colorize');
    } catch {
      w = this.buffer('colorize', T.randn([3, x.shape[1]!, 1, 1], initGenerator()));
    }
    const y = T.conv2d(x, w);
    const lo = T.neg(T.maxAll(T.neg(y))), hi = T.maxAll(y);
    return T.sub(T.div(T.mul(T.sub(y, lo), 2), T.sub(hi, lo)), 1);
  }
}
