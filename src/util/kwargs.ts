// Constructor keyword arguments as the official configs write them (snake_case): the one reader
// of the project. `kwargs(owner, params, allowed)` rejects an unknown key with the closest valid
// one suggested, and its typed getters (num, int, bool, str, intList, numList, ...) read a key with
// its default (absent or null -> default, as Python's `None` is) or throw a ConfigError whose
// `issue` is {kind, key, suggestion} as data, so io/config.ts can address it by config path.
// `readOptions(owner, params, schema)` is the config path's reader: a Schema lists one Field per
// key of a constructor's options interface (the compiler holds schema and interface together), and
// the reader returns the params as that typed options object, every key and value checked, so the
// target tables (models/*targets*) never cast a config's params to an options type.

import { ConfigError } from './errors.ts';
import { clip } from './describe.ts';

/** Levenshtein distance (two rows: O(|a|·|b|) time, O(|b|) memory). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** Names longer than this get no did-you-mean (a 10 MB key would cost seconds for nothing). */
export const CLOSEST_MAX_LENGTH = 128;

/**
 * The candidate nearest to `name` by edit distance when it is near enough to be a typo
 * (within max(2, |name|/3)); candidates whose length alone rules them out are skipped, so the
 * cost is bounded by CLOSEST_MAX_LENGTH² per candidate.
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  if (name.length > CLOSEST_MAX_LENGTH) return undefined;
  const limit = Math.max(2, Math.floor(name.length / 3));
  const lower = name.toLowerCase();
  let best: string | undefined, bd = Infinity;
  for (const c of candidates) {
    if (Math.abs(c.length - name.length) > limit || c.length > CLOSEST_MAX_LENGTH * 2) continue;
    const d = editDistance(lower, c.toLowerCase());
    if (d < bd) { bd = d; best = c; }
  }
  return best !== undefined && bd <= limit ? best : undefined;
}

/** Throw a ConfigError for any key of `params` not in `allowed`, naming the owner and a suggestion;
 *  `prefix` is the dotted path of nested options ('ddconfig.'), prepended to the keys named. */
export function checkKwargs(owner: string, params: object, allowed: readonly string[], prefix = ''): void {
  for (const k of Object.keys(params)) {
    if (allowed.includes(k)) continue;
    const s = closest(k, allowed);
    throw new ConfigError(`${owner}: unknown parameter '${prefix}${clip(k, 80)}'${s ? ` (did you mean '${prefix}${s}'?)` : ''}; valid: ${allowed.join(', ')}`,
      { kind: 'unknown', key: prefix + k, suggestion: s && prefix + s });
  }
}

/** The typed reader of one constructor's keyword arguments (see the file header). */
export class Kwargs {
  readonly params: Readonly<Record<string, unknown>>;

  constructor(readonly owner: string, params: object, allowed?: readonly string[]) {
    if (allowed) checkKwargs(owner, params, allowed);
    this.params = Object.fromEntries(Object.entries(params));
  }

  /** The raw value (undefined when absent). */
  raw(key: string): unknown {
    return this.params[key];
  }

  /** Present and not null. */
  has(key: string): boolean {
    return this.params[key] !== undefined && this.params[key] !== null;
  }

  /** A ConfigError about `key`'s value: "<owner>: '<key>' must be <what>, got <value>". */
  invalid(key: string, what: string): ConfigError {
    return new ConfigError(`${this.owner}: '${key}' must be ${what}, got ${JSON.stringify(this.params[key]) ?? 'nothing'}`, { kind: 'invalid', key });
  }

  private value<T>(key: string, dflt: T | undefined, ok: (v: unknown) => v is T, what: string): T {
    const v = this.params[key] ?? dflt;
    if (v === undefined) throw new ConfigError(`${this.owner}: missing required parameter '${key}'`, { kind: 'invalid', key });
    if (!ok(v)) throw this.invalid(key, what);
    return v;
  }

  num(key: string, dflt?: number): number {
    return this.value(key, dflt, isFiniteNumber, 'a number');
  }

