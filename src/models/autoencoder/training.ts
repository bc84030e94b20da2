// The Lightning side of ldm/models/autoencoder.py AutoencoderKL: training_step (per
// optimizer_idx), validation_step and configure_optimizers, as plain functions over an
// AutoencoderKL and its LPIPSWithDiscriminator, so a trainer can alternate the two optimisers per
// batch. Not here: the data loop, logging, checkpoints, learning-rate scaling (train/).
//
// Official facts kept: training_step recomputes `self(inputs)` (a NEW posterior sample) for each
// optimizer_idx; both optimisers of one batch see the same global_step (Lightning increments it
// once per batch); opt_ae = Adam(encoder + decoder + quant_conv + post_quant_conv, lr, betas
// (0.5, 0.9)) and opt_disc = Adam(loss.discriminator, lr, betas (0.5, 0.9)): `loss.logvar` is in
// NEITHER, so it never trains, despite the "train encoder+decoder+logvar" comment.

import type { Generator } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Adam } from '../../nn/index.ts';
import type { AutoencoderKL } from './kl.ts';
import type { LPIPSWithDiscriminator, LossOutput } from '../losses/contperceptual.ts';

export type AutoencoderBatch = Readonly<Record<string, Tensor>>;

export interface AutoencoderOptimizers {
  /** optimizer_idx 0. */
  optAe: Adam;
  /** optimizer_idx 1. */
  optDisc: Adam;
}

/** `configure_optimizers` with `lr = self.learning_rate`. */
export function configureAutoencoderOptimizers(ae: AutoencoderKL, loss: LPIPSWithDiscriminator, lr: number): AutoencoderOptimizers {
  const aeParams = [...ae.encoder.parameters(), ...ae.decoder.parameters(), ...ae.quant_conv.parameters(), ...ae.post_quant_conv.parameters()];
  return {
    optAe: new Adam(aeParams, { lr, betas: [0.5, 0.9] }),
    optDisc: new Adam(loss.discriminator.parameters(), { lr, betas: [0.5, 0.9] }),
  };
}

export interface AutoencoderStepOptions {
  /** Posterior noise (a tensor or a Generator; the global init generator when omitted). */
  noise?: Tensor | Generator;
}

/** `training_step(batch, batch_idx, optimizer_idx)`: inputs = get_input(batch, image_key),
 *  (rec, posterior) = ae(inputs), then the loss for that optimizer with split 'train'. Returns the
 *  loss (aeloss or discloss, with its graph) and the log dict. */
export function autoencoderTrainingStep(ae: AutoencoderKL, loss: LPIPSWithDiscriminator, batch: AutoencoderBatch,
  optimizerIdx: 0 | 1, globalStep: number, opts: AutoencoderStepOptions = {}): LossOutput {
  const inputs = ae.get_input(batch, ae.imageKey);
  const [reconstructions, posterior] = ae.forward(inputs, true, opts.noise);
  return loss.forward(inputs, reconstructions, posterior, optimizerIdx, globalStep, ae.get_last_layer(), null, 'train');
}

/** `validation_step`: one forward, then loss(…, 0, …, split 'val') and loss(…, 1, …, split 'val');
 *  run under no-grad (Lightning's eval loop), so d_weight is 0. Returns both log dicts merged. */
export function autoencoderValidationStep(ae: AutoencoderKL, loss: LPIPSWithDiscriminator, batch: AutoencoderBatch,
  globalStep: number, opts: AutoencoderStepOptions = {}): Record<string, Tensor> {
  return T.noGrad(() => {
    const inputs = ae.get_input(batch, ae.imageKey);
    const [reconstructions, posterior] = ae.forward(inputs, true, opts.noise);
    const a = loss.forward(inputs, reconstructions, posterior, 0, globalStep, ae.get_last_layer(), null, 'val');
    const d = loss.forward(inputs, reconstructions, posterior, 1, globalStep, ae.get_last_layer(), null, 'val');
    return { ...a.log, ...d.log };
  });
}

export interface AutoencoderBatchResult {
  aeloss: Tensor;
  discloss: Tensor;
  log: Record<string, Tensor>;
}

/** One Lightning batch with the two optimisers in order (automatic optimisation): for idx 0 then
 *  1: training_step, zero_grad, backward, step. Gradients of parameters outside the current
 *  optimiser are dropped (Lightning's toggle_optimizer), which changes no value. The module must
 *  be in train mode (ae.train()). */
export function autoencoderOptimizationStep(ae: AutoencoderKL, loss: LPIPSWithDiscriminator, optimizers: AutoencoderOptimizers,
  batch: AutoencoderBatch, globalStep: number, opts: { noise0?: Tensor | Generator; noise1?: Tensor | Generator } = {}): AutoencoderBatchResult {
  const clear = (): void => { for (const p of [...ae.parameters(), ...loss.parameters()]) p.grad = null; };
  const run = (idx: 0 | 1, opt: Adam, noise: Tensor | Generator | undefined): LossOutput => {
    const out = autoencoderTrainingStep(ae, loss, batch, idx, globalStep, noise === undefined ? {} : { noise });
    clear();
    T.backward(out.loss);
    opt.step();
    clear();
    return out;
  };
  const a = run(0, optimizers.optAe, opts.noise0);
  const d = run(1, optimizers.optDisc, opts.noise1);
  return { aeloss: a.loss.detach(), discloss: d.loss.detach(), log: { ...a.log, ...d.log } };
}
