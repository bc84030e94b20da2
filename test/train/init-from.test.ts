// `ldm train --init-from MODEL`: a new run from trained weights (train/init-from.ts). A tiny pixel
// DDPM: the built model holds the file's weights and its EMA starts from them; the shipped text
// LDM: the run keeps the file's scale_factor and vocabulary; wrong files and --resume are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModelFromConfig, getPath, loadConfig, readWeights } from '../../src/io/index.ts';
import { DDPM } from '../../src/models/index.ts';
import { setInitSeed } from '../../src/nn/index.ts';
import { initFromWeights, train, type TrainEvent } from '../../src/train/index.ts';
import { TINY } from './tiny.ts';

const cfg = (name: string): string => join(import.meta.dirname, `../../configs/${name}.yaml`);

test('--init-from: the model starts from the file (EMA too), trains on from step 0; a mismatched file is refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-init-'));
  try {
    const config = loadConfig(cfg('debug'), TINY);
    const a = await train({ config, outDir: join(root, 'a') });
    const file = join(root, 'a', 'model.safetensors');
    const w = readWeights(file).tensors;

    setInitSeed(99);
    const model = buildModelFromConfig(config) as DDPM;
    const r = initFromWeights(model, config, file);
    assert.ok(r.emaFromWeights, 'a model file has no model_ema.*: the EMA starts from its weights');
    const sd = model.stateDict();
    for (const [k, t] of w) if (sd.has(k)) assert.deepEqual(sd.get(k)!.data, t.data, k);
    const before = model.model.namedParameters().map(([, p]) => p.f32.slice());
    model.emaScope(() => model.model.namedParameters().forEach(([n, p], i) => assert.deepEqual(p.f32, before[i], `EMA of ${n}`)));

    const ev: TrainEvent[] = [];
    const c = await train({ config, outDir: join(root, 'c'), initFrom: file, onEvent: (e) => ev.push(e) });
    assert.equal(c.reason, 'finished');
    assert.equal(c.step, 6);
    assert.ok(ev.some((e) => e.type === 'info' && e.message.startsWith('init: ') && e.message.includes(file)));
    assert.ok(ev.some((e) => e.type === 'start' && e.step === 0 && !e.resumed));
    assert.notDeepEqual(c.losses, a.losses, 'the run did not start from the seed again');
    const cw = readWeights(join(root, 'c', 'model.safetensors')).tensors;
    assert.ok([...w].some(([k, t]) => k.startsWith('model.') && cw.get(k)!.f32.some((v, i) => v !== t.f32[i])), 'the run trained on');

    // a file of another shape, and --init-from with --resume, are refused with a clear line
    const wide = loadConfig(cfg('debug'), [...TINY, 'model.params.unet_config.params.model_channels=64']);
    await assert.rejects(train({ config: wide, outDir: join(root, 'd'), initFrom: file }), /shape mismatch/);
    await assert.rejects(train({ config, outDir: join(root, 'a'), resume: true, initFrom: file }), /--init-from starts a new run/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--init-from the shipped text LDM: its scale_factor and vocabulary are kept', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ldm-init-text-'));
  try {
    const shipped = join(import.meta.dirname, '../../models/mnist-ldm-text.safetensors');
    const sw = readWeights(shipped);
    // 16 training images do not hold every digit's caption: the vocabulary must come from the file
    const config = loadConfig(cfg('mnist-ldm-text'), [
      'data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8',
      'lightning.trainer.max_steps=1', 'lightning.trainer.val_check_interval=100', 'lightning.callbacks.image_logger.params.disabled=true',
    ]);
    const r = await train({ config, outDir: join(root, 't'), initFrom: shipped });
    assert.equal(r.reason, 'finished');
    const out = readWeights(join(root, 't', 'model.safetensors'));
    assert.equal(out.tensors.get('scale_factor')!.item(), sw.tensors.get('scale_factor')!.item(), 'scale_by_std did not re-measure');
    const vocab = (c: unknown): unknown => getPath(c as Parameters<typeof getPath>[0], 'model.params.cond_stage_config.params.vocab');
    assert.deepEqual(vocab(out.config), vocab(sw.config));
    const other = loadConfig(cfg('mnist-ldm-text'), ["model.params.cond_stage_config.params.vocab=['[PAD]','[UNK]']"]);
    await assert.rejects(train({ config: other, outDir: join(root, 'u'), initFrom: shipped }), /vocabulary/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
