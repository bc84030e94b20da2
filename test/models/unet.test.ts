// Tests of the official UNetModel port (src/models/unet/openai.ts, openai-blocks.ts) and the
// attention modules of ldm/modules/attention.py (src/models/attention.ts): state-dict keys and
// shapes as the official constructor makes them, the head arithmetic quirks of `legacy`, shapes of
// every option, the two QKV orders, cross-attention masks, linear attention against a naive loop,
// gradients against finite differences, and the official-code parity fixtures `ldm_unet*`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import type { Module } from '../../src/nn/index.ts';
import {
  AttentionBlock, QKVAttention, QKVAttentionLegacy, UNetModel, timestepEmbedding, openaiTargets,
  type UNetOptions,
} from '../../src/models/unet/openai.ts';
import { CrossAttention, LinAttnBlock, SpatialTransformer } from '../../src/models/attention.ts';
import { MODEL_TARGETS } from '../../src/models/index.ts';
import { readTensorFile } from '../../src/io/index.ts';
import { FixtureContext, runFixture } from '../../src/dev/index.ts';
import { assertClose, gradcheck, rnd } from '../helpers/check.ts';

const BASE: UNetOptions = {
  image_size: 8, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1,
  attention_resolutions: [2], channel_mult: [1, 2], num_heads: 2,
};

/** Overwrite every parameter as the fixtures do (weights N(0,1)/sqrt(fan_in), the rest small), so
 *  zero-initialised convolutions do not hide anything. */
function randomise(m: Module, seed = 5): void {
  const g = new Generator(seed);
  for (const [name, p] of m.namedParameters()) {
    const z = g.normal(p.size, 0, 1);
    const fanIn = p.ndim >= 2 ? p.size / p.shape[0]! : 1;
    const isNorm = /norm|in_layers\.0|out_layers\.0|out\.0/.test(name) && p.ndim === 1;
    for (let i = 0; i < p.size; i++) {
      p.f32[i] = p.ndim >= 2 ? z[i]! / Math.sqrt(fanIn) : name.endsWith('weight') && isNorm ? 1 + 0.1 * z[i]! : 0.1 * z[i]!;
    }
  }
}

function resKeys(p: string, skip: boolean): string[] {
  const k = ['in_layers.0', 'in_layers.2', 'emb_layers.1', 'out_layers.0', 'out_layers.3', ...(skip ? ['skip_connection'] : [])];
  return k.flatMap((n) => [`${p}.${n}.weight`, `${p}.${n}.bias`]);
}
const attnKeys = (p: string): string[] => ['norm', 'qkv', 'proj_out'].flatMap((n) => [`${p}.${n}.weight`, `${p}.${n}.bias`]);
const wb = (p: string): string[] => [`${p}.weight`, `${p}.bias`];

test('state_dict keys and shapes equal those the official constructor makes', () => {
  // channel_mult [1, 2], one res block, attention at ds 2, resblock_updown, scale-shift, classes.
  const m = new UNetModel({ ...BASE, resblock_updown: true, use_scale_shift_norm: true, num_classes: 3 });
  const expected = [
    ...wb('time_embed.0'), ...wb('time_embed.2'), 'label_emb.weight',
    ...wb('input_blocks.0.0'),
    ...resKeys('input_blocks.1.0', false), // ds 1: no attention
    ...resKeys('input_blocks.2.0', false), // ResBlock(down=True)
    ...resKeys('input_blocks.3.0', true), ...attnKeys('input_blocks.3.1'), // 32 -> 64, ds 2
    ...resKeys('middle_block.0', false), ...attnKeys('middle_block.1'), ...resKeys('middle_block.2', false),
    ...resKeys('output_blocks.0.0', true), ...attnKeys('output_blocks.0.1'), // 128 -> 64
    ...resKeys('output_blocks.1.0', true), ...attnKeys('output_blocks.1.1'), ...resKeys('output_blocks.1.2', false), // 96 -> 64, up
    ...resKeys('output_blocks.2.0', true), // 96 -> 32
    ...resKeys('output_blocks.3.0', true), // 64 -> 32
    ...wb('out.0'), ...wb('out.2'),
  ];
  const sd = m.stateDict();
  assert.deepEqual([...sd.keys()].sort(), [...expected].sort());
  const shape = (k: string): number[] => [...sd.get(k)!.shape];
  assert.deepEqual(shape('input_blocks.1.0.emb_layers.1.weight'), [64, 128]); // 2 * out with scale-shift
  assert.deepEqual(shape('input_blocks.3.1.qkv.weight'), [192, 64, 1]); // Conv1d, kernel 1
  assert.deepEqual(shape('output_blocks.1.0.in_layers.2.weight'), [64, 96, 3, 3]);
  assert.deepEqual(shape('output_blocks.0.0.skip_connection.weight'), [64, 128, 1, 1]);
  assert.deepEqual(shape('out.2.weight'), [3, 32, 3, 3]);
  assert.deepEqual(shape('label_emb.weight'), [3, 128]);
  // zero_module: every ResBlock output conv and attention proj_out, and the final conv.
  for (const [k, t] of sd) {
    if (/out_layers\.3\.|proj_out\.|^out\.2\./.test(k)) assert.ok(t.f32.every((v) => v === 0), `${k} is zero-initialised`);
  }
  // conv_resample: Downsample `op` / Upsample `conv`; without it, no parameters there.
  const conv = new UNetModel(BASE).stateDict();
  assert.ok(conv.has('input_blocks.2.0.op.weight') && conv.has('output_blocks.1.2.conv.weight'));
  const pool = new UNetModel({ ...BASE, conv_resample: false }).stateDict();
  assert.ok(![...pool.keys()].some((k) => k.startsWith('input_blocks.2.') || k.startsWith('output_blocks.1.2.')));
});

