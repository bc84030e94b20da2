// The Kernels contract: what a compute backend must provide.
//
// Backends see flat Float32Array buffers plus shapes and strides, never a Tensor (ARCHITECTURE
// rule 6). Every buffer is C-contiguous unless strides are passed explicitly. `out` buffers are
// allocated by the caller with the right length and are fully overwritten (never accumulated
// into) unless a kernel says otherwise.
//
// `reference/` implements every kernel in plain TypeScript and is the specification.
// `native/` (the oneDNN addon) implements a subset; dispatch (tensor/dispatch.ts) takes the
// native kernel when present and falls back to the reference one otherwise.

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'tanh' | 'sigmoid' | 'silu' | 'gelu'
  | 'relu' | 'softplus' | 'sin' | 'cos' | 'sign' | 'square' | 'reciprocal' | 'erf';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min' | 'gt' | 'lt' | 'ge' | 'le' | 'eq';

/** 2-D convolution geometry, PyTorch semantics (NCHW data, OIHW weights). Padding is
 *  asymmetric: [top, bottom, left, right]. groups is always 1 for the networks of the seeds. */
export interface Conv2dGeom {
  n: number; cin: number; h: number; w: number; // input [n, cin, h, w]
  cout: number; kh: number; kw: number;          // weight [cout, cin, kh, kw]
  strideH: number; strideW: number;
  padT: number; padB: number; padL: number; padR: number;
  oh: number; ow: number;                        // output [n, cout, oh, ow]
}

export interface Kernels {
  readonly name: string;

  // ---- elementwise (contiguous, same length) --------------------------------------------
  unary(op: UnaryOp, x: Float32Array, out: Float32Array): void;
  /** Gradient of a unary op: out = gy * d op(x)/dx (x is the forward input, y its output). */
  unaryGrad(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, out: Float32Array): void;
  /** Broadcasting binary op. aStrides/bStrides are strides into a/b already broadcast to
   *  outShape (stride 0 on broadcast axes). */
  binary(op: BinaryOp, a: Float32Array, aStrides: readonly number[], b: Float32Array,
    bStrides: readonly number[], out: Float32Array, outShape: readonly number[]): void;
  /** out = x * scale + shift (scalar), used for scalar arithmetic without a broadcast. */
  affine(x: Float32Array, scale: number, shift: number, out: Float32Array): void;
  powScalar(x: Float32Array, p: number, out: Float32Array): void;
  clamp(x: Float32Array, lo: number, hi: number, out: Float32Array): void;
  where(cond: Float32Array, cStrides: readonly number[], a: Float32Array, aStrides: readonly number[],
    b: Float32Array, bStrides: readonly number[], out: Float32Array, outShape: readonly number[]): void;

  // ---- movement ---------------------------------------------------------------------------
  /** Gather a strided view into a contiguous buffer: out[i] = src[offset + sum(idx_d * strides_d)]. */
  stridedCopy(src: Float32Array, offset: number, strides: readonly number[], shape: readonly number[],
    out: Float32Array): void;
  /** Scatter-add a contiguous buffer into a strided view of dst (dst += over the view). */
  stridedAccumulate(src: Float32Array, dst: Float32Array, offset: number, strides: readonly number[],
    shape: readonly number[]): void;

  // ---- reductions over one axis of [outer, axis, inner] -------------------------------------
  reduceSum(x: Float32Array, outer: number, axis: number, inner: number, out: Float32Array): void;
  /** Max over the axis; argmax (as float indices) into `idx` when given. */
  reduceMax(x: Float32Array, outer: number, axis: number, inner: number, out: Float32Array,
    idx?: Float32Array): void;
  /** Softmax over the last axis of [rows, cols]. log=true gives log-softmax. */
  softmax(x: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void;
  softmaxGrad(y: Float32Array, gy: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void;

  // ---- matmul -----------------------------------------------------------------------------
  /** Batched C[b] = op(A[b]) @ op(B[b]); A is [batch, M, K] (or [batch, K, M] if transA),
   *  B is [batch, K, N] (or [batch, N, K] if transB), C is [batch, M, N]. aBatchStride /
   *  bBatchStride may be 0 to broadcast one operand over the batch. With accumulate, C += AB. */
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, m: number, k: number,
    n: number, transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number,
    accumulate: boolean): void;

  // ---- convolution ------------------------------------------------------------------------
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, g: Conv2dGeom, out: Float32Array): void;
  /** Gradient w.r.t. the input: gx [n,cin,h,w] from gy [n,cout,oh,ow]. */
  conv2dBackwardInput(gy: Float32Array, w: Float32Array, g: Conv2dGeom, gx: Float32Array): void;
  /** Gradient w.r.t. weight (and bias when gb is given). */
  conv2dBackwardWeight(gy: Float32Array, x: Float32Array, g: Conv2dGeom, gw: Float32Array,
    gb: Float32Array | null): void;

