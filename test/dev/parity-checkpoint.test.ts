// The checkpoint family of the parity runner (io/parity/companions.ts, checkpoint-sample.ts):
// every companion checkpoint is compared on its own (`out.x@<label>`), a checkpoint loaded the
// wrong way (raw instead of EMA weights) fails, and missing companions are named.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors } from '../../src/formats/index.ts';
import { runFixture } from '../../src/dev/index.ts';

const PARITY = join(import.meta.dirname, '../fixtures/parity');
const NAME = 'ldm_ckpt_sample';

/** A copy of the fixture and its companions in a temp folder, with config edited by `edit`. */
function variant(edit: (config: Record<string, unknown>) => void, companions = ['.ckpt', '_legacy.ckpt', '.yaml']): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-parity-ckpt-'));
  for (const c of companions) copyFileSync(join(PARITY, `${NAME}${c}`), join(dir, `${NAME}${c}`));
  const f = parseSafetensors(new Uint8Array(readFileSync(join(PARITY, `${NAME}.safetensors`))));
  const config = JSON.parse(f.metadata['config']!) as Record<string, unknown>;
  edit(config);
  const file = join(dir, `${NAME}.safetensors`);
  writeFileSync(file, serializeSafetensors(f.tensors, { ...f.metadata, config: JSON.stringify(config) }, true));
  return { dir, file };
}

test('checkpoint fixture: one comparison per companion checkpoint, all within 1e-4', () => {
  const lines = runFixture(join(PARITY, `${NAME}.safetensors`));
  const outs = ['c', 'uc', 'samples', 'x_inter', 'pred_x0', 'model_out', 'decoded', 'image'];
  assert.deepEqual(lines.map((l) => l.output).sort(), outs.flatMap((o) => [`out.${o}@ckpt`, `out.${o}@ckpt_legacy`]).sort());
  for (const l of lines) assert.ok(l.ok && l.error <= 1e-4, `${l.output}: ${l.detail}`);
});

test('checkpoint fixture has teeth: the raw weights instead of the EMA weights fail', () => {
  const { dir, file } = variant((c) => { (c['sample'] as Record<string, unknown>)['ema'] = false; });
  try {
    const lines = runFixture(file);
    const failed = lines.filter((l) => !l.ok).map((l) => l.output);
    assert.ok(failed.includes('out.samples@ckpt') && failed.includes('out.samples@ckpt_legacy'), failed.join(', '));
    assert.ok(lines.find((l) => l.output === 'out.c@ckpt')!.ok, 'the ClassEmbedder has no EMA: c still matches');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing companion file is named', () => {
  const { dir, file } = variant(() => {}, ['.ckpt', '.yaml']);
  try {
    const lines = runFixture(file);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.ok, false);
    assert.match(lines[0]!.detail, /companion file .*ldm_ckpt_sample_legacy\.ckpt \(companion_files\.ckpt_legacy\) does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
