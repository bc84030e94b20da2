// `ldm sample [CKPT] [--model NAME] --sampler ddpm|ddim|plms|dpm-solver++ --steps N --eta E
// --guidance G --class K --seed S --n N --out FILE.png [--strip]`: a grid PNG of samples (one
// column per class when no class is given; 28-px cells for MNIST) and optionally the denoising
// trajectory strip (x_t and pred_x0 along the way) next to it as FILE-strip.png.

import { extname } from 'node:path';
import cliProgress from 'cli-progress';
import { ConfigError } from '../util/index.ts';
import { saveImageGrid } from '../io/index.ts';
import { loadModel, sampleImages, trajectoryStrip, type LoadedModel } from '../train/index.ts';
import { SAMPLER_NAMES, isSamplerName, type SamplerName } from '../diffusion/index.ts';

export interface SampleCommandOptions {
  model?: string;
  config?: string;
  sampler: string;
  steps: number;
  eta: number;
  guidance?: number | undefined;
  class?: number[];
  /** text-conditional LDMs: prompts, cycled over the n samples */
  prompt?: string[];
  seed: number;
  n: number;
  out: string;
  strip?: boolean;
  upscale: number;
  noEma?: boolean;
}

/** A step bar on stderr (nothing when not a terminal). */
export function stepBar(label: string): { onStep: (i: number, total: number) => void; stop: () => void } {
  if (process.stderr.isTTY !== true) return { onStep: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar({ format: ` ${label} {bar} {value}/{total} | ETA {eta}s`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onStep: (i, total) => {
      if (!started) { bar.start(total, 0); started = true; }
      bar.update(i);
    },
    stop: () => { if (started) bar.stop(); },
  };
}

export function describeModel(m: LoadedModel): string {
  const c = m.cls?.prompt ? `text-conditional (evaluated with the prompts '${m.cls.prompt(7)}' etc.)` : m.cls ? `class-conditional (${m.cls.numClasses} classes${m.cls.nullLabel !== null ? `, null class ${m.cls.nullLabel}` : ''})` : 'unconditional';
  return `${m.path}: ${(m.model.model.numParameters() / 1e6).toFixed(2)}M parameters, ${m.model.imageSize}x${m.model.imageSize}x${m.model.channels}${typeof (m.model as unknown as { sampleLatent?: unknown }).sampleLatent === 'function' ? ' latents' : ''}, ${c}, ${m.weights} weights`;
}

/** --guidance, defaulting to 3 for a model trained with a null class (classifier-free guidance), else 1. */
export function defaultGuidance(m: LoadedModel, g: number | undefined): number {
  return g ?? (m.cls && (m.cls.nullLabel !== null || m.cls.prompt) ? 3 : 1);
}

export function checkSampler(s: string): SamplerName {
  if (!isSamplerName(s)) throw new ConfigError(`--sampler must be one of ${SAMPLER_NAMES.join(', ')}, got '${s}'`);
  return s;
}

export async function sampleCommand(ckpt: string | undefined, o: SampleCommandOptions): Promise<string[]> {
  const sampler = checkSampler(o.sampler);
  if (sampler === 'plms' && o.eta !== 0) throw new ConfigError('--eta must be 0 for plms');
  const m = loadModel({ checkpoint: ckpt, name: o.model, config: o.config, noEma: o.noEma });
  for (const k of m.missing.slice(0, 1)) process.stderr.write(`warning: ${m.missing.length} model tensors not in the checkpoint (first: ${k})\n`);
  process.stderr.write(`${describeModel(m)}\n`);
  let labels: number[] | null = null;
  if (o.class && o.class.length > 0) {
    if (!m.cls) throw new ConfigError('--class: this model is not class-conditional');
    labels = Array.from({ length: o.n }, (_, i) => o.class![i % o.class!.length]!);
  }
  let prompts: string[] | null = null;
  if (o.prompt && o.prompt.length > 0) {
    if (labels) throw new ConfigError('give --class or --prompt, not both');
    if (!m.cls?.prompt) throw new ConfigError('--prompt: this model is not text-conditional (a LatentDiffusion with a BERTEmbedder cond stage)');
    prompts = Array.from({ length: o.n }, (_, i) => o.prompt![i % o.prompt!.length]!);
  }
  const guidance = defaultGuidance(m, o.guidance);
  const bar = stepBar(sampler);
  const t0 = Date.now();
  const r = sampleImages(m.model, m.cls, {
    n: o.n, sampler, steps: o.steps, eta: o.eta, guidance, labels, prompts, seed: o.seed, onStep: bar.onStep, snapshots: 10,
  });
  bar.stop();
  const nrow = m.cls && !labels && !prompts ? Math.min(o.n, m.cls.numClasses) : Math.min(o.n, 8);
  await saveImageGrid(o.out, r.samples, { nrow, upscale: o.upscale });
  const written = [o.out];
  if (o.strip) {
    const ext = extname(o.out) || '.png';
    const stripPath = `${o.out.slice(0, o.out.length - extname(o.out).length)}-strip${ext}`;
    const st = trajectoryStrip(r, Math.min(4, o.n));
    await saveImageGrid(stripPath, st.images, { nrow: st.nrow, upscale: o.upscale });
    written.push(stripPath);
  }
  const what = prompts ? ` (prompts ${[...new Set(prompts)].map((p) => `'${p}'`).join(', ')})` : r.labels ? ` (classes ${[...new Set(r.labels)].join(',')})` : '';
  console.log(`${o.n} samples${what} with ${sampler}${sampler === 'ddpm' ? '' : ` ${o.steps} steps`}${guidance !== 1 ? `, guidance ${guidance}` : ''}` +
    ` in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${written.join(', ')}`);
  return written;
}