  // ---- pooling / resampling (NCHW) ----------------------------------------------------------
  avgPool2d(x: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
    out: Float32Array): void;
  avgPool2dGrad(gy: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
    gx: Float32Array): void;
  /** Max pool; writes the flat input index of each maximum into idx. */
  maxPool2d(x: Float32Array, n: number, c: number, h: number, w: number, k: number, s: number,
    out: Float32Array, idx: Int32Array): void;
  upsampleNearest(x: Float32Array, nc: number, h: number, w: number, sh: number, sw: number, out: Float32Array): void;
  upsampleNearestGrad(gy: Float32Array, nc: number, h: number, w: number, sh: number, sw: number, gx: Float32Array): void;

  // ---- normalisation ------------------------------------------------------------------------
  /** GroupNorm over x [n, c, hw]; writes per-(n,group) mean and rstd for the backward pass. */
  groupNorm(x: Float32Array, n: number, c: number, hw: number, groups: number, eps: number,
    gamma: Float32Array | null, beta: Float32Array | null, out: Float32Array,
    mean: Float32Array, rstd: Float32Array): void;
  groupNormGrad(gy: Float32Array, x: Float32Array, n: number, c: number, hw: number, groups: number,
    gamma: Float32Array | null, mean: Float32Array, rstd: Float32Array, gx: Float32Array,
    ggamma: Float32Array | null, gbeta: Float32Array | null): void;
  /** out = silu(groupNorm(x)) in one pass (the GroupNorm32 + SiLU pair of every UNet block);
   *  mean and rstd as groupNorm writes them. */
  groupNormSilu(x: Float32Array, n: number, c: number, hw: number, groups: number, eps: number,
    gamma: Float32Array | null, beta: Float32Array | null, out: Float32Array,
    mean: Float32Array, rstd: Float32Array): void;
  /** Gradient of groupNormSilu; the pre-activation is recomputed from x, the statistics, gamma
   *  and beta (nothing else is kept from the forward pass). */
  groupNormSiluGrad(gy: Float32Array, x: Float32Array, n: number, c: number, hw: number, groups: number,
    gamma: Float32Array | null, beta: Float32Array | null, mean: Float32Array, rstd: Float32Array,
    gx: Float32Array, ggamma: Float32Array | null, gbeta: Float32Array | null): void;
  /** LayerNorm over the last `d` elements of x [rows, d]. */
  layerNorm(x: Float32Array, rows: number, d: number, eps: number, gamma: Float32Array | null,
    beta: Float32Array | null, out: Float32Array, mean: Float32Array, rstd: Float32Array): void;
  layerNormGrad(gy: Float32Array, x: Float32Array, rows: number, d: number, gamma: Float32Array | null,
    mean: Float32Array, rstd: Float32Array, gx: Float32Array, ggamma: Float32Array | null,
    gbeta: Float32Array | null): void;

  // ---- attention ----------------------------------------------------------------------------
  /** Scaled dot-product attention for q [b, sq, d], k [b, sk, d], v [b, sk, dv] -> out [b, sq, dv].
   *  probs [b, sq, sk] receives softmax(q k^T * scale + mask) for the backward pass. mask, when
   *  given, is additive [b or 1, sq or 1, sk] with its strides (0 on broadcast axes). */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, b: number, sq: number, sk: number,
    d: number, dv: number, scale: number, mask: Float32Array | null, maskStrides: readonly number[] | null,
    out: Float32Array, probs: Float32Array): void;

  // ---- optimiser ----------------------------------------------------------------------------
  /** One AdamW step in place (PyTorch semantics: decoupled weight decay p -= lr*wd*p first;
   *  bias corrections 1-beta^step). */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, step: number): void;
}

/** The subset a partial backend (native) may provide. */
export type PartialKernels = Partial<Omit<Kernels, 'name'>> & { readonly name: string };