  /** An integer >= min (default: any integer). */
  int(key: string, dflt?: number, min = -Infinity): number {
    return this.value(key, dflt, (v): v is number => Number.isInteger(v) && (v as number) >= min, min === -Infinity ? 'an integer' : `an integer >= ${min}`);
  }

  /** An integer >= 1 ("a positive integer"). */
  posInt(key: string, dflt?: number): number {
    return this.value(key, dflt, (v): v is number => Number.isInteger(v) && (v as number) >= 1, 'a positive integer');
  }

  bool(key: string, dflt?: boolean): boolean {
    return this.value(key, dflt, (v): v is boolean => typeof v === 'boolean', 'a boolean');
  }

  /** A string, one of `choices` when given. */
  str<S extends string = string>(key: string, dflt?: S, choices?: readonly S[]): S {
    return this.value(key, dflt, (v): v is S => typeof v === 'string' && (!choices || (choices as readonly string[]).includes(v)),
      choices ? `one of ${choices.join(', ')}` : 'a string');
  }

  intList(key: string, dflt?: readonly number[]): number[] {
    return [...this.value(key, dflt, (v): v is readonly number[] => Array.isArray(v) && v.every((e) => Number.isInteger(e)), 'a list of integers')];
  }

  /** A list of numbers (a single number counts as a list of one, as the official schedulers allow). */
  numList(key: string, dflt?: readonly number[]): number[] {
    const v: unknown = this.params[key] ?? dflt;
    const list: readonly unknown[] | undefined = v === undefined ? undefined : Array.isArray(v) ? v : [v];
    if (list === undefined) throw new ConfigError(`${this.owner}: missing required parameter '${key}'`, { kind: 'invalid', key });
    if (!list.every(isFiniteNumber)) throw this.invalid(key, 'a list of numbers');
    return list.filter(isFiniteNumber);
  }

  /** A number, or null when absent / null. */
  optNum(key: string): number | null {
    return this.has(key) ? this.num(key) : null;
  }

  /** An integer, or null when absent / null. */
  optInt(key: string, min = -Infinity): number | null {
    return this.has(key) ? this.int(key, undefined, min) : null;
  }
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInteger = (v: unknown): v is number => Number.isInteger(v);
const isPlainObject = (v: unknown): v is Readonly<Record<string, unknown>> => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalidValue = (owner: string, key: string, what: string, v: unknown): ConfigError =>
  new ConfigError(`${owner}: '${key}' must be ${what}, got ${clip(JSON.stringify(v) ?? typeof v, 80)}`, { kind: 'invalid', key });

/** The reader of `params` for `owner`, rejecting keys outside `allowed` when given. */
export function kwargs(owner: string, params: object, allowed?: readonly string[]): Kwargs {
  return new Kwargs(owner, params, allowed);
}

/** The entries of `o` whose value is not undefined (so optional fields stay absent under
 *  exactOptionalPropertyTypes): `{ ...defined({ cond, gen }) }`. */
export function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: { [K in keyof T]?: Exclude<T[K], undefined> } = {};
  for (const k of Object.keys(o) as (keyof T)[]) {
    const v = o[k];
    if (v !== undefined) out[k] = v as Exclude<T[typeof k], undefined>;
  }
  return out;
}

// ---- options schemas: a config's params -> a constructor's typed options ----------------------------

/** How one keyword argument of a schema is read: `read` returns the (non-null) value as the option's
 *  type or throws a ConfigError whose issue names `key` (a dotted path inside nested options). */
export interface Field<V> {
  /** a config must give it (the official signature has no default) */
  readonly required: boolean;
  /** an explicit null is kept (Python's None differs from the default here), not left out */
  readonly keepsNull?: boolean;
  read(v: unknown, key: string, owner: string): V;
}

/** A constructor's options schema: one Field per key of its options interface T. The compiler holds
 *  the two together: every key of T has a field, a field's value type fits the key's, and a key T
 *  requires must be a `required(...)` field. */
export type Schema<T> = {
  readonly [K in keyof T]-?: {} extends Pick<T, K> ? Field<Exclude<T[K], undefined>> : Field<Exclude<T[K], undefined>> & { readonly required: true };
};

