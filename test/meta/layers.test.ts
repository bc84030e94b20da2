// The layer rule of ARCHITECTURE.md holds over src/ (imports only go down the ranks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers } from '../../scripts/check-layers.ts';

test('imports only go down the layer ranks, through index.ts', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const problems = checkLayers(root);
  assert.deepEqual(problems, []);
});
