// Tests of src/models/latent-diffusion.ts and the conditioning encoders (conditioning.ts,
// tokenizer.ts, x-transformer.ts) on tiny configurations: official key sets, the frozen first
// stage, scale_by_std, get_input / forward / conditioning routes, the tokenizer, the text
// encoder (against a PyTorch transcription of x_transformer.py), F.interpolate semantics,
// conditioning dropout, sampling and a short training run. Numbers against the official
// LatentDiffusion are checked by the parity fixture ldm_latent_loss.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as T from '../../src/tensor/index.ts';
import { Tensor } from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { AdamW, setInitSeed } from '../../src/nn/index.ts';
import {
  type DiffusionModel,
  BERTEmbedder, BERTTokenizer, ClassEmbedder, LatentDiffusion, MODEL_TARGETS, SpatialRescaler, TransformerEmbedder,
  basicTokenize, inpaintingConcat, interpolate, lowResConcat, type BuildFn, type InterpolateMode,
} from '../../src/models/index.ts';
import { SAMPLERS } from '../../src/diffusion/index.ts';
import { readTensorFile } from '../../src/io/index.ts';
import { assertClose } from '../helpers/check.ts';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'conditioning');

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new ConfigError(`${where}: unknown target ${cfg.target}`);
  return f(cfg.params ?? {}, build);
};

const AE = {
  target: 'ldm.models.autoencoder.AutoencoderKL',
  params: {
    embed_dim: 3, lossconfig: { target: 'torch.nn.Identity' },
    ddconfig: { double_z: true, z_channels: 4, resolution: 8, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 1], num_res_blocks: 1, attn_resolutions: [], dropout: 0 },
  },
};
const UNET = (extra: Record<string, unknown> = {}) => ({
  target: 'ldm.modules.diffusionmodules.openaimodel.UNetModel',
  params: {
    image_size: 4, in_channels: 3, model_channels: 32, out_channels: 3, num_res_blocks: 1, attention_resolutions: [1], channel_mult: [1],
    num_head_channels: 16, use_spatial_transformer: true, transformer_depth: 1, context_dim: 16, legacy: false, ...extra,
  },
});
const CLASS = { target: 'ldm.modules.encoders.modules.ClassEmbedder', params: { embed_dim: 16, n_classes: 11, key: 'class_label' } };

function make(over: Record<string, unknown> = {}): LatentDiffusion {
  setInitSeed(3);
  const m = build({
    target: 'ldm.models.diffusion.ddpm.LatentDiffusion',
    params: {
      timesteps: 20, linear_start: 0.0015, linear_end: 0.0195, image_size: 4, channels: 3, first_stage_key: 'image',
      cond_stage_key: 'class_label', conditioning_key: 'crossattn', cond_stage_trainable: true,
      unet_config: UNET(), first_stage_config: AE, cond_stage_config: CLASS, ...over,
    },
  }, 'test');
  assert.ok(m instanceof LatentDiffusion);
  return m;
}

const batchOf = (seed = 1, B = 2) => ({
  image: T.clamp(T.randn([B, 8, 8, 3], new Generator(seed)), -1, 1), // channels-last
  class_label: new Tensor(Float64Array.from({ length: B }, (_, i) => (i * 3 + seed) % 10), [B], 'int64'),
});

