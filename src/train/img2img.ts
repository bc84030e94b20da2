// Image-to-image and inpainting inputs of a sampling request, in the model's own space (pixels
// for a DDPM, latents for a LatentDiffusion; sampling.ts encodes and decodes):
//  - SDEdit (strength s < 1): the image noised to the step s of the way through the sampler's
//    schedule (diffusion/ `img2imgStart`), and only the remaining steps run;
//  - masked sampling (any model): where keep == 1 the known image, re-noised to the current step,
//    replaces the sample before every model call (LDM DDIM `mask` / `x0`), and the kept region is
//    pasted back exactly at the end.
// User masks are white = regenerate; `keep` = 1 - mask. What it is not: no file reading (cli/).

import { ConfigError, Generator, ShapeError, fmtShape } from '../util/index.ts';
import { Tensor, add, cat, clamp, mul, randn, sub } from '../tensor/index.ts';
import { img2imgStart, type GaussianDiffusion, type SampleOptions, type SamplerName } from '../diffusion/index.ts';

/** The k-diffusion options a request passes through to the sampler table. */
export type SamplerExtras = Pick<SampleOptions, 'scheduler' | 'quantize' | 'sNoise' | 'sChurn' | 'sTmin' | 'sTmax' | 'solverType' | 'lmsOrder' | 'sigmaMin' | 'sigmaMax' | 'rho'>;

/** t [1 | n, ...] -> [n, ...] (one image used for every sample). */
export function expandBatch(t: Tensor, n: number, what: string): Tensor {
  const b = t.shape[0]!;
  if (b === n) return t;
  if (b !== 1) throw new ShapeError(`${what}: ${fmtShape(t.shape)} has ${b} images for ${n} samples (give one, or one per sample)`);
  return cat(new Array<Tensor>(n).fill(t), 0);
}

/** Check an image [B, C, H, W] / mask [B, 1, H, W] against the model's pixel shape. */
export function checkInitShapes(init: Tensor | null | undefined, mask: Tensor | null | undefined, c: number, h: number, w: number): void {
  if (init && (init.ndim !== 4 || init.shape[1] !== c || init.shape[2] !== h || init.shape[3] !== w)) {
    throw new ShapeError(`--init: image ${fmtShape(init.shape)} does not match the model's [N, ${c}, ${h}, ${w}]`);
  }
  if (mask && (mask.ndim !== 4 || mask.shape[1] !== 1 || mask.shape[2] !== h || mask.shape[3] !== w)) {
    throw new ShapeError(`--mask: ${fmtShape(mask.shape)} does not match the model's [N, 1, ${h}, ${w}]`);
  }
  if (mask && !init) throw new ConfigError('--mask needs --init (the image whose black region is kept)');
}

/**
 * The sampler options of an image-to-image / inpainting request in model space: x0 [n, C, h, w],
 * keep [n, 1, h, w] (1 = keep) or none, strength in (0, 1]. Draws the SDEdit noise from gen.
 */
export function initOptions(diffusion: GaussianDiffusion, sampler: SamplerName, o: Pick<SampleOptions, 'steps' | 'eta'> & SamplerExtras,
  x0: Tensor, keep: Tensor | null, strength: number, gen: Generator): Partial<SampleOptions> {
  if (!(strength > 0 && strength <= 1)) throw new ConfigError(`--strength must be in (0, 1], got ${strength}`);
  const out: Partial<SampleOptions> = {};
  if (keep) { out.mask = keep; out.x0 = x0; }
  if (strength < 1) {
    const s = img2imgStart(sampler, diffusion, o, x0, strength, randn(x0.shape, gen));
    out.xT = s.xT;
    out.tStart = s.tStart;
  }
  return out;
}

/** keep * known + (1 - keep) * samples: the kept region equal to the input. */
export function pasteKept(samples: Tensor, known: Tensor, keep: Tensor): Tensor {
  return add(mul(known, keep), mul(sub(1, keep), samples));
}

/** A user mask (any values) as a 0/1 regenerate mask: > 0.5 = regenerate. */
export function binarizeMask(mask: Tensor): Tensor {
  const m = new Float32Array(mask.size);
  for (let i = 0; i < m.length; i++) m[i] = mask.data[i]! > 0.5 ? 1 : 0;
  return clamp(new Tensor(m, mask.shape), 0, 1);
}
