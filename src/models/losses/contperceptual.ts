// LPIPSWithDiscriminator of ldm/modules/losses/contperceptual.py (the AutoencoderKL training
// loss: L1 + LPIPS reconstruction under a learned log-variance, KL, and a PatchGAN term with the
// adaptive weight of VQGAN), plus adopt_weight / hinge_d_loss / vanilla_d_loss of
// taming/modules/losses/vqperceptual.py. Not here: the optimisers and the Lightning steps
// (autoencoder/training.ts).
//
// Measured semantics kept on purpose (fixtures README): nll_loss is summed over C,H,W and divided
// by the batch size (the logvar term counts C*H*W times) while the logged rec_loss is a mean;
// d_weight uses the unweighted nll gradient and is computed even while the adopted disc_factor is
// 0; without autograd (no-grad / validation) d_weight is 0; the GAN term starts AT
// global_step == disc_start (strict `<`); the discriminator step calls D separately on real and
// on fake images (train-mode BatchNorm uses each call's own batch statistics).

import { ConfigError, F, LdmError, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Module } from '../../nn/index.ts';
import { LPIPS } from './lpips.ts';
import { NLayerDiscriminator, weightsInit } from './discriminator.ts';

/** `adopt_weight(weight, global_step, threshold=0, value=0.)`: value while global_step < threshold. */
export function adoptWeight(weight: number, globalStep: number, threshold = 0, value = 0): number {
  return globalStep < threshold ? value : weight;
}

/** `hinge_d_loss`: 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake))). */
export function hingeDLoss(logitsReal: Tensor, logitsFake: Tensor): Tensor {
  const lossReal = T.mean(T.relu(T.sub(1, logitsReal)));
  const lossFake = T.mean(T.relu(T.add(logitsFake, 1)));
  return T.mul(T.add(lossReal, lossFake), 0.5);
}

/** `vanilla_d_loss`: 0.5 * (mean(softplus(-real)) + mean(softplus(fake))). */
export function vanillaDLoss(logitsReal: Tensor, logitsFake: Tensor): Tensor {
  return T.mul(T.add(T.mean(T.softplus(T.neg(logitsReal))), T.mean(T.softplus(logitsFake))), 0.5);
}

/** The kwargs both GAN losses take: LPIPSWithDiscriminator here, the VQ ones in vqperceptual.ts. */
export interface GanLossOptions {
  disc_start: number;
  pixelloss_weight?: number;
  disc_num_layers?: number;
  disc_in_channels?: number;
  disc_factor?: number;
  disc_weight?: number;
  perceptual_weight?: number;
  use_actnorm?: boolean;
  disc_conditional?: boolean;
  disc_loss?: 'hinge' | 'vanilla';
}

/** GanLossOptions as a config gives them (readOptions). */
export const GAN_LOSS_SCHEMA: Schema<GanLossOptions> = {
  disc_start: required(F.int), pixelloss_weight: F.num, disc_num_layers: F.int, disc_in_channels: F.int, disc_factor: F.num,
  disc_weight: F.num, perceptual_weight: F.num, use_actnorm: F.bool, disc_conditional: F.bool, disc_loss: F.oneOf('hinge', 'vanilla'),
};

export interface LPIPSWithDiscriminatorOptions extends GanLossOptions {
  logvar_init?: number;
  kl_weight?: number;
}

/** The LPIPSWithDiscriminator kwargs as a config gives them (readOptions). */
export const LPIPS_WITH_DISCRIMINATOR_SCHEMA: Schema<LPIPSWithDiscriminatorOptions> = {
  ...GAN_LOSS_SCHEMA, logvar_init: F.num, kl_weight: F.num,
};
export const LPIPS_WITH_DISCRIMINATOR_KEYS = schemaKeys(LPIPS_WITH_DISCRIMINATOR_SCHEMA);

// ---- the discriminator side both GAN losses share (this file and vqperceptual.ts) -----------------

/** The discriminator's logits for x, with cond concatenated on channels for a conditional one. */
export function discriminate(d: NLayerDiscriminator, x: Tensor, cond: Tensor | null | undefined): Tensor {
  return d.forward(cond ? T.cat([x, cond], 1) : x);
}

/** The generator step's check of `cond` against disc_conditional. */
export function checkDiscCond(owner: string, cond: Tensor | null | undefined, conditional: boolean): void {
  if (cond == null && conditional) throw new ConfigError(`${owner}: disc_conditional is set, so the generator step needs \`cond\``);
  if (cond != null && !conditional) throw new ConfigError(`${owner}: \`cond\` given but disc_conditional is False`);
}

/** optimizer_idx 1: d_loss = disc_factor * disc_loss(logits_real, logits_fake) on detached images
 *  (and cond), logged as `${split}/disc_loss`, `logits_real`, `logits_fake`. */
