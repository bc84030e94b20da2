// Every tensor op on every backend against the reference, plus finite-difference gradient
// checks on the reference backend, broadcasting edge cases and shape errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ShapeError } from '../../src/util/index.ts';
import { assertClose, checkOp, gradcheck, rnd } from '../helpers/check.ts';

type Case = { name: string; f: (...xs: Tensor[]) => Tensor; inputs: Tensor[]; gtol?: number; noGrad?: boolean };

const pos = (shape: number[], seed: number): Tensor => T.noGrad(() => T.add(T.abs(rnd(shape, seed)), 0.5));

const cases: Case[] = [
  { name: 'add broadcast', f: (a, b) => T.add(a, b), inputs: [rnd([2, 3, 4], 1), rnd([3, 1], 2)] },
  { name: 'sub broadcast', f: (a, b) => T.sub(a, b), inputs: [rnd([4], 1), rnd([2, 3, 1], 2)] },
  { name: 'mul broadcast', f: (a, b) => T.mul(a, b), inputs: [rnd([2, 1, 4], 1), rnd([1, 3, 4], 2)] },
  { name: 'div', f: (a, b) => T.div(a, b), inputs: [rnd([2, 3], 1), pos([2, 3], 2)] },
  { name: 'pow scalar', f: (a) => T.pow(a, 3), inputs: [rnd([5], 3)] },
  { name: 'pow tensor', f: (a, b) => T.pow(a, b), inputs: [pos([4], 3), rnd([4], 4)] },
  { name: 'neg', f: (a) => T.neg(a), inputs: [rnd([6], 1)] },
  { name: 'exp', f: (a) => T.exp(a), inputs: [rnd([6], 1)] },
  { name: 'log', f: (a) => T.log(a), inputs: [pos([6], 1)] },
  { name: 'sqrt', f: (a) => T.sqrt(a), inputs: [pos([6], 1)] },
  { name: 'rsqrt', f: (a) => T.rsqrt(a), inputs: [pos([6], 1)] },
  { name: 'abs', f: (a) => T.abs(a), inputs: [rnd([6], 1)] },
  { name: 'clamp', f: (a) => T.clamp(a, -0.5, 0.7), inputs: [rnd([20], 1)] },
  { name: 'tanh', f: (a) => T.tanh(a), inputs: [rnd([6], 1)] },
  { name: 'sigmoid', f: (a) => T.sigmoid(a), inputs: [rnd([6], 1)] },
  { name: 'silu', f: (a) => T.silu(a), inputs: [rnd([64], 1)] },
  { name: 'gelu', f: (a) => T.gelu(a), inputs: [rnd([64], 1)] },
  { name: 'relu', f: (a) => T.relu(a), inputs: [rnd([6], 1)] },
  { name: 'leakyRelu', f: (a) => T.leakyRelu(a, 0.2), inputs: [rnd([6], 1)] },
  { name: 'softplus', f: (a) => T.softplus(a), inputs: [rnd([6], 1, 5)] },
  { name: 'where', f: (a, b) => T.where(T.gt(a, 0), a, b), inputs: [rnd([3, 4], 1), rnd([4], 2)] },
  { name: 'maximum', f: (a, b) => T.maximum(a, b), inputs: [rnd([3, 4], 1), rnd([3, 4], 2)] },
  { name: 'sum dims keepdim', f: (a) => T.sum(a, [0, 2], true), inputs: [rnd([2, 3, 4], 1)] },
  { name: 'sum all', f: (a) => T.sum(a), inputs: [rnd([2, 3, 4], 1)] },
  { name: 'mean', f: (a) => T.mean(a, -1), inputs: [rnd([2, 3, 4], 1)] },
  { name: 'variance', f: (a) => T.variance(a, [1]), inputs: [rnd([2, 5], 1)] },
  { name: 'max dim', f: (a) => T.max(a, 1).values, inputs: [rnd([3, 5, 2], 1)] },
  { name: 'softmax', f: (a) => T.softmax(a, -1), inputs: [rnd([3, 7], 1)] },
  { name: 'softmax dim1', f: (a) => T.softmax(a, 1), inputs: [rnd([2, 5, 3], 1)] },
  { name: 'logSoftmax', f: (a) => T.logSoftmax(a, 0), inputs: [rnd([4, 3], 1)] },
  { name: 'reshape', f: (a) => T.reshape(a, [6, -1]), inputs: [rnd([2, 3, 4], 1)] },
  { name: 'permute', f: (a) => T.permute(a, [2, 0, 1]), inputs: [rnd([2, 3, 4], 1)] },
  { name: 'expand', f: (a) => T.expand(a, [2, 3, 4]), inputs: [rnd([3, 1], 1)] },
  { name: 'slice step', f: (a) => T.slice(a, 1, 1, 5, 2), inputs: [rnd([2, 6], 1)] },
  { name: 'cat', f: (a, b) => T.cat([a, b], 1), inputs: [rnd([2, 3, 2], 1), rnd([2, 1, 2], 2)] },
  { name: 'stack', f: (a, b) => T.stack([a, b], 1), inputs: [rnd([2, 3], 1), rnd([2, 3], 2)] },
  { name: 'chunk', f: (a) => T.mul(T.chunk(a, 2, 1)[0]!, T.chunk(a, 2, 1)[1]!), inputs: [rnd([2, 6], 1)] },
  { name: 'pad asymmetric', f: (a) => T.pad(a, [0, 1, 0, 1]), inputs: [rnd([1, 2, 3, 3], 1)] },
  { name: 'pad crop', f: (a) => T.pad(a, [-1, 2]), inputs: [rnd([2, 4], 1)] },
  { name: 'indexSelect', f: (a) => T.indexSelect(a, 0, T.tensor([2, 0, 2], [3], 'int64')), inputs: [rnd([4, 3], 1)] },
  { name: 'gather', f: (a) => T.gather(a, 1, T.tensor([0, 2, 1, 1], [2, 2], 'int64')), inputs: [rnd([2, 3], 1)] },
  { name: 'flip', f: (a) => T.flip(a, [-1]), inputs: [rnd([2, 3], 1)] },
  { name: 'matmul 2d', f: (a, b) => T.matmul(a, b), inputs: [rnd([3, 4], 1), rnd([4, 5], 2)] },
  { name: 'matmul batched', f: (a, b) => T.matmul(a, b), inputs: [rnd([2, 3, 4], 1), rnd([2, 4, 5], 2)] },
  { name: 'matmul broadcast', f: (a, b) => T.matmul(a, b), inputs: [rnd([2, 3, 4], 1), rnd([4, 2], 2)] },
  { name: 'matmul broadcast lhs', f: (a, b) => T.matmul(a, b), inputs: [rnd([3, 4], 1), rnd([2, 4, 2], 2)] },
  { name: 'linear', f: (x, w, b) => T.linear(x, w, b), inputs: [rnd([2, 3, 4], 1), rnd([5, 4], 2), rnd([5], 3)] },
  { name: 'conv2d pad1', f: (x, w, b) => T.conv2d(x, w, b, 1, 1), inputs: [rnd([2, 3, 5, 5], 1), rnd([4, 3, 3, 3], 2), rnd([4], 3)] },
  { name: 'conv2d stride2 asym', f: (x, w) => T.conv2d(x, w, null, 2, [0, 1, 0, 1]), inputs: [rnd([1, 2, 6, 6], 1), rnd([3, 2, 3, 3], 2)] },
  { name: 'conv2d 1x1', f: (x, w) => T.conv2d(x, w), inputs: [rnd([2, 3, 4, 4], 1), rnd([5, 3, 1, 1], 2)] },
  { name: 'conv2d 4x4 s2', f: (x, w, b) => T.conv2d(x, w, b, 2, 1), inputs: [rnd([2, 3, 8, 8], 1), rnd([4, 3, 4, 4], 2), rnd([4], 3)] },
  { name: 'convTranspose2d', f: (x, w, b) => T.convTranspose2d(x, w, b, 2, 1, 1), inputs: [rnd([1, 3, 4, 4], 1), rnd([3, 2, 3, 3], 2), rnd([2], 3)] },
  { name: 'avgPool2d', f: (x) => T.avgPool2d(x, 2), inputs: [rnd([2, 3, 4, 6], 1)] },
  { name: 'maxPool2d', f: (x) => T.maxPool2d(x, 2), inputs: [rnd([2, 3, 4, 4], 1)] },
  { name: 'upsampleNearest', f: (x) => T.upsampleNearest(x, 2), inputs: [rnd([2, 3, 3, 2], 1)] },
  { name: 'groupNorm', f: (x, w, b) => T.groupNorm(x, 2, w, b, 1e-5), inputs: [rnd([2, 4, 3, 3], 1), rnd([4], 2), rnd([4], 3)] },
  { name: 'groupNorm 32 groups', f: (x, w, b) => T.groupNorm(x, 32, w, b, 1e-6), inputs: [rnd([2, 64, 2, 2], 1), rnd([64], 2), rnd([64], 3)] },
  { name: 'groupNormSilu', f: (x, w, b) => T.groupNormSilu(x, 2, w, b, 1e-5), inputs: [rnd([2, 4, 3, 3], 1), rnd([4], 2), rnd([4], 3)] },
  { name: 'groupNormSilu = silu(groupNorm)', f: (x, w, b) => T.sub(T.groupNormSilu(x, 4, w, b), T.silu(T.groupNorm(x, 4, w, b))),
    inputs: [rnd([2, 8, 5, 3], 1), rnd([8], 2), rnd([8], 3)] },
  { name: 'layerNorm', f: (x, w, b) => T.layerNorm(x, w, b), inputs: [rnd([2, 3, 8], 1), rnd([8], 2), rnd([8], 3)] },
  { name: 'attention', f: (q, k, v) => T.scaledDotProductAttention(q, k, v), inputs: [rnd([2, 5, 4], 1), rnd([2, 6, 4], 2), rnd([2, 6, 3], 3)] },
  { name: 'attention mask', f: (q, k, v) => T.scaledDotProductAttention(q, k, v, T.tensor([0, 0, -1e9, 0, -1e9, 0], [1, 1, 6])), inputs: [rnd([2, 5, 4], 1), rnd([2, 6, 4], 2), rnd([2, 6, 3], 3)] },
];

