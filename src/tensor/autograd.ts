// Reverse-mode automatic differentiation over the GradNode graph that ops record.
// backward(loss) accumulates into leaf .grad (torch.Tensor.backward); grad(outputs, inputs)
// returns gradients without touching .grad (torch.autograd.grad).

import { ShapeError, fmtShape, shapesEqual } from '../util/index.ts';
import { Tensor, noGrad } from './tensor.ts';
import { add } from './ops/elementwise.ts';
import { onesLike } from './ops/creation.ts';
import { closeScope, openScope, releaseEarly } from './recycle.ts';

function topoOrder(roots: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: networks are deep enough to overflow recursion in long sampling graphs.
  const stack: [Tensor, number][] = roots.map((r) => [r, 0]);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0 && seen.has(t.id)) { stack.pop(); continue; }
    if (i === 0) seen.add(t.id);
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i]!;
      if (child.requiresGrad && !seen.has(child.id)) stack.push([child, 0]);
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse(); // outputs first
}

/**
 * Runs the backward pass from roots (seeded with seeds) and returns the gradients of the tensors
 * `wanted` picks. The pass runs in a recycling scope (recycle.ts): a gradient buffer made here
 * that no pending gradient, result or other view refers to any more goes back to the pool at
 * once, for the next layer's gradients (and the next step's activations) to reuse; what the pass
 * returns is kept.
 */
function propagate(roots: readonly Tensor[], seeds: readonly Tensor[], wanted: ((t: Tensor) => boolean)): Map<number, Tensor> {
  const grads = new Map<number, Tensor>();
  const result = new Map<number, Tensor>();
  // How many entries of grads / result use each buffer (a gradient may be a view of another).
  const refs = new Map<ArrayBufferLike, number>();
  const hold = (t: Tensor): void => { refs.set(t.data.buffer, (refs.get(t.data.buffer) ?? 0) + 1); };
  const drop = (t: Tensor): void => {
    const n = (refs.get(t.data.buffer) ?? 0) - 1;
    if (n > 0) refs.set(t.data.buffer, n);
    else { refs.delete(t.data.buffer); releaseEarly(scope, t); }
  };
  const scope = openScope();
  let done: { value: unknown } | undefined;
  try {
    roots.forEach((r, i) => { grads.set(r.id, seeds[i]!); hold(seeds[i]!); });
    const order = topoOrder(roots);
    noGrad(() => {
      for (const t of order) {
        const g = grads.get(t.id);
        if (!g) continue;
        if (wanted(t)) { result.set(t.id, g); hold(g); }
        if (!t.node) continue;
        const gins = t.node.backward(g);
        t.node.inputs.forEach((inp, i) => {
          const gi = gins[i];
          if (!gi || !inp.requiresGrad) return;
          if (!shapesEqual(gi.shape, inp.shape)) {
            throw new ShapeError(`autograd: ${t.node!.op} produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
          }
          const prev = grads.get(inp.id);
          const sum = prev ? add(prev, gi) : gi;
          grads.set(inp.id, sum);
          hold(sum);
          if (prev) {
            drop(prev);
            if (!refs.has(gi.data.buffer)) releaseEarly(scope, gi); // added in, used nowhere else
          }
        });
        if (!wanted(t)) { grads.delete(t.id); drop(g); } // free intermediate gradients early
      }
    });
    done = { value: [...result.values()] };
  } finally {
    closeScope(scope, done);
  }
  return result;
}

/** Backpropagate from a scalar (or with an explicit output gradient) into leaf .grad fields. */
export function backward(root: Tensor, gradOutput?: Tensor): void {
  if (!root.requiresGrad) throw new ShapeError('backward: the tensor does not require grad (no parameter or input in its graph requires it)');
  if (!gradOutput && root.size !== 1) {
    throw new ShapeError(`backward: a gradient output is needed for a non-scalar of shape ${fmtShape(root.shape)}`);
  }
  const seed = gradOutput ?? onesLike(root);
  const leaves = propagate([root], [seed], (t) => t.node === null);
  noGrad(() => {
    for (const t of topoOrder([root])) {
      if (t.node !== null) continue;
      const g = leaves.get(t.id);
      if (!g) continue;
      t.grad = t.grad ? add(t.grad, g) : g.detach();
    }
  });
}

/** Gradients of sum(outputs_i * gradOutputs_i) with respect to inputs; null where unreachable. */
export function grad(outputs: Tensor | readonly Tensor[], inputs: readonly Tensor[],
  gradOutputs?: readonly Tensor[]): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? (outputs as readonly Tensor[]) : [outputs as Tensor];
  const seeds = gradOutputs ?? outs.map((o) => onesLike(o));
  const ids = new Set(inputs.map((t) => t.id));
  const got = propagate(outs, seeds, (t) => ids.has(t.id));
  return inputs.map((t) => got.get(t.id) ?? null);
}
