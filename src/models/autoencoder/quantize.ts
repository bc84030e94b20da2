// `VectorQuantizer2` of taming/modules/vqvae/quantize.py (taming-transformers 3ba01b2), the
// codebook of the VQ first stages (ldm.models.autoencoder.VQModel imports it as VectorQuantizer):
// nearest codebook entry by squared distance, the commitment / codebook loss with the official
// `legacy` beta placement, the straight-through estimator, and the optional index remapping
// (`remap`, `unknown_index`). Not here: reading the remap `.npy` file (io/ resolves a path to the
// list of used indices before the constructor runs), the Gumbel and EMA quantizers.
//
// Official facts kept:
//  - distances d = sum(z^2, 1, keepdim) + sum(e^2, 1) - 2 * z @ e^T in float32, argmin takes the
//    first minimum; z_q = embedding(argmin);
//  - legacy=True (the default, and what every VQModel builds): loss = mean((z_q.detach() - z)^2)
//    + beta * mean((z_q - z.detach())^2), i.e. beta weights the CODEBOOK term (the "bug" the
//    comment mentions); legacy=False puts beta on the commitment term;
//  - straight-through: z_q = z + (z_q - z).detach(), so d z_q / d z is the identity and the
//    codebook gets gradients only through the loss;
//  - the returned indices are flat [N*h*w] (int64); with remap they are [N*h*w, 1]; with
//    sane_index_shape [N, h, w];
//  - remap: `used` (a registered buffer) lists the codebook rows kept; an index is replaced by its
//    position in `used`, and one not in `used` by `unknown_index`: "random" (torch.randint(0,
//    re_embed) per unknown, the global RNG), "extra" (= len(used), and re_embed grows by one) or a
//    fixed integer;
//  - perplexity and min_encodings are returned as None.

