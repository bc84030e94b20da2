// The CLI over the regression corpus of hostile files (test/fixtures/hostile, written by
// scripts/make-hostile-corpus.ts): `ldm inspect` on each checkpoint / tensor file and `ldm train`
// on each YAML either prints a correct summary (exit 0) or exits 1 with exactly one line that
// starts with `ldm: error:` and names the file; never a JS error class name, never more than
// 1.5 GB of memory, never more than a few seconds of CPU; the marker file that a hostile pickle
// tries to create never appears. Memory and CPU come from the child's own resource usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'ldm.js');
const CORPUS = join(ROOT, 'test', 'fixtures', 'hostile');
const MARKER = '/tmp/ldm-hostile-marker';
/** Prints the process's peak RSS (KiB) and CPU time (ms) as the last stderr line, at exit. */
const RUSAGE = "data:text/javascript,import{writeSync}from'node:fs';process.on('exit',()=>{const r=process.resourceUsage();" +
  "writeSync(2,'\\nLDM_RUSAGE '+JSON.stringify({rssKiB:r.maxRSS,cpuMs:(r.userCPUTime+r.systemCPUTime)/1000})+'\\n')})";

test('ldm inspect / train over the hostile corpus: one clear line or a correct summary, bounded memory and CPU', (t) => {
  const files = readdirSync(CORPUS).sort();
  assert.ok(files.length >= 20, `${files.length} corpus files`);
  const out = mkdtempSync(join(tmpdir(), 'ldm-corpus-'));
  rmSync(MARKER, { force: true });
  let worstRss = 0, worstCpu = 0;
  try {
    for (const f of files) {
      const path = join('test', 'fixtures', 'hostile', f);
      const args = f.endsWith('.yaml') ? ['train', path, '--out', join(out, f)] : ['inspect', path];
      const r = spawnSync(process.execPath, ['--import', RUSAGE, BIN, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, DEBUG: '' }, timeout: 120_000 });
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      const usageLine = lines.pop() ?? '';
      assert.match(usageLine, /^LDM_RUSAGE /, `${f}: ${r.stderr.slice(0, 300)}`);
      const usage = JSON.parse(usageLine.slice('LDM_RUSAGE '.length)) as { rssKiB: number; cpuMs: number };
      worstRss = Math.max(worstRss, usage.rssKiB);
      worstCpu = Math.max(worstCpu, usage.cpuMs);
      t.diagnostic(`${f}: exit ${r.status}, ${(usage.rssKiB / 1024).toFixed(0)} MB peak RSS, ${(usage.cpuMs / 1000).toFixed(2)} s CPU` +
        `${r.status === 0 ? '' : `: ${lines[lines.length - 1]?.slice(0, 160)}`}`);
      assert.ok(usage.rssKiB * 1024 < 1.5e9, `${f}: peak RSS ${usage.rssKiB} KiB`);
      assert.ok(usage.cpuMs < 10_000, `${f}: ${usage.cpuMs} ms of CPU`);
      assert.doesNotMatch(r.stderr + r.stdout, /\b(Type|Range|Syntax|Reference|Eval|URI)Error\b|\bError: |\n\s+at /, `${f}: a JS error leaked`);
      if (r.status === 0) {
        assert.ok(!f.endsWith('.yaml'), `${f}: a hostile config was accepted`);
        assert.match(r.stdout, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (safetensors|torch), \\d+ tensors, [\\d,]+ values`), f);
      } else {
        assert.equal(r.status, 1, `${f}: exit ${r.status} ${r.signal ?? ''}`);
        const errors = lines.filter((l) => !/^(training|warning|note)/.test(l));
        assert.equal(errors.length, 1, `${f}: ${r.stderr}`);
        assert.match(errors[0]!, /^ldm: error: /, f);
        assert.ok(errors[0]!.includes(basename(f)), `${f}: the message does not name the file: ${errors[0]!.slice(0, 200)}`);
        assert.ok(errors[0]!.length <= 1200, `${f}: a message of ${errors[0]!.length} characters`);
      }
    }
    t.diagnostic(`corpus: ${files.length} files; worst peak RSS ${(worstRss / 1024).toFixed(0)} MB, worst CPU ${(worstCpu / 1000).toFixed(2)} s`);
    assert.ok(!existsSync(MARKER), 'a hostile pickle created the marker file');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
