// The Lightning side of the VQ first stages (ldm/models/autoencoder.py VQModel, taming's
// vqgan.VQModel): training_step per optimizer_idx, validation_step and configure_optimizers, as
// plain functions over a VQ model and its VQLPIPSWithDiscriminator, so the autoencoder trainer can
// alternate the two optimisers per batch. Not here: the data loop, logging, checkpoints (train/).
//
// Official facts kept: training_step recomputes `self(x)` for each optimizer_idx; both optimisers
// of one batch see the same global_step; opt_ae = Adam(encoder + decoder + quantize + quant_conv +
// post_quant_conv, lr_g_factor * lr, betas (0.5, 0.9)), opt_disc = Adam(loss.discriminator, lr,
// betas (0.5, 0.9)); the codebook (quantize.embedding) trains through the codebook loss only.
// ldm's VQModel hands `predicted_indices` to its loss at optimizer_idx 0 (and in validation):
// we do so for ldm's VQLPIPSWithDiscriminator only, since taming's forward does not take it (the
// official pairing of ldm's VQModel with taming's loss stops there with a TypeError).

import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Adam } from '../../nn/index.ts';
import { TamingVQModel, type VQModelBase } from './vq.ts';
import type { QuantizeOptions } from './quantize.ts';
import type { LossOutput } from '../losses/contperceptual.ts';
import type { VQLPIPSWithDiscriminator } from '../losses/vqperceptual.ts';

export type VQBatch = Readonly<Record<string, Tensor>>;

export interface VQOptimizers {
  optAe: Adam;
  optDisc: Adam;
}

/** `configure_optimizers` with `lr = self.learning_rate` (lr_g = lr_g_factor * lr for ldm's VQModel). */
export function configureVQOptimizers(model: VQModelBase, loss: VQLPIPSWithDiscriminator, lr: number): VQOptimizers {
  return {
    optAe: new Adam(model.autoencoderParameters(), { lr: model.lrGFactor * lr, betas: [0.5, 0.9] }),
    optDisc: new Adam(loss.discriminator.parameters(), { lr, betas: [0.5, 0.9] }),
  };
}

/** Whether the model's steps hand predicted_indices to this loss (ldm VQModel + ldm loss). */
function passesIndices(model: VQModelBase, loss: VQLPIPSWithDiscriminator): boolean {
  return !(model instanceof TamingVQModel) && loss.variant === 'ldm';
}

/** `training_step(batch, batch_idx, optimizer_idx)`: x = get_input(batch, image_key),
 *  (xrec, qloss, ind) = self(x, return_pred_indices=True), then the loss for that optimizer. */
export function vqTrainingStep(model: VQModelBase, loss: VQLPIPSWithDiscriminator, batch: VQBatch, optimizerIdx: 0 | 1,
  globalStep: number, opts: QuantizeOptions = {}): LossOutput {
  const x = model.get_input(batch, model.imageKey);
  const [xrec, qloss, ind] = model.reconstruct(x, opts);
  const indices = optimizerIdx === 0 && passesIndices(model, loss) ? ind : null;
  return loss.forward(qloss, x, xrec, optimizerIdx, globalStep, model.get_last_layer(), null, 'train', indices);
}

/** `validation_step` (no-grad, so d_weight is 0): one forward, loss 0 and 1 with split 'val'. */
export function vqValidationStep(model: VQModelBase, loss: VQLPIPSWithDiscriminator, batch: VQBatch, globalStep: number,
  opts: QuantizeOptions = {}): Record<string, Tensor> {
  return T.noGrad(() => {
    const x = model.get_input(batch, model.imageKey);
    const [xrec, qloss, ind] = model.reconstruct(x, opts);
    const indices = passesIndices(model, loss) ? ind : null;
    const a = loss.forward(qloss, x, xrec, 0, globalStep, model.get_last_layer(), null, 'val', indices);
    const d = loss.forward(qloss, x, xrec, 1, globalStep, model.get_last_layer(), null, 'val', indices);
    return { ...a.log, ...d.log };
  });
}

export interface VQBatchResult {
  aeloss: Tensor;
  discloss: Tensor;
  log: Record<string, Tensor>;
}

/** One Lightning batch, optimizer_idx 0 then 1: training_step, zero_grad, backward, step. The model
 *  must be in train mode. */
export function vqOptimizationStep(model: VQModelBase, loss: VQLPIPSWithDiscriminator, optimizers: VQOptimizers,
  batch: VQBatch, globalStep: number, opts: QuantizeOptions = {}): VQBatchResult {
  const clear = (): void => { for (const p of [...model.parameters(), ...loss.parameters()]) p.grad = null; };
  const run = (idx: 0 | 1, opt: Adam): LossOutput => {
    const out = vqTrainingStep(model, loss, batch, idx, globalStep, opts);
    clear();
    T.backward(out.loss);
    opt.step();
    clear();
    return out;
  };
  const a = run(0, optimizers.optAe);
  const d = run(1, optimizers.optDisc);
  return { aeloss: a.loss.detach(), discloss: d.loss.detach(), log: { ...a.log, ...d.log } };
}
