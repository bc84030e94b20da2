// Tests of the two non-LDM code bases (models/unet/ddpm.ts + models/pddpm.ts for
// w86763777/pytorch-ddpm; models/unet/lucidrains.ts + models/lucidrains-diffusion.ts for
// lucidrains/denoising-diffusion-pytorch v2.3.1): state-dict key sets and shapes against the
// parity fixtures' official keys, output shapes, the interleaved pytorch-ddpm time table,
// seeded (deterministic) training losses, the registry entries and configuration errors.
// The full numerical parity runs through `npm run parity` (src/dev/parity/{pddpm,lucidrains}.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readTensorFile, type TensorFile } from '../../src/io/index.ts';
import {
  LucidrainsDiffusion, GaussianDiffusionSampler, GaussianDiffusionTrainer, LucidrainsUnet, MODEL_TARGETS, PddpmUNet,
  classicTargets, pddpmTimeTable, type BuildFn, type DiffusionModel,
} from '../../src/models/index.ts';
import { getSampler, type SamplerName } from '../../src/diffusion/index.ts';
import * as T from '../../src/tensor/index.ts';
import { ConfigError, Generator } from '../../src/util/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/parity');
const cache = new Map<string, TensorFile>();
function fixture(name: string): TensorFile {
  let f = cache.get(name);
  if (!f) { f = readTensorFile(join(FIX, `${name}.safetensors`)); cache.set(name, f); }
  return f;
}
const meta = (f: TensorFile, k: string): any => JSON.parse(f.metadata[k]!);

const build: BuildFn = (cfg, where) => {
  const f = MODEL_TARGETS[cfg.target];
  if (!f) throw new Error(`${where}: unknown target ${cfg.target}`);
  return f(cfg.params ?? {}, build);
};

/** Our state dict (key -> shape) equals the fixture's for the keys under `prefix`. */
function assertKeys(ours: Map<string, T.Tensor>, f: TensorFile, prefix = '', filter: (k: string) => boolean = () => true): void {
  const want = (meta(f, 'state_dict_keys') as string[]).filter((k) => k.startsWith(prefix) && filter(k));
  assert.deepEqual([...ours.keys()].sort(), want.map((k) => k.slice(prefix.length)).sort());
  for (const k of want) assert.deepEqual([...ours.get(k.slice(prefix.length))!.shape], [...f.tensors.get(k)!.shape], k);
}

const smallDdpm = { T: 100, ch: 32, ch_mult: [1, 2], attn: [1], num_res_blocks: 1, dropout: 0.1 };
const smallLucid = { dim: 8, dim_mults: [1, 2], attn_heads: 2, attn_dim_head: 8 };

test('pytorch-ddpm UNet: official key set and shapes (fixture config)', () => {
  const f = fixture('pddpm');
  const unet = new PddpmUNet(meta(f, 'config').unet);
  assertKeys(unet.stateDict(), f, 'model.');
  const y = T.noGrad(() => unet.forward(T.randn([2, 3, 8, 8], new Generator(1)), T.tensor([0, 999], [2], 'int64')));
  assert.deepEqual([...y.shape], [2, 3, 8, 8]);
  // the frozen table is a non-trainable parameter
  assert.equal(unet.time_embedding.timembedding.at(0).parameters()[0]!.requiresGrad, false);
});

test('pytorch-ddpm trainer + sampler: union of their keys is the fixture state dict', () => {
  const f = fixture('pddpm');
  const cfg = meta(f, 'config');
  const unet = new PddpmUNet(cfg.unet);
  const keys = new Map<string, T.Tensor>();
  const tr = build({ target: cfg.trainer.class, params: { ...cfg.trainer.init, model: unet } }, 'trainer') as GaussianDiffusionTrainer;
  for (const [k, v] of tr.stateDict()) keys.set(k, v);
  for (const s of Object.values(cfg.samplers) as { class: string; init: Record<string, unknown> }[]) {
    const sm = build({ target: s.class, params: { ...s.init, model: unet } }, 'sampler') as GaussianDiffusionSampler;
    for (const [k, v] of sm.stateDict()) keys.set(k, v);
  }
  assertKeys(keys, f);
  // float64 buffers: the float32 linspace widened, bit-identical to the stored F64 values
  for (const k of ['betas', 'sqrt_alphas_bar', 'sqrt_one_minus_alphas_bar'] as const) {
    assert.deepEqual([...tr.buffers64[k]], [...f.float64.get(k)!], k);
  }
});

