// Run logs as JSON lines (RUN/metrics.jsonl): one object per logged step ({step, loss, lr, ...}).
// Appending is one write per line; on resume the file is cut back to the checkpoint's step
// (rewritten atomically) so the log matches an uninterrupted run.

import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputFileError } from '../util/index.ts';
import { ensureDir, writeFileAtomic } from './tensors.ts';

export type MetricsRow = Record<string, number | string | null> & { step: number };

export function readMetrics(path: string): MetricsRow[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const rows: MetricsRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      // a line cut by a crash mid-write can only be the last one
      if (lines.slice(i + 1).some((l) => l.trim() !== '')) throw new InputFileError(`${path}:${i + 1}: not valid JSON`);
    }
  });
  return rows;
}

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  append(row: MetricsRow): void {
    appendFileSync(this.path, `${JSON.stringify(row)}\n`);
  }

  /** Keep only rows with step <= lastStep (rows of a run that continued past its checkpoint go). */
  truncate(lastStep: number): MetricsRow[] {
    const rows = readMetrics(this.path).filter((r) => r.step <= lastStep);
    writeFileAtomic(this.path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    return rows;
  }

  read(): MetricsRow[] {
    return readMetrics(this.path);
  }
}

/** Write a small text/JSON file atomically (run summaries, configs). */
export function writeTextFile(path: string, text: string): void {
  ensureDir(dirname(path));
  writeFileAtomic(path, text);
}
