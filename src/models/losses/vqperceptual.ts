// VQLPIPSWithDiscriminator, the training loss of the VQ first stages, in its two official forms:
// taming/modules/losses/vqperceptual.py (taming-transformers 3ba01b2; what the official
// `models/first_stage_models/vq-*` configs name) and ldm/modules/losses/vqperceptual.py
// (latent-diffusion a506df5: adds `pixel_loss` l1/l2, `perceptual_loss` (only "lpips" builds),
// `n_classes` and the perplexity / cluster-usage logs from `predicted_indices`).
// loss (optimizer_idx 0) = mean(|x - x_rec| + perceptual_weight * LPIPS) + d_weight * disc_factor *
// g_loss + codebook_weight * mean(codebook_loss); optimizer_idx 1: the PatchGAN hinge / vanilla
// loss on detached images. Not here: the optimisers and steps (autoencoder/vq-training.ts).
//
// Official facts kept (and where the official code cannot run, what we do instead):
//  - nll_loss is the plain MEAN of rec_loss (unlike LPIPSWithDiscriminator's sum / batch), there
//    is no logvar and no KL; p_loss is tensor([0.]) when perceptual_weight is 0;
//  - d_weight is computed whatever disc_factor is (no `disc_factor > 0` guard); without autograd
//    (validation) it is 0 (the RuntimeError branch, which asserts not self.training);
//  - the GAN term starts AT global_step == disc_start; the discriminator step calls D separately
//    on real and on fake images; disc_conditional concatenates `cond` on channels;
//  - the discriminator is NLayerDiscriminator(disc_in_channels, ndf=disc_ndf, n_layers,
//    use_actnorm) with weights_init;
//  - ldm's forward calls `exists(codebook_loss)`, which that file never defines (NameError on
//    every call): we do what it means (a missing codebook loss counts as [0.]);
//  - ldm's VQModel passes `predicted_indices`, which taming's forward does not accept
//    (TypeError): the steps pass it to the ldm loss only (vq-training.ts).

