// PNG tEXt chunks: written after IHDR with a correct CRC (sharp still decodes the file), read
// back, Latin-1 text; a corrupted chunk is reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { addPngText, crc32, readPngText } from '../../src/formats/index.ts';

test('tEXt round trip; the PNG stays valid; CRC-32 check value', async () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  const png = new Uint8Array(await sharp(Buffer.alloc(12), { raw: { width: 2, height: 2, channels: 3 } }).png().toBuffer());
  const text = 'a handwritten seven\nSteps: 20, Sampler: euler_a, Seed: 3, Caf\u00e9';
  const out = addPngText(addPngText(png, 'parameters', text), 'Software', 'ldm.ts');
  const t = readPngText(out);
  assert.equal(t.get('parameters'), text);
  assert.equal(t.get('Software'), 'ldm.ts');
  const meta = await sharp(Buffer.from(out)).metadata();
  assert.equal(meta.width, 2);
  const bad = out.slice();
  bad[45] = bad[45]! ^ 0xff; // inside the first tEXt chunk's data (it starts at byte 41)
  assert.throws(() => readPngText(bad), /bad CRC|tEXt/);
  assert.throws(() => addPngText(new Uint8Array(40), 'k', 'v'), /not a PNG/);
});
