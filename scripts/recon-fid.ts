// Classifier-FID and PSNR of an autoencoder's reconstructions (posterior mode) of the first N
// test images against the next N real ones, with the real-vs-real floor: how far the first stage
// alone is from the data, e.g. before and after its GAN phase.
//   npx tsx scripts/recon-fid.ts CONFIG.yaml CHECKPOINT.safetensors [N=500]
// The data set is the config's validation set (without its limit); the classifier is the shipped
// one for that data set (MNIST or Fashion-MNIST).
import { join } from 'node:path';
import { buildDataFromConfig, buildModelFromConfig, loadConfig, loadWeightsInto, makeBatch, modelsDir, readWeights } from '../src/io/index.ts';
import { cat, noGrad, permute, type Tensor } from '../src/tensor/index.ts';
import { AutoencoderKL } from '../src/models/index.ts';
import { MnistClassifier, evalFid } from '../src/train/index.ts';

const [configPath, ckpt, nArg] = process.argv.slice(2);
if (!configPath || !ckpt) {
  console.error('usage: recon-fid.ts CONFIG.yaml CHECKPOINT.safetensors [N]');
  process.exit(2);
}
const n = Number(nArg ?? 500);
const config = loadConfig(configPath, ['data.params.validation.params.limit=null']);
const ae = buildModelFromConfig(config);
if (!(ae instanceof AutoencoderKL)) throw new Error(`${configPath}: not an AutoencoderKL config`);
loadWeightsInto(ae, readWeights(ckpt).tensors, ckpt, false);
ae.eval();
const data = await buildDataFromConfig(config, {}, ['validation']);
const ds = data.validation!;
const cpath = join(modelsDir(), /fashion/i.test(ds.name) ? 'fashion-classifier.safetensors' : 'mnist-classifier.safetensors');
const classifier = new MnistClassifier();
loadWeightsInto(classifier, readWeights(cpath).tensors, cpath, true);
classifier.eval();
const x = permute(makeBatch(ds, Array.from({ length: n }, (_, i) => i)).image, [0, 3, 1, 2]); // [N, 1, 28, 28]
const rec = noGrad(() => {
  const parts: Tensor[] = [];
  for (let s = 0; s < n; s += 100) parts.push(ae.decode(ae.encode(x.slice(0, s, Math.min(n, s + 100))).mode()).clamp(-1, 1));
  return parts;
});
const r = cat(rec, 0);
// PSNR on [0, 1] images
const a = x.toArray(), b = r.toArray();
let mse = 0;
for (let i = 0; i < a.length; i++) mse += ((a[i]! - b[i]!) / 2) ** 2;
mse /= a.length;
// FID of the reconstructions of images 0..N-1 against real images 0..N-1 would be biased low (same
// images); evalFid compares with real set A = images 0..N-1, so reconstruct images N..2N-1 instead
const xb = permute(makeBatch(ds, Array.from({ length: n }, (_, i) => n + i)).image, [0, 3, 1, 2]);
const rb = noGrad(() => {
  const parts: Tensor[] = [];
  for (let s = 0; s < n; s += 100) parts.push(ae.decode(ae.encode(xb.slice(0, s, Math.min(n, s + 100))).mode()).clamp(-1, 1));
  return cat(parts, 0);
});
const f = evalFid(rb, ds, classifier);
console.log(JSON.stringify({ checkpoint: ckpt, n, psnr: 10 * Math.log10(1 / mse), fid: f.fid, floor: f.floor, reference: f.reference }));
