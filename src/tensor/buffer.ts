// Output buffers for kernels that overwrite every element (the Kernels contract's default):
// large ones are allocated without zero-filling. `new Float32Array(n)` is calloc, and zeroing
// the ~1 GB of activations and gradients a UNet training step allocates costs about a tenth of
// the step on one thread (measured: 0.85 ms user + 0.26 ms system per 8 MB buffer, against
// 0.14 ms unfilled). Not for buffers that are accumulated into (stridedAccumulate, matmul with
// accumulate, += loops): those must start from zeros.
//
// Inside `inference(fn)` (recycle.ts) these buffers also come from, and go back to, a pool: a
// network forward pass then reuses the previous pass's activations instead of allocating fresh
// ones, which is what keeps V8's garbage collector out of a sampling loop.

const MIN_UNFILLED = 1 << 14; // elements; small buffers come from V8's heap either way

type AllocUnsafe = (bytes: number) => { buffer: ArrayBufferLike; byteOffset: number };
// Node's Buffer.allocUnsafeSlow (no pool, not zeroed); absent outside Node (the browser).
const allocUnsafe: AllocUnsafe | null = (() => {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow?: AllocUnsafe } }).Buffer;
  return B && typeof B.allocUnsafeSlow === 'function' ? B.allocUnsafeSlow.bind(B) : null;
})();

/** Where emptyF32 takes and records buffers while an inference scope is open (recycle.ts). */
export interface BufferSource {
  /** A pooled buffer of exactly n elements, or null. */
  take(n: number): Float32Array | null;
  /** A buffer handed out inside the scope (pooled or fresh). */
  record(a: Float32Array): void;
}

let source: BufferSource | null = null;

/** Installs (or with null removes) the scope's buffer source; returns the previous one. */
export function setBufferSource(s: BufferSource | null): BufferSource | null {
  const prev = source;
  source = s;
  return prev;
}

let tensorSink: ((t: object) => void) | null = null;

/** Installs (or with null removes) the callback that sees every Tensor made in a scope. */
export function setTensorSink<T extends object>(f: ((t: T) => void) | null): void {
  tensorSink = f as ((t: object) => void) | null;
}

/** Called by the Tensor constructor: tells an open inference scope about a new tensor. */
export function noteTensor(t: object): void {
  if (tensorSink !== null) tensorSink(t);
}

/** A Float32Array of n elements whose contents are unspecified: the caller's kernel writes all. */
export function emptyF32(n: number): Float32Array {
  if (n < MIN_UNFILLED) return new Float32Array(n);
  let a = source?.take(n) ?? null;
  if (a === null) {
    if (allocUnsafe === null) a = new Float32Array(n);
    else {
      const b = allocUnsafe(n * 4);
      a = new Float32Array(b.buffer as ArrayBuffer, b.byteOffset, n);
    }
  }
  source?.record(a);
  return a;
}

/** Smallest buffer (elements) worth pooling: below it emptyF32 uses V8's heap. */
export const MIN_POOLED = MIN_UNFILLED;
