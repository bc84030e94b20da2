// Constructor keyword arguments as the official configs write them (snake_case), checked by
// name: an unknown key is rejected with the closest valid one suggested.

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
export function checkKwargs(owner: string, params: Readonly<Record<string, unknown>>, allowed: readonly string[]): void {
  for (const k of Object.keys(params)) {
    if (allowed.includes(k)) continue;
    const s = closest(k, allowed);
    throw new ConfigError(`${owner}: unknown parameter '${k}'${s ? ` (did you mean '${s}'?)` : ''}; valid: ${allowed.join(', ')}`);
  }
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
