// Image folders: class labels from sub-folders, resize + center crop, RGB/grey, and unreadable
// files reported by name (skipped and counted, or a stop with on_error: stop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DATA_TARGETS, loadImageFolder } from '../../src/io/index.ts';
import { InputFileError } from '../../src/util/index.ts';

async function png(path: string, w: number, h: number, color: (x: number, y: number) => [number, number, number]): Promise<void> {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(color(x, y), (y * w + x) * 3);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
}

async function makeFolder(): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'ldm-folder-'));
  mkdirSync(join(root, 'dog'));
  mkdirSync(join(root, 'cat'));
  await png(join(root, 'cat', 'a.png'), 40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255]));
  await png(join(root, 'cat', 'b.png'), 16, 16, () => [0, 255, 0]);
  await png(join(root, 'dog', 'c.png'), 10, 30, () => [255, 255, 255]);
  writeFileSync(join(root, 'dog', 'broken.png'), Buffer.from('this is not a png file at all'));
  return root;
}

test('image folder: labels from sorted sub-folders, center crop, corrupt files skipped by name', async () => {
  const root = await makeFolder();
  try {
    const warnings: string[] = [];
    const ds = await loadImageFolder({ root, size: 16, onWarning: (m) => warnings.push(m) });
    assert.deepEqual(ds.classNames, ['cat', 'dog']);
    assert.equal(ds.length, 3);
    assert.deepEqual([0, 1, 2].map((i) => ds.label(i)), [0, 0, 1]);
    assert.equal(ds.skipped.length, 1);
    assert.match(ds.skipped[0]!.file, /broken\.png$/);
    assert.equal(warnings.length, 2);
    assert.match(warnings[1]!, /skipped 1 unreadable file\(s\) of 4/);
    assert.match(warnings[0]!, /skipping unreadable image .*dog\/broken\.png/);
    assert.equal(ds.caption(2), 'a photo of a dog');
    // a.png 40x20 -> 32x16 -> center 16 columns: red on the left, blue on the right
    const px = ds.pixels(0);
    assert.deepEqual([ds.height, ds.width, ds.channels], [16, 16, 3]);
    assert.deepEqual(Array.from(px.subarray((8 * 16 + 1) * 3, (8 * 16 + 1) * 3 + 3)), [255, 0, 0]);
    assert.deepEqual(Array.from(px.subarray((8 * 16 + 14) * 3, (8 * 16 + 14) * 3 + 3)), [0, 0, 255]);
    const grey = await loadImageFolder({ root, size: 8, channels: 1, onWarning: () => {} });
    assert.equal(grey.channels, 1);
    assert.equal(grey.pixels(2)[0], 255);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('image folder: on_error stop names the bad file; the config target checks its params', async () => {
  const root = await makeFolder();
  try {
    await assert.rejects(loadImageFolder({ root, size: 8, onError: 'stop' }),
      (e: Error) => e instanceof InputFileError && /cannot read image .*broken\.png/.test(e.message));
    await assert.rejects(DATA_TARGETS['ldm.data.folder.ImageFolder']({ root, size: 8, flip: 0.5 }, {}), /unknown parameter 'flip' \(did you mean 'flip_p'\?\)/);
    await assert.rejects(loadImageFolder({ root: join(root, 'nope'), size: 8 }), /does not exist/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
