// T.inference: buffer recycling between forward passes. Same numbers as noGrad, buffers reused
// from the second pass on, returned tensors (and views of them) kept, a tensor kept past the
// scope any other way fails loudly, nested scopes hand their results to the outer one, and a
// throwing function leaves no scope open.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { Generator } from '../../src/util/index.ts';

// Large enough (>= 2^14 elements) for emptyF32 to pool the activations.
const gen = new Generator(7);
const x = T.randn([2, 8, 32, 32], gen);
const w1 = T.mul(T.randn([16, 8, 3, 3], gen), 0.1), w2 = T.mul(T.randn([8, 16, 3, 3], gen), 0.1);
const net = (v: Tensor): Tensor => T.add(v, T.conv2d(T.silu(T.conv2d(v, w1, null, 1, 1)), w2, null, 1, 1));

test('inference: same numbers as noGrad, pooled buffers reused from the second pass', () => {
  T.releaseInferenceBuffers();
  const ref = T.noGrad(() => net(x)).toArray();
  const a = T.inference(() => net(x));
  assert.deepEqual(a.toArray(), ref);
  const pooled = T.pooledInferenceBytes();
  assert.ok(pooled >= 2 * 16 * 32 * 32 * 4, `first pass left ${pooled} bytes in the pool`);
  const b = T.inference(() => net(x));
  assert.deepEqual(b.toArray(), ref);
  assert.deepEqual(a.toArray(), ref, 'the first result is not overwritten by the second pass');
  assert.notEqual(a.data.buffer, b.data.buffer);
  assert.equal(T.pooledInferenceBytes(), pooled, 'the second pass drew from the pool and gave back as much');
  assert.equal(T.isGradEnabled(), true);
});

test('inference: returned views and structures are kept; tensors kept past the scope otherwise throw', () => {
  T.releaseInferenceBuffers();
  let leaked: Tensor | null = null;
  const out = T.inference(() => {
    const h = T.conv2d(x, w1, null, 1, 1);
    leaked = T.silu(h);
    return { flat: T.reshape(h, [2, -1]), list: [T.mul(h, 2)] };
  });
  assert.equal(out.flat.shape[1], 16 * 32 * 32);
  const again = T.inference(() => net(x));      // reuses the dead buffers
  assert.ok(again.size > 0);
  const ref = T.noGrad(() => T.conv2d(x, w1, null, 1, 1));
  assert.deepEqual(T.reshape(out.flat, ref.shape).toArray(), ref.toArray());
  assert.deepEqual(out.list[0]!.toArray(), T.mul(ref, 2).toArray());
  assert.throws(() => (leaked as unknown as Tensor).toArray(), /kept past its end/);
});

test('inference: nested scopes give their results to the outer scope; a throw closes the scope', () => {
  T.releaseInferenceBuffers();
  const outer = T.inference(() => {
    const inner = T.inference(() => T.conv2d(x, w1, null, 1, 1));
    const other = T.inference(() => net(x));          // may reuse the inner scope's dead buffers
    return T.add(T.sum(inner), T.sum(other));
  });
  const ref = T.noGrad(() => T.add(T.sum(T.conv2d(x, w1, null, 1, 1)), T.sum(net(x))));
  assert.ok(Math.abs(outer.item() - ref.item()) <= 1e-3 * Math.abs(ref.item()) + 1e-3);
  assert.throws(() => T.inference(() => { T.conv2d(x, w1, null, 1, 1); throw new Error('boom'); }), /boom/);
  // No scope is left open: ordinary allocation (and gradients) work as before.
  const wg = T.clone(w1);
  wg.requiresGrad = true;
  const loss = T.sum(T.conv2d(x, wg, null, 1, 1));
  T.backward(loss);
  assert.ok(wg.grad !== null);
  assert.equal(T.releaseInferenceBuffers(0) >= 0, true);
  T.inference(() => net(x));
  assert.equal(T.pooledInferenceBytes(), 0, 'a limit of 0 MB pools nothing');
  T.releaseInferenceBuffers();
});