/** A field whose value is checked by a type guard (`what` is said when it fails). */
export function field<V>(what: string, ok: (v: unknown) => v is V): Field<V> {
  return { required: false, read: (v, key, owner) => { if (!ok(v)) throw invalidValue(owner, key, what, v); return v; } };
}

/** The same field, required (absent or null -> "missing required parameter"). */
export function required<V>(f: Field<V>): Field<V> & { readonly required: true } {
  return { required: true, read: f.read };
}

/** The same field, keeping an explicit null (for options whose None is not their default). */
export function orNull<V>(f: Field<V>): Field<V | null> {
  return { required: f.required, keepsNull: true, read: f.read };
}

/** The fields of the official configs' value types. */
export const F = {
  num: field('a number', isFiniteNumber),
  int: field('an integer', isInteger),
  bool: field('a boolean', (v): v is boolean => typeof v === 'boolean'),
  str: field('a string', (v): v is string => typeof v === 'string'),
  intList: field('a list of integers', (v): v is number[] => Array.isArray(v) && v.every(isInteger)),
  numList: field('a list of numbers', (v): v is number[] => Array.isArray(v) && v.every(isFiniteNumber)),
  strList: field('a list of strings', (v): v is string[] => Array.isArray(v) && v.every((e) => typeof e === 'string')),
  /** a mapping (checked further by whoever reads it) */
  mapping: field('a mapping', isPlainObject),
  /** a nested `{target, params}` config (built through the registry by the constructor) */
  config: field('a {target, params} mapping', (v): v is { target: string; params?: Record<string, unknown> } =>
    isPlainObject(v) && typeof v['target'] === 'string' && (v['params'] === undefined || v['params'] === null || isPlainObject(v['params']))),
  /** any value (the constructor says what it takes: e.g. a built network) */
  any: field('a value', (v): v is unknown => true),
  /** one of the given strings */
  oneOf: <S extends string>(...choices: S[]): Field<S> =>
    field(`one of ${choices.join(', ')}`, (v): v is S => typeof v === 'string' && (choices as readonly string[]).includes(v)),
  /** either field's value (the first that reads) */
  either: <A, B>(a: Field<A>, b: Field<B>, what: string): Field<A | B> => ({
    required: false,
    read: (v, key, owner) => {
      try { return a.read(v, key, owner); } catch { /* try the other */ }
      try { return b.read(v, key, owner); } catch { throw invalidValue(owner, key, what, v); }
    },
  }),
  /** a mapping of a nested options type, read with its own schema (keys named as 'key.sub') */
  nested: <T>(schema: Schema<T>): Field<T> => ({
    required: false,
    read: (v, key, owner) => {
      if (!isPlainObject(v)) throw invalidValue(owner, key, 'a mapping', v);
      return readOptions(owner, v, schema, `${key}.`);
    },
  }),
};

/** The keys of a schema (the constructor's valid keyword arguments). */
export function schemaKeys<T>(schema: Schema<T>): string[] {
  return Object.keys(schema);
}

/**
 * A config's params as a constructor's typed options: unknown keys are rejected with the closest
 * valid one (issue {kind: 'unknown', key, suggestion}); absent or null values are left out (Python's
 * None: the constructor's default; an `orNull` field keeps null), except that a required key must be given; every other value is
 * read by its field (issue {kind: 'invalid', key}). `prefix` is the dotted path of nested options.
 */
export function readOptions<T>(owner: string, params: object, schema: Schema<T>, prefix = ''): T {
  const fields = new Map<string, Field<unknown>>(Object.entries<Field<unknown>>(schema));
  checkKwargs(owner, params, [...fields.keys()], prefix);
  const given = new Map<string, unknown>(Object.entries(params));
  const out: Partial<Record<string, unknown>> = {};
  for (const [key, f] of fields) {
    const v = given.get(key);
    if (v === null && f.keepsNull) {
      out[key] = null;
      continue;
    }
    if (v === undefined || v === null) {
      if (f.required) throw new ConfigError(`${owner}: missing required parameter '${prefix}${key}'`, { kind: 'invalid', key: prefix + key });
      continue;
    }
    out[key] = f.read(v, prefix + key, owner);
  }
  // every key of T was read by its field above (the Schema type ties each field to its key's type)
  return out as T;
}
