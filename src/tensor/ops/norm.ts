// Normalisation layers as fused ops: GroupNorm (alone or followed by SiLU) and LayerNorm
// (forward + backward kernels).
// BatchNorm is composed from reductions in nn/ (it needs running statistics, a module concern).

import { ShapeError, fmtShape } from '../../util/index.ts';
import { K } from '../dispatch.ts';
import { Tensor, record } from '../tensor.ts';
import { emptyF32 } from '../buffer.ts';

/** torch.nn.functional.group_norm over x [N, C, *]. */
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const [n, c] = x.shape as [number, number];
  if (x.ndim < 2 || c % groups !== 0) throw new ShapeError(`group_norm: ${groups} groups do not divide the channels of ${fmtShape(x.shape)}`);
  const hw = x.size / (n * c);
  const out = emptyF32(x.size);
  const mean = new Float32Array(n * groups), rstd = new Float32Array(n * groups);
  K().groupNorm(x.f32, n, c, hw, groups, eps, weight ? weight.f32 : null, bias ? bias.f32 : null, out, mean, rstd);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(new Tensor(out, x.shape), 'group_norm', inputs, (g) => {
    const gx = emptyF32(x.size);
    const gw = weight ? new Float32Array(c) : null, gb = bias ? new Float32Array(c) : null;
    K().groupNormGrad(g.f32, x.f32, n, c, hw, groups, weight ? weight.f32 : null, mean, rstd, gx, gw, gb);
    const res: (Tensor | null)[] = [new Tensor(gx, x.shape)];
    if (weight && gw) res.push(new Tensor(gw, weight.shape));
    if (bias && gb) res.push(new Tensor(gb, bias.shape));
    return res;
  });
}

/** silu(group_norm(x)) as one op: the GroupNorm32 + SiLU pair that opens UNet blocks. Same
 *  numbers as the two ops (within float rounding) with one pass over memory each way and no
 *  buffer for the pre-activation (the backward pass recomputes it from x and the statistics). */
export function groupNormSilu(x: Tensor, groups: number, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const [n, c] = x.shape as [number, number];
  if (x.ndim < 2 || c % groups !== 0) throw new ShapeError(`group_norm: ${groups} groups do not divide the channels of ${fmtShape(x.shape)}`);
  const hw = x.size / (n * c);
  const out = emptyF32(x.size);
  const mean = new Float32Array(n * groups), rstd = new Float32Array(n * groups);
  const gamma = weight ? weight.f32 : null, beta = bias ? bias.f32 : null;
  K().groupNormSilu(x.f32, n, c, hw, groups, eps, gamma, beta, out, mean, rstd);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(new Tensor(out, x.shape), 'group_norm_silu', inputs, (g) => {
    const gx = emptyF32(x.size);
    const gw = weight ? new Float32Array(c) : null, gb = bias ? new Float32Array(c) : null;
    K().groupNormSiluGrad(g.f32, x.f32, n, c, hw, groups, gamma, beta, mean, rstd, gx, gw, gb);
    const res: (Tensor | null)[] = [new Tensor(gx, x.shape)];
    if (weight && gw) res.push(new Tensor(gw, weight.shape));
    if (bias && gb) res.push(new Tensor(gb, bias.shape));
    return res;
  });
}

/** torch.nn.functional.layer_norm over the last dim. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const d = x.shape[x.ndim - 1]!;
  if (weight && weight.size !== d) throw new ShapeError(`layer_norm: weight ${fmtShape(weight.shape)} does not match the last dim of ${fmtShape(x.shape)}`);
  const rows = x.size / d;
  const out = emptyF32(x.size);
  const mean = new Float32Array(rows), rstd = new Float32Array(rows);
  K().layerNorm(x.f32, rows, d, eps, weight ? weight.f32 : null, bias ? bias.f32 : null, out, mean, rstd);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(new Tensor(out, x.shape), 'layer_norm', inputs, (g) => {
    const gx = emptyF32(x.size);
    const gw = weight ? new Float32Array(d) : null, gb = bias ? new Float32Array(d) : null;
    K().layerNormGrad(g.f32, x.f32, rows, d, weight ? weight.f32 : null, mean, rstd, gx, gw, gb);
    const res: (Tensor | null)[] = [new Tensor(gx, x.shape)];
    if (weight && gw) res.push(new Tensor(gw, weight.shape));
    if (bias && gb) res.push(new Tensor(gb, bias.shape));
    return res;
  });
}
