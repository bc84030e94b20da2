// The Web Worker of the page: the library itself, sampling and training in the browser, so that
// nothing is computed on the server ("in your browser" mode) and the page stays responsive.
// Weights, configs and MNIST are fetched as static files from the server that served the page
// (models/registry.json, models/*.safetensors, configs/*.yaml, data/mnist/*-ubyte); compute runs on
// the reference backend or the WebAssembly SIMD kernels. The same requests in Node give the same
// numbers (reference: bit for bit; wasm: to float32 rounding) - test/web/browser.test.ts checks it.
// Messages: {id, op: 'sample' | 'train' | 'stop', ...} in; {id, type: 'step' | 'done' | 'error', ...} out.

import { ConfigError } from '../util/index.ts';
import { initWasm } from '../backend/index.ts';
import { setBackend } from '../tensor/index.ts';
import { applyOverrides, makeGrid, mnistFromBytes, parseConfigText, weightsFromBytes, type ConfigTree, type RawImage } from '../io/index.ts';
import { SAMPLER_NAMES, isSamplerName, type SamplerName } from '../diffusion/index.ts';
import { defaultGuidanceFor, modelFromWeights, sampleImages, trainInMemory, type ClassCond } from '../train/index.ts';
import type { DDPM } from '../models/index.ts';

export type WebBackend = 'reference' | 'wasm';

export interface SampleMessage {
  op: 'sample';
  model: string;
  class?: number[] | undefined;
  prompt?: string[] | undefined;
  n: number;
  /** absent: the shipped model's stored steps (registry.json), else 50, as `ldm sample` */
  steps?: number | undefined;
  seed: number;
  /** absent: the shipped model's stored sampler, else ddim */
  sampler?: SamplerName | undefined;
  guidance?: number | undefined;
  eta?: number | undefined;
  backend?: WebBackend | undefined;
  /** send x_t / x0 grids after every step */
  previews?: boolean | undefined;
}

export interface TrainMessage {
  op: 'train';
  config: string;
  steps: number;
  seed?: number | undefined;
  /** key.path=value overrides, as on the command line */
  overrides?: string[] | undefined;
  backend?: WebBackend | undefined;
}

interface Loaded { model: DDPM; cls: ClassCond | null; defaults: { guidance?: number | undefined; sampler?: string | undefined; steps?: number | undefined } }

