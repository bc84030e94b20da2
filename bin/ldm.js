#!/usr/bin/env node
// The `ldm` command. Runs the built JavaScript (dist/cli/main.js, from `npm run build`) when it is
// there and up to date with src/ (always so in an installed package, which ships no src/);
// otherwise, e.g. in a fresh clone before the build or while editing src/, it registers tsx
// (TypeScript without a build step) and runs src/cli/main.ts. The built JS starts faster.
// Sets OMP_WAIT_POLICY=passive unless the user set it: the native backend's OpenMP threads then
// sleep instead of spinning while they wait, which on a shared 2-core machine measured 2-3x
// faster (it must be set before the addon loads, i.e. here).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'passive';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');

/** The newest modification time under a folder (ms). */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function useBuilt() {
  if (process.env.LDM_FROM_SOURCE === '1' || !existsSync(built)) return false;
  const src = join(root, 'src');
  return !existsSync(src) || newest(src) <= statSync(built).mtimeMs;
}

let main;
if (useBuilt()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
