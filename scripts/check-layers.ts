// Layer check (ARCHITECTURE.md): a file under src/<layer>/ imports only from its own layer or
// lower ranks; across layers only through the target layer's index.ts; siblings of equal rank
// never import each other. Run by the tests and by `npm run layers`.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RANKS: Readonly<Record<string, number>> = {
  util: 0, backend: 1, formats: 1, tensor: 2, nn: 3, diffusion: 4, models: 5, io: 6, train: 7, cli: 8, web: 8,
};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

export function checkLayers(root: string): string[] {
  const src = join(root, 'src');
  const problems: string[] = [];
  for (const file of walk(src)) {
    const rel = relative(src, file);
    const layer = rel.split('/')[0]!;
    if (rel === 'index.ts') continue; // the package entry re-exports every layer
    const rank = RANKS[layer];
    if (rank === undefined) { problems.push(`${rel}: folder '${layer}' is not a known layer`); continue; }
    const text = readFileSync(file, 'utf8');
    const re = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
    for (const m of text.matchAll(re)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const trel = relative(src, target);
      if (trel.startsWith('..')) { problems.push(`${rel}: imports '${spec}' outside src/`); continue; }
      const tlayer = trel.split('/')[0]!;
      if (tlayer === layer) continue;
      const trank = RANKS[tlayer];
      if (trank === undefined) { problems.push(`${rel}: imports unknown layer '${tlayer}'`); continue; }
      if (trank > rank) problems.push(`${rel}: ${layer}[${rank}] imports ${tlayer}[${trank}] ('${spec}'): imports must go down`);
      else if (trank === rank) problems.push(`${rel}: ${layer} imports its sibling ${tlayer} ('${spec}')`);
      else if (trel !== `${tlayer}/index.ts`) problems.push(`${rel}: crosses into ${tlayer} through '${spec}' instead of ${tlayer}/index.ts`);
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const problems = checkLayers(root);
  for (const p of problems) console.error(p);
  console.log(problems.length === 0 ? 'layers: ok' : `layers: ${problems.length} problem(s)`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
