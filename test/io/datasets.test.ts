// Datasets: MNIST / Fashion-MNIST IDX reading (first labels and pixels checked against the raw
// files), batches in the official layout, seeded shuffling, flips, and the loader state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataLoader, loadFashionMnist, loadMnist, makeBatch, mnistDataDir, parseIdx, ArrayImageDataset } from '../../src/io/index.ts';
import { InputFileError } from '../../src/util/index.ts';

test('MNIST: the first training example is a 5 with the known pixels', () => {
  const ds = loadMnist({ split: 'train', limit: 100 });
  assert.equal(ds.length, 100);
  assert.deepEqual([ds.height, ds.width, ds.channels], [28, 28, 1]);
  assert.equal(ds.label(0), 5);
  assert.equal(ds.caption(0), 'a handwritten five');
  // row 5 of image 0 (pixels 152..159), straight from the IDX bytes after the 16-byte header
  assert.deepEqual(Array.from(ds.pixels(0).subarray(152, 160)), [3, 18, 18, 18, 126, 136, 175, 26]);
  const raw = readFileSync(join(mnistDataDir(), 'train-images-idx3-ubyte'));
  assert.deepEqual(Array.from(ds.pixels(1)), Array.from(raw.subarray(16 + 784, 16 + 2 * 784)));
  assert.equal(loadMnist({ split: 'test', limit: 1 }).label(0), 7);
});

test('Fashion-MNIST from the Debian package (gzip IDX) with captions', () => {
  const ds = loadFashionMnist({ split: 'test', limit: 10 });
  assert.equal(ds.label(0), 9);
  assert.equal(ds.caption(0), 'a photo of an ankle boot');
  assert.equal(ds.classNames[7], 'Sneaker');
  const sneaker = [...Array(10).keys()].find((i) => ds.label(i) === 7);
  if (sneaker !== undefined) assert.equal(ds.caption(sneaker), 'a photo of a sneaker');
});

test('pad adds a black border', () => {
  const ds = loadMnist({ split: 'train', limit: 2, pad: 2 });
  assert.deepEqual([ds.height, ds.width], [32, 32]);
  assert.equal(ds.pixels(0)[0], 0);
  assert.equal(ds.pixels(0)[(5 + 2) * 32 + 2 + 12], loadMnist({ split: 'train', limit: 1 }).pixels(0)[5 * 28 + 12]);
});

test('IDX errors name the file', () => {
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2]), 'x.idx'), /x.idx: truncated IDX data/);
  assert.throws(() => parseIdx(new Uint8Array([1, 2, 3, 4, 5]), 'y.idx'), (e: Error) => e instanceof InputFileError && /y.idx: not an IDX file/.test(e.message));
});

test('batches: [B, H, W, C] in [-1, 1], int64 labels, captions; seeded shuffle and resumable state', () => {
  const ds = loadMnist({ split: 'train', limit: 50 });
  const b = makeBatch(ds, [0, 1]);
  assert.deepEqual([...b.image.shape], [2, 28, 28, 1]);
  assert.equal(b.class_label.dtype, 'int64');
  assert.deepEqual(b.class_label.toArray(), [5, 0]);
  assert.equal(b.image.f32[0], -1);
  assert.equal(b.image.f32[152 + 4], Math.fround(126 / 127.5 - 1));
  const a1 = new DataLoader(ds, { batchSize: 8, seed: 3 });
  const a2 = new DataLoader(ds, { batchSize: 8, seed: 3 });
  const seq1 = Array.from({ length: 9 }, () => a1.next().index); // crosses an epoch (6 batches per epoch)
  const seq2: number[][] = [];
  for (let i = 0; i < 4; i++) seq2.push(a2.next().index);
  const resumed = new DataLoader(ds, { batchSize: 8, seed: 3 });
  resumed.setState(a2.getState());
  for (let i = 4; i < 9; i++) seq2.push(resumed.next().index);
  assert.deepEqual(seq2, seq1);
  assert.notDeepEqual(seq1[0], seq1[6]); // a new order in the second epoch
  assert.notDeepEqual(new DataLoader(ds, { batchSize: 8, seed: 4 }).next().index, seq1[0]);
  assert.equal(new Set(seq1.slice(0, 6).flat()).size, 48);
});

test('flips mirror the width axis with probability flip_p', () => {
  const px = Uint8Array.from({ length: 2 * 3 * 1 }, (_, i) => i * 10); // 1 image 2x3
  const ds = new ArrayImageDataset('t', px, Int32Array.of(0), 2, 3, 1, ['x'], () => 'x', 1);
  const b = new DataLoader(ds, { batchSize: 1, seed: 0 }).next();
  assert.deepEqual(Array.from(b.image.f32, (v) => Math.round((v + 1) * 127.5)), [20, 10, 0, 50, 40, 30]);
});
