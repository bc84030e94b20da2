// Time per sample of every sampler of the table on a shipped model (run by hand): each sampler
// draws the same batch (same classes, seed, steps, guidance) in `rounds` interleaved rounds and the
// fastest round counts (the machine is shared; interleaving keeps the comparison fair).
//   node --import tsx scripts/bench-samplers.ts [--model mnist-ddpm] [--n 20] [--steps 20] [--rounds 2]

import { parseArgs } from 'node:util';
import { loadModel, sampleImages } from '../src/train/index.ts';
import { SAMPLER_NAMES, isKSampler, type SamplerName } from '../src/diffusion/index.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'mnist-ddpm' }, n: { type: 'string', default: '20' }, steps: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '2' }, guidance: { type: 'string', default: '3' },
  },
});
const n = Number(a.n), steps = Number(a.steps), rounds = Number(a.rounds), guidance = Number(a.guidance);
const m = loadModel({ name: a.model });
const labels = Array.from({ length: n }, (_, i) => i % (m.cls?.numClasses ?? 1));
const samplers = SAMPLER_NAMES.filter((s): s is SamplerName => s !== 'ddpm' && s !== 'plms' && s !== 'dpm-solver++');
const best = new Map<string, number>();
for (let r = 0; r < rounds; r++) {
  for (const s of samplers) {
    const t0 = performance.now();
    sampleImages(m.model, m.cls, {
      n, sampler: s, steps, guidance, seed: 0, labels: m.cls ? labels : null,
      ...(isKSampler(s) ? { samplerOptions: { scheduler: 'karras' } } : {})
    });
    const sec = (performance.now() - t0) / 1000 / n;
    best.set(s, Math.min(best.get(s) ?? Infinity, sec));
  }
}
const ddim = best.get('ddim')!;
console.log(`${a.model}, ${steps} steps, guidance ${guidance}, batch ${n}, best of ${rounds} interleaved rounds:`);
for (const [s, sec] of best) console.log(`${s.padEnd(14)} ${sec.toFixed(3)} s/sample  (${(sec / ddim).toFixed(2)}x ddim)`);
