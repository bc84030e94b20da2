// The KL-regularised first stage of ldm/models/autoencoder.py (`AutoencoderKL`,
// `IdentityFirstStage`), the posterior `DiagonalGaussianDistribution` of
// ldm/modules/distributions/distributions.py, and this family's TargetTable. Not here: the
// training loss (LPIPSWithDiscriminator, built through the registry from `lossconfig`), the
// Lightning training/validation steps, VQModel, what every first stage shares (first-stage.ts).

import { ConfigError, F, Generator, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Conv2d, Identity, Module, initGenerator } from '../../nn/index.ts';
import type { BuildFn, TargetTable } from '../targets.ts';
import { DDCONFIG_SCHEMA, Decoder, Encoder, MODEL_SCHEMA, Model } from './encoder.ts';
import { FirstStageBase, type FirstStageOptions } from './first-stage.ts';

const LOG_TWO_PI = Math.log(2 * Math.PI);

/** `DiagonalGaussianDistribution(parameters, deterministic)`: parameters [N, 2C, H, W] split by
 *  torch.chunk(2, dim=1) into mean and logvar; logvar clamped to [-30, 20]; std = exp(logvar/2),
 *  var = exp(logvar); deterministic makes std = var = 0 and kl = nll = [0.]. */
export class DiagonalGaussianDistribution {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;
  readonly var: Tensor;

  constructor(readonly parameters: Tensor, readonly deterministic = false) {
    if (parameters.ndim < 2) throw new ShapeError(`DiagonalGaussianDistribution: parameters ${fmtShape(parameters.shape)} need a channel dim (dim 1)`);
    const [mean, logvar] = T.chunk(parameters, 2, 1) as [Tensor, Tensor];
    this.mean = mean;
    this.logvar = T.clamp(logvar, -30, 20);
    if (deterministic) {
      this.std = this.var = T.zerosLike(mean);
    } else {
      this.std = T.exp(T.mul(this.logvar, 0.5));
      this.var = T.exp(this.logvar);
    }
  }

  /** mean + std * eps, eps ~ N(0, I) drawn from `noise` (a Generator; the global init generator
   *  when omitted, as the official code uses the global torch RNG) or given as a tensor. */
  sample(noise?: Tensor | Generator): Tensor {
    const eps = noise instanceof Generator || noise === undefined ? T.randn(this.mean.shape, noise ?? initGenerator()) : noise;
    if (eps.size !== this.mean.size) throw new ShapeError(`DiagonalGaussianDistribution.sample: noise ${fmtShape(eps.shape)} does not match the mean ${fmtShape(this.mean.shape)}`);
    return T.add(this.mean, T.mul(this.std, eps));
  }

  mode(): Tensor {
    return this.mean;
  }

  /** KL(self || other), other = N(0, I) when omitted, summed over dims [1, 2, 3] -> [N]. */
  kl(other?: DiagonalGaussianDistribution): Tensor {
    if (this.deterministic) return T.tensor([0]);
    const dims = [1, 2, 3];
    if (this.mean.ndim !== 4) throw new ShapeError(`DiagonalGaussianDistribution.kl: sums over dims [1, 2, 3] and needs a 4-D mean, got ${fmtShape(this.mean.shape)}`);
    if (!other) {
      // 0.5 * sum(mean^2 + var - 1 - logvar)
      return T.mul(T.sum(T.sub(T.sub(T.add(T.square(this.mean), this.var), 1), this.logvar), dims), 0.5);
    }
    // 0.5 * sum((mean - m2)^2 / var2 + var / var2 - 1 - logvar + logvar2)
    const t = T.add(T.div(T.square(T.sub(this.mean, other.mean)), other.var), T.div(this.var, other.var));
    return T.mul(T.sum(T.add(T.sub(T.sub(t, 1), this.logvar), other.logvar), dims), 0.5);
  }

  /** Negative log-likelihood of `sample`: 0.5 * sum(log 2pi + logvar + (x - mean)^2 / var, dims). */
  nll(sample: Tensor, dims: readonly number[] = [1, 2, 3]): Tensor {
    if (this.deterministic) return T.tensor([0]);
    const t = T.add(T.add(this.logvar, LOG_TWO_PI), T.div(T.square(T.sub(sample, this.mean)), this.var));
    return T.mul(T.sum(t, dims), 0.5);
  }
}

/** `AutoencoderKL(ddconfig, lossconfig, embed_dim, ckpt_path=None, ignore_keys=[], image_key="image",
 *  colorize_nlabels=None, monitor=None)`. */
export type AutoencoderKLOptions = FirstStageOptions;

/** The AutoencoderKL kwargs as a config gives them (ddconfig read key by key as nested options). */
export const AUTOENCODER_KL_SCHEMA: Schema<AutoencoderKLOptions> = {
  ddconfig: required(F.nested(DDCONFIG_SCHEMA)), lossconfig: required(F.config), embed_dim: required(F.int),
  ckpt_path: F.str, ignore_keys: F.strList, image_key: F.str, colorize_nlabels: F.int, monitor: F.str,
};
export const AUTOENCODER_KL_KEYS = schemaKeys(AUTOENCODER_KL_SCHEMA);

