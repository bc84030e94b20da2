// Images: make_grid layout and [-1, 1] -> byte mapping, upscaling, PNG round trip, loss curve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drawCurve, makeGrid, readImageRaw, saveImageGrid, toByte, upscale } from '../../src/io/index.ts';
import { Tensor } from '../../src/tensor/index.ts';

test('grid: torchvision make_grid layout (nrow, padding) and value mapping', () => {
  // 3 grey 2x2 images, values -1, 0, 1
  const x = new Tensor(Float32Array.from([-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]), [3, 1, 2, 2]);
  const g = makeGrid(x, { nrow: 2, padding: 1 });
  assert.deepEqual([g.width, g.height, g.channels], [2 * 3 + 1, 2 * 3 + 1, 1]);
  const at = (px: number, py: number): number => g.data[py * g.width + px]!;
  assert.equal(at(1, 1), 0);     // image 0 (-1)
  assert.equal(at(4, 1), 128);   // image 1 (0): round(0.5 * 255)
  assert.equal(at(1, 4), 255);   // image 2 (1), second row
  assert.equal(at(4, 4), 0);     // empty cell = pad value
  assert.equal(toByte(2), 255);
  assert.equal(toByte(-3), 0);
  const u = upscale(g, 2);
  assert.deepEqual([u.width, u.height], [14, 14]);
  assert.equal(u.data[3 * 14 + 3], at(1, 1));
  assert.throws(() => makeGrid(new Tensor(new Float32Array(8), [2, 4])), /expected \[B, 1\|3, H, W\]/);
});

test('PNG files: written atomically and read back; loss curve drawn', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-img-'));
  try {
    const x = new Tensor(Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => (i % 7) / 3 - 1), [2, 3, 4, 5]);
    const p = join(dir, 'sub', 'g.png');
    const g = await saveImageGrid(p, x, { nrow: 2 });
    const back = await readImageRaw(p);
    assert.deepEqual([back.width, back.height, back.channels], [g.width, g.height, 3]);
    assert.deepEqual(Buffer.from(back.data), Buffer.from(g.data));
    const xs = Array.from({ length: 200 }, (_, i) => i + 1);
    const c = drawCurve(xs, xs.map((s) => 1 / Math.sqrt(s)), { logScale: true, title: 'loss', width: 320, height: 200 });
    assert.deepEqual([c.width, c.height, c.channels], [320, 200, 3]);
    assert.ok(c.data.some((v) => v < 100), 'something is drawn');
    const empty = drawCurve([], [], {});
    assert.equal(empty.width, 640);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