import { ConfigError, F, Generator, field, ShapeError, checkKwargs, fmtShape, kwargs, readOptions, required, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { Embedding, Module, initGenerator, uniform } from '../../nn/index.ts';

export type UnknownIndex = 'random' | 'extra' | number;

export interface VectorQuantizer2Options {
  n_e: number;
  e_dim: number;
  beta: number;
  /** The used codebook rows (the content of the official `.npy` file), or its path when io/ has
   *  not resolved it yet (then the constructor stops with an error). */
  remap?: readonly number[] | Tensor | string | null;
  unknown_index?: UnknownIndex;
  sane_index_shape?: boolean;
  legacy?: boolean;
}

/** `remap`: the used codes as a list (io/ reads a config's .npy path into one) or an int tensor. */
export const REMAP_FIELD = field('a list of integers (the used codes), an int tensor or a .npy path', (v): v is number[] | Tensor | string =>
  (Array.isArray(v) && v.every((e) => Number.isInteger(e))) || v instanceof Tensor || typeof v === 'string');

/** The VectorQuantizer2 kwargs as a config gives them (readOptions). */
export const VECTOR_QUANTIZER2_SCHEMA: Schema<VectorQuantizer2Options> = {
  n_e: required(F.int), e_dim: required(F.int), beta: required(F.num),
  remap: REMAP_FIELD,
  unknown_index: F.either(F.oneOf('random', 'extra'), F.int, "'random', 'extra' or an integer"),
  sane_index_shape: F.bool, legacy: F.bool,
};
export const VECTOR_QUANTIZER2_KEYS = schemaKeys(VECTOR_QUANTIZER2_SCHEMA);

export interface QuantizeOptions {
  /** The draws for unknown indices under unknown_index "random": a Generator (torch's global RNG
   *  by default: the init generator) or the drawn values in order. */
  unknownDraw?: Generator | Tensor;
}

/** `(z_q, loss, (perplexity, min_encodings, min_encoding_indices))`. */
export interface QuantizeResult {
  /** [N, C, h, w], straight-through (gradient to z is the identity) */
  zQ: Tensor;
  /** 0-d: codebook + commitment loss */
  loss: Tensor;
  perplexity: null;
  minEncodings: null;
  /** int64: [N*h*w], [N*h*w, 1] with remap, [N, h, w] with sane_index_shape */
  indices: Tensor;
}

export class VectorQuantizer2 extends Module {
  readonly nE: number;
  readonly eDim: number;
  readonly beta: number;
  readonly legacy: boolean;
  readonly saneIndexShape: boolean;
  readonly embedding: Embedding;
  /** null without remap */
  readonly used: Tensor | null;
  /** the number of index values after remapping (n_e without remap) */
  readonly reEmbed: number;
  readonly unknownIndex: UnknownIndex;

  constructor(opts: VectorQuantizer2Options) {
    super();
    const O = 'VectorQuantizer2', p = kwargs(O, opts).params;
    checkKwargs(O, p, VECTOR_QUANTIZER2_KEYS);
    this.nE = kwargs(O, p).posInt('n_e');
    this.eDim = kwargs(O, p).posInt('e_dim');
    const beta = p['beta'];
    if (typeof beta !== 'number' || !Number.isFinite(beta)) throw new ConfigError(`${O}: 'beta' must be a number, got ${JSON.stringify(beta)}`);
    this.beta = beta;
    const legacy = p['legacy'] ?? true, sane = p['sane_index_shape'] ?? false;
    if (typeof legacy !== 'boolean') throw new ConfigError(`${O}: 'legacy' must be a boolean, got ${JSON.stringify(legacy)}`);
    if (typeof sane !== 'boolean') throw new ConfigError(`${O}: 'sane_index_shape' must be a boolean, got ${JSON.stringify(sane)}`);
    this.legacy = legacy;
    this.saneIndexShape = sane;
    // nn.Embedding(n_e, e_dim), then weight.data.uniform_(-1/n_e, 1/n_e)
    this.embedding = this.child('embedding', new Embedding(this.nE, this.eDim));
    this.embedding.weight.data = uniform([this.nE, this.eDim], 1 / this.nE).f32;

    const remap = p['remap'] ?? null;
    if (remap === null) {
      this.used = null;
      this.reEmbed = this.nE;
      this.unknownIndex = 'random';
      return;
    }
    if (typeof remap === 'string') {
      throw new ConfigError(`${O}: remap '${remap}' is a .npy path; models do no file I/O: build the config through io (buildModel reads the file) or pass the used indices as a list`);
    }
    const vals = remap instanceof Tensor ? Array.from(remap.data) : [...(remap as readonly unknown[])];
    if (vals.length === 0 || !vals.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < this.nE)) {
      throw new ConfigError(`${O}: remap must list used codebook indices (integers in [0, ${this.nE})), got ${JSON.stringify(vals.slice(0, 8))}${vals.length > 8 ? '…' : ''}`);
    }
    this.used = this.buffer('used', new Tensor(Float64Array.from(vals as number[]), [vals.length], 'int64'));
    let reEmbed = vals.length;
    const ui = p['unknown_index'] ?? 'random';
    let unknown: UnknownIndex;
    if (ui === 'extra') {
      unknown = reEmbed;
      reEmbed += 1;
    } else if (ui === 'random' || (typeof ui === 'number' && Number.isInteger(ui))) {
      unknown = ui;
    } else {
      throw new ConfigError(`${O}: unknown_index must be "random", "extra" or an integer, got ${JSON.stringify(ui)}`);
    }
    this.reEmbed = reEmbed;
    this.unknownIndex = unknown;
  }

  /** `remap_to_used`: inds [N, L] (int64) -> positions in `used`; unknown ones per unknown_index. */
  remapToUsed(inds: Tensor, draw: Generator | Tensor = initGenerator()): Tensor {
    const used = this.requireUsed('remap_to_used');
    if (inds.ndim < 2) throw new ShapeError(`VectorQuantizer2.remap_to_used: indices ${fmtShape(inds.shape)} need a batch axis`);
    const u = used.data, src = inds.data;
    const out = new Float64Array(src.length);
    const unknownAt: number[] = [];
    for (let i = 0; i < src.length; i++) {
      // match = (inds[:, :, None] == used[None, None, :]); new = match.argmax(-1): the first match, 0 when none
      let pos = -1;
      for (let j = 0; j < u.length; j++) if (u[j] === src[i]) { pos = j; break; }
      if (pos < 0) unknownAt.push(i);
      out[i] = pos < 0 ? 0 : pos;
    }
    if (unknownAt.length > 0) {
      if (this.unknownIndex === 'random') {
        // new[unknown] = torch.randint(0, re_embed, size=new[unknown].shape): row-major order
        let drawn: ArrayLike<number>;
        if (draw instanceof Generator) drawn = draw.randint(0, this.reEmbed, unknownAt.length);
        else {
          if (draw.size !== unknownAt.length) throw new ShapeError(`VectorQuantizer2.remap_to_used: ${draw.size} drawn values given for ${unknownAt.length} unknown indices`);
          drawn = draw.data;
        }
        unknownAt.forEach((i, k) => { out[i] = drawn[k]!; });
      } else {
        for (const i of unknownAt) out[i] = this.unknownIndex as number;
      }
    }
    return new Tensor(out, inds.shape, 'int64');
  }

  /** `unmap_to_all`: remapped indices [N, L] -> codebook rows (the extra token maps to used[0]). */
  unmapToAll(inds: Tensor): Tensor {
    const used = this.requireUsed('unmap_to_all');
    if (inds.ndim < 2) throw new ShapeError(`VectorQuantizer2.unmap_to_all: indices ${fmtShape(inds.shape)} need a batch axis`);
    const u = used.data, n = u.length;
    const out = new Float64Array(inds.size);
    for (let i = 0; i < inds.size; i++) {
      let v = inds.data[i]!;
      if (this.reEmbed > n && v >= n) v = 0; // extra token: "simply set to zero"
      if (!Number.isInteger(v) || v < 0 || v >= n) throw new ShapeError(`VectorQuantizer2.unmap_to_all: index ${v} out of range for ${n} used entries`);
      out[i] = u[v]!;
    }
    return new Tensor(out, inds.shape, 'int64');
  }

  private requireUsed(what: string): Tensor {
    if (!this.used) throw new ConfigError(`VectorQuantizer2.${what}: the quantizer was built without remap`);
    return this.used;
  }

  /** The indices of the nearest codebook rows of z [N, C, h, w] as [N*h*w] (int64), and the
   *  flattened channels-last z [N*h*w, C]. */
  nearest(z: Tensor): { indices: Tensor; zFlat: Tensor; zNhwc: Tensor } {
    if (z.ndim !== 4 || z.shape[1] !== this.eDim) throw new ShapeError(`VectorQuantizer2: input ${fmtShape(z.shape)} is not [N, ${this.eDim}, h, w] (e_dim ${this.eDim})`);
    const zNhwc = T.permute(z, [0, 2, 3, 1]); // [N, h, w, C]
    const zFlat = T.reshape(zNhwc, [-1, this.eDim]); // [M, C]
    const w = this.embedding.weight; // [n_e, C]
    const d = T.noGrad(() => T.sub(
      T.add(T.sum(T.square(zFlat), 1, true), T.sum(T.square(w), 1)), // [M, 1] + [n_e]
      T.mul(T.matmul(zFlat, T.transpose(w, 0, 1)), 2), // [M, n_e]
    ));
    const indices = T.max(T.neg(d), 1).indices; // argmin: [M]
    return { indices, zFlat, zNhwc };
  }

  /** `forward(z)`: z [N, C, h, w] -> z_q, loss, indices. */
  forward(z: Tensor, opts: QuantizeOptions = {}): QuantizeResult {
    const { indices: flat, zNhwc } = this.nearest(z);
    const zq = T.reshape(this.embedding.forward(flat), zNhwc.shape); // [N, h, w, C]
    const codebook = T.mean(T.square(T.sub(zq, zNhwc.detach()))); // moves the codebook
    const commitment = T.mean(T.square(T.sub(zq.detach(), zNhwc))); // moves the encoder
    const loss = this.legacy ? T.add(commitment, T.mul(codebook, this.beta)) : T.add(T.mul(commitment, this.beta), codebook);
    const st = T.add(zNhwc, T.sub(zq, zNhwc).detach()); // straight-through
    const zQ = T.permute(st, [0, 3, 1, 2]); // [N, C, h, w]
    const [n, , h, w] = z.shape as [number, number, number, number];
    let indices = flat;
    if (this.used) {
      indices = this.remapToUsed(T.reshape(flat, [n, -1]), opts.unknownDraw ?? initGenerator());
      indices = T.reshape(indices, [-1, 1]);
    }
    if (this.saneIndexShape) indices = T.reshape(indices, [n, h, w]);
    return { zQ, loss, perplexity: null, minEncodings: null, indices };
  }

  /** `get_codebook_entry(indices, shape)`: rows of the codebook; with shape [N, h, w, C] the
   *  result is [N, C, h, w], else [..., C]. */
  getCodebookEntry(indices: Tensor, shape: readonly [number, number, number, number] | null): Tensor {
    let idx = indices;
    if (this.used) {
      if (!shape) throw new ShapeError('VectorQuantizer2.get_codebook_entry: with remap the shape is needed (indices.reshape(shape[0], -1))');
      idx = T.reshape(this.unmapToAll(T.reshape(idx, [shape[0], -1])), [-1]);
    }
    const zq = this.embedding.forward(idx);
    if (!shape) return zq;
    return T.permute(T.reshape(zq, [...shape]), [0, 3, 1, 2]);
  }
}

/** Build from the official kwargs (taming `VectorQuantizer2(n_e, e_dim, beta, ...)`). */
export function makeVectorQuantizer2(p: Readonly<Record<string, unknown>>): VectorQuantizer2 {
  return new VectorQuantizer2(readOptions('VectorQuantizer2', p, VECTOR_QUANTIZER2_SCHEMA));
}