import { ConfigError, F, LdmError, field, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { Module } from '../../nn/index.ts';
import { LPIPS } from './lpips.ts';
import { NLayerDiscriminator, weightsInit } from './discriminator.ts';
import {
  GAN_LOSS_SCHEMA, adaptiveGanWeight, adoptWeight, checkDiscCond, discriminate, discriminatorStep, hingeDLoss, vanillaDLoss,
  type GanLossOptions, type LossOutput,
} from './contperceptual.ts';

export interface VQLPIPSWithDiscriminatorOptions extends GanLossOptions {
  codebook_weight?: number;
  disc_ndf?: number;
  /** ldm only */
  n_classes?: number | null;
  /** ldm only: "lpips" ("clips" and "dists" raise in the official constructor) */
  perceptual_loss?: 'lpips';
  /** ldm only */
  pixel_loss?: 'l1' | 'l2';
}

/** taming's VQLPIPSWithDiscriminator has no n_classes / perceptual_loss / pixel_loss. */
export type TamingVQLPIPSWithDiscriminatorOptions = Omit<VQLPIPSWithDiscriminatorOptions, 'n_classes' | 'perceptual_loss' | 'pixel_loss'>;

/** The kwargs of taming's VQLPIPSWithDiscriminator as a config gives them (readOptions). */
export const TAMING_VQLPIPS_SCHEMA: Schema<TamingVQLPIPSWithDiscriminatorOptions> = {
  ...GAN_LOSS_SCHEMA, codebook_weight: F.num, disc_ndf: F.int,
};
/** ldm's adds n_classes, perceptual_loss and pixel_loss (the constructor rejects the values the official rejects). */
export const LDM_VQLPIPS_SCHEMA: Schema<VQLPIPSWithDiscriminatorOptions> = {
  ...TAMING_VQLPIPS_SCHEMA, n_classes: F.int, perceptual_loss: field("'lpips' (the official constructor raises for \"clips\" and \"dists\": only LPIPS is implemented there)", (v): v is 'lpips' => v === 'lpips'), pixel_loss: F.oneOf('l1', 'l2'),
};
export const TAMING_VQLPIPS_KEYS = schemaKeys(TAMING_VQLPIPS_SCHEMA);
export const LDM_VQLPIPS_KEYS = schemaKeys(LDM_VQLPIPS_SCHEMA);



/** `measure_perplexity(predicted_indices, n_embed)`: exp(entropy of the code histogram) and the
 *  number of codes used (int64). */
export function measurePerplexity(indices: Tensor, nEmbed: number): { perplexity: Tensor; clusterUse: Tensor } {
  const counts = new Float64Array(nEmbed);
  for (const v of indices.data) {
    if (!Number.isInteger(v) || v < 0 || v >= nEmbed) throw new ShapeError(`measure_perplexity: index ${v} is outside one_hot's ${nEmbed} classes (n_classes)`);
    counts[v]! += 1;
  }
  // avg_probs = one_hot(...).float().mean(0) (float32), perplexity = exp(-sum(p * log(p + 1e-10)))
  const avg = T.tensor(Array.from(counts, (c) => c / indices.size));
  const perplexity = T.exp(T.neg(T.sum(T.mul(avg, T.log(T.add(avg, 1e-10))))));
  const clusterUse = new Tensor(Float64Array.of(counts.filter((c) => c > 0).length), [], 'int64');
  return { perplexity, clusterUse };
}

export class VQLPIPSWithDiscriminator extends Module {
  readonly variant: 'taming' | 'ldm';
  readonly codebookWeight: number;
  readonly pixelWeight: number;
  readonly perceptualWeight: number;
  readonly discriminatorIterStart: number;
  readonly discFactor: number;
  readonly discriminatorWeight: number;
  readonly discConditional: boolean;
  readonly discLossName: 'hinge' | 'vanilla';
  readonly discLoss: (real: Tensor, fake: Tensor) => Tensor;
  readonly pixelLoss: 'l1' | 'l2';
  readonly nClasses: number | null;
  readonly perceptual_loss: LPIPS;
  readonly discriminator: NLayerDiscriminator;

  constructor(opts: VQLPIPSWithDiscriminatorOptions, variant: 'taming' | 'ldm' = 'taming') {
    super();
    const O = `VQLPIPSWithDiscriminator (${variant})`, p = kwargs(O, opts).params;
    checkKwargs(O, p, variant === 'ldm' ? LDM_VQLPIPS_KEYS : TAMING_VQLPIPS_KEYS);
    this.variant = variant;
    if (p['disc_start'] === undefined) throw new ConfigError(`${O}: 'disc_start' is required (the step from which the GAN loss is used)`);
    const dl = p['disc_loss'] ?? 'hinge';
    if (dl !== 'hinge' && dl !== 'vanilla') throw new ConfigError(`${O}: disc_loss must be 'hinge' or 'vanilla', got ${JSON.stringify(dl)}`);
    const pl = p['perceptual_loss'] ?? 'lpips';
    if (pl !== 'lpips') throw new ConfigError(`${O}: perceptual_loss must be 'lpips' (the official constructor raises for ${JSON.stringify(pl)}: only LPIPS is implemented there)`);
    const px = p['pixel_loss'] ?? 'l1';
    if (px !== 'l1' && px !== 'l2') throw new ConfigError(`${O}: pixel_loss must be 'l1' or 'l2', got ${JSON.stringify(px)}`);
    const nc = p['n_classes'] ?? null;
    if (nc !== null && (typeof nc !== 'number' || !Number.isInteger(nc) || nc <= 0)) throw new ConfigError(`${O}: n_classes must be a positive integer (the codebook size), got ${JSON.stringify(nc)}`);
    this.codebookWeight = kwargs(O, p).num('codebook_weight', 1.0);
    this.pixelWeight = kwargs(O, p).num('pixelloss_weight', 1.0); // stored, unused (as in the official code)
    this.perceptualWeight = kwargs(O, p).num('perceptual_weight', 1.0);
    this.discriminatorIterStart = kwargs(O, p).num('disc_start', 0);
    this.discFactor = kwargs(O, p).num('disc_factor', 1.0);
    this.discriminatorWeight = kwargs(O, p).num('disc_weight', 1.0);
    this.discConditional = kwargs(O, p).bool('disc_conditional', false);
    this.discLossName = dl;
    this.discLoss = dl === 'hinge' ? hingeDLoss : vanillaDLoss;
    this.pixelLoss = px;
    this.nClasses = nc as number | null;
    // state_dict order as torch: perceptual_loss.*, discriminator.* (no own parameters)
    this.perceptual_loss = this.child('perceptual_loss', new LPIPS().eval());
    this.discriminator = this.child('discriminator', weightsInit(new NLayerDiscriminator({
      input_nc: kwargs(O, p).num('disc_in_channels', 3),
      n_layers: kwargs(O, p).num('disc_num_layers', 3),
      use_actnorm: kwargs(O, p).bool('use_actnorm', false),
      ndf: kwargs(O, p).num('disc_ndf', 64),
    })));
  }

  /** `forward(codebook_loss, inputs, reconstructions, optimizer_idx, global_step, last_layer=None,
   *  cond=None, split="train"[, predicted_indices=None])`. Images [N, C, H, W]; codebook_loss the
   *  quantizer loss (0-d), or null for [0.] (ldm form). */
  forward(codebookLoss: Tensor | null, inputs: Tensor, reconstructions: Tensor, optimizerIdx: number, globalStep: number,
    lastLayer?: Tensor | null, cond?: Tensor | null, split = 'train', predictedIndices?: Tensor | null): LossOutput {
    if (inputs.size !== reconstructions.size || inputs.ndim !== 4) {
      throw new ShapeError(`VQLPIPSWithDiscriminator: inputs ${fmtShape(inputs.shape)} and reconstructions ${fmtShape(reconstructions.shape)} must be the same [N, C, H, W]`);
    }
    if (predictedIndices && this.variant !== 'ldm') throw new ConfigError("VQLPIPSWithDiscriminator: taming's forward takes no predicted_indices (use ldm.modules.losses.vqperceptual.VQLPIPSWithDiscriminator for perplexity logs)");
    if (codebookLoss === null && this.variant !== 'ldm') throw new ConfigError("VQLPIPSWithDiscriminator: taming's forward needs the codebook loss");
    const qloss = codebookLoss ?? T.tensor([0]);
    const diff = T.sub(inputs, reconstructions);
    let recLoss = this.pixelLoss === 'l1' ? T.abs(diff) : T.square(diff); // [N, C, H, W]
    let pLoss: Tensor;
    if (this.perceptualWeight > 0) {
      pLoss = this.perceptual_loss.forward(inputs, reconstructions); // [N, 1, 1, 1]
      recLoss = T.add(recLoss, T.mul(pLoss, this.perceptualWeight));
    } else {
      pLoss = T.tensor([0]);
    }
    const nllLoss = T.mean(recLoss);
    const discFactor = adoptWeight(this.discFactor, globalStep, this.discriminatorIterStart);

    if (optimizerIdx === 0) {
      checkDiscCond('VQLPIPSWithDiscriminator', cond, this.discConditional);
      const logitsFake = discriminate(this.discriminator, reconstructions, cond);
      const gLoss = T.neg(T.mean(logitsFake));
      if (!lastLayer) throw new ConfigError('VQLPIPSWithDiscriminator: last_layer is needed for the adaptive weight (the model\'s get_last_layer())');
      let dWeight = adaptiveGanWeight(nllLoss, gLoss, lastLayer, this.discriminatorWeight);
      if (dWeight === null) {
        if (this.training) throw new LdmError('VQLPIPSWithDiscriminator: the adaptive weight needs gradients to last_layer, but the graph does not reach it (assert not self.training)');
        dWeight = T.scalar(0);
      }
      const loss = T.add(T.add(nllLoss, T.mul(T.mul(dWeight, discFactor), gLoss)), T.mul(T.mean(qloss), this.codebookWeight));
      const log: Record<string, Tensor> = {
        [`${split}/total_loss`]: T.mean(loss.detach()),
        [`${split}/quant_loss`]: T.mean(qloss.detach()),
        [`${split}/nll_loss`]: T.mean(nllLoss.detach()),
        [`${split}/rec_loss`]: T.mean(recLoss.detach()),
        [`${split}/p_loss`]: T.mean(pLoss.detach()),
        [`${split}/d_weight`]: dWeight.detach(),
        [`${split}/disc_factor`]: T.scalar(discFactor),
        [`${split}/g_loss`]: T.mean(gLoss.detach()),
      };
      if (predictedIndices) {
        if (this.nClasses === null) throw new ConfigError('VQLPIPSWithDiscriminator: predicted_indices given but n_classes is not set (the official code asserts it; set n_classes to n_embed)');
        const { perplexity, clusterUse } = measurePerplexity(predictedIndices, this.nClasses);
        log[`${split}/perplexity`] = perplexity;
        log[`${split}/cluster_usage`] = clusterUse;
      }
      return { loss, log, logitsFake };
    }
    if (optimizerIdx === 1) return discriminatorStep(this.discriminator, this.discLoss, inputs, reconstructions, cond, discFactor, split);
    throw new ConfigError(`VQLPIPSWithDiscriminator: optimizer_idx must be 0 or 1, got ${optimizerIdx}`);
  }
}

/** taming's `DummyLoss`: an nn.Module with nothing in it (a lossconfig for inference-only models). */
export class DummyLoss extends Module {}

export function makeTamingVQLPIPSWithDiscriminator(p: Readonly<Record<string, unknown>>): VQLPIPSWithDiscriminator {
  return new VQLPIPSWithDiscriminator(readOptions('VQLPIPSWithDiscriminator (taming)', p, TAMING_VQLPIPS_SCHEMA), 'taming');
}

export function makeLdmVQLPIPSWithDiscriminator(p: Readonly<Record<string, unknown>>): VQLPIPSWithDiscriminator {
  return new VQLPIPSWithDiscriminator(readOptions('VQLPIPSWithDiscriminator (ldm)', p, LDM_VQLPIPS_SCHEMA), 'ldm');
}