// tsconfig's lib is DOM (the page), which types `self` as a Window; in this dedicated worker it is
// the worker's global scope, whose postMessage / onmessage are these (the WebWorker lib would clash).
const scope = self as unknown as { postMessage(m: unknown, transfer?: Transferable[]): void; onmessage: ((e: MessageEvent) => void) | null };
const models = new Map<string, Promise<Loaded>>();
type RegistryEntry = { checkpoint: string; kind?: string; guidance?: number; sampler?: string; steps?: number };
let registry: Promise<Record<string, RegistryEntry>> | null = null;
let stopRequested = false;
/** whether the worker is busy with a request (requests are answered one at a time) */
let queue: Promise<unknown> = Promise.resolve();

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new ConfigError(`fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function useBackend(b: WebBackend | undefined): Promise<WebBackend> {
  const name = b ?? 'wasm';
  if (name !== 'reference' && name !== 'wasm') throw new ConfigError(`backend must be 'reference' or 'wasm', got '${String(name)}'`);
  if (name === 'wasm') await initWasm();
  setBackend(name);
  return name;
}

function loadShipped(name: string): Promise<Loaded> {
  let p = models.get(name);
  if (!p) {
    p = (async () => {
      registry ??= fetch('models/registry.json').then(async (r) => ((await r.json()) as { models: Record<string, RegistryEntry> }).models);
      const e = (await registry)[name];
      if (!e) throw new ConfigError(`unknown model '${name}' (shipped: ${Object.keys(await registry).join(', ')})`);
      if (e.kind !== 'ddpm' && e.kind !== 'ldm') throw new ConfigError(`'${name}' is a ${e.kind ?? 'file'}, not a diffusion model`);
      const w = weightsFromBytes(await fetchBytes(`models/${e.checkpoint}`), e.checkpoint);
      if (!w.config) throw new ConfigError(`${e.checkpoint} carries no config`);
      const m = modelFromWeights(w, w.config as ConfigTree);
      return { model: m.model, cls: m.cls, defaults: { guidance: e.guidance, sampler: e.sampler, steps: e.steps } };
    })();
    p.catch(() => models.delete(name));
    models.set(name, p);
  }
  return p;
}

const transferable = (img: RawImage): RawImage => ({ ...img, data: img.data.slice() });

async function sample(id: number, m: SampleMessage): Promise<void> {
  const backend = await useBackend(m.backend);
  const t0 = performance.now();
  const { model, cls, defaults } = await loadShipped(m.model);
  const sampler = m.sampler ?? defaults.sampler ?? 'ddim';
  const steps = m.steps ?? defaults.steps ?? 50;
  if (!isSamplerName(sampler)) throw new ConfigError(`sampler must be one of ${SAMPLER_NAMES.join(', ')}`);
  if (!Number.isInteger(m.n) || m.n < 1 || m.n > 64) throw new ConfigError(`n must be an integer in 1..64, got ${m.n}`);
  let labels: number[] | null = null;
  if (m.class && m.class.length > 0) {
    if (!cls) throw new ConfigError(`class: '${m.model}' is not class-conditional`);
    labels = Array.from({ length: m.n }, (_, i) => m.class![i % m.class!.length]!);
  }
  const prompts = m.prompt && m.prompt.length > 0 ? Array.from({ length: m.n }, (_, i) => m.prompt![i % m.prompt!.length]!) : null;
  const nrow = cls && !labels && !prompts ? Math.min(m.n, cls.numClasses) : Math.min(m.n, 8);
  const tLoad = performance.now();
  // guidance, sampler, steps and eta as `ldm sample` chooses them: the registry's choice, else 3
  // with a null class; eta only where asked (the sampler's own default otherwise)
  const r = sampleImages(model, cls, {
    n: m.n, sampler, steps, ...(m.eta !== undefined ? { eta: m.eta } : {}), guidance: m.guidance ?? defaults.guidance ?? defaultGuidanceFor(cls), labels, prompts, seed: m.seed, snapshots: 10,
    ...(m.previews ? {
      onPreview: (i: number, total: number, xt, x0) => {
        const a = transferable(makeGrid(xt, { nrow })), b = transferable(makeGrid(x0, { nrow }));
        scope.postMessage({ id, type: 'step', i, total, xt: a, x0: b }, [a.data.buffer, b.data.buffer]);
      },
    } : {}),
  });
  const grid = transferable(makeGrid(r.samples, { nrow }));
  const samples = r.samples.f32.slice();
  scope.postMessage({
    id, type: 'done', grid, samples, shape: r.samples.shape, backend,
    seconds: (performance.now() - tLoad) / 1000, loadSeconds: (tLoad - t0) / 1000,
  }, [grid.data.buffer, samples.buffer]);
}

async function trainRun(id: number, m: TrainMessage): Promise<void> {
  const backend = await useBackend(m.backend);
  if (!/^[\w.-]+$/.test(m.config)) throw new ConfigError(`config must be a name like 'mnist-demo', got '${m.config}'`);
  const text = await (await fetch(`configs/${m.config}.yaml`)).text();
  let config = parseConfigText(text, `configs/${m.config}.yaml`);
  config = applyOverrides(config, [...(m.seed !== undefined ? [`seed=${m.seed}`] : []), ...(m.overrides ?? [])]);
  const dp = ((config['data'] as ConfigTree | undefined)?.['params'] as ConfigTree | undefined)?.['train'] as ConfigTree | undefined;
  const tp = (dp?.['params'] ?? {}) as { limit?: number; flip_p?: number };
  if (dp?.['target'] !== 'ldm.data.mnist.MNIST') throw new ConfigError(`in-page training reads MNIST only (data.params.train.target ldm.data.mnist.MNIST), got ${String(dp?.['target'])}`);
  const [img, lbl] = await Promise.all([fetchBytes('data/mnist/train-images-idx3-ubyte'), fetchBytes('data/mnist/train-labels-idx1-ubyte')]);
  const train = mnistFromBytes(img, lbl, { split: 'train', ...(tp.limit !== undefined ? { limit: tp.limit } : {}), ...(tp.flip_p !== undefined ? { flipP: tp.flip_p } : {}) });
  stopRequested = false;
  const t0 = performance.now();
  const stepSeconds: number[] = [];
  const r = await trainInMemory({
    config, train, steps: m.steps, shouldStop: () => stopRequested,
    onStep: async (s) => {
      stepSeconds.push(s.seconds);
      scope.postMessage({ id, type: 'step', step: s.step, maxSteps: s.maxSteps, loss: s.loss, lr: s.lr, seconds: s.seconds });
      await new Promise((res) => setTimeout(res, 0)); // let a stop message in
    },
  });
  models.set('trained', Promise.resolve({ model: r.model, cls: r.cls, defaults: {} }));
  scope.postMessage({ id, type: 'done', losses: r.losses, reason: r.reason, backend, batchSize: r.settings.batchSize, stepSeconds, seconds: (performance.now() - t0) / 1000 });
}

scope.onmessage = (e: MessageEvent): void => {
  const msg = e.data as { id: number } & (SampleMessage | TrainMessage | { op: 'stop' });
  if (msg.op === 'stop') { stopRequested = true; return; }
  queue = queue.then(async () => {
    try {
      if (msg.op === 'sample') await sample(msg.id, msg);
      else if (msg.op === 'train') await trainRun(msg.id, msg);
      else throw new ConfigError(`unknown op '${String((msg as { op: unknown }).op)}'`);
    } catch (err) {
      scope.postMessage({ id: msg.id, type: 'error', error: err instanceof Error ? err.message : String(err) });
    }
  });
};
