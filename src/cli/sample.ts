// `ldm sample [CKPT] [--model NAME] --sampler NAME [--scheduler S] --steps N --eta E --guidance G
// --class K|none --negative-class K --prompt P --negative-prompt P --init IMG --strength S
// --mask MASK --seed S --n N --batch-size B --out FILE.png|DIR/ [--strip] [--json]`:
//  - a grid PNG of samples (one column per class when no class is given; 28-px cells for MNIST);
//    with --out DIR/ also one PNG per image (DIR/00000.png, ...) next to DIR/grid.png;
//  - every PNG carries the generation parameters in a tEXt `parameters` chunk (as A1111 writes it);
//  - --strip: the denoising trajectory (x_t and pred_x0 rows, labelled) as <out>-strip.png;
//  - image-to-image (--init, --strength, SDEdit) and inpainting (--init + --mask, white = regenerate);
//  - progress: a bar on a terminal, else a line on stderr every few seconds; --json: a summary on stdout.

import { extname, join } from 'node:path';
import cliProgress from 'cli-progress';
import { ConfigError } from '../util/index.ts';
import { Tensor, cat } from '../tensor/index.ts';
import { checkWritable, imageFormatOf, labelRows, makeGrid, readImageTensor, saveImageGrid, samplingDefaults, writeImage, writePng } from '../io/index.ts';
import { LatentDiffusion, type DiffusionModel } from '../models/index.ts';
import {
  defaultGuidanceFor, loadModel, sampleImages, trajectoryStrip, type LoadedModel, type SampleOutput, type SampleRequest, type SamplerExtras,
} from '../train/index.ts';
import { K_SAMPLERS_WITH_ETA, SAMPLER_NAMES, isKSampler, isSamplerName, type SamplerName, type SigmaScheduleName } from '../diffusion/index.ts';

export interface SampleCommandOptions {
  model?: string;
  config?: string;
  /** default: the shipped model's stored sampler (registry.json), else ddim */
  sampler?: string | undefined;
  /** k-diffusion samplers: sigma schedule (default karras) */
  scheduler?: string;
  /** default: the shipped model's stored steps, else 50 */
  steps?: number | undefined;
  /** DDIM eta (default 0) / ancestral and SDE eta of the k-samplers (default 1) */
  eta?: number | undefined;
  sNoise?: number;
  sChurn?: number;
  solverType?: string;
  guidance?: number | undefined;
  /** classes (-1 = none: the null class, unconditional) */
  class?: number[];
  negativeClass?: number[];
  /** text-conditional LDMs: prompts, cycled over the n samples */
  prompt?: string[];
  negativePrompt?: string[];
  init?: string;
  strength?: number;
  mask?: string;
  seed: number;
  n: number;
  batchSize?: number;
  out: string;
  strip?: boolean;
  json?: boolean;
  upscale: number;
  noEma?: boolean;
}

