#!/usr/bin/env node
// The `ldm` command: registers tsx (TypeScript without a build step) in this process and runs
// src/cli/main.ts. Sets OMP_WAIT_POLICY=passive unless the user set it: the native backend's
// OpenMP threads then sleep instead of spinning while they wait, which on a shared 2-core machine
// measured 2-3x faster (it must be set before the addon loads, i.e. here).
import { register } from 'tsx/esm/api';

if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'passive';
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
