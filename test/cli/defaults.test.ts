// A shipped model's default guidance comes from models/registry.json (chosen by a measured sweep);
// a model loaded from a file has none, and `ldm sample` / `ldm eval` then fall back to 3 for a
// model trained with a null class.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveModel } from '../../src/io/index.ts';
import { loadModel } from '../../src/train/index.ts';
import { defaultGuidance } from '../../src/cli/sample.ts';

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