/** `AutoencoderKL`: encoder -> quant_conv (2*z_channels -> 2*embed_dim) -> posterior;
 *  z -> post_quant_conv (embed_dim -> z_channels) -> decoder. The loss is built from `lossconfig`
 *  through the registry; if that fails (e.g. its target is not registered yet) the config and
 *  the error are kept and only reading `.loss` throws, so encode/decode still work. */
export class AutoencoderKL extends FirstStageBase {
  readonly quant_conv: Conv2d;
  readonly post_quant_conv: Conv2d;

  constructor(opts: AutoencoderKLOptions, build?: BuildFn) {
    const p = kwargs('AutoencoderKL', opts).params;
    checkKwargs('AutoencoderKL', p, AUTOENCODER_KL_KEYS);
    super('AutoencoderKL', p, build);
    if (!opts.ddconfig.double_z) throw new ConfigError(`${this.owner}: ddconfig.double_z must be true (the encoder must output mean and logvar)`);
    const z = this.encoder.zChannels;
    this.quant_conv = this.child('quant_conv', new Conv2d(2 * z, 2 * this.embedDim, 1));
    this.post_quant_conv = this.child('post_quant_conv', new Conv2d(this.embedDim, z, 1));
    this.addColorize(p['colorize_nlabels']);
  }

  /** x [N, in_channels, H, W] -> posterior over [N, embed_dim, H/f, W/f]. */
  encode(x: Tensor): DiagonalGaussianDistribution {
    const h = this.encoder.forward(x); // [N, 2*z_channels, h, w]
    return new DiagonalGaussianDistribution(this.quant_conv.forward(h)); // [N, 2*embed_dim, h, w]
  }

  /** z [N, embed_dim, h, w] -> [N, out_ch, H, W]. */
  decode(z: Tensor): Tensor {
    if (z.ndim !== 4 || z.shape[1] !== this.embedDim) throw new ShapeError(`AutoencoderKL.decode: latent ${fmtShape(z.shape)} is not [N, ${this.embedDim}, h, w]`);
    return this.decoder.forward(this.post_quant_conv.forward(z));
  }

  /** Returns [reconstruction, posterior]; the latent is a posterior sample (noise from `noise`,
   *  a Generator or a tensor) or, with sample_posterior false, its mode. */
  forward(input: Tensor, samplePosterior = true, noise?: Tensor | Generator): [Tensor, DiagonalGaussianDistribution] {
    const posterior = this.encode(input);
    const z = samplePosterior ? posterior.sample(noise) : posterior.mode();
    return [this.decode(z), posterior];
  }
}

/** `IdentityFirstStage(*args, vq_interface=False, **kwargs)`: the official class ignores every
 *  other argument, and so do we (a config may pass the first stage's usual keys). */
export interface IdentityFirstStageOptions {
  vq_interface?: boolean;
}

/** `IdentityFirstStage`: encode, decode, forward (and quantize) return their input. */
export class IdentityFirstStage extends Module {
  readonly vqInterface: boolean;
  constructor(opts: IdentityFirstStageOptions = {}) {
    super();
    this.vqInterface = opts.vq_interface === true;
  }
  encode(x: Tensor): Tensor { return x; }
  decode(x: Tensor): Tensor { return x; }
  forward(x: Tensor): Tensor { return x; }
  quantize(x: Tensor): Tensor | [Tensor, null, [null, null, null]] {
    return this.vqInterface ? [x, null, [null, null, null]] : x;
  }
}

/** vq_interface is the one argument IdentityFirstStage reads (the factory drops the rest, as `**kwargs` does). */
const IDENTITY_SCHEMA: Schema<IdentityFirstStageOptions> = { vq_interface: F.bool };

/** Official class paths of this family -> constructors (merged in models/index.ts). */
export const autoencoderTargets = {
  'ldm.models.autoencoder.AutoencoderKL': (p, build) => new AutoencoderKL(readOptions('AutoencoderKL', p, AUTOENCODER_KL_SCHEMA), build),
  'ldm.models.autoencoder.IdentityFirstStage': (p) => new IdentityFirstStage(readOptions('IdentityFirstStage', { vq_interface: p['vq_interface'] }, IDENTITY_SCHEMA)),
  'ldm.modules.diffusionmodules.model.Encoder': (p) => new Encoder(readOptions('Encoder', p, DDCONFIG_SCHEMA)),
  'ldm.modules.diffusionmodules.model.Decoder': (p) => new Decoder(readOptions('Decoder', p, DDCONFIG_SCHEMA)),
  'ldm.modules.diffusionmodules.model.Model': (p) => new Model(readOptions('Model', p, MODEL_SCHEMA)),
  // torch.nn.Identity(*args, **kwargs) ignores its arguments (used as lossconfig / cond_stage_config).
  'torch.nn.Identity': () => new Identity(),
} satisfies TargetTable;