export function discriminatorStep(d: NLayerDiscriminator, discLoss: (real: Tensor, fake: Tensor) => Tensor, inputs: Tensor,
  reconstructions: Tensor, cond: Tensor | null | undefined, discFactor: number, split: string): LossOutput {
  const logitsReal = discriminate(d, inputs.detach(), cond?.detach());
  const logitsFake = discriminate(d, reconstructions.detach(), cond?.detach());
  const dLoss = T.mul(discLoss(logitsReal, logitsFake), discFactor);
  const log: Record<string, Tensor> = {
    [`${split}/disc_loss`]: T.mean(dLoss.detach()),
    [`${split}/logits_real`]: T.mean(logitsReal.detach()),
    [`${split}/logits_fake`]: T.mean(logitsFake.detach()),
  };
  return { loss: dLoss, log, logitsFake, logitsReal };
}

/** What the loss needs of a posterior (DiagonalGaussianDistribution): kl() -> [N]. */
export interface KlPosterior {
  kl(): Tensor;
}

export interface LossOutput {
  loss: Tensor;
  /** The official log dict: `${split}/total_loss`, ... (detached values). */
  log: Record<string, Tensor>;
  /** The discriminator outputs of this call (not in the official return value; for inspection). */
  logitsFake: Tensor;
  logitsReal?: Tensor;
}



/** Frobenius norm (torch.norm of a tensor), 0-d. */
function norm(x: Tensor): Tensor {
  return T.sqrt(T.sum(T.square(x)));
}

/** `calculate_adaptive_weight` of VQGAN (shared by LPIPSWithDiscriminator and
 *  VQLPIPSWithDiscriminator): ||d nll/d last|| / (||d g/d last|| + 1e-4), clamped to [0, 1e4],
 *  detached, times disc_weight. null when the graph does not reach `lastLayer` (torch raises
 *  RuntimeError there, e.g. under no_grad). */
export function adaptiveGanWeight(nllLoss: Tensor, gLoss: Tensor, lastLayer: Tensor, discWeight: number): Tensor | null {
  if (!nllLoss.requiresGrad || !gLoss.requiresGrad) return null;
  const [nllGrads] = T.grad(nllLoss, [lastLayer]);
  const [gGrads] = T.grad(gLoss, [lastLayer]);
  if (!nllGrads || !gGrads) return null;
  return T.noGrad(() => {
    const d = T.div(norm(nllGrads), T.add(norm(gGrads), 1e-4));
    return T.mul(T.clamp(d, 0.0, 1e4), discWeight).detach();
  });
}

export class LPIPSWithDiscriminator extends Module {
  readonly klWeight: number;
  readonly pixelWeight: number;
  readonly perceptualWeight: number;
  readonly discriminatorIterStart: number;
  readonly discFactor: number;
  readonly discriminatorWeight: number;
  readonly discConditional: boolean;
  readonly discLossName: 'hinge' | 'vanilla';
  readonly discLoss: (real: Tensor, fake: Tensor) => Tensor;
  readonly perceptual_loss: LPIPS;
  readonly logvar: Tensor;
  readonly discriminator: NLayerDiscriminator;

  constructor(opts: LPIPSWithDiscriminatorOptions) {
    super();
    const O = 'LPIPSWithDiscriminator', p = kwargs(O, opts).params;
    checkKwargs(O, p, LPIPS_WITH_DISCRIMINATOR_KEYS);
    if (p['disc_start'] === undefined) throw new ConfigError(`${O}: 'disc_start' is required (the step from which the GAN loss is used)`);
    const dl = p['disc_loss'] ?? 'hinge';
    if (dl !== 'hinge' && dl !== 'vanilla') throw new ConfigError(`${O}: disc_loss must be 'hinge' or 'vanilla', got ${JSON.stringify(dl)}`);
    this.discriminatorIterStart = kwargs(O, p).num('disc_start', 0);
    this.klWeight = kwargs(O, p).num('kl_weight', 1.0);
    this.pixelWeight = kwargs(O, p).num('pixelloss_weight', 1.0); // stored, unused (as in the official code)
    this.perceptualWeight = kwargs(O, p).num('perceptual_weight', 1.0);
    this.discFactor = kwargs(O, p).num('disc_factor', 1.0);
    this.discriminatorWeight = kwargs(O, p).num('disc_weight', 1.0);
    this.discConditional = kwargs(O, p).bool('disc_conditional', false);
    this.discLossName = dl;
    this.discLoss = dl === 'hinge' ? hingeDLoss : vanillaDLoss;
    const logvarInit = kwargs(O, p).num('logvar_init', 0.0);
    // state_dict order as torch: own parameter (logvar) first, then perceptual_loss.*, discriminator.*
    this.perceptual_loss = this.child('perceptual_loss', new LPIPS().eval());
    this.logvar = this.param('logvar', T.scalar(logvarInit)); // nn.Parameter(torch.ones(size=()) * logvar_init)
    this.discriminator = this.child('discriminator', weightsInit(new NLayerDiscriminator({
      input_nc: kwargs(O, p).num('disc_in_channels', 3),
      n_layers: kwargs(O, p).num('disc_num_layers', 3),
      use_actnorm: kwargs(O, p).bool('use_actnorm', false),
    })));
  }