test('the official fixtures: every state_dict key and shape; cross-attention output', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  for (const name of ['ldm_unet_classcond', 'ldm_unet_crossattn']) {
    const path = join(root, 'test/fixtures/parity', `${name}.safetensors`);
    assert.ok(existsSync(path), `${path} exists`);
    const f = readTensorFile(path);
    const ctx = new FixtureContext(path, f.tensors, f.float64, f.metadata);
    const ours = new UNetModel(ctx.config.init as UNetOptions).stateDict();
    assert.deepEqual([...ours.keys()].sort(), [...ctx.stateKeys].sort(), `${name}: keys`);
    for (const k of ctx.stateKeys) assert.deepEqual([...ours.get(k)!.shape], [...ctx.get(k).shape], `${name}: ${k}`);
  }
  // Values: the forward-only fixture here (the parity CLI runs both, gradients included).
  for (const l of runFixture(join(root, 'test/fixtures/parity/ldm_unet_crossattn.safetensors'))) assert.ok(l.ok, `${l.output}: ${l.detail}`);
});

test('timestep_embedding: [cos, sin], exp(-ln(max_period) i / half), odd dim padded, repeat_only', () => {
  const t = T.tensor([0, 3, 999], [3], 'int64');
  const e = timestepEmbedding(t, 7);
  assert.deepEqual([...e.shape], [3, 7]);
  for (let r = 0; r < 3; r++) {
    const tv = [0, 3, 999][r]!;
    for (let i = 0; i < 3; i++) {
      const f = Math.exp(-Math.log(10000) * i / 3);
      assert.ok(Math.abs(e.f32[r * 7 + i]! - Math.cos(tv * f)) < 2e-4);
      assert.ok(Math.abs(e.f32[r * 7 + 3 + i]! - Math.sin(tv * f)) < 2e-4);
    }
    assert.equal(e.f32[r * 7 + 6], 0);
  }
  assert.deepEqual(Array.from(timestepEmbedding(t, 2, 10000, true).f32), [0, 0, 3, 3, 999, 999]);
});

