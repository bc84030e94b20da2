// Constructor keyword arguments as the official configs write them (snake_case): the one reader
// of the project. `kwargs(owner, params, allowed)` rejects an unknown key with the closest valid
// one suggested, and its typed getters (num, int, bool, str, intList, numList, ...) read a key with
// its default (absent or null -> default, as Python's `None` is) or throw a ConfigError whose
// `issue` is {kind, key, suggestion} as data, so io/config.ts can address it by config path.

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

/** Throw a ConfigError for any key of `params` not in `allowed`, naming the owner and a suggestion. */
export function checkKwargs(owner: string, params: object, allowed: readonly string[]): void {
  for (const k of Object.keys(params)) {
    if (allowed.includes(k)) continue;
    const s = closest(k, allowed);
    throw new ConfigError(`${owner}: unknown parameter '${clip(k, 80)}'${s ? ` (did you mean '${s}'?)` : ''}; valid: ${allowed.join(', ')}`,
      { kind: 'unknown', key: k, suggestion: s });
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
