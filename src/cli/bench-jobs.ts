// `npm run bench -- --jobs`: the user's main jobs timed as a user runs them, next to PyTorch
// running the same network (scripts/bench/torch_anchor.py jobs, the official UNetModel):
//   job_train_100_steps        100 training steps of configs/mnist-ddpm.yaml (batch 64, from
//                              step 2 to step 102, so both skip two warm-up steps; data loading
//                              before the first step is not timed)
//   job_sample_100_ddim50_cfg  sampling 100 MNIST digits with the shipped mnist-ddpm, DDIM 50
//                              steps, classifier-free guidance 3 (loading the model not timed)
// Each returns seconds; the caller prints them beside PyTorch's.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../io/index.ts';
import { loadModel, sampleImages, train } from '../train/index.ts';

/** Seconds for `steps` training steps of configs/mnist-ddpm.yaml after two warm-up steps. */
export async function timeTrainJob(root: string, steps = 100): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), 'ldm-bench-train-'));
  const last = steps + 2;
  try {
    const config = loadConfig(join(root, 'configs/mnist-ddpm.yaml'), [`lightning.trainer.max_steps=${last}`]);
    let t0 = 0, t1 = 0;
    await train({
      config, outDir: out,
      onEvent: (e) => {
        if (e.type !== 'step') return;
        if (e.step === 2) t0 = performance.now();
        if (e.step === last) t1 = performance.now();
      },
    });
    if (!(t1 > t0 && t0 > 0)) throw new Error(`bench --jobs: the training run did not reach step ${last}`);
    return (t1 - t0) / 1000;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Seconds to sample 100 digits (DDIM 50, guidance 3) with the shipped mnist-ddpm. */
export function timeSampleJob(): number {
  const m = loadModel({ name: 'mnist-ddpm' });
  const t0 = performance.now();
  sampleImages(m.model, m.cls, { n: 100, sampler: 'ddim', steps: 50, eta: 0, guidance: 3, seed: 0, snapshots: 0 });
  return (performance.now() - t0) / 1000;
}
