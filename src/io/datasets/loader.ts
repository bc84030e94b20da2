// Batching for training and evaluation: a seeded shuffle per epoch (torch.randperm on a generator
// seeded from (seed, epoch)), random horizontal flips with the dataset's flip_p (drawn per epoch
// from the same generator), uint8 -> float32 in [-1, 1] (`x / 127.5 - 1`, as the official data
// sets do), and the official batch layout (types.ts). The loader's whole state is (epoch,
// position), so a resumed run sees exactly the batches an uninterrupted one would.

import { ConfigError, Generator } from '../../util/index.ts';
import { Tensor } from '../../tensor/index.ts';
import type { Batch, ImageDataset } from './types.ts';

export interface LoaderOptions {
  batchSize: number;
  /** reshuffle every epoch (default true) */
  shuffle?: boolean;
  seed?: number;
  /** drop the last incomplete batch of an epoch (default true) */
  dropLast?: boolean;
}

export interface LoaderState {
  epoch: number;
  /** index of the next example within the epoch's order */
  position: number;
}

/** Make a batch of the given examples (flip[i]: mirror example i horizontally). */
export function makeBatch(ds: ImageDataset, indices: readonly number[], flip?: readonly boolean[]): Batch {
  const { height: H, width: W, channels: C } = ds;
  const B = indices.length;
  const img = new Float32Array(B * H * W * C);
  indices.forEach((idx, b) => {
    const px = ds.pixels(idx);
    const o = b * H * W * C;
    const mirror = flip?.[b] ?? false;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const sx = mirror ? W - 1 - x : x;
        for (let c = 0; c < C; c++) img[o + (y * W + x) * C + c] = px[(y * W + sx) * C + c]! / 127.5 - 1;
      }
    }
  });
  return {
    image: new Tensor(img, [B, H, W, C]), // [B, H, W, C]
    class_label: new Tensor(Float64Array.from(indices, (i) => ds.label(i)), [B], 'int64'),
    caption: indices.map((i) => ds.caption(i)),
    index: [...indices],
  };
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private epoch = 0;
  private position = 0;
  private order: Float64Array | null = null;
  private flips: Uint8Array | null = null;

  constructor(readonly dataset: ImageDataset, opts: LoaderOptions) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new ConfigError(`data: batch_size must be a positive integer, got ${opts.batchSize}`);
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? true;
    if (this.dropLast && dataset.length < this.batchSize) {
      throw new ConfigError(`data: ${dataset.name} has ${dataset.length} examples, fewer than batch_size ${this.batchSize}`);
    }
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  getState(): LoaderState {
    return { epoch: this.epoch, position: this.position };
  }

  setState(s: LoaderState): void {
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || !Number.isInteger(s.position) || s.position < 0 || s.position > this.dataset.length) {
      throw new ConfigError(`data loader: invalid state ${JSON.stringify(s)}`);
    }
    this.epoch = s.epoch;
    this.position = s.position;
    this.order = null;
  }

  /** The epoch's order and flips, drawn from a generator seeded by (seed, epoch). */
  private prepare(): void {
    const n = this.dataset.length;
    const gen = new Generator((BigInt(this.seed >>> 0) << 20n) + BigInt(this.epoch));
    this.order = this.shuffle ? gen.randperm(n) : Float64Array.from({ length: n }, (_, i) => i);
    const p = this.dataset.flipP;
    this.flips = p > 0 ? Uint8Array.from(gen.rand(n), (u) => (u < p ? 1 : 0)) : null;
  }

  /** The next batch; moves to the next epoch (new order) when this one is used up. */
  next(): Batch {
    const n = this.dataset.length;
    const left = n - this.position;
    if (left === 0 || (this.dropLast && left < this.batchSize)) {
      this.epoch += 1;
      this.position = 0;
      this.order = null;
    }
    if (!this.order) this.prepare();
    const end = Math.min(n, this.position + this.batchSize);
    const idx: number[] = [];
    const flip: boolean[] = [];
    for (let i = this.position; i < end; i++) {
      idx.push(this.order![i]!);
      flip.push(this.flips ? this.flips[i] === 1 : false);
    }
    this.position = end;
    return makeBatch(this.dataset, idx, flip);
  }

  get currentEpoch(): number {
    return this.epoch;
  }
}

/** Sequential batches over a data set (evaluation: no shuffle, no flips, last batch kept). */
export function* sequentialBatches(ds: ImageDataset, batchSize: number, limit = ds.length): IterableIterator<Batch> {
  const n = Math.min(limit, ds.length);
  for (let s = 0; s < n; s += batchSize) {
    yield makeBatch(ds, Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i));
  }
}
