// Buffer recycling: scopes whose dead buffers go to a pool that later emptyF32 calls draw from,
// instead of to V8's garbage collector. `inference(fn)` runs fn with gradients off (like
// torch.inference_mode): a sampler calls the network 50-1000 times with the same shapes, so from
// the second call on a forward pass allocates next to nothing and V8 has no external-memory
// pressure to answer with collections (measured on W4's sampling pass: about 20 collections and
// 25-40 ms of a 300-400 ms pass). `recycle(fn, keep)` does the same with gradients on (a training
// step, keeping what keep() names), `tidy(fn)` nests a scope around a network block, and the
// autograd pass (autograd.ts) runs in a scope and gives back each gradient as soon as it is dead.
//
// What dies: every buffer emptyF32 handed out inside the scope, except those the returned value
// (a Tensor, or arrays / plain objects / Maps of them) still uses, through any view. A tensor made
// inside the scope that kept a released buffer anyway (stored in a module field or a closure) is
// poisoned: reading its data throws, so such a bug fails loudly instead of reading a buffer that
// a later pass overwrites. Scopes nest: what an inner scope returns belongs to the outer one.
// Outside every scope nothing is recorded; the pool is only drawn from (it holds dead buffers).

import { MIN_POOLED, setBufferSource, setTensorSink } from './buffer.ts';
import { Tensor, isGradEnabled, noGrad } from './tensor.ts';

/** The pool's default size limit: past it the oldest pooled buffers go to the garbage collector. */
const DEFAULT_POOL_MB = 1024;

const pool = new Map<number, Float32Array[]>();
/** The buffers in the pool now, keyed by their ArrayBuffer (a buffer is never pooled twice), in the
 *  order they were pooled: the first is the oldest, evicted first when the pool is full. */
const inPool = new Map<ArrayBufferLike, Float32Array>();
let pooledBytes = 0;
let poolLimitBytes = DEFAULT_POOL_MB * 2 ** 20;

export interface Scope {
  readonly allocs: Float32Array[];
  /** The ArrayBuffers of allocs. */
  readonly allocated: Set<ArrayBufferLike>;
  readonly tensors: Tensor[];
}

const scopes: Scope[] = [];

/** Puts a dead buffer in the pool (unless it is there already), evicting the oldest pooled buffers
 *  when it would pass the limit. Why evict rather than refuse: a pool filled by one workload (a
 *  training step's activations) would otherwise never take the buffers of the next (a sampler at
 *  another batch size), which then allocated afresh every pass (measured: the 100-digit sampling job
 *  after W4's training step ran 60 s instead of 40 s). */
function put(a: Float32Array): void {
  if (inPool.has(a.buffer) || a.length < MIN_POOLED || a.byteLength > poolLimitBytes) return;
  for (const [buffer, old] of inPool) {
    if (pooledBytes + a.byteLength <= poolLimitBytes) break;
    // Each size's list is a stack (push / pop), so its oldest buffer is at the bottom.
    const list = pool.get(old.length)!;
    list.shift();
    if (list.length === 0) pool.delete(old.length);
    inPool.delete(buffer);
    pooledBytes -= old.byteLength;
  }
  let list = pool.get(a.length);
  if (!list) pool.set(a.length, list = []);
  list.push(a);
  inPool.set(a.buffer, a);
  pooledBytes += a.byteLength;
}

// Installed for good: emptyF32 draws from the pool wherever it runs (a pooled buffer is dead, so
// any caller may have it; the pool is empty unless a scope filled it) and records what it hands
// out while a scope is open.
setBufferSource({
  take(n) {
    const a = pool.get(n)?.pop();
    if (a === undefined) return null;
    inPool.delete(a.buffer);
    pooledBytes -= a.byteLength;
    return a;
  },
  record(a) {
    const s = scopes[scopes.length - 1];
    if (s) { s.allocs.push(a); s.allocated.add(a.buffer); }
  },
});

const sink = (t: Tensor): void => { scopes[scopes.length - 1]!.tensors.push(t); };

/** Adds the ArrayBuffers of every tensor in v (a Tensor, or arrays / plain objects of them). */
function collectKept(v: unknown, keep: Set<ArrayBufferLike>, depth = 0): void {
  if (v instanceof Tensor) { keep.add(v.data.buffer); return; }
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) { for (const x of v) collectKept(x, keep, depth + 1); return; }
  if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectKept(x, keep, depth + 1);
  else if (v instanceof Map) for (const x of v.values()) collectKept(x, keep, depth + 1);
}