test('head arithmetic follows the official constructor: legacy keeps num_heads, changes dim_head', () => {
  const heads = (m: UNetModel): number[] => m.namedModules().filter(([, x]) => x instanceof AttentionBlock).map(([, x]) => (x as AttentionBlock).numHeads);
  // legacy (default): the official `num_heads = 1` is commented out, so num_heads 4 without
  // num_head_channels gives 4 heads down and in the middle, num_heads_upsample (= 4) on the way up.
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: 4 })), [4, 4, 4, 4]);
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: 4, legacy: false })), [4, 4, 4, 4]);
  // num_heads_upsample only reaches an AttentionBlock whose num_head_channels is -1, which only
  // legacy produces; otherwise dim_head = ch // num_heads decides the heads on the way up too.
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: 4, num_heads_upsample: 2, legacy: false })), [4, 4, 4, 4]);
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: 4, num_heads_upsample: 2 })), [4, 4, 2, 2]);
  // num_head_channels wins over num_heads: 64 channels / 16 per head.
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: -1, num_head_channels: 16 })), [4, 4, 4, 4]);
  assert.deepEqual(heads(new UNetModel({ ...BASE, num_heads: 8, num_head_channels: 16, num_heads_upsample: 1 })), [4, 4, 4, 4]);
  // Spatial transformer: n_heads = num_heads (ch // num_head_channels when set); legacy d_head =
  // ch // n_heads, otherwise num_head_channels (the inner width n_heads * d_head may differ from ch).
  const st = (m: UNetModel): [number, number][] => m.namedModules().filter(([, x]) => x instanceof SpatialTransformer)
    .map(([, x]) => { const a = (x as SpatialTransformer).transformer_blocks.at(0).attn1; return [a.heads, a.dimHead]; });
  const stOpts = { ...BASE, num_heads: -1, num_head_channels: 16, use_spatial_transformer: true, context_dim: 8 };
  assert.deepEqual(st(new UNetModel(stOpts)), [[4, 16], [4, 16], [4, 16], [4, 16]]);
  assert.deepEqual(st(new UNetModel({ ...stOpts, legacy: false })), [[4, 16], [4, 16], [4, 16], [4, 16]]);
  assert.deepEqual(st(new UNetModel({ ...stOpts, num_head_channels: 20 })), [[3, 21], [3, 21], [3, 21], [3, 21]]);
  assert.deepEqual(st(new UNetModel({ ...stOpts, num_head_channels: 20, legacy: false })), [[3, 20], [3, 20], [3, 20], [3, 20]]);
  assert.deepEqual(st(new UNetModel({ ...stOpts, num_heads: 2, num_head_channels: -1, num_heads_upsample: 1 })), [[2, 32], [2, 32], [2, 32], [2, 32]]);
  // num_head_channels wider than a block: 0 heads, a division by zero in the official code too.
  assert.throws(() => new UNetModel({ ...stOpts, num_head_channels: 128 }), /divides 64 channels by 0 heads/);
});

test('forward shapes for every option', () => {
  const x = rnd([2, 3, 4, 4], 1);
  const ts = T.tensor([1, 500], [2], 'int64');
  const cases: [string, Partial<UNetOptions>][] = [
    ['resblock_updown', { resblock_updown: true }],
    ['use_new_attention_order', { use_new_attention_order: true }],
    ['num_head_channels', { num_heads: -1, num_head_channels: 32 }],
    ['conv_resample false', { conv_resample: false }],
    ['three levels [1, 2, 3], two res blocks', { channel_mult: [1, 2, 3], num_res_blocks: 2, attention_resolutions: [1, 4] }],
    ['scale-shift norm, dropout (eval), out_channels 6', { use_scale_shift_norm: true, dropout: 0.1, out_channels: 6, use_checkpoint: true, use_fp16: false }],
  ];
  for (const [what, o] of cases) {
    const m = new UNetModel({ ...BASE, ...o } as UNetOptions).eval();
    const y = T.noGrad(() => m.forward(x, ts));
    assert.deepEqual([...y.shape], [2, (o.out_channels ?? 3), 4, 4], what);
    assert.ok(y.f32.every(Number.isFinite), `${what}: finite`);
  }
  // class-conditional and cross-attention, through the registry and the denoiser callback.
  const cc = MODEL_TARGETS['ldm.modules.diffusionmodules.openaimodel.UNetModel']!({ ...BASE, num_classes: 4 }, () => null) as UNetModel;
  const y = T.tensor([0, 3], [2], 'int64');
  assert.deepEqual([...cc.apply(x, 10, y).shape], [2, 3, 4, 4]);
  assert.throws(() => cc.forward(x, ts), /y if and only if/);
  const ca = new UNetModel({ ...BASE, use_spatial_transformer: true, context_dim: 5, transformer_depth: 2, legacy: false });
  randomise(ca);
  const ctx = rnd([2, 4, 5], 3);
  const d = ca.denoiser();
  assertClose(d(x, ts, ctx), ca.forward(x, ts, { context: ctx }), 0, 'denoiser == forward');
  assert.ok(ca.stateDict().has('input_blocks.3.1.transformer_blocks.1.ff.net.0.proj.weight'));
  assert.ok(ca.stateDict().has('middle_block.1.transformer_blocks.0.attn2.to_out.0.bias'));
  assert.deepEqual([...ca.stateDict().get('middle_block.1.transformer_blocks.0.attn2.to_k.weight')!.shape], [64, 5]);
});

