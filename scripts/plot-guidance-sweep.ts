// Plots a classifier-free guidance sweep of `ldm eval --json` reports: class accuracy and
// classifier-FID (with its real-vs-real floor) against the guidance scale, one PNG of two panels,
// and prints the table. Used to choose a shipped model's default guidance (models/registry.json).
//   for g in 1 1.5 2 3; do ldm eval --model mnist-ddpm --guidance $g --bpd-n 0 --per-class 20 --json > sweep-g$g.json; done
//   npx tsx scripts/plot-guidance-sweep.ts docs/mnist-ddpm-guidance-sweep.png sweep-g*.json
import { readFileSync } from 'node:fs';
import { drawCurve, stackVertical, writePng } from '../src/io/index.ts';

interface Report { sampling: { guidance: number; sampler: string; steps: number }; accuracy: { accuracy: number; n: number } | null; fid: { fid: number; floor: number; n: number } | null }

const [out, ...files] = process.argv.slice(2);
if (!out || files.length === 0) {
  console.error('usage: plot-guidance-sweep.ts OUT.png REPORT.json...');
  process.exit(2);
}
const rows = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Report)
  .filter((r) => r.accuracy && r.fid)
  .sort((a, b) => a.sampling.guidance - b.sampling.guidance);
const g = rows.map((r) => r.sampling.guidance);
const first = rows[0]!;
console.log('| guidance | class accuracy | classifier-FID |');
console.log('|---|---|---|');
for (const r of rows) console.log(`| ${r.sampling.guidance} | ${(r.accuracy!.accuracy * 100).toFixed(1)}% | ${r.fid!.fid.toFixed(1)} |`);
console.log(`(N = ${first.fid!.n}, ${first.sampling.sampler} ${first.sampling.steps} steps; real-vs-real floor ${first.fid!.floor.toFixed(1)})`);
const acc = drawCurve(g, rows.map((r) => r.accuracy!.accuracy * 100), { smoothing: 0, height: 300, title: `class accuracy (%) vs guidance, n = ${first.accuracy!.n}` });
const fid = drawCurve(g, rows.map((r) => r.fid!.fid), { smoothing: 0, height: 300, title: `classifier-FID vs guidance (floor ${first.fid!.floor.toFixed(1)})` });
await writePng(out, stackVertical([acc, fid], 8));
console.log(`-> ${out}`);
