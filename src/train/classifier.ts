// A small MNIST classifier, trained by ldm.ts, used to measure the class accuracy of samples of a
// class-conditional diffusion model (`ldm eval`). LeNet-style: conv 3x3 1->16, ReLU, max-pool 2,
// conv 3x3 16->32, ReLU, max-pool 2, linear 32*7*7 -> 64, ReLU, linear 64 -> 10 (torch key names
// conv1 / conv2 / fc1 / fc2; about 106k parameters, 0.42 MB as float32). Inputs are [B, 1, 28, 28]
// in [-1, 1], the diffusion models' range; training adds random shifts of up to 2 pixels so that
// slightly off-centre samples are still read correctly.

import { ConfigError, Generator, ShapeError, fmtShape } from '../util/index.ts';
import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Adam, Conv2d, Linear, Module, crossEntropy, setInitSeed } from '../nn/index.ts';
import { makeBatch, type ImageDataset } from '../io/index.ts';

export class MnistClassifier extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(readonly numClasses = 10) {
    super();
    this.conv1 = this.child('conv1', new Conv2d(1, 16, 3, { padding: 1 }));
    this.conv2 = this.child('conv2', new Conv2d(16, 32, 3, { padding: 1 }));
    this.fc1 = this.child('fc1', new Linear(32 * 7 * 7, 64));
    this.fc2 = this.child('fc2', new Linear(64, numClasses));
  }

  /** x [B, 1, 28, 28] in [-1, 1] -> logits [B, numClasses]. */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== 1 || x.shape[2] !== 28 || x.shape[3] !== 28) {
      throw new ShapeError(`MnistClassifier: expected [B, 1, 28, 28] images, got ${fmtShape(x.shape)}`);
    }
    let h = T.maxPool2d(T.relu(this.conv1.forward(x)), 2); // [B, 16, 14, 14]
    h = T.maxPool2d(T.relu(this.conv2.forward(h)), 2); // [B, 32, 7, 7]
    return this.fc2.forward(this.hidden(h)); // [B, numClasses]
  }

  /** The 64 ReLU features of fc1 ([B, 64]) for pooled maps h [B, 32, 7, 7]. */
  private hidden(h: Tensor): Tensor {
    return T.relu(this.fc1.forward(T.reshape(h, [h.shape[0]!, 32 * 7 * 7]))); // [B, 64]
  }

  /** The feature vectors classifier-FID is measured on: fc1's 64 ReLU units, no gradients.
   *  x [B, 1, 28, 28] in [-1, 1] -> [B, 64] */
  features(x: Tensor, batchSize = 256): Tensor {
    return T.noGrad(() => {
      const parts: Tensor[] = [];
      for (let s = 0; s < x.shape[0]!; s += batchSize) {
        const xb = x.slice(0, s, Math.min(x.shape[0]!, s + batchSize));
        let h = T.maxPool2d(T.relu(this.conv1.forward(xb)), 2); // [b, 16, 14, 14]
        h = T.maxPool2d(T.relu(this.conv2.forward(h)), 2); // [b, 32, 7, 7]
        parts.push(this.hidden(h));
      }
      return T.cat(parts, 0);
    });
  }

  /** Predicted classes of x (no gradients). */
  predict(x: Tensor, batchSize = 256): number[] {
    return T.noGrad(() => {
      const out: number[] = [];
      for (let s = 0; s < x.shape[0]!; s += batchSize) {
        const logits = this.forward(x.slice(0, s, Math.min(x.shape[0]!, s + batchSize)));
        out.push(...T.max(logits, 1).indices.toArray());
      }
      return out;
    });
  }
}

/** Center 28x28 crop of larger images (e.g. MNIST padded to 32x32). x [B, 1, H, W] */
export function centerCrop28(x: Tensor): Tensor {
  const H = x.shape[2]!, W = x.shape[3]!;
  if (H === 28 && W === 28) return x;
  if (H < 28 || W < 28) throw new ShapeError(`classifier: images ${fmtShape(x.shape)} are smaller than 28x28`);
  const top = Math.floor((H - 28) / 2), left = Math.floor((W - 28) / 2);
  return x.slice(2, top, top + 28).slice(3, left, left + 28);
}

/** Shift each image by up to `max` pixels (zero fill = -1 background). x [B, 1, 28, 28] */
function randomShift(x: Tensor, max: number, gen: Generator): Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const src = x.f32;
  const out = new Float32Array(src.length).fill(-1);
  const d = gen.randint(-max, max + 1, 2 * B);
  for (let b = 0; b < B; b++) {
    const dy = d[2 * b]!, dx = d[2 * b + 1]!;
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        const sy = y - dy;
        if (sy < 0 || sy >= H) continue;
        for (let xx = 0; xx < W; xx++) {
          const sx = xx - dx;
          if (sx >= 0 && sx < W) out[((b * C + c) * H + y) * W + xx] = src[((b * C + c) * H + sy) * W + sx]!;
        }
      }
    }
  }
  return new Tensor(out, x.shape);
}

export interface ClassifierTrainOptions {
  train: ImageDataset;
  test: ImageDataset;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  shift?: number;
  onProgress?: (e: { epoch: number; step: number; steps: number; loss: number }) => void;
}

const nchw = (x: Tensor): Tensor => T.permute(x, [0, 3, 1, 2]);

/** Accuracy of the classifier on a data set (fraction in [0, 1]). */
export function classifierAccuracy(model: MnistClassifier, ds: ImageDataset, batchSize = 500): number {
  let correct = 0;
  for (let s = 0; s < ds.length; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, ds.length - s) }, (_, i) => s + i);
    const b = makeBatch(ds, idx);
    const pred = model.predict(centerCrop28(nchw(b.image)));
    pred.forEach((p, i) => { if (p === ds.label(idx[i]!)) correct++; });
  }
  return correct / ds.length;
}

/** Train with Adam (lr 1e-3, cosine decay to 0), batches of 128, random shifts. */
export function trainClassifier(opts: ClassifierTrainOptions): { model: MnistClassifier; testAccuracy: number } {
  const { train, test } = opts;
  if (train.channels !== 1) throw new ConfigError(`classifier: expected grey images, ${train.name} has ${train.channels} channels`);
  const seed = opts.seed ?? 0;
  setInitSeed(seed);
  const model = new MnistClassifier(train.classNames.length);
  const epochs = opts.epochs ?? 2, bs = opts.batchSize ?? 128, lr0 = opts.lr ?? 1e-3;
  const optim = new Adam(model.parameters(), { lr: lr0 });
  const gen = new Generator(seed + 1);
  const steps = epochs * Math.floor(train.length / bs);
  let step = 0;
  for (let e = 0; e < epochs; e++) {
    const order = gen.randperm(train.length);
    for (let s = 0; s + bs <= train.length; s += bs) {
      const idx = Array.from(order.subarray(s, s + bs));
      const b = makeBatch(train, idx);
      const x = randomShift(centerCrop28(nchw(b.image)), opts.shift ?? 2, gen);
      optim.lr = lr0 * 0.5 * (1 + Math.cos((Math.PI * step) / steps));
      optim.zeroGrad();
      const loss = crossEntropy(model.forward(x), b.class_label);
      T.backward(loss);
      optim.step();
      step++;
      opts.onProgress?.({ epoch: e, step, steps, loss: loss.item() });
    }
  }
  return { model, testAccuracy: classifierAccuracy(model, test) };
}
