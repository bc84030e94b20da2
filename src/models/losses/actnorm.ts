// ActNorm of taming/modules/util.py: a per-channel affine map scale * (x + loc) whose loc/scale
// initialise themselves from the first batch seen in train mode (data-dependent init, Glow),
// recorded in the `initialized` buffer. Used by NLayerDiscriminator(use_actnorm=True).
// Note: `initialized` is a uint8 buffer in torch; ours is an integer (int64) tensor holding 0/1,
// so a state dict we write stores it as I64 (loading torch's U8 works).

import { ConfigError, ShapeError, fmtShape } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { type Layer, Module } from '../../nn/index.ts';

export class ActNorm extends Module implements Layer {
  readonly loc: Tensor;
  readonly scale: Tensor;
  readonly logdet: boolean;
  readonly allowReverseInit: boolean;

  /** `ActNorm(num_features, logdet=False, affine=True, allow_reverse_init=False)`. */
  constructor(readonly numFeatures: number, logdet = false, affine = true, allowReverseInit = false) {
    super();
    if (!affine) throw new ConfigError('ActNorm: affine must be True (assert affine in the official code)');
    this.logdet = logdet;
    this.allowReverseInit = allowReverseInit;
    this.loc = this.param('loc', T.zeros([1, numFeatures, 1, 1]));
    this.scale = this.param('scale', T.ones([1, numFeatures, 1, 1]));
    this.buffer('initialized', T.zeros([], 'int64'));
  }

  get initialized(): boolean {
    return this.getBuffer('initialized').item() !== 0;
  }

  /** `initialize(input)` under no_grad: loc = -mean, scale = 1 / (std + 1e-6) per channel over
   *  (N, H, W), std unbiased (torch.std). */
  initialize(input: Tensor): void {
    T.noGrad(() => {
      const c = input.shape[1]!;
      const flat = T.reshape(T.permute(input, [1, 0, 2, 3]), [c, -1]); // [C, N*H*W]
      const mean = T.mean(flat, 1), std = T.std(flat, 1, false, true);
      this.loc.data = T.reshape(T.neg(mean), [1, c, 1, 1]).f32.slice();
      this.scale.data = T.reshape(T.div(1, T.add(std, 1e-6)), [1, c, 1, 1]).f32.slice();
    });
  }

  private as4d(x: Tensor): [Tensor, boolean] {
    if (x.ndim === 2) return [T.reshape(x, [x.shape[0]!, x.shape[1]!, 1, 1]), true];
    if (x.ndim !== 4 || x.shape[1] !== this.numFeatures) throw new ShapeError(`ActNorm(${this.numFeatures}): input ${fmtShape(x.shape)} is not [N, ${this.numFeatures}, H, W] or [N, ${this.numFeatures}]`);
    return [x, false];
  }

  private markInitialized(): void {
    this.setBuffer('initialized', new Tensor(Float64Array.of(1), [], 'int64'));
  }

  /** scale * (input + loc); initialises from `input` on the first train-mode call. */
  forward(input: Tensor): Tensor {
    return this.forwardWithLogdet(input)[0];
  }

  /** forward returning (h, logdet) as the official `logdet=True` path: logdet = H*W*sum(log|scale|) per sample. */
  forwardWithLogdet(input: Tensor): [Tensor, Tensor | null] {
    const [x, squeeze] = this.as4d(input);
    if (this.training && !this.initialized) {
      this.initialize(x);
      this.markInitialized();
    }
    let h = T.mul(this.scale, T.add(x, this.loc));
    if (squeeze) h = T.reshape(h, [h.shape[0]!, h.shape[1]!]);
    if (!this.logdet) return [h, null];
    const hw = x.shape[2]! * x.shape[3]!;
    const ld = T.mul(T.sum(T.log(T.abs(this.scale))), hw);
    return [h, T.mul(ld, T.ones([x.shape[0]!]))];
  }

  /** `reverse(output)`: output / scale - loc (initialises only with allow_reverse_init). */
  reverse(output: Tensor): Tensor {
    if (this.training && !this.initialized) {
      if (!this.allowReverseInit) throw new ConfigError('ActNorm: initializing ActNorm in reverse direction is disabled by default. Use allow_reverse_init=True to enable.');
      this.initialize(this.as4d(output)[0]);
      this.markInitialized();
    }
    const [x, squeeze] = this.as4d(output);
    const h = T.sub(T.div(x, this.scale), this.loc);
    return squeeze ? T.reshape(h, [h.shape[0]!, h.shape[1]!]) : h;
  }
}
