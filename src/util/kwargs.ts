// Constructor keyword arguments as the official configs write them (snake_case): the one reader
// of the project. `kwargs(owner, params, allowed)` rejects an unknown key with the closest valid
// one suggested, and its typed getters (num, int, bool, str, intList, numList, ...) read a key with
// its default (absent or null -> default, as Python's `None` is) or throw a ConfigError whose
// `issue` is {kind, key, suggestion} as data, so io/config.ts can address it by config path.

import { ConfigError } from './errors.ts';

export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
    dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return dp[a.length]![b.length]!;
}

export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined, bd = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bd) { bd = d; best = c; }
  }
  return best !== undefined && bd <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** Throw a ConfigError for any key of `params` not in `allowed`, naming the owner and a suggestion. */
export function checkKwargs(owner: string, params: object, allowed: readonly string[]): void {
  for (const k of Object.keys(params)) {
    if (allowed.includes(k)) continue;
    const s = closest(k, allowed);
    throw new ConfigError(`${owner}: unknown parameter '${k}'${s ? ` (did you mean '${s}'?)` : ''}; valid: ${allowed.join(', ')}`,
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
