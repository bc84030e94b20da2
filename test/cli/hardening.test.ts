// The CLI as a new user meets it (issue: hardening): `ldm inspect | head` ends quietly, --out
// problems are one line naming the user's path (never our temp file or raw EEXIST text),
// .jpg / .webp outputs are JPEG / WebP, --guidance -2 and --steps 5000 are refused with a
// sentence, --resume on a folder that is not a run names checkpoints/last.json, a text file named
// .safetensors is "not a safetensors file", `ldm bench --help` prints options, and a prompt with
// words outside the vocabulary warns. Each test failed before the fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'ldm.js');
const TMP = mkdtempSync(join(tmpdir(), 'ldm-cli-hard-'));
test.after(() => rmSync(TMP, { recursive: true, force: true }));

function ldm(...args: string[]): { status: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

/** Exit status 1 and exactly one stderr line `ldm: error: ...` matching re, without Node error codes or our temp names. */
function oneLineError(r: ReturnType<typeof ldm>, re: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => !/parameters, .* weights$/.test(l));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^ldm: error: /);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(lines[0]!, /\.tmp\b|\.probe\b|EEXIST|EISDIR|TypeError|RangeError|at .*\.ts:/);
}

const SAMPLE = ['sample', '--n', '1', '--steps', '1'];

test('EPIPE: `ldm inspect FILE | head -1` ends quietly with status 0 (no stack trace)', () => {
  for (let i = 0; i < 3; i++) {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${BIN}" inspect models/mnist-ddpm.safetensors | head -1; exit \${PIPESTATUS[0]}`],
      { encoding: 'utf8', cwd: ROOT });
    assert.equal(r.stderr, '', r.stderr);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.split('\n').length, 2);
  }
});

test('--out under a path whose parent is a file: one line naming the file in the way', () => {
  writeFileSync(join(TMP, 'afile'), 'x');
  oneLineError(ldm(...SAMPLE, '--out', join(TMP, 'afile', 'x.png')), new RegExp(`cannot write .*afile/x\\.png: .*afile is a file, not a folder`));
  oneLineError(ldm(...SAMPLE, '--out', join(TMP, 'afile', 'a', 'b', 'x.png')), /afile is a file, not a folder/);
});

test('--out into /proc and onto an existing folder: one line each', () => {
  oneLineError(ldm(...SAMPLE, '--out', '/proc/x.png'), /^ldm: error: cannot write \/proc\/x\.png: files cannot be created in \/proc/);
  mkdirSync(join(TMP, 'folder'), { recursive: true });
  oneLineError(ldm(...SAMPLE, '--out', join(TMP, 'folder')), /folder: it is an existing folder; give a file name/);
  oneLineError(ldm(...SAMPLE, '--out', join(TMP, 'x.gif')), /'\.gif' is not an image format ldm writes \(\.png, \.jpg, \.jpeg, \.webp\)/);
});

test('--out x.jpg / x.webp are written as JPEG / WebP through sharp', () => {
  const jpg = join(TMP, 'x.jpg'), webp = join(TMP, 'x.webp');
  assert.equal(ldm(...SAMPLE, '--n', '2', '--out', jpg).status, 0);
  assert.deepEqual([...readFileSync(jpg).subarray(0, 3)], [0xff, 0xd8, 0xff]);
  assert.equal(ldm(...SAMPLE, '--n', '2', '--out', webp, '--strip').status, 0);
  const w = readFileSync(webp);
  assert.equal(w.subarray(0, 4).toString('latin1') + w.subarray(8, 12).toString('latin1'), 'RIFFWEBP');
  assert.equal(readFileSync(join(TMP, 'x-strip.webp')).subarray(8, 12).toString('latin1'), 'WEBP');
});

test('--guidance -2 is refused; --steps 5000 names the model\'s timesteps, not an internal function', () => {
  const g = ldm(...SAMPLE, '--guidance', '-2');
  assert.equal(g.status, 1);
  assert.match(g.stderr, /--guidance must be >= 0 .*got -2/);
  const s = ldm('sample', '--n', '1', '--steps', '5000', '--out', join(TMP, 's.png'));
  oneLineError(s, /--steps 5000 is more than the model's 1000 diffusion timesteps; give at most 1000/);
  assert.doesNotMatch(s.stderr, /makeDdim|ddim_num_steps/);
});

test('--resume on a folder that is not a run names RUN/checkpoints/last.json', () => {
  mkdirSync(join(TMP, 'notarun'), { recursive: true });
  const r = ldm('train', '--resume', join(TMP, 'notarun'));
  oneLineError(r, /notarun is not a run folder \(expected .*notarun\/checkpoints\/last\.json/);
});

test('a text file named .safetensors: "not a safetensors file", one line', () => {
  const p = join(TMP, 'notes.safetensors');
  writeFileSync(p, 'hello, these are my notes about the model I trained last week\n');
  oneLineError(ldm('inspect', p), /notes\.safetensors: safetensors: not a safetensors file/);
});

test('`ldm bench --help` and `ldm bench -- --help` print the options and start nothing', () => {
  for (const args of [['bench', '--help'], ['bench', '--', '--help']]) {
    const r = ldm(...args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: ldm bench/);
    assert.match(r.stdout, /--json/);
    assert.doesNotMatch(r.stdout, /measured FP32 peak|backend:/);
  }
  // a bad --ab knob is refused before anything is measured
  const ab = ldm('bench', '--ab', 'winograd=maybe');
  assert.equal(ab.status, 2);
  assert.match(ab.stderr, /^bench: --ab takes KNOB=VALUE .*winograd: auto\|on\|off.* got 'winograd=maybe'/);
  assert.doesNotMatch(ab.stdout, /measured FP32 peak|backend:/);
});

test('a text prompt with words outside the vocabulary warns', () => {
  const r = ldm('sample', 'models/mnist-ldm-text.safetensors', '--prompt', 'a purple giraffe seven', '--n', '1', '--steps', '1', '--out', join(TMP, 'p.png'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: the model's vocabulary does not know 'purple', 'giraffe'/);
  const ok = ldm('sample', 'models/mnist-ldm-text.safetensors', '--prompt', 'a handwritten seven', '--n', '1', '--steps', '1', '--out', join(TMP, 'q.png'));
  assert.doesNotMatch(ok.stderr, /warning/);
});
