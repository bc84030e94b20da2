// Parity with the official PyTorch code: every fixture in the repo's copy (test/fixtures/parity)
// and, when present, every fixture in ../shared/fixtures runs through the same data-driven runner
// as `npm run parity`. A new fixture file becomes a new test with no new code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listFixtures, runFixture } from '../../src/dev/index.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dirs = [resolve(root, 'test/fixtures/parity'), resolve(root, '../shared/fixtures')].filter((d) => existsSync(d));
// One run per fixture name; the shared folder (the canonical, possibly newer set) wins.
const byName = new Map<string, string>();
for (const d of dirs) for (const f of listFixtures(d)) byName.set(basename(f), f);
const files = [...byName.values()];

test('parity fixtures are present', () => {
  assert.ok(files.length >= 18, `expected the parity fixtures, found ${files.length} in ${dirs.join(', ')}`);
});

for (const f of files) {
  test(`parity ${f.includes('/shared/') ? 'shared' : 'repo'}/${basename(f)}`, () => {
    const lines = runFixture(f);
    const bad = lines.filter((l) => !l.ok);
    assert.ok(lines.length > 0, 'no outputs compared');
    assert.deepEqual(bad.map((l) => `${l.output}: ${l.detail}`), []);
  });
}
