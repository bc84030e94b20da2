// Constructor keyword arguments as the official configs write them (snake_case), checked by
// name: an unknown key is rejected with the closest valid one suggested.

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
export function checkKwargs(owner: string, params: Readonly<Record<string, unknown>>, allowed: readonly string[]): void {
  for (const k of Object.keys(params)) {
    if (allowed.includes(k)) continue;
    const s = closest(k, allowed);
    throw new ConfigError(`${owner}: unknown parameter '${clip(k, 80)}'${s ? ` (did you mean '${s}'?)` : ''}; valid: ${allowed.join(', ')}`);
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
