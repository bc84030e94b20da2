// Unit tests of the VQ first stage (src/models/autoencoder/quantize.ts, vq.ts): nearest-entry
// search against a brute force, the legacy / non-legacy loss placement, the straight-through and
// codebook gradients, remap with each unknown_index, sane_index_shape, get_codebook_entry, the
// official state-dict key order, VQModelInterface decode with and without force_not_quantize, and
// LatentDiffusion with a VQ first stage. Numbers against the official code: the parity fixtures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';
import {
  LatentDiffusion, MODEL_TARGETS, TamingVQModel, VQModel, VQModelInterface, VectorQuantizer2, type DDConfig, type TargetConfig,
} from '../../src/models/index.ts';
import { assertClose, rnd } from '../helpers/check.ts';

const build = (cfg: TargetConfig, where: string): unknown => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: target '${cfg.target}' is not registered`);
  return f(cfg.params ?? {}, build);
};

const dd = (over: Partial<DDConfig> = {}): DDConfig => ({
  double_z: false, z_channels: 3, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 1],
  num_res_blocks: 1, attn_resolutions: [], dropout: 0.0, ...over,
});

function bruteNearest(z: Tensor, w: Tensor): number[] {
  const [n, c, h, wd] = z.shape as [number, number, number, number];
  const out: number[] = [];
  for (let b = 0; b < n; b++) for (let i = 0; i < h; i++) for (let j = 0; j < wd; j++) {
    let best = Infinity, bi = -1;
    for (let e = 0; e < w.shape[0]!; e++) {
      let d = 0;
      for (let k = 0; k < c; k++) {
        const diff = z.f32[((b * c + k) * h + i) * wd + j]! - w.f32[e * c + k]!;
        d += diff * diff;
      }
      if (d < best) { best = d; bi = e; }
    }
    out.push(bi);
  }
  return out;
}

test('VectorQuantizer2: nearest codebook rows, flat int64 indices, z_q equals the chosen rows', () => {
  setInitSeed(3);
  const q = new VectorQuantizer2({ n_e: 10, e_dim: 3, beta: 0.25 });
  q.embedding.weight.data = rnd([10, 3], 5).f32;
  const z = rnd([2, 3, 4, 5], 7);
  const r = q.forward(z);
  assert.equal(r.indices.dtype, 'int64');
  assert.deepEqual([...r.indices.shape], [40]);
  assert.deepEqual(r.indices.toArray(), bruteNearest(z, q.embedding.weight));
  const rows = q.getCodebookEntry(T.reshape(r.indices, [2, 4, 5]), [2, 4, 5, 3]);
  assertClose(r.zQ, rows, 1e-6, 'z_q');
  assert.equal(r.perplexity, null);
  assert.equal(r.minEncodings, null);
});

test('VectorQuantizer2: legacy puts beta on the codebook term, legacy=False on the commitment term', () => {
  for (const legacy of [true, false]) {
    setInitSeed(1);
    const q = new VectorQuantizer2({ n_e: 6, e_dim: 2, beta: 0.3, legacy });
    q.embedding.weight.data = rnd([6, 2], 2).f32;
    const z = rnd([1, 2, 3, 3], 4).requireGrad();
    const r = q.forward(z);
    const mse = T.noGrad(() => T.mean(T.square(T.sub(r.zQ, z)))).item();
    assert.ok(Math.abs(r.loss.item() - 1.3 * mse) < 1e-6 * Math.max(1, mse), 'loss = (1 + beta) * mse in value');
    // d loss / d z = (legacy ? 1 : beta) * 2 (z - z_q) / numel; the codebook gets the other weight
    T.backward(r.loss);
    const wz = legacy ? 1 : 0.3, we = legacy ? 0.3 : 1;
    const zq = r.zQ.f32, zz = z.f32;
    const expectZ = Array.from(zz, (v, i) => wz * 2 * (v - zq[i]!) / zz.length);
    assertClose(z.grad!, expectZ, 1e-5, 'grad z');
    const ge = q.embedding.weight.grad!;
    // summed over the positions mapped to each row: we * 2 (e - z) / numel
    const expectE = new Float32Array(12);
    const idx = r.indices.data;
    for (let p = 0; p < 9; p++) for (let c = 0; c < 2; c++) {
      const e = idx[p]!;
      expectE[e * 2 + c] = expectE[e * 2 + c]! + we * 2 * (q.embedding.weight.f32[e * 2 + c]! - zz[c * 9 + p]!) / 18;
    }
    assertClose(ge, expectE, 1e-5, 'grad codebook');
  }
});

test('VectorQuantizer2: straight-through estimator passes the output gradient to z unchanged', () => {
  setInitSeed(2);
  const q = new VectorQuantizer2({ n_e: 8, e_dim: 4, beta: 0.25 });
  const z = rnd([2, 4, 3, 3], 9).requireGrad();
  const g = rnd([2, 4, 3, 3], 10);
  const r = q.forward(z);
  T.backward(T.sum(T.mul(r.zQ, g)));
  assertClose(z.grad!, g, 1e-7, 'd(sum(z_q * g))/dz = g');
  assert.equal(q.embedding.weight.grad, null, 'the codebook gets no gradient through z_q');
});

test('VectorQuantizer2: remap with unknown_index extra / integer / random, sane_index_shape, unmap', () => {
  setInitSeed(4);
  const w = rnd([8, 2], 11);
  const z = rnd([2, 2, 3, 3], 12);
  const base = new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25 });
  base.embedding.weight.data = w.f32;
  const raw = base.forward(z).indices.toArray();
  const used = [...new Set(raw)].slice(0, 2).sort((a, b) => a - b);
  const expect = (unk: (k: number) => number): number[] => { let k = 0; return raw.map((v) => (used.includes(v) ? used.indexOf(v) : unk(k++))); };

  const extra = new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25, remap: used, unknown_index: 'extra' });
  extra.embedding.weight.data = w.f32;
  assert.equal(extra.reEmbed, 3);
  const re = extra.forward(z);
  assert.deepEqual([...re.indices.shape], [18, 1]);
  assert.deepEqual(re.indices.toArray(), expect(() => 2));
  // unmap: the extra token goes to used[0]
  assert.deepEqual(extra.unmapToAll(T.reshape(re.indices, [2, 9])).toArray(), re.indices.toArray().map((v) => (v === 2 ? used[0]! : used[v]!)));

  const fixed = new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25, remap: used, unknown_index: 7, sane_index_shape: true });
  fixed.embedding.weight.data = w.f32;
  const rf = fixed.forward(z);
  assert.deepEqual([...rf.indices.shape], [2, 3, 3]);
  assert.deepEqual(rf.indices.toArray(), expect(() => 7));

  const random = new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25, remap: used });
  random.embedding.weight.data = w.f32;
  const nUnknown = raw.filter((v) => !used.includes(v)).length;
  const draws = new Generator(5).randint(0, 2, nUnknown);
  assert.deepEqual(random.forward(z, { unknownDraw: new Generator(5) }).indices.toArray(), expect((k) => draws[k]!));
  assert.deepEqual(random.stateDict().get('used')!.toArray(), used);
  assert.throws(() => new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25, remap: 'used.npy' }), /no file I\/O/);
  assert.throws(() => new VectorQuantizer2({ n_e: 8, e_dim: 2, beta: 0.25, remap: used, unknown_index: 'other' as never }), /unknown_index/);
});

test('VQModel / VQModelInterface / taming VQModel: official key order, encode, decode, forward', () => {
  setInitSeed(6);
  const params = { ddconfig: dd(), lossconfig: { target: 'torch.nn.Identity' }, n_embed: 12, embed_dim: 2 };
  const m = build({ target: 'ldm.models.autoencoder.VQModel', params }, 't') as VQModel;
  const keys = [...m.stateDict().keys()];
  const first = (p: string): number => keys.findIndex((k) => k.startsWith(p));
  assert.ok(first('encoder.') < first('decoder.') && first('decoder.') < first('quantize.') && first('quantize.') < first('quant_conv.') && first('quant_conv.') < first('post_quant_conv.'));
  assert.ok(keys.includes('quantize.embedding.weight'));
  assert.deepEqual([...m.stateDict().get('quant_conv.weight')!.shape], [2, 3, 1, 1]);
  const x = rnd([2, 3, 16, 16], 1);
  const [quant, loss, [p, e, ind]] = m.encode(x);
  assert.deepEqual([...quant.shape], [2, 2, 8, 8]);
  assert.equal(loss.ndim, 0);
  assert.equal(p, null); assert.equal(e, null);
  assert.deepEqual([...ind.shape], [128]);
  const out = m.forward(x, true);
  assert.equal(out.length, 3);
  assertClose(out[0], m.decode(quant), 1e-6, 'forward = decode(encode)');

  const vi = build({ target: 'ldm.models.autoencoder.VQModelInterface', params }, 't') as VQModelInterface;
  vi.loadStateDict(m.stateDict());
  const h = vi.encode(x);
  assertClose(h, m.encodeToPrequant(x), 0, 'interface encode = pre-quantisation h');
  assertClose(vi.decode(h), m.decode(quant), 1e-6, 'decode quantises');
  assertClose(vi.decode(h, true), m.decode(h), 1e-6, 'force_not_quantize skips the quantizer');
  assert.throws(() => vi.forward(), /VQModelInterface.forward/);

  const tm = build({ target: 'taming.models.vqgan.VQModel', params }, 't') as TamingVQModel;
  assert.deepEqual([...tm.stateDict().keys()], keys);
  assert.throws(() => build({ target: 'taming.models.vqgan.VQModel', params: { ...params, lr_g_factor: 2 } }, 't'), /unknown parameter 'lr_g_factor'/);
  assert.throws(() => build({ target: 'ldm.models.autoencoder.VQModel', params: { ...params, use_ema: true } }, 't'), /LitEma/);
});

test('LatentDiffusion with a VQModelInterface first stage: encode is h * scale_factor, decode with/without force_not_quantize', () => {
  setInitSeed(7);
  const fsParams = { ddconfig: dd(), lossconfig: { target: 'torch.nn.Identity' }, n_embed: 12, embed_dim: 2 };
  const ldm = build({
    target: 'ldm.models.diffusion.ddpm.LatentDiffusion',
    params: {
      timesteps: 10, image_size: 8, channels: 2, first_stage_key: 'image', cond_stage_config: '__is_unconditional__',
      conditioning_key: null, scale_factor: 0.5, use_ema: false,
      unet_config: { target: 'ldm.modules.diffusionmodules.openaimodel.UNetModel', params: { image_size: 8, in_channels: 2, out_channels: 2, model_channels: 32, attention_resolutions: [], num_res_blocks: 1, channel_mult: [1], num_heads: 1 } },
      first_stage_config: { target: 'ldm.models.autoencoder.VQModelInterface', params: fsParams },
    },
  }, 't') as LatentDiffusion;
  const fs = ldm.first_stage_model as unknown as VQModelInterface;
  assert.ok(fs instanceof VQModelInterface);
  const x = rnd([1, 3, 16, 16], 2);
  const z = ldm.getFirstStageEncoding(ldm.encodeFirstStage(x));
  assertClose(z, T.mul(fs.encode(x), 0.5), 1e-7, 'z');
  assertClose(ldm.decodeFirstStage(z), fs.decode(fs.encode(x)), 1e-6, 'decode quantises');
  assertClose(ldm.decodeFirstStage(z, { forceNotQuantize: true }), fs.decode(fs.encode(x), true), 1e-6, 'force_not_quantize');
  // predict_cids: logits over the codebook -> rows -> decoded without quantising again
  const logits = T.zeros([1, 12, 8, 8]);
  for (let i = 0; i < 64; i++) logits.f32[(i % 12) * 64 + i] = 1;
  const ids = new Tensor(Float64Array.from({ length: 64 }, (_, i) => i % 12), [1, 8, 8], 'int64');
  const rows = fs.quantize.getCodebookEntry(ids, [1, 8, 8, 2]);
  assertClose(ldm.decodeFirstStage(logits, { predictCids: true }), fs.decode(T.mul(rows, 2), true), 1e-5, 'predict_cids');
});