test('unsupported and inconsistent options are rejected by name', () => {
  const bad: [Partial<UNetOptions> & Record<string, unknown>, RegExp][] = [
    [{ dims: 3 }, /dims=3 is not supported/],
    [{ use_fp16: true }, /use_fp16/],
    [{ n_embed: 16 }, /n_embed .* not supported/],
    [{ use_spatial_transformer: true }, /needs context_dim/],
    [{ context_dim: 8 }, /use_spatial_transformer is false/],
    [{ num_heads: -1 }, /num_heads or num_head_channels/],
    [{ channel_mult: [2, 4] }, /channel_mult\[0\] must be 1/],
    [{ num_head_chanels: 8 }, /did you mean 'num_head_channels'/],
  ];
  for (const [o, re] of bad) assert.throws(() => new UNetModel({ ...BASE, ...o } as UNetOptions), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  assert.ok(openaiTargets['ldm.modules.diffusionmodules.openaimodel.UNetModel']);
});

test('QKVAttention (new order) equals QKVAttentionLegacy on the re-ordered channels', () => {
  const [bs, h, ch, len] = [2, 3, 4, 5];
  const legacy = rnd([bs, h * 3 * ch, len], 11); // channels ordered (head, qkv, c)
  // the same q, k, v laid out (qkv, head, c)
  const perm = T.reshape(T.permute(T.reshape(legacy, [bs, h, 3, ch, len]), [0, 2, 1, 3, 4]), [bs, 3 * h * ch, len]);
  assertClose(new QKVAttention(h).forward(perm), new QKVAttentionLegacy(h).forward(legacy), 1e-6, 'same attention');
  // against the einsums written out for one head
  const a = new QKVAttentionLegacy(1).forward(T.reshape(T.slice(legacy, 1, 0, 3 * ch), [bs, 3 * ch, len]));
  const q = legacy.f32, n = h * 3 * ch;
  for (let b = 0; b < bs; b++) for (let t = 0; t < len; t++) {
    const w = Array.from({ length: len }, (_, s) => {
      let acc = 0;
      for (let c = 0; c < ch; c++) acc += q[(b * n + c) * len + t]! * q[(b * n + ch + c) * len + s]!;
      return acc / Math.sqrt(ch);
    });
    const mx = Math.max(...w), e = w.map((v) => Math.exp(v - mx)), z = e.reduce((p, v) => p + v, 0);
    for (let c = 0; c < ch; c++) {
      let acc = 0;
      for (let s = 0; s < len; s++) acc += (e[s]! / z) * q[(b * n + 2 * ch + c) * len + s]!;
      assert.ok(Math.abs(a.f32[(b * ch + c) * len + t]! - acc) < 1e-5);
    }
  }
});

test('CrossAttention mask: masked context rows have no effect; all masked attends uniformly', () => {
  const attn = new CrossAttention({ query_dim: 8, context_dim: 6, heads: 2, dim_head: 4 });
  const x = rnd([2, 3, 8], 1), ctx = rnd([2, 4, 6], 2);
  const mask = T.tensor([1, 1, 0, 1, 0, 0, 0, 0], [2, 4], 'int64');
  const y1 = attn.forward(x, ctx, mask);
  const ctx2 = new Tensor(ctx.f32.slice(), ctx.shape);
  ctx2.f32.fill(7, 2 * 6, 3 * 6); // row 2 of batch 0 is masked
  assertClose(attn.forward(x, ctx2, mask), y1, 1e-6, 'masked row ignored');
  // batch 1 fully masked: every query gets the mean of v, i.e. to_out(mean_j to_v(ctx_j)).
  const vMean = T.mean(attn.to_v.forward(T.slice(ctx, 0, 1, 2)), 1, true); // [1, 1, 8]
  const expect = attn.to_out.forward(vMean);
  for (let i = 0; i < 3; i++) assertClose(T.slice(T.slice(y1, 0, 1, 2), 1, i, i + 1), expect, 1e-5, `query ${i}`);
  // no context: self-attention
  const self = new CrossAttention({ query_dim: 8, heads: 2, dim_head: 4 });
  assertClose(self.forward(x), self.forward(x, x), 0, 'default context is x');
});

test('LinAttnBlock keys and values against the einsums written out', () => {
  const m = new LinAttnBlock(3);
  assert.deepEqual([...m.stateDict().keys()], ['to_qkv.weight', 'to_out.weight', 'to_out.bias']);
  assert.deepEqual([...m.to_qkv.weight.shape], [9, 3, 1, 1]);
  const x = rnd([1, 3, 2, 2], 4);
  const qkv = m.to_qkv.forward(x).f32; // [1, 9, 4]: q rows 0-2, k 3-5, v 6-8
  const n = 4, c = 3;
  const k = Array.from({ length: c }, (_, d) => {
    const row = Array.from({ length: n }, (_, j) => qkv[(c + d) * n + j]!);
    const mx = Math.max(...row), e = row.map((v) => Math.exp(v - mx)), z = e.reduce((p, v) => p + v, 0);
    return e.map((v) => v / z);
  });
  const out = new Float32Array(c * n);
  for (let e = 0; e < c; e++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let d = 0; d < c; d++) {
      let ctx = 0;
      for (let i = 0; i < n; i++) ctx += k[d]![i]! * qkv[(2 * c + e) * n + i]!;
      acc += ctx * qkv[d * n + j]!;
    }
    out[e * n + j] = acc;
  }
  assertClose(m.forward(x), m.to_out.forward(new Tensor(out, [1, 3, 2, 2])), 1e-5, 'linear attention');
});

