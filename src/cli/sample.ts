// `ldm sample [CKPT] [--model NAME] --sampler ddpm|ddim|plms|dpm-solver++ --steps N --eta E
// --guidance G --class K --seed S --n N --out FILE.png [--strip]`: a grid PNG of samples (one
// column per class when no class is given; 28-px cells for MNIST) and optionally the denoising
// trajectory strip (x_t and pred_x0 along the way) next to it as FILE-strip.png.

import { extname } from 'node:path';
import cliProgress from 'cli-progress';
import { ConfigError } from '../util/index.ts';
import { checkWritable, imageFormatOf, saveImageGrid } from '../io/index.ts';
import { BERTEmbedder, basicTokenize } from '../models/index.ts';
import { defaultGuidanceFor, loadModel, sampleImages, trajectoryStrip, type LoadedModel, type SampleOutput, type SampleRequest } from '../train/index.ts';
import { LatentDiffusion } from '../models/index.ts';
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
  return `${m.path}: ${(m.model.model.numParameters() / 1e6).toFixed(2)}M parameters, ${m.model.imageSize}x${m.model.imageSize}x${m.model.channels}${m.model instanceof LatentDiffusion ? ' latents' : ''}, ${c}, ${m.weights} weights`;
}

/** --guidance, defaulting to the shipped model's measured choice (registry.json `guidance`), else 3
 *  for a model trained with a null class (classifier-free guidance), else 1. */
export function defaultGuidance(m: LoadedModel, g: number | undefined): number {
  return g ?? m.guidance ?? defaultGuidanceFor(m.cls);
}

export function checkSampler(s: string): SamplerName {
  if (!isSamplerName(s)) throw new ConfigError(`--sampler must be one of ${SAMPLER_NAMES.join(', ')}, got '${s}'`);
  return s;
}

/** Words of the prompts that are not tokens of the model's vocabulary (split into pieces or [UNK]: never seen whole in training). */
export function unknownPromptWords(m: LoadedModel, prompts: readonly string[]): string[] {
  const cs = (m.model as unknown as { cond_stage_model?: unknown }).cond_stage_model;
  if (!(cs instanceof BERTEmbedder) || !cs.hasTokenizer) return [];
  const tok = cs.tokenizer;
  const out = new Set<string>();
  for (const p of prompts) for (const w of basicTokenize(p, tok.doLowerCase)) if (tok.tokenId(w) === undefined) out.add(w);
  return [...out];
}

/** The strip file beside --out: samples.png -> samples-strip.png. */
const stripPathOf = (out: string): string => `${out.slice(0, out.length - extname(out).length)}-strip${extname(out) || '.png'}`;

/** What a sample request asks for (the CLI's options, the server's JSON body). */
export interface SampleSpec {
  sampler: SamplerName;
  steps: number;
  eta: number;
  guidance?: number | undefined;
  class?: number[] | undefined;
  prompt?: string[] | undefined;
  seed: number;
  n: number;
}

/** Check a request against the model and draw it: labels or prompts cycled over the n samples,
 *  the default guidance, sampleImages. Shared by `ldm sample` and `ldm serve`. */
export function drawSamples(m: LoadedModel, o: SampleSpec, hooks: Pick<SampleRequest, 'onStep' | 'onPreview'> = {}):
  { r: SampleOutput; labels: number[] | null; prompts: string[] | null; guidance: number; nrow: number; unknownWords: string[] } {
  if (o.sampler === 'plms' && o.eta !== 0) throw new ConfigError('--eta must be 0 for plms');
  if (o.guidance !== undefined && !(o.guidance >= 0)) throw new ConfigError(`--guidance must be >= 0 (1 = no guidance, 0 = unconditional), got ${o.guidance}`);
  const T = m.model.numTimesteps;
  if (o.sampler !== 'ddpm' && o.steps > T) {
    throw new ConfigError(`--steps ${o.steps} is more than the model's ${T} diffusion timesteps; give at most ${T} (or --sampler ddpm, which always runs all ${T})`);
  }
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
  const r = sampleImages(m.model, m.cls, {
    n: o.n, sampler: o.sampler, steps: o.steps, eta: o.eta, guidance, labels, prompts, seed: o.seed, snapshots: 10, ...hooks,
  });
  const nrow = m.cls && !labels && !prompts ? Math.min(o.n, m.cls.numClasses) : Math.min(o.n, 8);
  return { r, labels, prompts, guidance, nrow, unknownWords: o.prompt ? unknownPromptWords(m, o.prompt) : [] };
}

export async function sampleCommand(ckpt: string | undefined, o: SampleCommandOptions): Promise<string[]> {
  const sampler = checkSampler(o.sampler);
  if (sampler === 'plms' && o.eta !== 0) throw new ConfigError('--eta must be 0 for plms');
  // the output is checked before the model is loaded and sampled (minutes), not after
  imageFormatOf(o.out);
  checkWritable(o.out);
  if (o.strip) checkWritable(stripPathOf(o.out));
  const m = loadModel({ checkpoint: ckpt, name: o.model, config: o.config, noEma: o.noEma });
  for (const k of m.missing.slice(0, 1)) process.stderr.write(`warning: ${m.missing.length} model tensors not in the checkpoint (first: ${k})\n`);
  process.stderr.write(`${describeModel(m)}\n`);
  // prompt words the model has never seen, said before sampling
  const unknown = o.prompt ? unknownPromptWords(m, o.prompt) : [];
  if (unknown.length > 0) {
    process.stderr.write(`warning: the model's vocabulary does not know ${unknown.slice(0, 8).map((w) => `'${w.slice(0, 40)}'`).join(', ')}` +
      `${unknown.length > 8 ? ` and ${unknown.length - 8} more` : ''} (it knows only words of its training captions); they are split into pieces or [UNK] and will not steer the samples as intended\n`);
  }
  const bar = stepBar(sampler);
  const t0 = Date.now();
  const { r, prompts, guidance, nrow } = drawSamples(m, { ...o, sampler }, { onStep: bar.onStep });
  bar.stop();
  await saveImageGrid(o.out, r.samples, { nrow, upscale: o.upscale });
  const written = [o.out];
  if (o.strip) {
    const stripPath = stripPathOf(o.out);
    const st = trajectoryStrip(r, Math.min(4, o.n));
    await saveImageGrid(stripPath, st.images, { nrow: st.nrow, upscale: o.upscale });
    written.push(stripPath);
  }
  const what = prompts ? ` (prompts ${[...new Set(prompts)].map((p) => `'${p}'`).join(', ')})` : r.labels ? ` (classes ${[...new Set(r.labels)].join(',')})` : '';
  console.log(`${o.n} samples${what} with ${sampler}${sampler === 'ddpm' ? '' : ` ${o.steps} steps`}${guidance !== 1 ? `, guidance ${guidance}` : ''}` +
    ` in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${written.join(', ')}`);
  return written;
}