for (const c of cases) {
  test(`op ${c.name}: backends agree`, () => checkOp(c.name, c.f, c.inputs));
  test(`op ${c.name}: gradient matches finite differences`, () => {
    T.setBackend('reference');
    try {
      gradcheck(c.f, c.inputs, { tol: c.gtol ?? 2e-2 });
    } finally {
      T.setBackend(T.nativeAvailable() ? 'native' : 'reference');
    }
  });
}

test('known values: conv2d, gelu, softplus, group norm', () => {
  const x = T.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  const w = T.tensor([1, 0, 0, -1], [1, 1, 2, 2]);
  assert.deepEqual(T.conv2d(x, w).toArray(), [-4, -4, -4, -4]);
  assertClose(T.gelu(T.tensor([-1, 0, 1, 2])), [-0.15865525, 0, 0.84134475, 1.95449974], 1e-6);
  assertClose(T.softplus(T.tensor([0, 30])), [Math.log(2), 30], 1e-6);
  const gn = T.groupNorm(T.tensor([1, 2, 3, 4], [1, 2, 2]), 1, null, null, 0);
  assertClose(gn, [-1.3416407, -0.4472136, 0.4472136, 1.3416407], 1e-6);
  assert.deepEqual([...T.convTranspose2d(T.ones([1, 1, 2, 2]), T.ones([1, 1, 3, 3]), null, 2, 1, 1).shape], [1, 1, 4, 4]);
});