function released(t: Tensor): never {
  throw new Error(`tensor of shape [${t.shape.join(', ')}] was made inside T.inference() (or a backward pass) and ` +
    'kept past its end without being returned; its buffer now belongs to a later pass (return it from the inference function)');
}

function poison(t: Tensor): void {
  Object.defineProperty(t, 'data', { get() { return released(t); }, set() { released(t); }, configurable: true });
}

/** Opens a recording scope (inference(), tidy(), and the autograd pass use it). */
export function openScope(): Scope {
  const scope: Scope = { allocs: [], allocated: new Set(), tensors: [] };
  scopes.push(scope);
  if (scopes.length === 1) setTensorSink(sink);
  return scope;
}

/** Closes the innermost scope. With `out` (what it returns): its buffers not reachable from out go
 *  to the pool and the tensors still using them are poisoned; without (fn threw): nothing is freed. */
export function closeScope(scope: Scope, out?: { value: unknown }): void {
  if (scopes[scopes.length - 1] !== scope) throw new Error('recycle: scopes closed out of order');
  scopes.pop();
  if (scopes.length === 0) setTensorSink(null);
  if (!out) return;
  const keep = new Set<ArrayBufferLike>();
  collectKept(out.value, keep);
  const parent = scopes[scopes.length - 1];
  const dead = new Set<ArrayBufferLike>();
  for (const a of scope.allocs) {
    if (keep.has(a.buffer)) {
      if (parent) { parent.allocs.push(a); parent.allocated.add(a.buffer); }
      continue;
    }
    if (dead.has(a.buffer)) continue;
    dead.add(a.buffer);
    put(a);
  }
  for (const t of scope.tensors) {
    const buf = t.data.buffer;
    if (keep.has(buf)) parent?.tensors.push(t);
    else if (dead.has(buf)) poison(t);
  }
}

/** Gives the buffer of t back before the scope ends (the autograd pass does, for a gradient
 *  nothing refers to any more); only a buffer allocated inside that scope is taken. */
export function releaseEarly(scope: Scope, t: Tensor): void {
  if (t.data instanceof Float32Array && scope.allocated.has(t.data.buffer)) put(t.data);
}

/**
 * Runs fn with gradient recording off and recycles the buffers of the tensors that die inside
 * it (see the file comment). Return every tensor you need from fn; tensors made inside fn and
 * kept any other way throw when used afterwards.
 */
export function inference<T>(fn: () => T): T {
  return recycle(() => noGrad(fn));
}

/**
 * Runs fn (gradients as they are) and recycles the buffers that died in it: everything allocated
 * inside except what fn returns and what keep() returns when fn is done (a training step keeps its
 * parameters' gradients and the model's buffers). Tensors made inside and kept any other way throw
 * when used afterwards.
 */
export function recycle<T>(fn: () => T, keep?: () => unknown): T {
  const scope = openScope();
  let out: { value: [T, unknown] } | undefined;
  try {
    const v = fn();
    out = { value: [v, keep?.()] };
  } finally {
    closeScope(scope, out);
  }
  return out.value[0];
}

/**
 * Inside T.inference (a scope with gradients off): runs fn as a nested scope, so the buffers that
 * die in it are reused by what runs next while they are still in cache (a network block calls this
 * around its body). Anywhere else (no scope, or gradients on, as in a T.recycle training step) it
 * just runs fn, with autograd as it is.
 */
export function tidy<T>(fn: () => T): T {
  // inference() turns gradients off, which would cut a graph being recorded: nest only where they are off.
  return scopes.length === 0 || isGradEnabled() ? fn() : inference(fn);
}

/** Frees the pool (its buffers go to the garbage collector) and sets its size limit in MB
 *  (default 1024; 0 turns pooling off). Returns the bytes that were pooled. */
export function releaseInferenceBuffers(limitMB = DEFAULT_POOL_MB): number {
  const had = pooledBytes;
  pool.clear();
  inPool.clear();
  pooledBytes = 0;
  poolLimitBytes = limitMB * 2 ** 20;
  return had;
}

/** Bytes held by the pool now. */
export function pooledInferenceBytes(): number {
  return pooledBytes;
}