test('gradients of a tiny UNet match finite differences', () => {
  const m = new UNetModel({
    image_size: 4, in_channels: 2, model_channels: 32, out_channels: 2, num_res_blocks: 1, attention_resolutions: [2],
    channel_mult: [1, 2], num_heads: 2, num_classes: 3, use_scale_shift_norm: true, resblock_updown: true,
    use_new_attention_order: true,
  }).eval();
  randomise(m, 9);
  const x = rnd([1, 2, 4, 4], 21).requireGrad();
  const ts = T.tensor([37], [1], 'int64'), y = T.tensor([2], [1], 'int64');
  const w = rnd([1, 2, 4, 4], 22);
  const loss = (): Tensor => T.sum(T.mul(m.forward(x, ts, { y }), w));
  T.backward(loss());
  const params = new Map(m.namedParameters());
  const probes: [string, Tensor, number[]][] = [['x', x, [17]]];
  for (const k of ['label_emb.weight', 'input_blocks.2.0.in_layers.0.weight', 'input_blocks.3.1.qkv.weight',
    'middle_block.0.emb_layers.1.bias', 'output_blocks.1.2.out_layers.3.weight', 'out.2.bias']) {
    const p = params.get(k)!;
    probes.push([k, p, [Math.floor(p.size / 2)]]);
  }
  const eps = 1e-2;
  for (const [k, t, idx] of probes) {
    assert.ok(t.grad, `${k} has a gradient`);
    for (const i of idx) {
      const v = t.f32[i]!;
      t.f32[i] = v + eps; const lp = T.noGrad(() => loss().item());
      t.f32[i] = v - eps; const lm = T.noGrad(() => loss().item());
      t.f32[i] = v;
      const fd = (lp - lm) / (2 * eps), an = t.grad!.f32[i]!;
      assert.ok(Math.abs(fd - an) <= 2e-2 * Math.max(1, Math.abs(fd)), `${k}[${i}]: finite difference ${fd} vs autograd ${an}`);
    }
  }
});

test('SpatialTransformer and LinAttnBlock gradients match finite differences', () => {
  const st = new SpatialTransformer({ in_channels: 32, n_heads: 2, d_head: 8, depth: 1, context_dim: 4 });
  randomise(st, 3);
  gradcheck((x, c) => st.forward(x, c), [rnd([1, 32, 2, 2], 31), rnd([1, 3, 4], 32)], { probes: 3 });
  const la = new LinAttnBlock(4);
  randomise(la, 4);
  gradcheck((x) => la.forward(x), [rnd([2, 4, 3, 3], 33)], { probes: 4 });
});