test('shape errors name both shapes', () => {
  assert.throws(() => T.add(rnd([2, 3]), rnd([4, 3])), (e: Error) => e instanceof ShapeError && e.message.includes('[2, 3]') && e.message.includes('[4, 3]'));
  assert.throws(() => T.matmul(rnd([2, 3]), rnd([4, 3])), (e: Error) => e.message.includes('[2, 3]') && e.message.includes('[4, 3]'));
  assert.throws(() => T.conv2d(rnd([1, 3, 4, 4]), rnd([2, 4, 3, 3])), (e: Error) => e.message.includes('[1, 3, 4, 4]') && e.message.includes('[2, 4, 3, 3]'));
  assert.throws(() => T.reshape(rnd([2, 3]), [4, 2]), /\[2, 3\].*\[4, 2\]/);
});

test('broadcasting edge cases', () => {
  assert.deepEqual([...T.add(rnd([1]), rnd([3, 1, 2])).shape], [3, 1, 2]);
  assert.deepEqual([...T.mul(rnd([]), rnd([2, 2])).shape], [2, 2]);
  assert.deepEqual([...T.add(rnd([0, 3]), rnd([3])).shape], [0, 3]);
  const a = rnd([2, 1]).requireGrad();
  const b = rnd([1, 3]).requireGrad();
  T.backward(T.sum(T.mul(a, b)));
  assert.deepEqual([...a.grad!.shape], [2, 1]);
  assertClose(a.grad!, [T.sum(b).item(), T.sum(b).item()], 1e-6);
});

test('no-grad mode records nothing; detach cuts the graph', () => {
  const a = rnd([3]).requireGrad();
  const y = T.noGrad(() => T.mul(a, 2));
  assert.equal(y.requiresGrad, false);
  const z = T.mul(a.detach(), 2);
  assert.equal(z.requiresGrad, false);
});

test('gradients accumulate across backward calls, grad() leaves .grad alone', () => {
  const a = rnd([3]).requireGrad();
  T.backward(T.sum(a));
  T.backward(T.sum(a));
  assertClose(a.grad!, [2, 2, 2]);
  const g = T.grad(T.sum(T.mul(a, a)), [a])[0]!;
  assertClose(g, T.mul(a, 2));
  assertClose(a.grad!, [2, 2, 2]);
});