test('inference: a full pool evicts its oldest buffers for a new workload\'s', () => {
  // 1 MB limit, filled by a first workload (ten dead 256 KB buffers, four pooled).
  T.releaseInferenceBuffers(1);
  const xa = T.randn([1, 1, 256, 256], gen);
  T.inference(() => { let s = 0; for (let i = 0; i < 10; i++) s += T.sum(T.mul(xa, i)).item(); return s; });
  assert.equal(T.pooledInferenceBytes(), 2 ** 20, 'the first workload filled the pool');
  // A second workload of another size: its dead buffer goes to the pool in place of the oldest, so
  // the next pass draws it again instead of a fresh one.
  const xb = T.randn([3, 8, 32, 32], gen);
  let first: unknown = null, second: unknown = null;
  T.inference(() => { const h = T.conv2d(xb, w1, null, 1, 1); first = h.data; return T.sum(h); });
  T.inference(() => { const h = T.conv2d(xb, w1, null, 1, 1); second = h.data; return T.sum(h); });
  assert.ok(first !== null && first === second, 'the second pass reused the first pass\'s buffer');
  assert.ok(T.pooledInferenceBytes() <= 2 ** 20, `the pool holds ${T.pooledInferenceBytes()} bytes, over its 1 MB limit`);
  T.releaseInferenceBuffers();
});

test('tidy: a nested scope under inference, a plain call (autograd intact) outside it', () => {
  T.releaseInferenceBuffers();
  const ref = T.noGrad(() => net(net(x))).toArray();
  const out = T.inference(() => { const a = T.tidy(() => net(x)); return T.tidy(() => net(a)); });
  assert.deepEqual(out.toArray(), ref);
  const wg = T.clone(w1);
  wg.requiresGrad = true;
  const y = T.tidy(() => T.conv2d(x, wg, null, 1, 1));
  assert.ok(y.node !== null, 'outside inference, tidy keeps the autograd record');
  T.backward(T.sum(y));
  assert.ok(wg.grad !== null);
});

test('backward: gradients equal with recycling, leaf grads kept, later passes reuse the freed buffers', () => {
  T.releaseInferenceBuffers();
  const run = (): number[] => {
    const wa = T.clone(w1), wb = T.clone(w2);
    wa.requiresGrad = true; wb.requiresGrad = true;
    const v = T.conv2d(T.silu(T.conv2d(x, wa, null, 1, 1)), wb, null, 1, 1);
    const loss = T.sum(T.mul(T.add(v, x), T.add(v, x)));  // v used twice: gradients summed
    T.backward(loss);
    return [...wa.grad!.toArray().slice(0, 50), ...wb.grad!.toArray().slice(0, 50)];
  };
  const first = run();
  assert.ok(T.pooledInferenceBytes() > 0, 'the backward pass gave dead gradient buffers to the pool');
  const second = run();
  assert.deepEqual(second, first);
  const xg = T.clone(x);
  xg.requiresGrad = true;
  const [gx] = T.grad(T.sum(T.square(T.conv2d(xg, w1, null, 1, 1))), [xg]);
  assert.ok(gx !== null && gx !== undefined && Number.isFinite(gx.toArray()[0]!), 'T.grad results stay readable');
  T.releaseInferenceBuffers();
});

test('recycle: a training step keeps what keep() names, reuses the rest, and tidy inside keeps autograd', () => {
  T.releaseInferenceBuffers();
  const wa = T.clone(w1);
  wa.requiresGrad = true;
  const stepLoss = (): number => {
    wa.grad = null;
    const loss = T.sum(T.square(T.tidy(() => T.conv2d(T.silu(x), wa, null, 1, 1))));
    T.backward(loss);
    return loss.item();
  };
  const plain = stepLoss(), plainGrad = wa.grad!.toArray();
  const a = T.recycle(stepLoss, () => [wa.grad]);
  assert.equal(a, plain);
  assert.deepEqual(wa.grad!.toArray(), plainGrad, 'the gradient kept by keep() is intact');
  const pooled = T.pooledInferenceBytes();
  assert.ok(pooled > 0);
  T.recycle(stepLoss, () => [wa.grad]);
  assert.deepEqual(wa.grad!.toArray(), plainGrad);
  T.releaseInferenceBuffers();
});
