// Configs that used to cost seconds or minutes before their one-line error (issue: hardening):
// 100k keys at the root or under model.params (the YAML library's quadratic unique-key check),
// a multi-megabyte `target` (the did-you-mean edit distance over the whole string), 100k-deep
// flow nesting. Each is now bounded; duplicate keys are still refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModelFromConfig, parseConfigText, validateConfig } from '../../src/io/index.ts';
import { ConfigError, closest } from '../../src/util/index.ts';

/** CPU milliseconds of this process since `c0` (wall time on a shared machine measures the other jobs too). */
const cpuMs = (c0: NodeJS.CpuUsage): number => { const c = process.cpuUsage(c0); return (c.user + c.system) / 1000; };

function configError(fn: () => unknown, re: RegExp, maxMs: number): void {
  const c0 = process.cpuUsage();
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e).slice(0, 200)}`);
    assert.match(e.message, re);
    assert.ok(e.message.length <= 1000, `message of ${e.message.length} characters`);
    return true;
  });
  const ms = cpuMs(c0);
  assert.ok(ms < maxMs, `took ${ms.toFixed(0)} ms of CPU (bound ${maxMs})`);
}

const N = 100_000;

test('quadratic YAML: 100k keys at the root give the unknown-key error in seconds, not minutes', () => {
  const text = Array.from({ length: N }, (_, i) => `k${i}: ${i}`).join('\n');
  configError(() => validateConfig(parseConfigText(text, 'root.yaml')), /unknown key 'k0'/, 20_000);
});

test('quadratic YAML: 100k keys under model.params give the unknown-parameter error in seconds', () => {
  const text = 'model:\n  target: ldm.models.diffusion.ddpm.DDPM\n  params:\n' + Array.from({ length: N }, (_, i) => `    k${i}: ${i}`).join('\n');
  configError(() => { const c = parseConfigText(text, 'p.yaml'); validateConfig(c); buildModelFromConfig(c); }, /unknown key 'model\.params\.k0'/, 20_000);
});

test('quadratic YAML: duplicate keys are still refused (linear check), naming the key path', () => {
  configError(() => parseConfigText('model:\n  target: a\n  params:\n    x: 1\n    y: 2\n    x: 3\n', 'dup.yaml'), /^dup\.yaml: invalid YAML: duplicate key 'model\.params\.x'/, 2000);
  configError(() => parseConfigText('a: 1\nb: {c: 1, c: 2}\n', 'dup.yaml'), /duplicate key 'b\.c'/, 2000);
  assert.deepEqual(parseConfigText('a: {b: 1}\nc: [1, {b: 2}]\n', 'ok.yaml'), { a: { b: 1 }, c: [1, { b: 2 }] });
});

test('quadratic YAML: a multi-megabyte target is refused at once, with a bounded message', () => {
  const big = `ldm.models.${'x'.repeat(3_000_000)}`;
  configError(() => validateConfig(parseConfigText(`model:\n  target: ${big}\n`, 't.yaml')), /unknown class 'ldm\.models\.xxx/, 5_000);
  // the did-you-mean itself: 10 MB against the registry costs nothing
  const c0 = process.cpuUsage();
  assert.equal(closest('x'.repeat(10_000_000), ['ldm.models.diffusion.ddpm.DDPM', 'main.DataModuleFromConfig']), undefined);
  assert.ok(cpuMs(c0) < 200);
  assert.equal(closest('max_step', ['max_steps', 'max_epochs']), 'max_steps');
  // and a config file past the size limit is named as such
  configError(() => parseConfigText(`a: ${'x'.repeat(10_000_000)}\n`, 'huge.yaml'), /^huge\.yaml: the config is 10000004 characters/, 2000);
});

test('deep YAML: 100k-deep flow nesting and compact sequences are refused before the parser recurses', () => {
  configError(() => parseConfigText(`a: ${'['.repeat(N)}${']'.repeat(N)}\n`, 'deep.yaml'), /^deep\.yaml: invalid YAML: nesting 100000 levels deep/, 500);
  configError(() => parseConfigText(`a: ${'{x: '.repeat(N)}1${'}'.repeat(N)}\n`, 'deep.yaml'), /nesting 100000 levels deep/, 500);
  configError(() => parseConfigText(`a:\n  ${'- '.repeat(N)}1\n`, 'dash.yaml'), /nesting 100000 levels deep/, 500);
  // brackets inside quotes and comments do not count
  assert.deepEqual(parseConfigText(`a: "${'['.repeat(1000)}" # ${'{'.repeat(1000)}\nb: '${'['.repeat(500)}'\n`, 'q.yaml'),
    { a: '['.repeat(1000), b: '['.repeat(500) });
});
