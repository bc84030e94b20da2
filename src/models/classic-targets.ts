// The official class paths of the two non-LDM code bases -> our constructors:
// w86763777/pytorch-ddpm (model.py / diffusion.py, loaded as top-level modules `model` and
// `diffusion`, the names its own scripts and the fixtures use) and lucidrains/
// denoising-diffusion-pytorch (the module path and the package re-export).
// A wrapper's `model` parameter is either a built network or a nested {target, params} config.

import { ConfigError } from '../util/index.ts';
import type { BuildFn, TargetConfig, TargetTable } from './targets.ts';
import { PddpmUNet } from './unet/pddpm.ts';
import { GaussianDiffusionSampler, GaussianDiffusionTrainer } from './pddpm-diffusion.ts';
import { LucidrainsUnet } from './unet/lucidrains.ts';
import { LucidrainsDiffusion } from './lucidrains-diffusion.ts';

/** params with `model` built when it is a nested {target, params} config. */
function withModel(owner: string, params: Record<string, unknown>, build: BuildFn): Record<string, unknown> {
  const m = params['model'];
  if (m && typeof m === 'object' && typeof (m as Partial<TargetConfig>).target === 'string') {
    return { ...params, model: build(m as TargetConfig, `${owner}.model`) };
  }
  if (m === undefined) throw new ConfigError(`${owner}: missing required parameter 'model' (a network or a {target, params} config)`);
  return params;
}

const unet = (p: Record<string, unknown>): PddpmUNet => new PddpmUNet(p);
const trainer = (p: Record<string, unknown>, b: BuildFn): GaussianDiffusionTrainer =>
  new GaussianDiffusionTrainer(withModel('GaussianDiffusionTrainer', p, b));
const sampler = (p: Record<string, unknown>, b: BuildFn): GaussianDiffusionSampler =>
  new GaussianDiffusionSampler(withModel('GaussianDiffusionSampler', p, b));
const lunet = (p: Record<string, unknown>): LucidrainsUnet => new LucidrainsUnet(p);
const gd = (p: Record<string, unknown>, b: BuildFn): LucidrainsDiffusion => new LucidrainsDiffusion(withModel('GaussianDiffusion', p, b));

export const classicTargets = {
  // w86763777/pytorch-ddpm
  'model.UNet': unet,
  'diffusion.GaussianDiffusionTrainer': trainer,
  'diffusion.GaussianDiffusionSampler': sampler,
  'pytorch_ddpm.model.UNet': unet,
  'pytorch_ddpm.diffusion.GaussianDiffusionTrainer': trainer,
  'pytorch_ddpm.diffusion.GaussianDiffusionSampler': sampler,
  // lucidrains/denoising-diffusion-pytorch v2.3.1
  'denoising_diffusion_pytorch.denoising_diffusion_pytorch.Unet': lunet,
  'denoising_diffusion_pytorch.denoising_diffusion_pytorch.GaussianDiffusion': gd,
  'denoising_diffusion_pytorch.Unet': lunet,
  'denoising_diffusion_pytorch.GaussianDiffusion': gd,
} satisfies TargetTable;
