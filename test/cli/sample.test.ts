// `ldm sample` as a user runs it on the shipped mnist-ddpm: a k-diffusion sampler with a
// scheduler, --class none, --batch-size, --out DIR/ (grid + one PNG per image, each with the
// generation parameters in a tEXt chunk), --json, --strip; inpainting from --init / --mask keeps
// the black region of the mask exactly; bad option combinations fail with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readPngText } from '../../src/formats/index.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'ldm.js');

function ldm(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sample: dpmpp_2m karras, --class 3,none, --batch-size, --out DIR/, --json, --strip, PNG parameters', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-sample-'));
  const r = ldm('sample', '--sampler', 'dpmpp_2m', '--scheduler', 'karras', '--steps', '3', '--class', '3,none', '--n', '3',
    '--batch-size', '2', '--guidance', '3', '--out', `${dir}/`, '--json', '--strip');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { sampler: string; 'schedule type': string; n: number; files: string[]; class: string };
  assert.equal(j.sampler, 'dpmpp_2m');
  assert.equal(j['schedule type'], 'karras');
  assert.equal(j.class, '3,10', 'none = the null class 10');
  assert.deepEqual(j.files.map((f) => f.slice(dir.length + 1)), ['grid.png', '00000.png', '00001.png', '00002.png', 'grid-strip.png']);
  for (const f of j.files) assert.ok(existsSync(f), f);
  const p = readPngText(new Uint8Array(readFileSync(join(dir, '00002.png')))).get('parameters') ?? '';
  assert.match(p, /Steps: 3, Sampler: dpmpp_2m, Schedule type: karras, CFG scale: 3, Seed: 2/);
  assert.match(p, /Class: 3/);
  assert.match(r.stderr, /dpmpp_2m: \d+\/6/, 'progress lines when stderr is not a terminal');
});

test('sample: inpainting keeps the black region of the mask exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-inpaint-'));
  const px = Buffer.alloc(28 * 28);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  const mask = Buffer.alloc(28 * 28);
  for (let i = 14 * 28; i < mask.length; i++) mask[i] = 255; // bottom half regenerated
  await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, 'init.png'));
  await sharp(mask, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, 'mask.png'));
  const r = ldm('sample', '--sampler', 'euler', '--steps', '3', '--class', '7', '--n', '1', '--init', join(dir, 'init.png'),
    '--mask', join(dir, 'mask.png'), '--out', `${dir}/out/`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /inpainting/);
  const { data } = await sharp(join(dir, 'out', '00000.png')).greyscale().raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < 14 * 28; i++) assert.equal(data[i], px[i], `kept pixel ${i}`);
  const p = readPngText(new Uint8Array(readFileSync(join(dir, 'out', '00000.png')))).get('parameters') ?? '';
  assert.match(p, /Mask: /);
});

test('sample: options that do not fit the sampler fail with one line', () => {
  for (const [args, msg] of [
    [['--sampler', 'ddim', '--scheduler', 'karras'], /--scheduler is for the k-diffusion samplers/],
    [['--sampler', 'euler', '--eta', '0.5'], /euler has no eta/],
    [['--sampler', 'euler', '--strength', '0.5'], /--strength needs --init/],
  ] as const) {
    const r = ldm('sample', ...args, '--n', '1', '--steps', '2', '--out', join(tmpdir(), 'never.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('ldm: error')).length, 1);
  }
});
