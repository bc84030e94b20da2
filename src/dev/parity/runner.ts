// The data-driven parity runner: every *.safetensors fixture in a folder is read, matched to a
// handler by its `fixture` name (family prefix), run, and each `out.*` tensor is compared with
// the tolerance its metadata asks for. A new fixture of a known family needs no new code.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LdmError } from '../../util/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { readTensorFile, writeTensorFile } from '../../io/index.ts';
import { compareArrays, parseCheck } from './compare.ts';
import { FixtureContext, type FixtureHandler, type FixtureOutputs } from './types.ts';
import { HANDLERS } from './handlers.ts';

export interface OutputLine {
  fixture: string;
  output: string;
  ok: boolean;
  error: number;
  detail: string;
}

export interface ParityReport {
  lines: OutputLine[];
  passed: number;
  failed: number;
  /** Worst error per fixture (normwise or elementwise ratio). */
  worst: Map<string, number>;
}

export function findHandler(name: string, handlers: readonly FixtureHandler[] = HANDLERS): FixtureHandler | null {
  let best: FixtureHandler | null = null, bestLen = -1;
  for (const h of handlers) for (const p of h.prefixes) {
    if (name.startsWith(p) && p.length > bestLen) { best = h; bestLen = p.length; }
  }
  return best;
}

export function listFixtures(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new LdmError(`parity: cannot read fixture folder ${dir}: ${(e as Error).message}`);
  }
  return names.filter((n) => n.endsWith('.safetensors')).sort().map((n) => join(dir, n)).filter((p) => statSync(p).isFile());
}

function toArray(v: Tensor | number | Float64Array): ArrayLike<number> {
  if (typeof v === 'number') return [v];
  if (v instanceof Float64Array) return v;
  return v.data;
}

/** Run one fixture file; returns one line per expected output. */
export function runFixture(path: string, onLine?: (l: OutputLine) => void, writeOut?: string): OutputLine[] {
  const lines: OutputLine[] = [];
  const emit = (l: OutputLine): void => { lines.push(l); onLine?.(l); };
  let ctx: FixtureContext;
  try {
    const f = readTensorFile(path);
    ctx = new FixtureContext(path, f.tensors, f.float64, f.metadata);
  } catch (e) {
    emit({ fixture: path, output: '(file)', ok: false, error: Infinity, detail: `cannot read: ${(e as Error).message}` });
    return lines;
  }
  const handler = findHandler(ctx.name);
  if (!handler) {
    emit({ fixture: ctx.name, output: '(all)', ok: false, error: Infinity, detail: `no handler for fixture family of '${ctx.name}' (class ${String(ctx.config.class)})` });
    return lines;
  }
  let outs: FixtureOutputs;
  try {
    outs = handler.run(ctx);
  } catch (e) {
    const msg = e instanceof Error ? `${e.message}${process.env['DEBUG'] ? `\n${e.stack}` : ''}` : String(e);
    emit({ fixture: ctx.name, output: '(all)', ok: false, error: Infinity, detail: `${handler.family} failed: ${msg}` });
    return lines;
  }
  const checks = (() => { try { return JSON.parse(ctx.metadata['checks'] ?? '{}') as Record<string, unknown>; } catch { return {}; } })();
  for (const key of ctx.outputKeys) {
    // `out.x` is compared as produced, and so is every `out.x@<label>` (one run per companion checkpoint)
    const produced = [...outs.keys()].filter((k) => k === key || k.startsWith(`${key}@`));
    if (produced.length === 0) {
      emit({ fixture: ctx.name, output: key, ok: false, error: Infinity, detail: 'not produced by our implementation' });
      continue;
    }
    for (const name of produced) {
      const short = key.slice('out.'.length);
      const ours = outs.get(name)!;
      const refT = ctx.get(key);
      const ref64 = ctx.float64.get(key);
      const oursArr = toArray(ours);
      if (typeof ours !== 'number' && !(ours instanceof Float64Array) && ours.size !== refT.size) {
        emit({ fixture: ctx.name, output: name, ok: false, error: Infinity, detail: `shape [${ours.shape}] vs reference [${refT.shape}]` });
        continue;
      }
      const check = parseCheck(checks[short] ?? checks[key], refT.dtype === 'int64');
      const r = compareArrays(oursArr, ref64 ?? refT.data, check);
      emit({ fixture: ctx.name, output: name, ok: r.ok, error: r.error, detail: r.detail });
    }
  }
  if (writeOut) {
    const m = new Map<string, Tensor>();
    for (const [k, v] of outs) {
      if (v instanceof Tensor) m.set(k, v);
      else m.set(k, new Tensor(Float32Array.from(typeof v === 'number' ? [v] : v), typeof v === 'number' ? [] : [v.length]));
    }
    writeTensorFile(writeOut, m, { fixture: ctx.name });
  }
  return lines;
}

export function runParity(paths: readonly string[], onLine?: (l: OutputLine) => void, writeOut?: string): ParityReport {
  const all: OutputLine[] = [];
  for (const p of paths) all.push(...runFixture(p, onLine, writeOut));
  const worst = new Map<string, number>();
  for (const l of all) worst.set(l.fixture, Math.max(worst.get(l.fixture) ?? 0, l.error));
  return { lines: all, passed: all.filter((l) => l.ok).length, failed: all.filter((l) => !l.ok).length, worst };
}