test('pytorch-ddpm time table: sin/cos interleaved, equal to the stored frozen weight', () => {
  const f = fixture('pddpm');
  const table = pddpmTimeTable(1000, 32);
  const ref = f.tensors.get('model.time_embedding.timembedding.0.weight')!;
  assert.deepEqual([...table.shape], [1000, 32]);
  let worst = 0;
  for (let i = 0; i < ref.size; i++) worst = Math.max(worst, Math.abs(table.f32[i]! - ref.f32[i]!));
  assert.ok(worst <= 2e-6, `table differs from the official by ${worst}`);
  // row t = [sin(t f_0), cos(t f_0), sin(t f_1), cos(t f_1), ...], f_0 = 1
  const t = 7, row = table.f32.subarray(t * 32, (t + 1) * 32);
  assert.ok(Math.abs(row[0]! - Math.sin(7)) < 1e-6 && Math.abs(row[1]! - Math.cos(7)) < 1e-6);
  const f1 = Math.exp(-(2 / 32) * Math.log(10000));
  assert.ok(Math.abs(row[2]! - Math.sin(7 * f1)) < 1e-6 && Math.abs(row[3]! - Math.cos(7 * f1)) < 1e-6);
});

test('lucidrains Unet + GaussianDiffusion: official key set and shapes (fixture config)', () => {
  const f = fixture('ddp_loss_pred_v');
  const cfg = meta(f, 'config');
  const d = build({ target: cfg.class, params: { ...cfg.init, model: { target: cfg.unet_class, params: cfg.unet } } }, 'gd');
  assert.ok(d instanceof LucidrainsDiffusion);
  assertKeys(d.stateDict(), f);
  // default full_attn: linear attention outside, full attention at the innermost stage
  const unet = d.model as LucidrainsUnet;
  assert.ok(f.tensors.has('model.downs.0.2.to_out.1.g') && !f.tensors.has('model.downs.1.2.to_out.1.g'));
  assert.equal(unet.downsampleFactor, 2);
});

test('lucidrains Unet: shapes with learned variance, self-conditioning and learned sinusoidal embedding', () => {
  setInitSeed(3);
  const u = new LucidrainsUnet({ ...smallLucid, learned_variance: true, self_condition: true, learned_sinusoidal_cond: true });
  assert.equal(u.out_dim, 6);
  assert.ok(u.stateDict().has('time_mlp.0.weights'));
  assert.deepEqual([...u.init_conv.weight.shape], [8, 6, 7, 7]);
  const y = T.noGrad(() => u.forward(T.randn([1, 3, 8, 8], new Generator(2)), T.tensor([3], [1], 'int64')));
  assert.deepEqual([...y.shape], [1, 6, 8, 8]);
  assert.throws(() => u.forward(T.zeros([1, 3, 5, 5]), T.tensor([3], [1], 'int64')), /divisible by 2/);
  // GaussianDiffusion refuses a learned-variance Unet, as the official asserts
  assert.throws(() => new LucidrainsDiffusion({ model: u, image_size: 8 }), ConfigError);
});

test('seeded training losses are deterministic and differentiable', () => {
  setInitSeed(11);
  const unet = new PddpmUNet(smallDdpm);
  const tr = new GaussianDiffusionTrainer({ model: unet, beta_1: 1e-4, beta_T: 0.02, T: 100 });
  const x0 = T.clamp(T.randn([2, 3, 4, 4], new Generator(5)), -1, 1);
  const run = (): T.Tensor => T.mean(tr.forward(x0, { generator: new Generator(42) }));
  const a = run(), b = run();
  assert.equal(a.item(), b.item());
  assert.ok(Number.isFinite(a.item()) && a.item() > 0);
  T.backward(a);
  assert.ok(unet.head.weight.grad !== null && T.maxAll(T.abs(unet.head.weight.grad)).item() > 0);

  setInitSeed(12);
  const gd = new LucidrainsDiffusion({ model: new LucidrainsUnet(smallLucid), image_size: 8, timesteps: 50 });
  const img = T.rand([2, 3, 8, 8], new Generator(6));
  const l1 = T.noGrad(() => gd.forward(img, { generator: new Generator(9) })).item();
  const l2 = T.noGrad(() => gd.forward(img, { generator: new Generator(9) })).item();
  assert.equal(l1, l2);
  assert.ok(Number.isFinite(l1) && l1 > 0);
});

test('samplers run end to end from a generator (pytorch-ddpm chain, lucidrains DDIM)', () => {
  setInitSeed(13);
  const unet = new PddpmUNet(smallDdpm).eval();
  const s = new GaussianDiffusionSampler({ model: unet, beta_1: 1e-4, beta_T: 0.02, T: 100, img_size: 8, mean_type: 'epsilon', var_type: 'fixedsmall' });
  const x = T.noGrad(() => s.forward(T.randn([1, 3, 4, 4], new Generator(1)), { steps: 2, generator: new Generator(2) }));
  assert.ok(T.maxAll(T.abs(x)).item() <= 1);
  const gd = new LucidrainsDiffusion({ model: new LucidrainsUnet(smallLucid).eval(), image_size: 8, timesteps: 50, sampling_timesteps: 2 });
  const all = T.noGrad(() => gd.sample(1, true, { generator: new Generator(3) }));
  assert.deepEqual([...all.shape], [1, 3, 3, 8, 8]);
});

