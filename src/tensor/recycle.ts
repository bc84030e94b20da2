// Buffer recycling for inference: `inference(fn)` runs fn with gradients off (like
// torch.inference_mode) and, when fn returns, hands the activation buffers that died inside it
// back to a pool that the next emptyF32 calls draw from. A sampler calls the network 50-1000
// times with the same shapes, so from the second call on a forward pass allocates next to
// nothing: V8 then has no external-memory pressure to answer with garbage collections (measured
// on W4's sampling pass: about 20 collections and 25-40 ms of a 300-400 ms pass), and the reused
// buffers are already mapped.
//
// What dies: every buffer emptyF32 handed out inside the scope, except those the returned value
// (a Tensor, or arrays / plain objects of them) still uses, through any view. A tensor made inside
// the scope that kept a released buffer anyway (stored in a module field or a closure) is
// poisoned: reading its data throws, so such a bug fails loudly instead of reading a buffer that
// a later pass overwrites. Scopes nest: what an inner scope returns belongs to the outer one.
// Nothing here runs without inference(): training keeps plain allocation.

import { MIN_POOLED, setBufferSource, setTensorSink, type BufferSource } from './buffer.ts';
import { Tensor, noGrad } from './tensor.ts';

/** Pooled bytes above which released buffers are left to the garbage collector. */
const DEFAULT_POOL_MB = 1024;

const pool = new Map<number, Float32Array[]>();
let pooledBytes = 0;
let poolLimitBytes = DEFAULT_POOL_MB * 2 ** 20;

interface Scope {
  readonly allocs: Float32Array[];
  readonly tensors: Tensor[];
}

const scopes: Scope[] = [];

const source: BufferSource = {
  take(n) {
    const list = pool.get(n);
    const a = list?.pop();
    if (a === undefined) return null;
    pooledBytes -= a.byteLength;
    return a;
  },
  record(a) { scopes[scopes.length - 1]!.allocs.push(a); },
};

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
  throw new Error(`tensor of shape [${t.shape.join(', ')}] was made inside T.inference() and kept past its end ` +
    'without being returned; its buffer now belongs to a later pass (return it from the inference function)');
}

function poison(t: Tensor): void {
  Object.defineProperty(t, 'data', { get() { return released(t); }, set() { released(t); }, configurable: true });
}

/** Ends the innermost scope: its buffers not reachable from `out` go to the pool. */
function close(scope: Scope, out: unknown): void {
  const keep = new Set<ArrayBufferLike>();
  collectKept(out, keep);
  const parent = scopes[scopes.length - 1];
  const dead = new Set<ArrayBufferLike>();
  for (const a of scope.allocs) {
    if (keep.has(a.buffer)) { parent?.allocs.push(a); continue; }
    if (dead.has(a.buffer)) continue;
    dead.add(a.buffer);
    if (pooledBytes + a.byteLength > poolLimitBytes || a.length < MIN_POOLED) continue;
    let list = pool.get(a.length);
    if (!list) pool.set(a.length, list = []);
    list.push(a);
    pooledBytes += a.byteLength;
  }
  for (const t of scope.tensors) {
    const buf = t.data.buffer;
    if (dead.has(buf)) poison(t);
    else if (parent && keep.has(buf)) parent.tensors.push(t);
  }
}

/**
 * Runs fn with gradient recording off and recycles the buffers of the tensors that die inside
 * it (see the file comment). Return every tensor you need from fn; tensors made inside fn and
 * kept any other way throw when used afterwards.
 */
export function inference<T>(fn: () => T): T {
  const scope: Scope = { allocs: [], tensors: [] };
  scopes.push(scope);
  if (scopes.length === 1) { setBufferSource(source); setTensorSink(sink); }
  let out: T;
  try {
    out = noGrad(fn);
  } finally {
    scopes.pop();
    if (scopes.length === 0) { setBufferSource(null); setTensorSink(null); }
  }
  close(scope, out);
  return out;
}

/**
 * Inside T.inference: runs fn as a nested scope, so the buffers that die in it are reused by what
 * runs next while they are still in cache (a network block calls this around its body). Outside
 * T.inference it just runs fn, with autograd as it is.
 */
export function tidy<T>(fn: () => T): T {
  return scopes.length === 0 ? fn() : inference(fn);
}

/** Frees the pool (its buffers go to the garbage collector) and sets its size limit in MB
 *  (default 1024; 0 turns pooling off). Returns the bytes that were pooled. */
export function releaseInferenceBuffers(limitMB = DEFAULT_POOL_MB): number {
  const had = pooledBytes;
  pool.clear();
  pooledBytes = 0;
  poolLimitBytes = limitMB * 2 ** 20;
  return had;
}

/** Bytes held by the pool now. */
export function pooledInferenceBytes(): number {
  return pooledBytes;
}
