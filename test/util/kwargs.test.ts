// The one kwargs reader (util/kwargs.ts): unknown keys rejected with a suggestion, typed getters
// with defaults (absent or null -> default), and the key at fault carried as data on the error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, F, defined, kwargs, orNull, readOptions, required, schemaKeys, type Schema } from '../../src/util/index.ts';

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

interface InnerOptions { ch: number; mult?: readonly number[] }
interface NetOptions {
  inner: InnerOptions;
  kind?: 'a' | 'b';
  size?: number | readonly number[];
  monitor?: string | null;
  dropout?: number;
}
const INNER: Schema<InnerOptions> = { ch: required(F.int), mult: F.intList };
// the compiler holds a schema to its options type (checked by `tsc`, which the landing runs):
// @ts-expect-error: 'ch' is required by InnerOptions, so its field must be required(...)
const NOT_REQUIRED: Schema<InnerOptions> = { ch: F.int, mult: F.intList };
// @ts-expect-error: 'mult' takes a list of integers, not a string
const WRONG_TYPE: Schema<InnerOptions> = { ch: required(F.int), mult: F.str };
void NOT_REQUIRED; void WRONG_TYPE;
const NET: Schema<NetOptions> = {
  inner: required(F.nested(INNER)), kind: F.oneOf('a', 'b'), size: F.either(F.int, F.intList, 'an integer or a list'),
  monitor: orNull(F.str), dropout: F.num,
};

test('readOptions: a config\'s params as typed options, every key and value checked, issues as data', () => {
  const o: NetOptions = readOptions('Net', { inner: { ch: 4 }, kind: 'b', size: [2, 3], monitor: null, dropout: null }, NET);
  assert.deepEqual(o, { inner: { ch: 4 }, kind: 'b', size: [2, 3], monitor: null }); // null dropout: the default (left out)
  assert.deepEqual(readOptions('Net', { inner: { ch: 4 }, size: 5 }, NET), { inner: { ch: 4 }, size: 5 });
  assert.deepEqual(schemaKeys(NET), ['inner', 'kind', 'size', 'monitor', 'dropout']);
  assert.throws(() => readOptions('Net', { inner: { ch: 4 }, dropuot: 0 }, NET), /Net: unknown parameter 'dropuot' \(did you mean 'dropout'\?\)/);
  assert.deepEqual(issue(() => readOptions('Net', { inner: { ch: 4, mul: [1] } }, NET)), { kind: 'unknown', key: 'inner.mul', suggestion: 'inner.mult' });
  assert.deepEqual(issue(() => readOptions('Net', { inner: { ch: 'x' } }, NET)), { kind: 'invalid', key: 'inner.ch' });
  assert.throws(() => readOptions('Net', { inner: {} }, NET), /Net: missing required parameter 'inner.ch'/);
  assert.throws(() => readOptions('Net', {}, NET), /Net: missing required parameter 'inner'/);
  assert.throws(() => readOptions('Net', { inner: { ch: 1 }, kind: 'c' }, NET), /Net: 'kind' must be one of a, b, got "c"/);
  assert.throws(() => readOptions('Net', { inner: { ch: 1 }, size: 'big' }, NET), /'size' must be an integer or a list, got "big"/);
  assert.deepEqual(issue(() => readOptions('Net', { inner: [] }, NET)), { kind: 'invalid', key: 'inner' });
});
