// In-page speed against Node: sampling (mnist-ddpm, 8 images, DDIM, guidance 3: 16 UNet
// evaluations per step) and training steps (configs/mnist-demo.yaml, batch 8) in headless Chromium
// on the reference and WebAssembly backends, and the same computations in this Node process on the
// reference, WebAssembly and native backends. Prints seconds per sampler step and training
// images per second. Run by hand: `npx tsx scripts/bench-browser.ts` (a few minutes).

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setBackend } from '../src/tensor/index.ts';
import { loadConfig, loadMnist } from '../src/io/index.ts';
import { loadModel, sampleImages, trainInMemory } from '../src/train/index.ts';
import { startServer } from '../src/cli/serve.ts';
import { launchChromium } from '../test/helpers/chromium.ts';

const ROOT = resolve(import.meta.dirname, '..');
const N = 8, BATCH = 8;
const plan = { reference: { sampleSteps: 2, trainSteps: 2 }, wasm: { sampleSteps: 10, trainSteps: 6 }, native: { sampleSteps: 20, trainSteps: 10 } };
type B = keyof typeof plan;
const rows: string[] = [];
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const report = (where: string, b: B, sampleSec: number, stepSecs: number[]): void => {
  const st = median(stepSecs.slice(1)); // the first step warms up
  rows.push(`| ${where} | ${b} | ${(sampleSec / plan[b].sampleSteps).toFixed(3)} | ${st.toFixed(3)} | ${(BATCH / st).toFixed(1)} |`);
  console.log(rows.at(-1));
};

const server = await startServer({ port: 0, host: '127.0.0.1', runs: null });
const browser = await launchChromium(mkdtempSync(join(tmpdir(), 'ldm-chromium-')));
try {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('body[data-models]');
  for (const b of ['wasm', 'reference'] as const) {
    const { sampleSteps, trainSteps } = plan[b];
    const r = await page.evaluate(async (backend, steps, n, batch, tsteps) => {
      const ldm = (window as unknown as { ldm: { browser: { sampleRaw(o: unknown): Promise<{ seconds: number }>; train(o: unknown): Promise<{ stepSeconds: number[] }> } } }).ldm;
      await ldm.browser.sampleRaw({ model: 'mnist-ddpm', class: [1], n: 1, steps: 1, seed: 0, backend }); // load the model
      const s = await ldm.browser.sampleRaw({ model: 'mnist-ddpm', class: [0, 1, 2, 3, 4, 5, 6, 7], n, steps, seed: 0, backend });
      const t = await ldm.browser.train({ config: 'mnist-demo', steps: tsteps, seed: 0, batchSize: batch, backend });
      return { sample: s.seconds, steps: t.stepSeconds };
    }, b, sampleSteps, N, BATCH, trainSteps);
    report('Chromium page (Web Worker)', b, r.sample, r.steps);
  }
} finally {
  await browser.close();
  await server.close();
}
const m = loadModel({ name: 'mnist-ddpm' });
const train = loadMnist({ split: 'train' });
for (const b of ['native', 'wasm', 'reference'] as const) {
  setBackend(b);
  const { sampleSteps, trainSteps } = plan[b];
  sampleImages(m.model, m.cls, { n: 1, sampler: 'ddim', steps: 1, seed: 0, labels: [1], guidance: 3 });
  const t0 = performance.now();
  sampleImages(m.model, m.cls, { n: N, sampler: 'ddim', steps: sampleSteps, seed: 0, labels: [0, 1, 2, 3, 4, 5, 6, 7], guidance: 3 });
  const sample = (performance.now() - t0) / 1000;
  const steps: number[] = [];
  await trainInMemory({ config: loadConfig(join(ROOT, 'configs/mnist-demo.yaml'), [`data.params.batch_size=${BATCH}`, 'seed=0']), train, steps: trainSteps, onStep: (s) => { steps.push(s.seconds); } });
  report('Node 20', b, sample, steps);
}
console.log(['| where | backend | s / sampler step (8 images, guidance 3) | s / training step (batch 8) | training img/s |', '|---|---|---|---|---|', ...rows].join('\n'));