test('state dict: model.diffusion_model.*, first_stage_model.*, cond_stage_model.*, scale_factor (scale_by_std), model_ema.*', () => {
  const m = make({ scale_by_std: true });
  const keys = [...m.stateDict().keys()];
  for (const k of ['betas', 'scale_factor', 'model.diffusion_model.input_blocks.0.0.weight', 'first_stage_model.encoder.conv_in.weight',
    'first_stage_model.decoder.conv_out.weight', 'first_stage_model.quant_conv.weight', 'cond_stage_model.embedding.weight',
    'model_ema.decay', 'model_ema.num_updates', 'model_ema.diffusion_modelinput_blocks00weight']) assert.ok(keys.includes(k), k);
  assert.ok(!keys.some((k) => k.startsWith('model_ema.first_stage') || k.startsWith('model_ema.cond_stage')), 'EMA covers the UNet only');
  assert.ok(!keys.includes('logvar') && !keys.includes('lvlb_weights'));
  assert.deepEqual(m.getBuffer('scale_factor').shape, []);
  // a fixed scale factor is a plain attribute (official), not a key
  const f = make({ scale_factor: 0.18215, use_ema: false });
  assert.ok(!f.stateDict().has('scale_factor') && ![...f.stateDict().keys()].some((k) => k.startsWith('model_ema')));
  assert.equal(f.scaleFactor, 0.18215);
  // conditioning_key resolution of LatentDiffusion.__init__
  assert.equal(make({ conditioning_key: null, unet_config: UNET({ in_channels: 6, use_spatial_transformer: false, attention_resolutions: [], context_dim: null }),
    cond_stage_config: '__is_first_stage__', cond_stage_trainable: false, cond_stage_key: 'image' }).model.conditioningKey, 'concat');
  const u = make({ conditioning_key: null, concat_mode: false, cond_stage_config: '__is_unconditional__', cond_stage_trainable: false,
    unet_config: UNET({ use_spatial_transformer: false, attention_resolutions: [], context_dim: null }) });
  assert.equal(u.model.conditioningKey, null);
  assert.equal(u.cond_stage_model, null);
  assert.throws(() => make({ scale_facter: 1 }), /unknown parameter 'scale_facter'.*scale_factor/);
  assert.throws(() => make({ num_timesteps_cond: 21 }), /num_timesteps_cond/);
});

test('frozen first stage: eval, no gradients, train() cannot switch it; trainable cond stage gets gradients', () => {
  const m = make();
  m.train();
  assert.equal(m.training, true);
  assert.ok(m.first_stage_model.namedModules().every(([, x]) => !x.training));
  assert.ok(m.first_stage_model.parameters().every((p) => !p.requiresGrad));
  const r = m.sharedStep(batchOf(), { gen: new Generator(4) });
  T.backward(r.loss);
  assert.ok(m.first_stage_model.parameters().every((p) => p.grad === null));
  assert.ok(m.cond_stage_model!.parameters().every((p) => p.grad !== null), 'ClassEmbedder (cond_stage_trainable) gets gradients');
  assert.ok(m.model.parameters().some((p) => p.grad !== null));
  const ids = new Set(m.trainableParameters().map((p) => p.id));
  assert.ok(m.cond_stage_model!.parameters().every((p) => ids.has(p.id)));
  assert.ok(m.first_stage_model.parameters().every((p) => !ids.has(p.id)));
  // a frozen cond stage stays in eval and outside the optimiser
  const f = make({ cond_stage_trainable: false });
  f.train();
  assert.ok(!f.cond_stage_model!.training && f.cond_stage_model!.parameters().every((p) => !p.requiresGrad));
  assert.ok(!f.trainableParameters().some((p) => f.cond_stage_model!.parameters().includes(p)));
});

test('scale_by_std: the first batch replaces scale_factor 1.0 by 1/std(z) once; saved in the state dict', () => {
  const m = make({ scale_by_std: true });
  const batch = batchOf(2);
  const noise = T.randn([2, 3, 4, 4], new Generator(9));
  const sf = m.onTrainBatchStart(batch, 0, { noise });
  assert.ok(sf !== null && Number.isFinite(sf) && sf > 0);
  const post = m.encodeFirstStage(T.permute(batch.image, [0, 3, 1, 2]));
  const z = (post as { sample(n: Tensor): Tensor }).sample(noise);
  assertClose([sf], [1 / T.std(T.reshape(z, [z.size])).item()], 1e-6, 'scale_factor');
  assert.equal(m.stateDict().get('scale_factor')!.item(), Math.fround(sf));
  assert.equal(m.onTrainBatchStart(batch, 1), null, 'only on global step 0');
  assert.equal(m.onTrainBatchStart(batch, 0, { batchIdx: 1 }), null);
  assert.throws(() => m.onTrainBatchStart(batch, 0), /scale_factor is .*needs 1\.0/, 'asserts the starting value is 1.0');
  const r = make({ scale_by_std: true });
  r.restartedFromCkpt = true;
  assert.equal(r.onTrainBatchStart(batch, 0), null);
  assert.equal(make().onTrainBatchStart(batch, 0), null, 'no-op without scale_by_std');
  // get_input scales the posterior sample; decode_first_stage divides
  const { z: zs } = m.getLatentInput(batch, 'image', { noise });
  assertClose(zs, T.mul(z, sf), 1e-5, 'z = scale_factor * sample');
  assertClose(m.decodeFirstStage(zs), m.first_stage_model.decode(z), 1e-4, 'decode(z / scale_factor)');
});