/** Progress: a bar on a terminal stderr, else one line every `every` ms (logs, CI, pipes). */
export function stepBar(label: string, every = 3000): { onStep: (i: number, total: number) => void; stop: () => void } {
  if (process.stderr.isTTY !== true) {
    let last = 0;
    const t0 = Date.now();
    return {
      onStep: (i, total) => {
        const now = Date.now();
        if (now - last >= every || i === total) {
          last = now;
          process.stderr.write(`${label}: ${i}/${total} (${((now - t0) / 1000).toFixed(1)} s)\n`);
        }
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar({ format: ` ${label} {bar} {value}/{total} | ETA {eta}s`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onStep: (i, total) => {
      if (!started) { bar.start(total, 0); started = true; }
      bar.setTotal(total);
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

/** --sampler and --steps, defaulting to what the shipped model stores (registry.json: chosen by a
 *  measured FID sweep), else DDIM with 50 steps; read before the model itself (minutes) is loaded. */
export function samplerChoice(ckpt: string | undefined, o: { sampler?: string | undefined; steps?: number | undefined; model?: string | undefined }):
  { sampler: SamplerName; steps: number } {
  const d = samplingDefaults({ checkpoint: ckpt, name: o.model });
  return { sampler: checkSampler(o.sampler ?? d.sampler ?? 'ddim'), steps: o.steps ?? d.steps ?? 50 };
}

/** Words of the prompts that are not tokens of the model's vocabulary (split into pieces or [UNK]: never seen whole in training). */
export function unknownPromptWords(m: LoadedModel, prompts: readonly string[]): string[] {
  const model: DiffusionModel = m.model;
  return model.unknownPromptWords?.(prompts) ?? [];
}

/** The strip file beside --out: samples.png -> samples-strip.png. */
const stripPathOf = (out: string): string => `${out.slice(0, out.length - extname(out).length)}-strip${extname(out) || '.png'}`;

/** What a sample request asks for (the CLI's options, the server's JSON body). */
export interface SampleSpec {
  sampler: SamplerName;
  steps: number;
  /** absent: the sampler's own default (DDIM 0, ancestral / SDE k-samplers 1) */
  eta?: number | undefined;
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
  if (o.sampler === 'plms' && o.eta !== undefined && o.eta !== 0) throw new ConfigError('--eta must be 0 for plms');
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
  // eta reaches the samplers that have one (ddim, and the ancestral / SDE k-samplers: 0 there is a choice)
  const takesEta = o.sampler === 'ddim' || (isKSampler(o.sampler) && K_SAMPLERS_WITH_ETA.includes(o.sampler));
  const r = sampleImages(m.model, m.cls, {
    n: o.n, sampler: o.sampler, steps: o.steps, guidance, labels, prompts, seed: o.seed, snapshots: 10, ...hooks,
    ...(takesEta && o.eta !== undefined ? { eta: o.eta } : {}),
  });
  const nrow = m.cls && !labels && !prompts ? Math.min(o.n, m.cls.numClasses) : Math.min(o.n, 8);
  return { r, labels, prompts, guidance, nrow, unknownWords: o.prompt ? unknownPromptWords(m, o.prompt) : [] };
}

/** --scheduler / --s-noise / --s-churn / --solver-type / --eta checked against the sampler. */
export function samplerExtras(sampler: SamplerName, o: Pick<SampleCommandOptions, 'scheduler' | 'sNoise' | 'sChurn' | 'solverType' | 'eta'>): SamplerExtras {
  const k = isKSampler(sampler);
  const kOnly = [['--scheduler', o.scheduler], ['--s-noise', o.sNoise], ['--s-churn', o.sChurn], ['--solver-type', o.solverType]] as const;
  for (const [flag, v] of kOnly) if (v !== undefined && !k) throw new ConfigError(`${flag} is for the k-diffusion samplers (euler, dpmpp_2m, ...), not ${sampler}`);
  if (o.eta !== undefined && k && !K_SAMPLERS_WITH_ETA.includes(sampler as never)) throw new ConfigError(`--eta: ${sampler} has no eta (samplers with eta: ddim, ${K_SAMPLERS_WITH_ETA.join(', ')})`);
  if (o.eta !== undefined && (sampler === 'plms' || sampler === 'dpm-solver++' || sampler === 'ddpm') && o.eta !== 0) throw new ConfigError(`--eta is not an option of ${sampler}`);
  if (o.solverType !== undefined && o.solverType !== 'midpoint' && o.solverType !== 'heun') throw new ConfigError(`--solver-type must be midpoint or heun, got '${o.solverType}'`);
  if (o.solverType !== undefined && sampler !== 'dpmpp_2m_sde') throw new ConfigError('--solver-type is an option of dpmpp_2m_sde');
  const out: SamplerExtras = {};
  if (o.scheduler !== undefined) out.scheduler = o.scheduler as SigmaScheduleName;
  if (o.sNoise !== undefined) out.sNoise = o.sNoise;
  if (o.sChurn !== undefined) out.sChurn = o.sChurn;
  if (o.solverType === 'midpoint' || o.solverType === 'heun') out.solverType = o.solverType;
  return out;
}

/** The pixel shape [C, H, W] a model samples (decodes a zero latent for latent models). */
function pixelShape(m: LoadedModel): [number, number, number] {
  if (m.model instanceof LatentDiffusion) {
    const z = new Tensor(new Float32Array(m.model.channels * m.model.imageSize ** 2), [1, m.model.channels, m.model.imageSize, m.model.imageSize]);
    const x = m.model.decodeFirstStage(z);
    return [x.shape[1]!, x.shape[2]!, x.shape[3]!];
  }
  return [m.model.channels, m.model.imageSize, m.model.imageSize];
}

/** The A1111-style `parameters` text of a sample. */
function parametersText(p: Record<string, string | number | null | undefined>): string {
  const head = p['prompt'] !== undefined ? `${String(p['prompt'])}\n` : '';
  const neg = p['negative prompt'] !== undefined ? `Negative prompt: ${String(p['negative prompt'])}\n` : '';
  const rest = Object.entries(p).filter(([k, v]) => v !== undefined && v !== null && k !== 'prompt' && k !== 'negative prompt')
    .map(([k, v]) => `${k[0]!.toUpperCase()}${k.slice(1)}: ${String(v)}`).join(', ');
  return `${head}${neg}${rest}`;
}

/** --out DIR/ (a trailing slash): grid.png and one PNG per image in DIR. */
const isDirOut = (out: string): boolean => out.endsWith('/');

export async function sampleCommand(ckpt: string | undefined, o: SampleCommandOptions): Promise<string[]> {
  const { sampler, steps } = samplerChoice(ckpt, o);
  const extras = samplerExtras(sampler, o);
  // the output is checked before the model is loaded and sampled (minutes), not after
  if (!isDirOut(o.out)) {
    imageFormatOf(o.out);
    checkWritable(o.out);
    if (o.strip) checkWritable(stripPathOf(o.out));
  }
  const m = loadModel({ checkpoint: ckpt, name: o.model, config: o.config, noEma: o.noEma });
  for (const k of m.missing.slice(0, 1)) process.stderr.write(`warning: ${m.missing.length} model tensors not in the checkpoint (first: ${k})\n`);
  process.stderr.write(`${describeModel(m)}\n`);
  if (o.guidance !== undefined && !(o.guidance >= 0)) throw new ConfigError(`--guidance must be >= 0 (1 = no guidance, 0 = unconditional), got ${o.guidance}`);
  const T = m.model.numTimesteps;
  if (sampler !== 'ddpm' && steps > T) {
    throw new ConfigError(`--steps ${steps} is more than the model's ${T} diffusion timesteps; give at most ${T} (or --sampler ddpm, which always runs all ${T})`);
  }
  const nullOr = (list: readonly number[], flag: string): number[] => list.map((c) => {
    if (c >= 0) return c;
    if (!m.cls || m.cls.nullLabel === null) throw new ConfigError(`${flag} none: this model has no null class (it was not trained for unconditional sampling)`);
    return m.cls.nullLabel;
  });
  let labels: number[] | null = null;
  if (o.class && o.class.length > 0) {
    if (!m.cls) throw new ConfigError('--class: this model is not class-conditional');
    const cl = nullOr(o.class, '--class');
    labels = Array.from({ length: o.n }, (_, i) => cl[i % cl.length]!);
  }
  let prompts: string[] | null = null;
  if (o.prompt && o.prompt.length > 0) {
    if (labels) throw new ConfigError('give --class or --prompt, not both');
    if (!m.cls?.prompt) throw new ConfigError('--prompt: this model is not text-conditional (a LatentDiffusion with a BERTEmbedder cond stage)');
    prompts = Array.from({ length: o.n }, (_, i) => o.prompt![i % o.prompt!.length]!);
  }
  const negativePrompts = o.negativePrompt && o.negativePrompt.length > 0 ? o.negativePrompt : null;
  if (negativePrompts && !m.cls?.prompt) throw new ConfigError('--negative-prompt: this model is not text-conditional');
  const negativeLabels = o.negativeClass && o.negativeClass.length > 0 ? nullOr(o.negativeClass, '--negative-class') : null;
  if (negativeLabels && (!m.cls || m.cls.prompt)) throw new ConfigError('--negative-class: this model is not class-conditional');
  const unknown = unknownPromptWords(m, [...(prompts ?? []), ...(negativePrompts ?? [])]);
  if (unknown.length > 0) {
    process.stderr.write(`warning: the model's vocabulary does not know ${unknown.slice(0, 8).map((w) => `'${w.slice(0, 40)}'`).join(', ')}` +
      `${unknown.length > 8 ? ` and ${unknown.length - 8} more` : ''} (it knows only words of its training captions); they are split into pieces or [UNK] and will not steer the samples as intended\n`);
  }
  const guidance = defaultGuidance(m, o.guidance);
  if ((negativePrompts || negativeLabels) && guidance === 1) throw new ConfigError('a negative prompt / class acts through guidance: give --guidance > 1');
  let init: Tensor | null = null, mask: Tensor | null = null;
  if (o.init || o.mask) {
    if (!o.init) throw new ConfigError('--mask needs --init (the image whose black region is kept)');
    const [C, H, W] = pixelShape(m);
    init = await readImageTensor(o.init, { channels: C, height: H, width: W });
    if (o.mask) mask = await readImageTensor(o.mask, { channels: 1, height: H, width: W, range: 'unit' });
  } else if (o.strength !== undefined) {
    throw new ConfigError('--strength needs --init (the image to start from)');
  }
  const strength = o.strength ?? (init && !mask ? 0.75 : 1);
  const bs = Math.max(1, Math.min(o.batchSize ?? o.n, o.n));
  const bar = stepBar(sampler);
  const t0 = Date.now();
  const parts: SampleOutput[] = [];
  for (let s = 0; s < o.n; s += bs) {
    const n = Math.min(bs, o.n - s);
    const batches = Math.ceil(o.n / bs), b = s / bs;
    const r = sampleImages(m.model, m.cls, {
      n, sampler, steps: steps, guidance, seed: o.seed + s, snapshots: 10,
      labels: labels ? labels.slice(s, s + n) : null, prompts: prompts ? prompts.slice(s, s + n) : null,
      samplerOptions: extras, negativeLabels, negativePrompts, init, mask, strength,
      ...(o.eta !== undefined ? { eta: o.eta } : {}),
      onStep: (i, total) => bar.onStep(b * total + i, batches * total),
    });
    // memory stays bounded: the trajectory (for --strip) of the first batch only
    parts.push(b === 0 ? r : { ...r, intermediates: { x_inter: [], pred_x0: [] } });
  }
  bar.stop();
  const seconds = (Date.now() - t0) / 1000;
  const samples = cat(parts.map((p) => p.samples), 0);
  const sampleLabels = parts.every((p) => p.labels) ? parts.flatMap((p) => p.labels!) : null;
  const params = {
    prompt: prompts ? [...new Set(prompts)].join(' | ') : undefined,
    'negative prompt': negativePrompts ? negativePrompts.join(' | ') : undefined,
    steps: steps, sampler, 'schedule type': isKSampler(sampler) ? (extras.scheduler ?? 'karras') : undefined,
    'CFG scale': guidance, seed: o.seed, model: m.path,
    class: sampleLabels ? [...new Set(sampleLabels)].join(',') : undefined,
    'negative class': negativeLabels ? negativeLabels.join(',') : undefined,
    eta: o.eta, strength: init ? strength : undefined, init: o.init, mask: o.mask,
    'batch size': bs,
  };
  const dirOut = isDirOut(o.out);
  const gridPath = dirOut ? join(o.out, 'grid.png') : o.out;
  const nrow = m.cls && !labels && !prompts ? Math.min(o.n, m.cls.numClasses) : Math.min(o.n, 8);
  await saveImageGrid(gridPath, samples, { nrow, upscale: o.upscale, text: { parameters: parametersText(params) } });
  const written = [gridPath];
  if (dirOut) {
    for (let i = 0; i < o.n; i++) {
      const file = join(o.out, `${String(i).padStart(5, '0')}.png`);
      const one = samples.slice(0, i, i + 1);
      await writePng(file, makeGrid(one, { nrow: 1, padding: 0, upscale: o.upscale }), {
        parameters: parametersText({ ...params, seed: o.seed + Math.floor(i / bs) * bs, index: i, class: sampleLabels?.[i], prompt: prompts?.[i] }),
      });
      written.push(file);
    }
  }
  if (o.strip) {
    const ext = extname(gridPath) || '.png';
    const stripPath = `${gridPath.slice(0, gridPath.length - extname(gridPath).length)}-strip${ext}`;
    const k = Math.min(4, o.n);
    const st = trajectoryStrip(parts[0]!, k);
    const rowNames = Array.from({ length: k }, (_, b) => [`${b} x_t`, `${b} x0`]).flat();
    const grid = makeGrid(st.images, { nrow: st.nrow, upscale: o.upscale });
    await writeImage(stripPath, labelRows(grid, rowNames, 2 * k), { parameters: parametersText(params) });
    written.push(stripPath);
  }
  const what = prompts ? ` (prompts ${[...new Set(prompts)].map((p) => `'${p}'`).join(', ')})` : sampleLabels ? ` (classes ${[...new Set(sampleLabels)].join(',')})` : '';
  if (o.json) {
    console.log(JSON.stringify({ ...Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)), n: o.n, seconds, secondsPerSample: seconds / o.n, files: written }));
  } else {
    console.log(`${o.n} samples${what} with ${sampler}${sampler === 'ddpm' ? '' : ` ${steps} steps`}${isKSampler(sampler) ? ` (${extras.scheduler ?? 'karras'})` : ''}` +
      `${guidance !== 1 ? `, guidance ${guidance}` : ''}${init ? `, ${mask ? 'inpainting' : `img2img strength ${strength}`}` : ''} in ${seconds.toFixed(1)} s -> ${written.length > 3 ? `${written[0]} and ${written.length - 1} more` : written.join(', ')}`);
  }
  return written;
}
