// The one kwargs reader (util/kwargs.ts): unknown keys rejected with a suggestion, typed getters
// with defaults (absent or null -> default), and the key at fault carried as data on the error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, defined, kwargs } from '../../src/util/index.ts';

const issue = (f: () => unknown): unknown => {
  try { f(); } catch (e) { assert.ok(e instanceof ConfigError); return e.issue; }
  assert.fail('no ConfigError');
};

test('kwargs: unknown keys are rejected by name with the closest valid key, as data', () => {
  assert.throws(() => kwargs('Net', { chanels: 3 }, ['channels', 'dim']), /Net: unknown parameter 'chanels' \(did you mean 'channels'\?\); valid: channels, dim/);
  assert.deepEqual(issue(() => kwargs('Net', { chanels: 3 }, ['channels', 'dim'])), { kind: 'unknown', key: 'chanels', suggestion: 'channels' });
  assert.deepEqual(issue(() => kwargs('Net', { zzz: 3 }, ['channels'])), { kind: 'unknown', key: 'zzz', suggestion: undefined });
});

test('kwargs: typed getters with defaults; null counts as absent; bad values name the key', () => {
  const kw = kwargs('Net', { a: 2, b: null, f: true, s: 'eps', l: [1, 2], n: 0.5, x: 'two' });
  assert.equal(kw.num('a'), 2);
  assert.equal(kw.num('b', 7), 7);
  assert.equal(kw.int('missing', 3), 3);
  assert.equal(kw.bool('f'), true);
  assert.equal(kw.str('s', 'x0', ['eps', 'x0', 'v']), 'eps');
  assert.deepEqual(kw.intList('l'), [1, 2]);
  assert.deepEqual(kw.numList('n'), [0.5]);
  assert.equal(kw.optInt('b'), null);
  assert.throws(() => kw.num('x'), /Net: 'x' must be a number, got "two"/);
  assert.deepEqual(issue(() => kw.int('n')), { kind: 'invalid', key: 'n' });
  assert.throws(() => kw.int('a', undefined, 3), /'a' must be an integer >= 3, got 2/);
  assert.throws(() => kw.str('s', undefined, ['x0', 'v']), /'s' must be one of x0, v, got "eps"/);
  assert.throws(() => kw.num('nothing'), /missing required parameter 'nothing'/);
  assert.deepEqual(defined({ a: 1, b: undefined }), { a: 1 });
});