test('get_input: class_label gives the batch dict (trainable) or the embedding; caption; num_timesteps_cond schedule', () => {
  const m = make();
  const batch = batchOf(3);
  const r = m.getLatentInput(batch, 'image', { noise: new Generator(1), returnFirstStageOutputs: true, bs: 1 });
  assert.deepEqual(r.z.shape, [1, 3, 4, 4]);
  assert.deepEqual(r.xrec!.shape, [1, 3, 8, 8]);
  assert.equal(r.xc, batch);
  const f = make({ cond_stage_trainable: false });
  const c = f.getLatentInput(batch, 'image', { noise: new Generator(1) }).c as Tensor;
  assert.deepEqual(c.shape, [2, 1, 16]);
  assertClose(c, T.unsqueeze(T.indexSelect((f.cond_stage_model as ClassEmbedder).embedding.weight, 0, batch.class_label), 1), 0, 'embedding(labels[:, None])');
  const s = make({ num_timesteps_cond: 5 });
  assert.deepEqual(Array.from(s.condIds!.data).slice(0, 6), [0, 5, 10, 14, 19, 19]);
  const l = s.sharedStep(batch, { gen: new Generator(2) });
  assert.ok(Number.isFinite(l.loss.item()));
  assert.throws(() => make().forward(r.z), /needs a conditioning/);
  // concat (the first stage as cond stage, cond_stage_key == first_stage_key): c = encode(x).mode()
  const cm = make({ conditioning_key: 'concat', cond_stage_config: '__is_first_stage__', cond_stage_trainable: false, cond_stage_key: 'image',
    unet_config: UNET({ in_channels: 6, use_spatial_transformer: false, attention_resolutions: [], context_dim: null }) });
  assert.ok([...cm.stateDict().keys()].includes('cond_stage_model.encoder.conv_in.weight'), 'the shared module appears under both names');
  const ci = cm.getLatentInput(batch, 'image', { noise: new Generator(1) });
  const mode = (cm.encodeFirstStage(T.permute(batch.image, [0, 3, 1, 2])) as { mode(): Tensor }).mode();
  assertClose(ci.c as Tensor, mode, 0, 'c = posterior mode');
  assert.ok(Number.isFinite(cm.sharedStep(batch, { gen: new Generator(1) }).loss.item()));
  const mask = T.full([2, 1, 8, 8], 1);
  assert.deepEqual(cm.inpaintingConditioning(T.permute(batch.image, [0, 3, 1, 2]), mask).shape, [2, 4, 4, 4]);
  assert.deepEqual(cm.lowResConditioning(T.randn([2, 3, 8, 8], new Generator(1))).shape, [2, 3, 4, 4]);
});

