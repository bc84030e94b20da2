// The official class paths of the two non-LDM code bases -> our constructors:
// w86763777/pytorch-ddpm (model.py / diffusion.py, loaded as top-level modules `model` and
// `diffusion`, the names its own scripts and the fixtures use) and lucidrains/
// denoising-diffusion-pytorch (the module path and the package re-export).
// A wrapper's `model` parameter is either a built network or a nested {target, params} config.

import { ConfigError, readOptions } from '../util/index.ts';
import type { BuildFn, TargetConfig, TargetTable } from './targets.ts';
import { PDDPM_UNET_SCHEMA, PddpmUNet } from './unet/pddpm.ts';
import { GaussianDiffusionSampler, GaussianDiffusionTrainer, PDDPM_SAMPLER_SCHEMA, PDDPM_TRAINER_SCHEMA } from './pddpm-diffusion.ts';
import { LUCIDRAINS_UNET_SCHEMA, LucidrainsUnet } from './unet/lucidrains.ts';
import { LUCIDRAINS_DIFFUSION_SCHEMA, LucidrainsDiffusion } from './lucidrains-diffusion.ts';

/** params with `model` built when it is a nested {target, params} config. */
function withModel(owner: string, params: Record<string, unknown>, build: BuildFn): Record<string, unknown> {
  const m = params['model'];
  if (m && typeof m === 'object' && typeof (m as Partial<TargetConfig>).target === 'string') {
    return { ...params, model: build(m as TargetConfig, `${owner}.model`) };
  }
  if (m === undefined) throw new ConfigError(`${owner}: missing required parameter 'model' (a network or a {target, params} config)`);
  return params;
}

const unet = (p: Record<string, unknown>): PddpmUNet => new PddpmUNet(readOptions('pytorch-ddpm UNet', p, PDDPM_UNET_SCHEMA));
const trainer = (p: Record<string, unknown>, b: BuildFn): GaussianDiffusionTrainer => new GaussianDiffusionTrainer(
  readOptions('pytorch-ddpm GaussianDiffusionTrainer', withModel('GaussianDiffusionTrainer', p, b), PDDPM_TRAINER_SCHEMA));
const sampler = (p: Record<string, unknown>, b: BuildFn): GaussianDiffusionSampler => new GaussianDiffusionSampler(
  readOptions('pytorch-ddpm GaussianDiffusionSampler', withModel('GaussianDiffusionSampler', p, b), PDDPM_SAMPLER_SCHEMA));
const lunet = (p: Record<string, unknown>): LucidrainsUnet => new LucidrainsUnet(readOptions('lucidrains Unet', p, LUCIDRAINS_UNET_SCHEMA));
const gd = (p: Record<string, unknown>, b: BuildFn): LucidrainsDiffusion => new LucidrainsDiffusion(
  readOptions('lucidrains GaussianDiffusion', withModel('GaussianDiffusion', p, b), LUCIDRAINS_DIFFUSION_SCHEMA));

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
