// Export a training checkpoint (or run folder) as a shipped model file: the EMA weights as the
// model weights plus the config in the metadata (what RUN/model.safetensors holds at the end of a
// run), for runs stopped early.   npx tsx scripts/export-model.ts RUN_OR_CHECKPOINT OUT.safetensors
import { loadModel, exportModel } from '../src/train/index.ts';

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  console.error('usage: tsx scripts/export-model.ts RUN_OR_CHECKPOINT OUT.safetensors');
  process.exit(2);
}
const m = loadModel({ checkpoint: src, noEma: true });
// loadModel(noEma) keeps the raw weights in the model and the EMA in model_ema: export swaps it in.
exportModel(m.model, m.config, out, Number(m.config['step'] ?? 0));
console.log(`wrote ${out} (${m.weights} weights loaded, EMA swapped in on export)`);
