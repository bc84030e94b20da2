// Loading the standard pretrained LPIPS files from disk into an LPIPS module (the official code
// downloads them; we only read what the user already has): torchvision's ImageNet VGG16
// (`vgg16-397923af.pth`, keys `features.N.weight/bias`, classifier ignored) and the LPIPS heads
// (`vgg.pth` of taming / PerceptualSimilarity, keys `lin<k>.model.1.weight`). Either file may be a
// .pth/.ckpt or a .safetensors with the same keys. The key mapping itself is pure (models/).

import { ConfigError } from '../util/index.ts';
import type { Tensor } from '../tensor/index.ts';
import { LPIPS, lpipsStateDictFromPretrained } from '../models/index.ts';
import { readTensorFile } from './tensors.ts';

export interface LpipsPretrainedPaths {
  /** torchvision VGG16 state dict (`features.N.*`). */
  vgg?: string;
  /** LPIPS head weights (`lin<k>.model.1.weight`). */
  lin?: string;
}

/** Read the given files and copy their weights into `lpips` (e.g. `ae.loss.perceptual_loss`).
 *  Returns which parts are loaded afterwards. */
export function loadLpipsPretrained(lpips: LPIPS, paths: LpipsPretrainedPaths): { vgg: boolean; lin: boolean } {
  if (!paths.vgg && !paths.lin) throw new ConfigError('loadLpipsPretrained: give the torchvision vgg16 file (vgg) and/or the LPIPS vgg.pth (lin)');
  for (const path of [paths.vgg, paths.lin]) {
    if (!path) continue;
    const f = readTensorFile(path);
    lpips.loadPretrained(f.tensors, path);
  }
  return lpips.loaded;
}

/** The LPIPS state dict (our keys) of the given files, without a module. */
export function readLpipsPretrained(paths: LpipsPretrainedPaths): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const path of [paths.vgg, paths.lin]) {
    if (!path) continue;
    for (const [k, t] of lpipsStateDictFromPretrained(readTensorFile(path).tensors, path)) out.set(k, t);
  }
  return out;
}
