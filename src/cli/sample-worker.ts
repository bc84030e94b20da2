// The sampling worker thread of `ldm serve`: loads models (cached) and draws samples through the
// same functions as `ldm sample` (loadModel, drawSamples), so the HTTP thread stays responsive
// while a request computes. One request at a time (the server queues them). Per-step previews of
// the denoising trajectory (x_t and the x0 estimate as PNG grids) are encoded synchronously, as
// the sampler runs, and posted back at once.

import { parentPort } from 'node:worker_threads';
import { LdmError } from '../util/index.ts';
import { encodePngSync } from '../formats/index.ts';
import { encodePng, makeGrid, type RawImage } from '../io/index.ts';
import { loadModel, type LoadedModel } from '../train/index.ts';
import { drawSamples, type SampleSpec } from './sample.ts';

export interface SampleJob {
  id: number;
  /** shipped model name, or a checkpoint path (a run folder) */
  model: { name: string } | { checkpoint: string };
  spec: SampleSpec;
  previews: boolean;
}

const cache = new Map<string, LoadedModel>();
const png = (img: RawImage): Uint8Array => encodePngSync(img.data, img.width, img.height, img.channels);

function load(ref: SampleJob['model']): LoadedModel {
  const key = 'name' in ref ? `name:${ref.name}` : `ckpt:${ref.checkpoint}`;
  let m = cache.get(key);
  if (!m) {
    m = 'name' in ref ? loadModel({ name: ref.name }) : loadModel({ checkpoint: ref.checkpoint });
    cache.set(key, m);
  }
  return m;
}

parentPort!.on('message', (job: SampleJob) => {
  void (async () => {
    try {
      const t0 = performance.now();
      const m = load(job.model);
      const { r, nrow } = drawSamples(m, job.spec, job.previews ? {
        onPreview: (i, total, xt, x0) => parentPort!.postMessage({ id: job.id, type: 'step', i, total, xt: png(makeGrid(xt, { nrow: Math.min(job.spec.n, 8) })), x0: png(makeGrid(x0, { nrow: Math.min(job.spec.n, 8) })) }),
      } : {});
      const bytes = await encodePng(makeGrid(r.samples, { nrow }));
      parentPort!.postMessage({ id: job.id, type: 'done', png: bytes, seconds: (performance.now() - t0) / 1000 });
    } catch (e) {
      // LdmError = the request does not fit the model (bad class, guidance without a null class): 400
      parentPort!.postMessage({ id: job.id, type: 'error', status: e instanceof LdmError ? 400 : 500, error: e instanceof Error ? e.message : String(e) });
    }
  })();
});
