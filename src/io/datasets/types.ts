// The dataset contract shared by MNIST, Fashion-MNIST and image folders, and the batch layout
// of the official code: `{image: [B, H, W, C] channels-last in [-1, 1], class_label: int64 [B],
// caption?: string[]}` (LDM `get_input` rearranges `image` to NCHW). Examples are kept as uint8
// HWC pixels in memory; scaling to [-1, 1] and random flips happen when a batch is made
// (loader.ts). What it is not: no file reading (mnist.ts, folder.ts).

import type { Tensor } from '../../tensor/index.ts';

/** An in-memory image data set (every example decoded at load time). */
export interface ImageDataset {
  /** what it is, for messages and run logs (e.g. 'MNIST train') */
  readonly name: string;
  readonly length: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** class names, index = label */
  readonly classNames: readonly string[];
  /** probability of a horizontal flip when a batch is made (LSUN-style `flip_p`, default 0) */
  readonly flipP: number;
  /** uint8 pixels of example i, [H, W, C] (a view; do not modify) */
  pixels(i: number): Uint8Array;
  /** integer class label of example i */
  label(i: number): number;
  /** a caption of example i for text conditioning (e.g. 'a handwritten seven') */
  caption(i: number): string;
}

/** One batch, as the official data loaders yield it. */
export interface Batch {
  /** [B, H, W, C] float32 in [-1, 1] */
  image: Tensor;
  /** int64 [B] */
  class_label: Tensor;
  caption: string[];
  /** dataset indices of the examples (for debugging and tests) */
  index: number[];
  [key: string]: unknown;
}

/** A data set held as one uint8 block [N, H, W, C] plus labels. */
export class ArrayImageDataset implements ImageDataset {
  readonly length: number;
  readonly flipP: number;
  private readonly stride: number;

  constructor(
    readonly name: string,
    private readonly data: Uint8Array,
    private readonly labels: Int32Array,
    readonly height: number,
    readonly width: number,
    readonly channels: number,
    readonly classNames: readonly string[],
    private readonly captionOf: (label: number) => string,
    flipP = 0,
  ) {
    this.stride = height * width * channels;
    this.length = labels.length;
    this.flipP = flipP;
    if (data.length !== this.length * this.stride) {
      throw new Error(`${name}: ${data.length} pixel bytes for ${this.length} images of ${height}x${width}x${channels}`);
    }
  }

  pixels(i: number): Uint8Array {
    return this.data.subarray(i * this.stride, (i + 1) * this.stride);
  }

  label(i: number): number {
    return this.labels[i]!;
  }

  caption(i: number): string {
    return this.captionOf(this.labels[i]!);
  }

  /** The first n examples (or all). */
  limit(n: number | undefined): ArrayImageDataset {
    if (n === undefined || n >= this.length) return this;
    return new ArrayImageDataset(`${this.name} (first ${n})`, this.data.subarray(0, n * this.stride), this.labels.subarray(0, n),
      this.height, this.width, this.channels, this.classNames, this.captionOf, this.flipP);
  }
}
