// A shipped model's default guidance, sampler and steps come from models/registry.json (chosen by
// measured sweeps); a model loaded from a file has none, and `ldm sample` / `ldm eval` then fall
// back to guidance 3 for a model trained with a null class, DDIM and 50 steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveModel, samplingDefaults } from '../../src/io/index.ts';
import { loadModel } from '../../src/train/index.ts';
import { defaultGuidance, samplerChoice } from '../../src/cli/sample.ts';

test('default guidance: the registry value for a shipped model, 3 for a file, --guidance wins', () => {
  const e = resolveModel('mnist-ddpm');
  assert.equal(typeof e.guidance, 'number');
  const byName = loadModel({ name: 'mnist-ddpm' });
  assert.equal(byName.guidance, e.guidance);
  assert.equal(defaultGuidance(byName, undefined), e.guidance);
  assert.equal(defaultGuidance(byName, 2.5), 2.5);
  const byFile = loadModel({ checkpoint: e.checkpointPath });
  assert.equal(byFile.guidance, undefined);
  assert.equal(defaultGuidance(byFile, undefined), 3);
});

test('default sampler and steps: the registry choice for a shipped model, ddim 50 for a file, flags win', () => {
  const e = resolveModel('mnist-ddpm');
  const stored = { sampler: e.sampler ?? 'ddim', steps: e.steps ?? 50 };
  assert.deepEqual(samplerChoice(undefined, { model: 'mnist-ddpm' }), stored);
  assert.equal(loadModel({ name: 'mnist-ddpm' }).sampler, e.sampler);
  assert.deepEqual(samplerChoice(e.checkpointPath, {}), { sampler: 'ddim', steps: 50 });
  assert.deepEqual(samplerChoice(undefined, { model: 'mnist-ddpm', sampler: 'plms', steps: 7 }), { sampler: 'plms', steps: 7 });
  assert.throws(() => samplerChoice(undefined, { model: 'mnist-ddpm', sampler: 'euler-x' }), /--sampler must be one of .*got 'euler-x'/);
});

test('a registry entry with a bad sampler, steps or guidance: one line naming the file, model and key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-reg-'));
  try {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ sampler: 'euler-x' }, /registry\.json: 'm'\.sampler must be one of ddpm, ddim.*got "euler-x"/],
      [{ steps: 0 }, /registry\.json: 'm'\.steps must be an integer >= 1, got 0/],
      [{ guidance: '3' }, /registry\.json: 'm'\.guidance must be a number >= 0, got "3"/],
    ];
    for (const [fields, re] of cases) {
      writeFileSync(join(dir, 'registry.json'), JSON.stringify({ models: { m: { checkpoint: 'm.safetensors', kind: 'ddpm', ...fields } } }));
      assert.throws(() => samplingDefaults({ name: 'm' }, dir), re);
    }
    writeFileSync(join(dir, 'registry.json'), JSON.stringify({ models: { m: { checkpoint: 'm.safetensors', sampler: 'euler_a', steps: 30, guidance: 1.5 } } }));
    assert.deepEqual(samplingDefaults({ name: 'm' }, dir), { sampler: 'euler_a', steps: 30, guidance: 1.5 });
    assert.deepEqual(samplingDefaults({ checkpoint: 'x.safetensors', name: 'm' }, dir), {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