test('DiffusionModel face: both wrappers sample through the sampler table as their own loops do', () => {
  // x_T then the per-step noise from one generator, as the wrappers draw them
  const viaFace = (m: DiffusionModel, sampler: SamplerName, steps: number, seed: number): T.Tensor => T.noGrad(() =>
    getSampler(sampler)(m.denoiser(), m.diffusion, { shape: m.sampleShape(1), steps, gen: new Generator(seed), clipDenoised: m.clipDenoised }).samples);
  setInitSeed(17);
  const s: DiffusionModel & GaussianDiffusionSampler = new GaussianDiffusionSampler({
    model: new PddpmUNet({ ...smallDdpm, T: 20 }).eval(), beta_1: 1e-4, beta_T: 0.02, T: 20, img_size: 8, mean_type: 'epsilon', var_type: 'fixedlarge',
  });
  assert.deepEqual(s.sampleShape(2), [2, 3, 8, 8]);
  assert.equal(s.numTimesteps, 20);
  assert.equal(s.unconditional(2), null);
  assert.throws(() => s.condition({ labels: [1] }), /unconditional/);
  const g = new Generator(5);
  const own = T.noGrad(() => s.forward(T.randn([1, 3, 8, 8], g), { generator: g }));
  assert.ok(T.maxAll(T.abs(T.sub(T.clamp(viaFace(s, 'ddpm', 20, 5), -1, 1), own))).item() < 1e-6);

  const gd: DiffusionModel & LucidrainsDiffusion = new LucidrainsDiffusion({
    model: new LucidrainsUnet(smallLucid).eval(), image_size: 8, timesteps: 50, sampling_timesteps: 3,
  });
  assert.deepEqual(gd.sampleShape(1), [1, 3, 8, 8]);
  assert.equal(gd.conditioningSpec().kind, 'none');
  const ddim = T.noGrad(() => gd.sample(1, false, { generator: new Generator(6) })); // unnormalized to [0, 1]
  assert.ok(T.maxAll(T.abs(T.sub(gd.unnormalize(viaFace(gd, 'ddim', 3, 6)), ddim))).item() < 1e-6);
});

test('registry names and configuration errors', () => {
  for (const k of ['model.UNet', 'diffusion.GaussianDiffusionTrainer', 'diffusion.GaussianDiffusionSampler',
    'denoising_diffusion_pytorch.denoising_diffusion_pytorch.Unet', 'denoising_diffusion_pytorch.denoising_diffusion_pytorch.GaussianDiffusion']) {
    assert.ok(k in classicTargets && k in MODEL_TARGETS, k);
  }
  // a config's params go through the table's schema reader; the constructors check again (JS callers)
  assert.throws(() => MODEL_TARGETS['model.UNet']!({ ...smallDdpm, num_res_block: 1 }, build), /unknown parameter 'num_res_block' \(did you mean 'num_res_blocks'\?\)/);
  // @ts-expect-error: the options type has no num_res_block either
  assert.throws(() => new PddpmUNet({ ...smallDdpm, num_res_block: 1 }), /unknown parameter 'num_res_block' \(did you mean 'num_res_blocks'\?\)/);
  assert.throws(() => MODEL_TARGETS['model.UNet']!({ ...smallDdpm, dropout: 'x' }, build), /pytorch-ddpm UNet: 'dropout' must be a number, got "x"/);
  assert.throws(() => new PddpmUNet({ ...smallDdpm, attn: [2] }), /attn index out of bound/);
  const unet = new PddpmUNet(smallDdpm);
  assert.throws(() => new GaussianDiffusionSampler({ model: unet, beta_1: 1e-4, beta_T: 0.02, T: 100 }), /mean_type 'eps'/);
  assert.throws(() => MODEL_TARGETS['denoising_diffusion_pytorch.Unet']!({ dim: 8, dim_mult: [1, 2] }, build), /did you mean 'dim_mults'/);
  const u = new LucidrainsUnet(smallLucid);
  assert.throws(() => MODEL_TARGETS['denoising_diffusion_pytorch.GaussianDiffusion']!({ model: u, image_size: 8, objective: 'pred_eps' }, build), /objective/);
  assert.throws(() => MODEL_TARGETS['diffusion.GaussianDiffusionSampler']!({ model: unet, beta_1: 1e-4, beta_T: 0.02, T: 100, mean_type: 'eps' }, build), /mean_type' must be 'epsilon'.*fails the official assert/);
  assert.throws(() => new LucidrainsDiffusion({ model: u, image_size: 8, immiscible: true }), /immiscible/);
  assert.throws(() => new LucidrainsDiffusion({ model: u, image_size: 8, beta_schedule: 'cosine', schedule_fn_kwargs: { tau: 1 } }), /unknown parameter 'tau'/);
});
