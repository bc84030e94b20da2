// The `ldm` command (bin/ldm.js through tsx): --help everywhere, inspect on safetensors and on an
// official .ckpt, one-line errors with exit status 1, the models list, the --precision notes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeInfo } from '../../src/backend/index.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'ldm.js');

function ldm(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help lists every command; each command has its own help', () => {
  const r = ldm('--help');
  assert.equal(r.status, 0, r.stderr);
  for (const c of ['train', 'sample', 'eval', 'train-classifier', 'models', 'inspect', 'convert', 'demo', 'bench', 'parity']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
  const s = ldm('sample', '--help');
  assert.equal(s.status, 0);
  for (const o of ['--sampler', '--steps', '--eta', '--guidance', '--class', '--seed', '--n', '--out', '--strip', '--model']) assert.ok(s.stdout.includes(o), o);
  const t = ldm('train', '--help');
  assert.match(t.stdout, /--resume <dir>/);
  assert.match(t.stdout, /overrides/);
});

test('inspect: safetensors and official .ckpt', () => {
  const r = ldm('inspect', 'models/mnist-classifier.safetensors');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /safetensors, 8 tensors/);
  assert.match(r.stdout, /conv1\.weight\s+F32\s+\[16, 1, 3, 3\]/);
  assert.match(r.stdout, /meta test_accuracy/);
  const c = ldm('inspect', 'test/fixtures/formats/lightning.ckpt', '--json');
  assert.equal(c.status, 0, c.stderr);
  const j = JSON.parse(c.stdout) as { kind: string; entries: { name: string; dtype: string; shape: number[] }[] };
  assert.equal(j.kind, 'torch');
  assert.ok(j.entries.length > 0);
});

test('errors: one line, exit status 1', () => {
  const r = ldm('inspect', 'no/such/file.safetensors');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^ldm: error: cannot read no\/such\/file\.safetensors/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const b = ldm('train', 'configs/debug.yaml', 'lightning.trainer.max_step=3');
  assert.equal(b.status, 1);
  assert.match(b.stderr, /did you mean 'lightning\.trainer\.max_steps'/);
  const m = ldm('models');
  assert.equal(m.status, 0);
  assert.match(m.stdout, /mnist-ddpm/);
});

test('--precision bf16: a note where it is emulated (LDM_BF16_EMULATE=1) or falls back, an error for a bad knob', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-bf16-'));
  try {
    const run = (emulate: string) => spawnSync(process.execPath, [BIN, 'sample', '--model', 'mnist-ddpm', '--n', '2', '--steps', '2', '--precision', 'bf16', '--out', join(dir, `s${emulate}.png`)],
      { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '', LDM_BACKEND: 'native', LDM_BF16_EMULATE: emulate } });
    if (!nativeInfo().available) return; // bf16 needs the native backend (the fallback note is the dispatch test's)
    const e = run('1');
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stderr, /note: --precision bf16: emulated \(LDM_BF16_EMULATE=1\)/);
    const f = run('0');
    assert.equal(f.status, 0, f.stderr);
    if (nativeInfo().bf16) assert.doesNotMatch(f.stderr, /note: --precision/);
    else assert.match(f.stderr, /note: --precision bf16: this CPU has no native bf16/);
    const bad = run('yes');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /LDM_BF16_EMULATE must be 0 or 1, got 'yes'/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
