// `npm run parity -- [DIR|FILE ...] [--write OUT.safetensors]`: run the official-code parity
// fixtures (default: the repo's copy in test/fixtures/parity) and print one line per output,
// ending with "N passed, M failed". Exit status 1 on any failure.

import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listFixtures, runParity } from '../dev/index.ts';

export function parityMain(argv: readonly string[]): number {
  const args = [...argv];
  let writeOut: string | undefined;
  const wi = args.indexOf('--write');
  if (wi >= 0) {
    writeOut = args[wi + 1];
    if (!writeOut) { console.error('parity: --write needs a file name'); return 2; }
    args.splice(wi, 2);
  }
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const targets = args.length > 0 ? args : [join(root, 'test/fixtures/parity')];
  const files: string[] = [];
  for (const t of targets) {
    if (!existsSync(t)) { console.error(`parity: ${t} does not exist`); return 2; }
    if (statSync(t).isDirectory()) files.push(...listFixtures(t));
    else files.push(t);
  }
  if (files.length === 0) { console.error(`parity: no *.safetensors fixtures in ${targets.join(', ')}`); return 2; }
  const report = runParity(files, (l) => {
    const err = Number.isFinite(l.error) ? l.error.toExponential(2) : 'inf';
    console.log(`${l.ok ? 'PASS' : 'FAIL'} ${l.fixture} ${l.output} ${err} ${l.ok ? '' : l.detail}`.trimEnd());
  }, writeOut);
  console.log('\nworst normwise error per fixture:');
  for (const [f, e] of report.worst) console.log(`  ${f}: ${Number.isFinite(e) ? e.toExponential(2) : 'FAILED'}`);
  console.log(`\n${report.passed} passed, ${report.failed} failed`);
  return report.failed === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = parityMain(process.argv.slice(2));
}
