// Output buffers for kernels that overwrite every element (the Kernels contract's default):
// large ones are allocated without zero-filling. `new Float32Array(n)` is calloc, and zeroing
// the ~1 GB of activations and gradients a UNet training step allocates costs about a tenth of
// the step on one thread (measured: 0.85 ms user + 0.26 ms system per 8 MB buffer, against
// 0.14 ms unfilled). Not for buffers that are accumulated into (stridedAccumulate, matmul with
// accumulate, += loops): those must start from zeros.

const MIN_UNFILLED = 1 << 14; // elements; small buffers come from V8's heap either way

type AllocUnsafe = (bytes: number) => { buffer: ArrayBufferLike; byteOffset: number };
// Node's Buffer.allocUnsafeSlow (no pool, not zeroed); absent outside Node (the browser).
const allocUnsafe: AllocUnsafe | null = (() => {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow?: AllocUnsafe } }).Buffer;
  return B && typeof B.allocUnsafeSlow === 'function' ? B.allocUnsafeSlow.bind(B) : null;
})();

/** A Float32Array of n elements whose contents are unspecified: the caller's kernel writes all. */
export function emptyF32(n: number): Float32Array {
  if (n < MIN_UNFILLED || allocUnsafe === null) return new Float32Array(n);
  const b = allocUnsafe(n * 4);
  return new Float32Array(b.buffer as ArrayBuffer, b.byteOffset, n);
}
