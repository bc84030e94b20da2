// Data sets and the data module of the configs. Targets are our own class paths in the style of
// the official `ldm.data.*` modules (documented in configs/README.md):
//   ldm.data.mnist.MNIST          params: split (train|test), root, limit, pad, flip_p
//   ldm.data.mnist.FashionMNIST   params: split, root, limit, pad, flip_p
//   ldm.data.folder.ImageFolder   params: root, size, crop (center|resize), channels (1|3),
//                                         flip_p, class_names, on_error (skip|stop), limit
// the official ImageNet, LSUN and FFHQ / CelebA-HQ classes reading their on-disk layouts from
// `data_root` (official.ts), and the official `main.DataModuleFromConfig` (batch_size, train /
// validation / test, ...).

import { ConfigError, checkKwargs } from '../../util/index.ts';
import { loadFashionMnist, loadMnist, type MnistOptions } from './mnist.ts';
import { loadImageFolder } from './folder.ts';
import { OFFICIAL_DATA_TARGETS } from './official.ts';
import type { ImageDataset } from './types.ts';

export * from './types.ts';
export * from './idx.ts';
export * from './mnist.ts';
export * from './folder.ts';
export * from './official.ts';
export * from './loader.ts';

export interface DataBuildContext {
  /** messages about skipped files and the like */
  onWarning?: (message: string) => void;
}

export type DataFactory = (params: Record<string, unknown>, ctx: DataBuildContext) => Promise<ImageDataset>;

function opt<T>(v: unknown, key: string, owner: string, check: (v: unknown) => boolean, what: string): T | undefined {
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new ConfigError(`${owner}: '${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v as T;
}
const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v);
const isProb = (v: unknown): boolean => typeof v === 'number' && v >= 0 && v <= 1;

function mnistOpts(owner: string, p: Record<string, unknown>): MnistOptions {
  checkKwargs(owner, p, ['split', 'root', 'limit', 'pad', 'flip_p']);
  const o: MnistOptions = {};
  const split = opt<string>(p['split'], 'split', owner, (v) => v === 'train' || v === 'test', "'train' or 'test'");
  if (split) o.split = split as 'train' | 'test';
  const root = opt<string>(p['root'], 'root', owner, (v) => typeof v === 'string', 'a folder path');
  if (root) o.root = root;
  const limit = opt<number>(p['limit'], 'limit', owner, isInt, 'an integer');
  if (limit !== undefined) o.limit = limit;
  const pad = opt<number>(p['pad'], 'pad', owner, isInt, 'an integer');
  if (pad !== undefined) o.pad = pad;
  const flip = opt<number>(p['flip_p'], 'flip_p', owner, isProb, 'a probability in [0, 1]');
  if (flip !== undefined) o.flipP = flip;
  return o;
}

/** Data set class paths -> loaders (merged with MODEL_TARGETS into the config registry). */
export const DATA_TARGETS = {
  'ldm.data.mnist.MNIST': async (p) => loadMnist(mnistOpts('MNIST', p)),
  'ldm.data.mnist.FashionMNIST': async (p) => loadFashionMnist(mnistOpts('FashionMNIST', p)),
  'ldm.data.folder.ImageFolder': async (p, ctx) => {
    const owner = 'ImageFolder';
    checkKwargs(owner, p, ['root', 'size', 'crop', 'channels', 'flip_p', 'class_names', 'on_error', 'limit']);
    const root = opt<string>(p['root'], 'root', owner, (v) => typeof v === 'string' && v.length > 0, 'a folder path');
    if (!root) throw new ConfigError(`${owner}: 'root' (the image folder) is required`);
    const size = opt<number>(p['size'], 'size', owner, isInt, 'an integer');
    if (size === undefined) throw new ConfigError(`${owner}: 'size' (output image size in pixels) is required`);
    const crop = opt<'center' | 'resize'>(p['crop'], 'crop', owner, (v) => v === 'center' || v === 'resize', "'center' or 'resize'");
    const channels = opt<1 | 3>(p['channels'], 'channels', owner, (v) => v === 1 || v === 3, '1 or 3');
    const flipP = opt<number>(p['flip_p'], 'flip_p', owner, isProb, 'a probability in [0, 1]');
    const classNames = opt<string[]>(p['class_names'], 'class_names', owner,
      (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'), 'a list of folder names');
    const onError = opt<'skip' | 'stop'>(p['on_error'], 'on_error', owner, (v) => v === 'skip' || v === 'stop', "'skip' or 'stop'");
    const limit = opt<number>(p['limit'], 'limit', owner, isInt, 'an integer');
    return loadImageFolder({
      root, size,
      ...(crop ? { crop } : {}), ...(channels ? { channels } : {}), ...(flipP !== undefined ? { flipP } : {}),
      ...(classNames ? { classNames } : {}), ...(onError ? { onError } : {}), ...(limit !== undefined ? { limit } : {}),
      ...(ctx.onWarning ? { onWarning: ctx.onWarning } : {}),
    });
  },
  ...OFFICIAL_DATA_TARGETS,
} satisfies Readonly<Record<string, DataFactory>>;

/** The official data module target name (main.py of latent-diffusion). */
export const DATA_MODULE_TARGET = 'main.DataModuleFromConfig';
export const DATA_MODULE_KEYS = [
  'batch_size', 'train', 'validation', 'test', 'num_workers', 'wrap', 'shuffle_val_dataloader', 'use_worker_init_fn', 'shuffle_test_loader',
] as const;

export interface DataModule {
  batchSize: number;
  train: ImageDataset | null;
  validation: ImageDataset | null;
  test: ImageDataset | null;
}
