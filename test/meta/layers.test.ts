// The layer rule of ARCHITECTURE.md holds over src/ and test/ (scripts/check-layers.ts), and the
// check sees every way of importing: side-effect imports, import(), require, createRequire,
// cycles inside a layer, tests reaching into other layers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers, findImports } from '../../scripts/check-layers.ts';

test('imports only go down the layer ranks, through index.ts, with no cycles', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  assert.deepEqual(checkLayers(root), []);
});

test('findImports sees from, side-effect, dynamic, require and createRequire imports; skips comments', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from './b.ts';",
    "import './c.ts';",
    "export * from './d.ts';",
    "const m = await import('./e.ts');",
    "const r = createRequire(import.meta.url); r('./f.js'); r.resolve('./g.js');",
    "require('./h.js');",
    "// import { z } from './comment.ts';",
  ].join('\n');
  assert.deepEqual(findImports(text).map((i) => `${i.kind}:${i.spec}${i.typeOnly ? ':type' : ''}`).sort(), [
    'dynamic:./e.ts', 'from:./a.ts', 'from:./b.ts:type', 'from:./d.ts', 'require:./f.js', 'require:./g.js', 'require:./h.js', 'side-effect:./c.ts',
  ]);
});

test('the check reports upward, sibling, side-effect, require and cyclic imports in src/ and test/', () => {
  const root = mkdtempSync(join(tmpdir(), 'layers-'));
  try {
    const put = (rel: string, text: string): void => {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), text);
    };
    put('src/util/index.ts', "export * from './a.ts';\n");
    put('src/util/a.ts', "import { b } from './b.ts';\nexport const a = 1;\n");
    put('src/util/b.ts', "import { a } from './a.ts';\nimport type { T } from './t.ts';\nexport const b = a;\n");
    put('src/util/t.ts', "import { a } from './a.ts';\nexport type T = number;\n");
    put('src/nn/index.ts', "import '../util/index.ts';\nconst r = createRequire(import.meta.url);\nr('../models/index.ts');\n");
    put('src/models/index.ts', "export { a } from '../util/a.ts';\n");
    put('src/formats/index.ts', "import { x } from '../backend/index.ts';\n");
    put('src/backend/index.ts', 'export const x = 1;\n');
    put('test/util/a.test.ts', "import { a } from '../../src/util/a.ts';\nimport { m } from '../../src/models/index.ts';\n");
    put('test/nn/n.test.ts', "import { a } from '../../src/util/a.ts';\n");
    const p = checkLayers(root);
    const has = (re: RegExp): void => assert.ok(p.some((l) => re.test(l)), `${re} in\n${p.join('\n')}`);
    has(/^nn\/index.ts: side-effect import '..\/util\/index.ts'/);
    has(/^nn\/index.ts: nn\[3\] imports models\[5\] \('..\/models\/index.ts'\)/);
    has(/^models\/index.ts: crosses into util through '..\/util\/a.ts'/);
    has(/^formats\/index.ts: formats imports its sibling backend/);
    has(/^import cycle: util\/(a|b).ts -> util\/(a|b).ts -> util\/(a|b).ts$/);
    has(/^test\/util\/a.test.ts: a util test imports models\[5\]/);
    has(/^test\/nn\/n.test.ts: reaches into util through/);
    assert.ok(!p.some((l) => /util\/t.ts/.test(l)), 'a type-only import makes no cycle');
    assert.ok(!p.some((l) => /^test\/util\/a.test.ts: reaches/.test(l)), 'a test may open its own layer');
    assert.equal(p.length, 7, p.join('\n'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
