// nn/: AdamW / Adam against the torch.optim update written out in float64, the LitEma rules
// (decay warm-up, shadow update, ema_scope swap and restore, state keys), and state dicts
// (official key paths, registration order, strict and non-strict loading, clear errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StateDictError } from '../../src/util/index.ts';
import { Tensor, tensor } from '../../src/tensor/index.ts';
import { Adam, AdamW, LitEma, Linear, Module, Sequential } from '../../src/nn/index.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

/** torch.optim.AdamW / Adam for one parameter over a list of gradients, in float64. */
function reference(p0: number[], grads: number[][], o: { lr: number; b1: number; b2: number; eps: number; wd: number; decoupled: boolean }): number[] {
  const p = [...p0], m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((g0, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      let g = g0[i]!;
      if (o.decoupled) p[i]! *= 1 - o.lr * o.wd; else g += o.wd * p[i]!;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g * g;
      const mh = m[i]! / (1 - o.b1 ** t), vh = v[i]! / (1 - o.b2 ** t);
      p[i]! -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  return p;
}

const GRADS = [[0.5, -1, 2, 0.01], [0.4, -0.8, -1, 0.02], [-0.3, 0.1, 0.5, 0.03]];
const P0 = [1, -2, 0.5, 3];

function run(opt: AdamW, p: Tensor, grads: number[][]): void {
  for (const g of grads) {
    p.grad = tensor(Float32Array.from(g));
    opt.step();
  }
}

test('AdamW and Adam follow torch.optim (decoupled vs L2 weight decay, bias correction)', () => {
  for (const decoupled of [true, false]) {
    const p = tensor(Float32Array.from(P0));
    const opt = decoupled ? new AdamW([p], { lr: 0.1, weightDecay: 0.05 }) : new Adam([p], { lr: 0.1, weightDecay: 0.05 });
    run(opt, p, GRADS);
    close(p.f32, reference(P0, GRADS, { lr: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05, decoupled }), 1e-5, decoupled ? 'AdamW' : 'Adam');
  }
  assert.equal(new AdamW([]).weightDecay, 0.01); // torch.optim.AdamW default
  assert.equal(new Adam([]).weightDecay, 0);
});

test('AdamW state dict: a restored optimiser continues exactly; a wrong state is refused', () => {
  const a = tensor(Float32Array.from(P0));
  const full = new AdamW([a], { lr: 0.05 });
  run(full, a, GRADS);
  const b = tensor(Float32Array.from(P0));
  const first = new AdamW([b], { lr: 0.05 });
  run(first, b, GRADS.slice(0, 1));
  const resumed = new AdamW([b], { lr: 0.05 });
  resumed.loadStateDict(first.stateDict());
  run(resumed, b, GRADS.slice(1));
  assert.deepEqual(Array.from(b.f32), Array.from(a.f32));
  assert.throws(() => new AdamW([tensor([1, 2])]).loadStateDict(first.stateDict()), /parameter 0 has 4 values, expected 2/);
});

class Net extends Module {
  readonly a: Linear;
  readonly seq: Sequential;
  constructor() {
    super();
    this.a = this.child('a', new Linear(3, 2));
    this.seq = this.child('seq', new Sequential(new Linear(2, 2, false)));
    this.buffer('running', new Tensor(Float32Array.of(1, 2), [2]));
    this.buffer('scratch', new Tensor(Float32Array.of(0), [1]), false);
  }
}

test('state dict: official key paths in torch order (own parameters, own buffers, then children), persistent buffers only; strict and non-strict loading', () => {
  const n = new Net();
  assert.deepEqual([...n.stateDict().keys()], ['running', 'a.weight', 'a.bias', 'seq.0.weight']);
  const m = new Net();
  m.loadStateDict(n.stateDict());
  assert.deepEqual(Array.from(m.a.weight.f32), Array.from(n.a.weight.f32));
  // loading copies values: later changes to the source do not leak in
  n.a.weight.f32[0] = 42;
  assert.notEqual(m.a.weight.f32[0], 42);
  const partial = new Map(n.stateDict());
  partial.delete('seq.0.weight');
  partial.set('extra', tensor([1]));
  assert.throws(() => m.loadStateDict(partial, true, 'ckpt.safetensors'),
    (e: Error) => e instanceof StateDictError && /ckpt.safetensors: keys do not match Net/.test(e.message) && /missing: seq\.0\.weight/.test(e.message) && /unexpected: extra/.test(e.message));
  const r = m.loadStateDict(partial, false);
  assert.deepEqual(r, { missing: ['seq.0.weight'], unexpected: ['extra'] });
  const wrong = new Map(n.stateDict());
  wrong.set('a.bias', tensor([1, 2, 3]));
  assert.throws(() => m.loadStateDict(wrong), /a\.bias: checkpoint \[3\] vs model \[2\]/);
});

test('LitEma: decay warm-up min(decay, (1+n)/(10+n)), shadow update, ema_scope swaps and restores, official keys', () => {
  const net = new Linear(2, 1, false);
  net.weight.f32.set([1, 1]);
  const ema = new LitEma(net, 0.999);
  assert.deepEqual([...ema.stateDict().keys()], ['decay', 'num_updates', 'weight']);
  net.weight.f32.set([3, -1]);
  ema.update(); // n = 1: decay = min(0.999, 2/11)
  const d = 2 / 11;
  const shadow = [1 - (1 - d) * (1 - 3), 1 - (1 - d) * (1 - -1)];
  close(ema.getBuffer('weight').f32, shadow, 1e-6, 'shadow');
  assert.equal(ema.getBuffer('num_updates').item(), 1);
  const inside = ema.scope(() => Array.from(net.weight.f32));
  close(inside, shadow, 1e-6, 'weights inside ema_scope');
  assert.deepEqual(Array.from(net.weight.f32), [3, -1], 'restored after the scope');
  assert.throws(() => ema.restore(), /without store/);
});
