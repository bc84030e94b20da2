// Measures image-to-image and inpainting on real MNIST test digits with a shipped model (run by
// hand; prints the figures quoted in the README / notes):
//   inpainting: the bottom half of each digit regenerated (mask white below row 14) with its own
//               class; the kept top half must equal the input exactly;
//   img2img:    each digit noised to strength S and resampled with its own class;
// class accuracy of the results by the shipped MNIST classifier (the one `ldm eval` uses).
//   node --import tsx scripts/eval-img2img.ts [--model mnist-ddpm] [--n 100] [--sampler euler]
//     [--scheduler karras] [--steps 20] [--strength 0.5] [--guidance 3] [--seed 0]

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Tensor, cat, sub } from '../src/tensor/index.ts';
import { loadMnist, loadWeightsInto, modelsDir, readWeights } from '../src/io/index.ts';
import { MnistClassifier, centerCrop28, loadModel, sampleImages } from '../src/train/index.ts';
import { isSamplerName, type SigmaScheduleName } from '../src/diffusion/index.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'mnist-ddpm' }, n: { type: 'string', default: '100' }, sampler: { type: 'string', default: 'euler' },
    scheduler: { type: 'string', default: 'karras' }, steps: { type: 'string', default: '20' }, strength: { type: 'string', default: '0.5' },
    guidance: { type: 'string', default: '3' }, seed: { type: 'string', default: '0' }, batch: { type: 'string', default: '50' },
  },
});
const n = Number(a.n), steps = Number(a.steps), strength = Number(a.strength), guidance = Number(a.guidance), seed = Number(a.seed), bs = Number(a.batch);
if (!isSamplerName(a.sampler!)) throw new Error(`unknown sampler ${a.sampler}`);
const sampler = a.sampler;
const m = loadModel({ name: a.model });
if (!m.cls) throw new Error('the model is not class-conditional');
const clsW = readWeights(join(modelsDir(), 'mnist-classifier.safetensors'));
const classifier = new MnistClassifier();
loadWeightsInto(classifier, clsW.tensors, clsW.path, true);
classifier.eval();
const test = await loadMnist({ split: 'test' });
const S = m.model.imageSize;
// the first n test digits as [n, 1, S, S] in [-1, 1] (MNIST is 28x28; the shipped models are too)
const imgs = new Float32Array(n * S * S);
const labels: number[] = [];
for (let i = 0; i < n; i++) {
  const px = test.pixels(i);
  for (let p = 0; p < S * S; p++) imgs[i * S * S + p] = (px[p]! / 255) * 2 - 1;
  labels.push(test.label(i));
}
const x0 = new Tensor(imgs, [n, 1, S, S]);
const maskData = new Float32Array(S * S);
for (let y = Math.floor(S / 2); y < S; y++) for (let x = 0; x < S; x++) maskData[y * S + x] = 1; // white = regenerate
const mask = new Tensor(maskData, [1, 1, S, S]);
const extras = isSamplerName(sampler) && !['ddpm', 'ddim', 'plms', 'dpm-solver++'].includes(sampler) ? { scheduler: a.scheduler as SigmaScheduleName } : {};

function run(what: 'inpaint' | 'img2img'): { acc: number; keptMaxDiff: number; seconds: number } {
  const t0 = Date.now();
  const parts: Tensor[] = [];
  for (let s = 0; s < n; s += bs) {
    const k = Math.min(bs, n - s);
    const init = x0.slice(0, s, s + k);
    const r = sampleImages(m.model, m.cls, {
      n: k, sampler, steps, guidance, seed: seed + s, labels: labels.slice(s, s + k), samplerOptions: extras, init,
      ...(what === 'inpaint' ? { mask } : { strength }),
    });
    parts.push(r.samples);
  }
  const out = cat(parts, 0);
  const pred = classifier.predict(centerCrop28(out));
  const acc = pred.filter((p, i) => p === labels[i]).length / n;
  let kept = 0;
  if (what === 'inpaint') {
    const d = sub(out, x0);
    for (let i = 0; i < n; i++) for (let p = 0; p < (S * S) / 2; p++) kept = Math.max(kept, Math.abs(d.data[i * S * S + p]!));
  }
  return { acc, keptMaxDiff: kept, seconds: (Date.now() - t0) / 1000 };
}

const inp = run('inpaint');
console.log(`inpainting (bottom half, ${sampler} ${extras.scheduler ?? ''} ${steps} steps, guidance ${guidance}, N=${n}): class accuracy ${(inp.acc * 100).toFixed(1)}%, ` +
  `max |kept - input| ${inp.keptMaxDiff}, ${(inp.seconds / n).toFixed(3)} s per sample`);
const i2i = run('img2img');
console.log(`img2img (strength ${strength}, ${sampler} ${extras.scheduler ?? ''} ${steps} steps, guidance ${guidance}, N=${n}): class accuracy ${(i2i.acc * 100).toFixed(1)}%, ` +
  `${(i2i.seconds / n).toFixed(3)} s per sample`);
const base = classifier.predict(centerCrop28(x0)).filter((p, i) => p === labels[i]).length / n;
console.log(`(the classifier on the ${n} input digits themselves: ${(base * 100).toFixed(1)}%)`);
