// Layer check (ARCHITECTURE.md), run by the tests and by `npm run layers`:
//  1. a file under src/<layer>/ imports only from its own layer or lower ranks; across layers only
//     through the target layer's index.ts; siblings of equal rank never import each other;
//  2. every way of importing counts: `import/export ... from`, side-effect `import './x.ts'`,
//     `import('./x.ts')`, `require('./x')` and the function `createRequire(...)` returns;
//  3. no registration by import side effect (rule 5): a side-effect import of a project file is
//     a problem by itself;
//  4. no import cycle among the files of src/ (type-only imports excluded: they vanish at run time);
//  5. test/: a test under test/<layer>/ may open its own layer's internals (white-box tests), reaches
//     other layers only through their index.ts, and imports no layer above its own except io/
//     and dev/ (reading fixture files, the parity runner); test/golden, test/meta, test/cli and
//     test/helpers are not layers and may import any index.ts.
// One cycle is allowed, by name: the Tensor class and its ops (ALLOWED_CYCLE below).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RANKS: Readonly<Record<string, number>> = {
  util: 0, backend: 1, formats: 1, tensor: 2, nn: 3, diffusion: 4, models: 5, io: 6, train: 7, dev: 8, cli: 9, web: 9,
};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'fixtures' || n === 'node_modules') return [];
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mts|js|mjs)$/.test(p) ? [p] : [];
  });
}

export interface ImportRef {
  spec: string;
  kind: 'from' | 'side-effect' | 'dynamic' | 'require';
  /** `import type` / `export type`: erased at run time */
  typeOnly: boolean;
}

/** Every module specifier a source text names, by any of the ways of rule 2. */
export function findImports(text: string): ImportRef[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: ImportRef[] = [];
  for (const m of code.matchAll(/(?:^|[;\n])\s*(import|export)\s+(type\s+)?([^'";]*?)\s+from\s+['"]([^'"]+)['"]/g)) {
    out.push({ spec: m[4]!, kind: 'from', typeOnly: m[2] !== undefined });
  }
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s+['"]([^'"]+)['"]/g)) out.push({ spec: m[1]!, kind: 'side-effect', typeOnly: false });
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1]!, kind: 'dynamic', typeOnly: false });
  // require(...) and every name bound to createRequire(...)
  const requireNames = new Set(['require']);
  for (const m of code.matchAll(/\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*createRequire\s*\(/g)) requireNames.add(m[1]!);
  for (const name of requireNames) {
    const re = new RegExp(`(?<![\\w$.])${name.replace(/\$/g, '\\$')}(?:\\.resolve)?\\(\\s*['"]([^'"]+)['"]\\s*\\)`, 'g');
    for (const m of code.matchAll(re)) out.push({ spec: m[1]!, kind: 'require', typeOnly: false });
  }
  return out;
}

const TEST_FREE = new Set(['golden', 'meta', 'cli', 'helpers']);
const TEST_TOOLING = new Set(['io', 'dev']);

/** The Tensor's fluent methods (x.mean(), x.reshape()) call the ops of tensor/ops/, which build
 *  Tensors: one unit written over several files. Neither side uses the other while the modules
 *  evaluate (only inside function bodies), so ESM loads it in any order. */
const ALLOWED_CYCLE = (f: string): boolean => f === 'tensor/tensor.ts' || /^tensor\/ops\/[\w-]+\.ts$/.test(f);

export function checkLayers(root: string): string[] {
  const src = join(root, 'src');
  const problems: string[] = [];
  const graph = new Map<string, string[]>(); // src file -> src files it imports at run time

  for (const file of walk(src)) {
    const rel = relative(src, file);
    const layer = rel.split('/')[0]!;
    const edges: string[] = [];
    graph.set(file, edges);
    const imports = findImports(readFileSync(file, 'utf8'));
    for (const imp of imports) {
      if (!imp.spec.startsWith('.')) continue;
      const target = resolve(dirname(file), imp.spec);
      if (!imp.typeOnly) edges.push(target);
      if (imp.kind === 'side-effect') problems.push(`${rel}: side-effect import '${imp.spec}' (no registration by import side effect)`);
      if (rel === 'index.ts') continue; // the package entry re-exports every layer
      const rank = RANKS[layer];
      if (rank === undefined) { problems.push(`${rel}: folder '${layer}' is not a known layer`); break; }
      const trel = relative(src, target);
      if (trel.startsWith('..')) { problems.push(`${rel}: imports '${imp.spec}' outside src/`); continue; }
      const tlayer = trel.split('/')[0]!;
      if (tlayer === layer) continue;
      const trank = RANKS[tlayer];
      if (trank === undefined) { problems.push(`${rel}: imports unknown layer '${tlayer}'`); continue; }
      if (trank > rank) problems.push(`${rel}: ${layer}[${rank}] imports ${tlayer}[${trank}] ('${imp.spec}'): imports must go down`);
      else if (trank === rank) problems.push(`${rel}: ${layer} imports its sibling ${tlayer} ('${imp.spec}')`);
      else if (trel !== `${tlayer}/index.ts`) problems.push(`${rel}: crosses into ${tlayer} through '${imp.spec}' instead of ${tlayer}/index.ts`);
    }
  }
  for (const cycle of findCycles(graph)) {
    const files = cycle.map((f) => relative(src, f));
    if (!files.every(ALLOWED_CYCLE)) problems.push(`import cycle: ${files.join(' -> ')}`);
  }

  const testDir = join(root, 'test');
  for (const file of statSync(testDir, { throwIfNoEntry: false })?.isDirectory() ? walk(testDir) : []) {
    const rel = relative(root, file);
    const dir = relative(testDir, file).split('/')[0]!;
    const own = RANKS[dir];
    if (own === undefined && !TEST_FREE.has(dir)) { problems.push(`${rel}: test folder '${dir}' mirrors no layer`); continue; }
    for (const imp of findImports(readFileSync(file, 'utf8'))) {
      if (!imp.spec.startsWith('.')) continue;
      const trel = relative(src, resolve(dirname(file), imp.spec));
      if (trel.startsWith('..')) continue; // test helpers, scripts
      if (imp.kind === 'side-effect') problems.push(`${rel}: side-effect import '${imp.spec}'`);
      const tlayer = trel.split('/')[0]!;
      const trank = RANKS[tlayer];
      if (trank === undefined) { problems.push(`${rel}: imports '${imp.spec}', which is in no layer`); continue; }
      if (tlayer === dir) continue;
      if (trel !== `${tlayer}/index.ts`) problems.push(`${rel}: reaches into ${tlayer} through '${imp.spec}' instead of ${tlayer}/index.ts`);
      if (own !== undefined && trank > own && !TEST_TOOLING.has(tlayer)) problems.push(`${rel}: a ${dir} test imports ${tlayer}[${trank}] ('${imp.spec}'), above its layer`);
    }
  }
  return problems;
}

/** The cycles of a directed graph (one per strongly connected component with a cycle). */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => { // Tarjan's strongly connected components
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const comp: string[] = [];
    let w: string;
    do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push([...comp.reverse(), comp[0]!]);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const problems = checkLayers(root);
  for (const p of problems) console.error(p);
  console.log(problems.length === 0 ? 'layers: ok' : `layers: ${problems.length} problem(s)`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