test('BERTTokenizer: basic tokenization, WordPiece fallback, [CLS]/[SEP]/[PAD] padding to 77, truncation, JSON round trip', () => {
  assert.deepEqual(basicTokenize('  Héllo,   WORLD!\tdon\'t 中文 '), ['hello', ',', 'world', '!', 'don', "'", 't', '中', '文']);
  const tok = BERTTokenizer.build(['a red cat', 'a blue dog', 'the cat sat.'], {});
  assert.deepEqual(tok.vocab.slice(0, 5), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  assert.equal(tok.padId, 0);
  assert.equal(tok.decode(tok.encode('A red CAT.')), 'a red cat .');
  assert.deepEqual(tok.tokenize('cats'), ['cat', '##s'], 'unseen words split into known pieces');
  assert.deepEqual(tok.tokenize('zebra'), ['[UNK]'], 'a word with an unseen character is [UNK]');
  const ids = tok.call(['a red cat', '']);
  assert.deepEqual(ids.shape, [2, 77]);
  assert.equal(ids.dtype, 'int64');
  const row0 = Array.from(ids.data.slice(0, 77)), row1 = Array.from(ids.data.slice(77));
  assert.deepEqual(row0.slice(0, 5), [tok.clsId, tok.tokenId('a'), tok.tokenId('red'), tok.tokenId('cat'), tok.sepId]);
  assert.ok(row0.slice(5).every((v) => v === 0));
  assert.deepEqual(row1.slice(0, 3), [tok.clsId, tok.sepId, 0]);
  const long = tok.encode(new Array(200).fill('cat').join(' '));
  assert.equal(long.length, 77);
  assert.equal(long[76], tok.sepId);
  const back = BERTTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  assert.deepEqual(back.vocab, tok.vocab);
  assert.deepEqual(Array.from(back.call(['the dog sat']).data), Array.from(tok.call(['the dog sat']).data));
  const v = BERTTokenizer.fromVocabText('[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\nrun\n##ning\n');
  assert.deepEqual(v.encode('Running'), [3, 5, 6, 4]);
  assert.throws(() => new BERTTokenizer(['a', 'b']), /\[PAD\]/);
});

test('BERTEmbedder / TransformerEmbedder: [B, 77, n_embed]; x_transformer keys and numbers match the PyTorch transcription', () => {
  const tok = BERTTokenizer.build(['a red cat', 'a blue dog']);
  const e = build({ target: 'ldm.modules.encoders.modules.BERTEmbedder', params: { n_embed: 16, n_layer: 1, vocab: tok.vocab } }, 'test') as BERTEmbedder;
  assert.equal(e.vocabSize, tok.vocabSize);
  const out = e.encode(['a red cat', '']);
  assert.deepEqual(out.shape, [2, 77, 16]);
  const keys = [...e.stateDict().keys()];
  for (const k of ['transformer.token_emb.weight', 'transformer.pos_emb.emb.weight', 'transformer.attn_layers.layers.0.0.weight',
    'transformer.attn_layers.layers.0.1.to_q.weight', 'transformer.attn_layers.layers.0.1.to_out.bias',
    'transformer.attn_layers.layers.1.1.net.0.0.weight', 'transformer.attn_layers.layers.1.1.net.2.bias', 'transformer.norm.weight',
    'transformer.to_logits.weight']) assert.ok(keys.includes(k), k);
  assert.deepEqual(e.stateDict().get('transformer.attn_layers.layers.0.1.to_q.weight')!.shape, [512, 16], 'official 8 heads x 64');
  assert.throws(() => new BERTEmbedder({ n_embed: 16, n_layer: 1 }).encode(['x']), /no vocabulary/);
  // the PyTorch transcription of x_transformer.py
  const f = readTensorFile(join(FIX, 'x_transformer.safetensors'));
  const cfg = JSON.parse(f.metadata['config']!) as Record<string, number>;
  const te = new TransformerEmbedder({ n_embed: cfg['dim']!, n_layer: cfg['depth']!, vocab_size: cfg['num_tokens']!, max_seq_len: cfg['max_seq_len']!, heads: cfg['heads']!, dim_head: cfg['dim_head']! });
  const sd = new Map<string, Tensor>();
  for (const k of JSON.parse(f.metadata['state_dict_keys']!) as string[]) sd.set(`transformer.${k}`, f.tensors.get(k)!);
  te.loadStateDict(sd, true);
  te.eval();
  const tokens = f.tensors.get('in.tokens')!;
  assertClose(te.encode(tokens), f.tensors.get('out.embeddings')!, 1e-5, 'embeddings');
  assertClose(te.transformer.forward(tokens, false), f.tensors.get('out.logits')!, 1e-5, 'logits');
});

test('interpolate matches torch F.interpolate; SpatialRescaler; inpainting and super-resolution concat', () => {
  const f = readTensorFile(join(FIX, 'interpolate.safetensors'));
  const x = f.tensors.get('in.x')!;
  const cases = JSON.parse(f.metadata['cases']!) as Record<string, { size?: [number, number]; scale_factor?: number; mode: InterpolateMode; align_corners?: boolean }>;
  for (const [name, c] of Object.entries(cases)) {
    const y = interpolate(x, { mode: c.mode, ...(c.size ? { size: c.size } : {}), ...(c.scale_factor ? { scaleFactor: c.scale_factor } : {}), ...(c.align_corners ? { alignCorners: true } : {}) });
    assertClose(y, f.tensors.get(`out.${name}`)!, 1e-5, name);
  }
  const r = new SpatialRescaler({ n_stages: 2, in_channels: 3, out_channels: 5 });
  assert.deepEqual(r.encode(T.randn([1, 3, 16, 16], new Generator(1))).shape, [1, 5, 4, 4]);
  assert.deepEqual([...r.stateDict().keys()], ['channel_mapper.weight']);
  assert.throws(() => new SpatialRescaler({ method: 'trilinear' }), /4-D/);
  const img = T.randn([2, 3, 8, 8], new Generator(2));
  const mask = new Tensor(Float32Array.from({ length: 128 }, (_, i) => (i % 8 < 4 ? 1 : 0)), [2, 1, 8, 8]);
  const cc = inpaintingConcat((v) => T.avgPool2d(v, 2), img, mask);
  assert.deepEqual(cc.shape, [2, 4, 4, 4]);
  assertClose(T.slice(cc, 1, 3, 4), interpolate(mask, { size: [4, 4] }), 0, 'nearest mask');
  assert.equal(lowResConcat(img, [8, 8]), img, 'same size: unchanged');
  assert.deepEqual(lowResConcat(img, [16, 16]).shape, [2, 3, 16, 16]);
});

test('classifier-free guidance dropout (ucg_training): rate over many draws, seeded, null class / empty caption', () => {
  const m = make({ ucg_training: { class_label: { p: 0.1 }, caption: { p: 0.25, val: '' } } });
  const B = 4000;
  const labels = new Tensor(new Float64Array(B).fill(3), [B], 'int64');
  const caps = new Array<string>(B).fill('a cat');
  const out = m.applyUcg({ class_label: labels, caption: caps }, new Generator(11));
  const dropped = Array.from((out['class_label'] as Tensor).data).filter((v) => v === 10).length;
  assert.ok(Math.abs(dropped / B - 0.1) < 0.015, `class dropout rate ${dropped / B}`);
  assert.ok(Array.from((out['class_label'] as Tensor).data).every((v) => v === 10 || v === 3));
  const empty = (out['caption'] as string[]).filter((s) => s === '').length;
  assert.ok(Math.abs(empty / B - 0.25) < 0.025, `caption dropout rate ${empty / B}`);
  const again = m.applyUcg({ class_label: labels, caption: caps }, new Generator(11));
  assert.deepEqual(Array.from((again['class_label'] as Tensor).data), Array.from((out['class_label'] as Tensor).data), 'seeded');
  assert.equal(labels.data[0], 3, 'the input batch is not modified');
  assert.equal((m.cond_stage_model as ClassEmbedder).nullClass, 10);
  assert.throws(() => m.applyUcg({ image: labels }, new Generator(1)), /not in the batch/);
});

test('sampleLatent: DDIM with guidance over the learned / null conditioning, decoded; seeded', () => {
  const m = make({ cond_stage_trainable: false });
  m.eval();
  const cond = m.conditionFromLabels([1, 7]);
  const uc = m.unconditionalConditioning(2);
  assert.deepEqual(cond.shape, [2, 1, 16]);
  const a = m.sampleLatent({ n: 2, cond, uc, guidance: 3, sampler: 'ddim', steps: 3, gen: new Generator(5) });
  assert.deepEqual(a.latents.shape, [2, 3, 4, 4]);
  assert.deepEqual(a.images!.shape, [2, 3, 8, 8]);
  assert.ok(a.images!.f32.every((v) => v >= -1 && v <= 1 && Number.isFinite(v)));
  const b = m.sampleLatent({ n: 2, cond, uc, guidance: 3, sampler: 'ddim', steps: 3, gen: new Generator(5) });
  assert.deepEqual(Array.from(b.latents.f32), Array.from(a.latents.f32));
  for (const sampler of ['plms', 'dpm-solver++', 'ddpm'] as const) {
    const r = m.sampleLatent({ n: 2, cond, sampler, steps: 3, gen: new Generator(6), decode: false });
    assert.ok(r.images === null && r.latents.f32.every(Number.isFinite), sampler);
  }
  assert.throws(() => m.sampleLatent({ n: 2, cond, guidance: 3 }), /needs the unconditional/);
  assert.throws(() => m.sampleLatent({ n: 3, cond }), /n = 3 rows/);
  // text-conditioned: prompts through BERTEmbedder
  const tok = BERTTokenizer.build(['a red cat', 'a blue dog']);
  const t = make({ cond_stage_key: 'caption', cond_stage_trainable: true, cond_stage_config: { target: 'ldm.modules.encoders.modules.BERTEmbedder', params: { n_embed: 16, n_layer: 1, vocab: tok.vocab, heads: 2, dim_head: 8 } } });
  const pc = t.conditionFromPrompts(['a red cat', 'a dog']);
  assert.deepEqual(pc.shape, [2, 77, 16]);
  const loss = t.sharedStep({ image: batchOf().image, caption: ['a red cat', 'a blue dog'] }, { gen: new Generator(3) });
  assert.ok(Number.isFinite(loss.loss.item()));
  const s = t.sampleLatent({ n: 2, cond: pc, uc: t.unconditionalConditioning(2), guidance: 2, steps: 2, gen: new Generator(1) });
  assert.deepEqual(s.images!.shape, [2, 3, 8, 8]);
});

test('a tiny class-conditional LDM: 20 AdamW steps on a fixed batch lower the loss (learned logvar on)', () => {
  const m = make({ learn_logvar: true, use_ema: true });
  m.train();
  const batch = batchOf(5, 2);
  const t = new Tensor(Float64Array.of(3, 12), [2], 'int64');
  const noise = T.randn([2, 3, 4, 4], new Generator(21));
  const posteriorNoise = T.randn([2, 3, 4, 4], new Generator(22));
  const opt = new AdamW(m.trainableParameters(), { lr: 2e-3, weightDecay: 0 });
  const losses: number[] = [], simple: number[] = [];
  for (let i = 0; i < 20; i++) {
    opt.zeroGrad();
    const r = m.sharedStep(batch, { t, noise, posteriorNoise });
    T.backward(r.loss);
    opt.step();
    m.onTrainBatchEnd();
    losses.push(r.loss.item());
    simple.push(r.lossDict.get('train/loss_simple')!.item());
    if (i === 0) assert.deepEqual([...r.lossDict.keys()], ['train/loss_simple', 'train/loss_gamma', 'logvar', 'train/loss_vlb', 'train/loss']);
  }
  assert.ok(losses.every(Number.isFinite) && simple.every(Number.isFinite));
  assert.ok(losses[19]! < 0.7 * losses[0]!, `loss ${losses[0]} -> ${losses[19]}`);
  assert.ok(simple[19]! < 0.5 * simple[0]!, `loss_simple ${simple[0]} -> ${simple[19]}`);
  assert.equal(m.model_ema!.getBuffer('num_updates').item(), 20);
  assert.ok(m.logvar.grad !== null, 'logvar is learned');
});

test('the DiffusionModel face: conditioning spec, condition / unconditional, sample shape, decode / encode', () => {
  const m: DiffusionModel = make({ cond_stage_trainable: false });
  assert.deepEqual(m.conditioningSpec(), { kind: 'class', numClasses: 10, nullLabel: 10 });
  assert.deepEqual(m.sampleShape(2), [2, 3, 4, 4]);
  const c = m.condition({ labels: [1, 7] });
  assert.deepEqual(c.c_crossattn![0]!.shape, [2, 1, 16]);
  assert.deepEqual(m.unconditional(2)!.c_crossattn![0]!.shape, [2, 1, 16]);
  assert.throws(() => m.condition({ prompts: ['a cat'] }), /no text prompts/);
  const x = batchOf().image;
  const z = m.encode!(T.permute(x, [0, 3, 1, 2]));
  assert.deepEqual(z.shape, [2, 3, 4, 4]);
  assert.deepEqual(m.decode!(z).shape, [2, 3, 8, 8]);
  const r = SAMPLERS.ddim(m.denoiser(), m.diffusion, { shape: m.sampleShape(2), steps: 2, cond: c, gen: new Generator(1) });
  assert.deepEqual(r.samples.shape, [2, 3, 4, 4]);
  const tok = BERTTokenizer.build(['a red cat']);
  const t: DiffusionModel = make({ cond_stage_key: 'caption', cond_stage_config: { target: 'ldm.modules.encoders.modules.BERTEmbedder', params: { n_embed: 16, n_layer: 1, vocab: tok.vocab, heads: 2, dim_head: 8 } } });
  assert.deepEqual(t.conditioningSpec(), { kind: 'text' });
  assert.deepEqual(t.condition({ prompts: ['a red cat'] }).c_crossattn![0]!.shape, [1, 77, 16]);
  assert.throws(() => t.condition({ labels: [1] }), /no class labels/);
});