  /** `calculate_adaptive_weight`: ||d nll/d last|| / (||d g/d last|| + 1e-4), clamped to [0, 1e4],
   *  detached, times disc_weight. Returns null when the graph does not reach `lastLayer` (torch
   *  raises RuntimeError there, e.g. under no_grad). */
  calculateAdaptiveWeight(nllLoss: Tensor, gLoss: Tensor, lastLayer: Tensor): Tensor | null {
    return adaptiveGanWeight(nllLoss, gLoss, lastLayer, this.discriminatorWeight);
  }

  /** `forward(inputs, reconstructions, posteriors, optimizer_idx, global_step, last_layer=None,
   *  cond=None, split="train", weights=None)`. optimizer_idx 0: the autoencoder loss; 1: the
   *  discriminator loss. Images [N, C, H, W]. */
  forward(inputs: Tensor, reconstructions: Tensor, posteriors: KlPosterior, optimizerIdx: number, globalStep: number,
    lastLayer?: Tensor | null, cond?: Tensor | null, split = 'train', weights?: Tensor | null): LossOutput {
    if (inputs.size !== reconstructions.size || inputs.ndim !== 4) {
      throw new ShapeError(`LPIPSWithDiscriminator: inputs ${fmtShape(inputs.shape)} and reconstructions ${fmtShape(reconstructions.shape)} must be the same [N, C, H, W]`);
    }
    let recLoss = T.abs(T.sub(inputs, reconstructions)); // [N, C, H, W]
    if (this.perceptualWeight > 0) {
      const pLoss = this.perceptual_loss.forward(inputs, reconstructions); // [N, 1, 1, 1]
      recLoss = T.add(recLoss, T.mul(pLoss, this.perceptualWeight));
    }
    const n = recLoss.shape[0]!;
    const nllElem = T.add(T.div(recLoss, T.exp(this.logvar)), this.logvar);
    const weighted = weights ? T.mul(weights, nllElem) : nllElem;
    const weightedNllLoss = T.div(T.sum(weighted), weighted.shape[0]!);
    const nllLoss = T.div(T.sum(nllElem), n);
    const klElem = posteriors.kl(); // [N]
    const klLoss = T.div(T.sum(klElem), klElem.shape[0]!);

    if (optimizerIdx === 0) {
      checkDiscCond('LPIPSWithDiscriminator', cond, this.discConditional);
      const logitsFake = discriminate(this.discriminator, reconstructions, cond);
      const gLoss = T.neg(T.mean(logitsFake));
      let dWeight: Tensor;
      if (this.discFactor > 0) {
        if (!lastLayer) throw new ConfigError('LPIPSWithDiscriminator: last_layer is needed for the adaptive weight (AutoencoderKL.get_last_layer())');
        const w = this.calculateAdaptiveWeight(nllLoss, gLoss, lastLayer);
        if (w === null) {
          if (this.training) throw new LdmError('LPIPSWithDiscriminator: the adaptive weight needs gradients to last_layer, but the graph does not reach it (assert not self.training)');
          dWeight = T.scalar(0);
        } else {
          dWeight = w;
        }
      } else {
        dWeight = T.scalar(0);
      }
      const discFactor = adoptWeight(this.discFactor, globalStep, this.discriminatorIterStart);
      const loss = T.add(T.add(weightedNllLoss, T.mul(klLoss, this.klWeight)), T.mul(T.mul(dWeight, discFactor), gLoss));
      const log: Record<string, Tensor> = {
        [`${split}/total_loss`]: T.mean(loss.detach()),
        [`${split}/logvar`]: this.logvar.detach(),
        [`${split}/kl_loss`]: T.mean(klLoss.detach()),
        [`${split}/nll_loss`]: T.mean(nllLoss.detach()),
        [`${split}/rec_loss`]: T.mean(recLoss.detach()),
        [`${split}/d_weight`]: dWeight.detach(),
        [`${split}/disc_factor`]: T.scalar(discFactor),
        [`${split}/g_loss`]: T.mean(gLoss.detach()),
      };
      return { loss, log, logitsFake };
    }
    if (optimizerIdx === 1) {
      const discFactor = adoptWeight(this.discFactor, globalStep, this.discriminatorIterStart);
      return discriminatorStep(this.discriminator, this.discLoss, inputs, reconstructions, cond, discFactor, split);
    }
    throw new ConfigError(`LPIPSWithDiscriminator: optimizer_idx must be 0 or 1, got ${optimizerIdx}`);
  }
}

/** Build from the official kwargs (YAML `lossconfig.params`). */
export function makeLPIPSWithDiscriminator(p: Readonly<Record<string, unknown>>): LPIPSWithDiscriminator {
  return new LPIPSWithDiscriminator(readOptions('LPIPSWithDiscriminator', p, LPIPS_WITH_DISCRIMINATOR_SCHEMA));
}
