// Reverse-mode automatic differentiation over the GradNode graph that ops record.
// backward(loss) accumulates into leaf .grad (torch.Tensor.backward); grad(outputs, inputs)
// returns gradients without touching .grad (torch.autograd.grad).

import { ShapeError, fmtShape, shapesEqual } from '../util/index.ts';
import { Tensor, noGrad } from './tensor.ts';
import { add } from './ops/elementwise.ts';
import { onesLike } from './ops/creation.ts';

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

function propagate(roots: readonly Tensor[], seeds: readonly Tensor[], wanted: ((t: Tensor) => boolean)): Map<number, Tensor> {
  const grads = new Map<number, Tensor>();
  roots.forEach((r, i) => grads.set(r.id, seeds[i]!));
  const order = topoOrder(roots);
  const result = new Map<number, Tensor>();
  noGrad(() => {
    for (const t of order) {
      const g = grads.get(t.id);
      if (!g) continue;
      if (wanted(t)) result.set(t.id, g);
      if (!t.node) continue;
      const gins = t.node.backward(g);
      t.node.inputs.forEach((inp, i) => {
        const gi = gins[i];
        if (!gi || !inp.requiresGrad) return;
        if (!shapesEqual(gi.shape, inp.shape)) {
          throw new ShapeError(`autograd: ${t.node!.op} produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
        }
        const prev = grads.get(inp.id);
        grads.set(inp.id, prev ? add(prev, gi) : gi);
      });
      if (!wanted(t)) grads.delete(t.id); // free intermediate gradients early
    }
  });
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
