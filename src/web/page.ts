// The page of `ldm serve` (web/index.html), bundled by esbuild as /app.js. It exposes the library
// as `window.ldm` (every layer's namespace) plus `window.ldm.browser`, the "in your browser" mode:
//   await ldm.browser.sample({ model: 'mnist-ddpm', class: [7], n: 4, steps: 20, seed: 0 })  -> PNG data URL
//   await ldm.browser.train({ config: 'mnist-demo', steps: 30, seed: 0 })                    -> { losses }
// Both run in a Web Worker of this page (src/web/worker.ts) from static files; nothing is computed
// on the server. The rest drives the page: models and runs, the sampling playground (the denoising
// trajectory drawn as each step is computed, over SSE from the server or from the worker), and
// live training (loss curve, latest grid and strip, step/ETA, stop).

import * as util from '../util/index.ts';
import * as backend from '../backend/index.ts';
import * as formats from '../formats/index.ts';
import * as tensor from '../tensor/index.ts';
import * as nn from '../nn/index.ts';
import * as diffusion from '../diffusion/index.ts';
import * as models from '../models/index.ts';
import * as io from '../io/index.ts';
import * as train from '../train/index.ts';
import type { RawImage } from '../io/index.ts';
import type { WebBackend } from './worker.ts';

// ---- the worker and window.ldm.browser ------------------------------------------------------------

interface Pending { resolve: (v: WorkerDone) => void; reject: (e: Error) => void; onStep?: ((m: WorkerStep) => void) | undefined }
interface WorkerStep { id: number; type: 'step'; i?: number; total?: number; xt?: RawImage; x0?: RawImage; step?: number; maxSteps?: number; loss?: number; seconds?: number }
interface WorkerDone {
  id: number; type: 'done'; grid?: RawImage; samples?: Float32Array; shape?: number[]; losses?: number[]; seconds: number; loadSeconds?: number;
  backend: WebBackend; reason?: string; batchSize?: number; stepSeconds?: number[];
}

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function getWorker(): Worker {
  if (worker) return worker;
  worker = new Worker('worker.js');
  worker.onmessage = (e: MessageEvent): void => {
    const m = e.data as WorkerStep | WorkerDone | { id: number; type: 'error'; error: string };
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === 'step') p.onStep?.(m);
    else {
      pending.delete(m.id);
      if (m.type === 'done') p.resolve(m);
      else p.reject(new Error(m.error));
    }
  };
  worker.onerror = (e: ErrorEvent): void => {
    for (const p of pending.values()) p.reject(new Error(`worker: ${e.message}`));
    pending.clear();
  };
  return worker;
}

function call(msg: Record<string, unknown>, onStep?: (m: WorkerStep) => void): Promise<WorkerDone> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onStep });
    getWorker().postMessage({ ...msg, id });
  });
}

/** A raw grey/RGB image as a PNG data URL (drawn on a canvas: lossless). */
export function toDataUrl(img: RawImage): string {
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  const ctx = c.getContext('2d')!;
  const id = ctx.createImageData(img.width, img.height);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let k = 0; k < 3; k++) id.data[p * 4 + k] = img.data[p * img.channels + (img.channels === 1 ? 0 : k)]!;
    id.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(id, 0, 0);
  return c.toDataURL('image/png');
}

export interface BrowserSampleOptions {
  model: string;
  class?: number[] | number;
  prompt?: string[] | string;
  n?: number;
  steps?: number;
  seed?: number;
  sampler?: string;
  guidance?: number;
  eta?: number;
  backend?: WebBackend;
  onStep?: (s: { i: number; total: number; xt: string; x0: string }) => void;
}

export interface BrowserTrainOptions {
  config: string;
  steps: number;
  seed?: number;
  batchSize?: number;
  overrides?: string[];
  backend?: WebBackend;
  onStep?: (s: { step: number; maxSteps: number; loss: number; seconds: number }) => void;
}

const asList = <T>(v: T[] | T | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

function sampleMessage(o: BrowserSampleOptions): Record<string, unknown> {
  return {
    op: 'sample', model: o.model, class: asList(o.class), prompt: asList(o.prompt), n: o.n ?? 1, steps: o.steps, seed: o.seed ?? 0,
    sampler: o.sampler, guidance: o.guidance, eta: o.eta, backend: o.backend ?? browser.backend, previews: o.onStep !== undefined,
  };
}

const browser = {
  /** the backend of the in-page computations: 'wasm' (WebAssembly SIMD kernels) or 'reference' */
  backend: 'wasm' as WebBackend,
  /** Sample a shipped model (or 'trained', the model of the last in-page training) in the page: a PNG data URL of the grid. */
  async sample(o: BrowserSampleOptions): Promise<string> {
    const r = await call(sampleMessage(o), o.onStep ? (m) => o.onStep!({ i: m.i!, total: m.total!, xt: toDataUrl(m.xt!), x0: toDataUrl(m.x0!) }) : undefined);
    lastSample = { seconds: r.seconds, loadSeconds: r.loadSeconds ?? 0, backend: r.backend };
    return toDataUrl(r.grid!);
  },
  /** The same computation, returning the sample values [n, C, H, W] in [-1, 1] (for comparisons with Node). */
  async sampleRaw(o: BrowserSampleOptions): Promise<{ data: number[]; shape: number[]; seconds: number; backend: WebBackend }> {
    const r = await call(sampleMessage(o));
    return { data: Array.from(r.samples!), shape: r.shape!, seconds: r.seconds, backend: r.backend };
  },
  /** Train a config (MNIST data fetched as static files) in the page's worker; the model is then
   *  available to sample() as model 'trained'. */
  async train(o: BrowserTrainOptions): Promise<{ losses: number[]; seconds: number; stepSeconds: number[]; backend: WebBackend; reason: string; batchSize: number }> {
    const overrides = [...(o.batchSize !== undefined ? [`data.params.batch_size=${o.batchSize}`] : []), ...(o.overrides ?? [])];
    const r = await call({ op: 'train', config: o.config, steps: o.steps, seed: o.seed, overrides, backend: o.backend ?? browser.backend },
      o.onStep ? (m) => o.onStep!({ step: m.step!, maxSteps: m.maxSteps!, loss: m.loss!, seconds: m.seconds! }) : undefined);
    return { losses: r.losses!, seconds: r.seconds, stepSeconds: r.stepSeconds ?? [], backend: r.backend, reason: r.reason ?? 'finished', batchSize: r.batchSize ?? 0 };
  },
  /** Ask a running in-page training to stop after its current step. */
  stop(): void { getWorker().postMessage({ op: 'stop' }); },
};
let lastSample: { seconds: number; loadSeconds: number; backend: WebBackend } | null = null;

// the package's namespaces (as src/index.ts exports them) and the in-page mode
Object.assign(window, { ldm: { util, backend, formats, tensor, nn, diffusion, models, io, train, browser, lastSample: () => lastSample } });

// ---- the page -----------------------------------------------------------------------------------

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const mode = (): 'server' | 'browser' => ($<HTMLSelectElement>('mode').value === 'browser' ? 'browser' : 'server');

interface ModelInfo { name: string; kind: string; description?: string; available?: boolean; classes?: number | null; text?: boolean }
interface RunInfo { name: string; step: number; maxSteps: number | null; state: string; model: string | null }

function li(html: string): HTMLLIElement {
  const e = document.createElement('li');
  e.innerHTML = html;
  return e;
}
const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

async function refreshModels(): Promise<void> {
  let models: ModelInfo[] = [];
  let runs: RunInfo[] = [];
  if (mode() === 'server') {
    const r = (await (await fetch('api/models')).json()) as { models: ModelInfo[]; runs: RunInfo[] };
    models = r.models;
    runs = r.runs;
  } else {
    const reg = (await (await fetch('models/registry.json')).json()) as { models: Record<string, { kind: string; description?: string }> };
    models = Object.entries(reg.models).map(([name, e]) => ({ name, kind: e.kind, ...(e.description ? { description: e.description } : {}) }));
  }
  const ul = $('models');
  ul.replaceChildren(...models.map((m) => li(`<b>${esc(m.name)}</b> <span class="kind">${esc(m.kind)}</span><br><span class="muted">${esc((m.description ?? '').slice(0, 90))}</span>`)));
  const sel = $<HTMLSelectElement>('s-model');
  const keep = sel.value;
  const names = models.filter((m) => m.kind === 'ddpm' || m.kind === 'ldm').map((m) => m.name);
  if (mode() === 'server') names.push(...runs.filter((r) => r.model).map((r) => `run:${r.name}`));
  else if (trainedInPage) names.push('trained');
  sel.replaceChildren(...names.map((n) => new Option(n, n)));
  if (names.includes(keep)) sel.value = keep;
  const rl = $('runs');
  if (mode() === 'browser') rl.replaceChildren(li('<span class="muted">in-browser mode: training runs in this page</span>'));
  else if (runs.length === 0) rl.replaceChildren(li('<span class="muted">none found (ldm serve --runs DIR)</span>'));
  else {
    rl.replaceChildren(...runs.map((r) => {
      const e = li(`<a data-run="${esc(r.name)}">${esc(r.name)}</a> <span class="kind">${esc(r.state)}, step ${r.step}${r.maxSteps ? `/${r.maxSteps}` : ''}</span>`);
      e.querySelector('a')!.addEventListener('click', () => watchRun(r.name));
      return e;
    }));
  }
  document.body.dataset['models'] = String(models.length);
}

// ---- playground -----------------------------------------------------------------------------------

function formSpec(): Record<string, string> {
  const v = (id: string): string => $<HTMLInputElement>(id).value.trim();
  const spec: Record<string, string> = { model: v('s-model'), steps: v('s-steps'), seed: v('s-seed'), n: v('s-n') };
  // empty sampler / guidance: the model's own stored choice (registry.json)
  if (v('s-sampler') !== '') spec['sampler'] = v('s-sampler');
  if (v('s-guidance') !== '') spec['guidance'] = v('s-guidance');
  if (v('s-prompt') !== '') spec['prompt'] = v('s-prompt');
  else if (v('s-class') !== '') spec['class'] = v('s-class');
  return spec;
}

let sampleSource: EventSource | null = null;

async function runPlayground(ev: Event): Promise<void> {
  ev.preventDefault();
  const spec = formSpec();
  const status = $('s-status');
  const t0 = performance.now();
  const show = (i: number, total: number, xt: string, x0: string): void => {
    $<HTMLImageElement>('s-xt').src = xt;
    $<HTMLImageElement>('s-x0').src = x0;
    status.textContent = `step ${i}/${total}`;
  };
  if (mode() === 'server') {
    sampleSource?.close();
    const es = new EventSource(`api/sample/stream?${new URLSearchParams(spec).toString()}`);
    sampleSource = es;
    status.textContent = 'queued on the server…';
    es.addEventListener('step', (e) => { const d = JSON.parse((e as MessageEvent).data as string) as { i: number; total: number; xt: string; x0: string }; show(d.i, d.total, d.xt, d.x0); });
    es.addEventListener('done', (e) => {
      const d = JSON.parse((e as MessageEvent).data as string) as { png: string; seconds: number };
      $<HTMLImageElement>('s-out').src = d.png;
      status.textContent = `done on the server in ${d.seconds.toFixed(1)} s`;
      es.close();
    });
    es.addEventListener('fail', (e) => { status.textContent = `error: ${(JSON.parse((e as MessageEvent).data as string) as { error: string }).error}`; es.close(); });
    es.onerror = (): void => { if (es.readyState === EventSource.CLOSED) return; es.close(); };
    return;
  }
  status.textContent = 'loading the model into the page…';
  try {
    const url = await browser.sample({
      model: spec['model']!, n: Number(spec['n']), steps: Number(spec['steps']), seed: Number(spec['seed']),
      ...(spec['sampler'] ? { sampler: spec['sampler'] } : {}),
      ...(spec['class'] ? { class: spec['class'].split(',').map(Number) } : {}),
      ...(spec['prompt'] ? { prompt: spec['prompt'].split('|').map((s) => s.trim()) } : {}),
      ...(spec['guidance'] ? { guidance: Number(spec['guidance']) } : {}),
      onStep: (s) => show(s.i, s.total, s.xt, s.x0),
    });
    $<HTMLImageElement>('s-out').src = url;
    status.textContent = `done in your browser (${browser.backend}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  } catch (e) {
    status.textContent = `error: ${(e as Error).message}`;
  }
}

// ---- training: loss curve, status, images, stop ---------------------------------------------------------

let losses: { step: number; loss: number }[] = [];
let runSource: EventSource | null = null;
let watched: string | null = null;
let trainedInPage = false;

function drawLoss(): void {
  const c = $<HTMLCanvasElement>('t-loss');
  const ctx = c.getContext('2d')!;
  const W = c.width, H = c.height, L = 48, B = 24, T = 10, R = 10;
  ctx.clearRect(0, 0, W, H);
  ctx.font = '11px sans-serif';
  ctx.fillStyle = '#52606d';
  ctx.fillText('loss (log scale) vs step', L, T + 2);
  if (losses.length < 1) return;
  const ys = losses.map((p) => Math.log10(Math.max(p.loss, 1e-8)));
  const ymin = Math.min(...ys), ymax = Math.max(...ys) + 1e-9;
  const x0 = losses[0]!.step, x1 = Math.max(losses[losses.length - 1]!.step, x0 + 1);
  const px = (s: number): number => L + ((s - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number): number => T + 8 + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B - 8);
  ctx.strokeStyle = '#ccc';
  ctx.beginPath(); ctx.moveTo(L, T + 8); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  for (const y of [ymin, (ymin + ymax) / 2, ymax]) ctx.fillText((10 ** y).toPrecision(3), 2, py(y) + 4);
  ctx.fillText(String(x0), L, H - 8);
  ctx.fillText(String(x1), W - R - 30, H - 8);
  const line = (vals: number[], color: string): void => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    vals.forEach((y, i) => { const X = px(losses[i]!.step), Y = py(y); if (i === 0) ctx.moveTo(X, Y); else ctx.lineTo(X, Y); });
    ctx.stroke();
  };
  line(ys, '#9fb3c8');
  let s = ys[0]!;
  line(ys.map((y) => (s = 0.9 * s + 0.1 * y)), '#2554c7');
}

function watchRun(name: string): void {
  runSource?.close();
  watched = name;
  losses = [];
  drawLoss();
  $('t-name').textContent = name;
  $<HTMLButtonElement>('t-stop').disabled = false;
  const es = new EventSource(`api/runs/${encodeURIComponent(name)}/events`);
  runSource = es;
  es.addEventListener('metrics', (e) => {
    const rows = JSON.parse((e as MessageEvent).data as string) as { step: number; loss?: number }[];
    for (const r of rows) if (typeof r.loss === 'number') losses.push({ step: r.step, loss: r.loss });
    drawLoss();
  });
  es.addEventListener('images', (e) => {
    const d = JSON.parse((e as MessageEvent).data as string) as { samples: string | null; strip: string | null };
    if (d.samples) $<HTMLImageElement>('t-samples').src = d.samples;
    if (d.strip) $<HTMLImageElement>('t-strip').src = d.strip;
  });
  es.addEventListener('status', (e) => {
    const d = JSON.parse((e as MessageEvent).data as string) as { step: number; maxSteps: number | null; etaSec: number | null; state: string; loss: number | null };
    $('t-status').textContent = `${d.state}\nstep ${d.step}${d.maxSteps ? ` / ${d.maxSteps}` : ''}` +
      `${d.loss !== null ? `\nloss ${d.loss.toFixed(4)}` : ''}${d.etaSec !== null && d.state === 'running' ? `\nETA ${fmtEta(d.etaSec)}` : ''}`;
    $<HTMLButtonElement>('t-stop').disabled = d.state !== 'running';
  });
}

const fmtEta = (s: number): string => (s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`);

async function stopRun(): Promise<void> {
  if (mode() === 'browser') { browser.stop(); return; }
  if (!watched) return;
  $<HTMLButtonElement>('t-stop').disabled = true;
  const r = await fetch(`api/runs/${encodeURIComponent(watched)}/stop`, { method: 'POST' });
  $('t-status').textContent += r.ok ? '\nstop requested: the run saves a checkpoint and ends' : `\nstop failed (${r.status})`;
}

async function trainInPage(): Promise<void> {
  runSource?.close();
  watched = null;
  losses = [];
  drawLoss();
  $('t-name').textContent = `mnist-demo in your browser (${browser.backend})`;
  for (const id of ['t-samples', 't-strip']) $<HTMLImageElement>(id).removeAttribute('src');
  const btn = $<HTMLButtonElement>('b-train');
  btn.disabled = true;
  $<HTMLButtonElement>('t-stop').disabled = false;
  let spent = 0;
  try {
    const r = await browser.train({
      config: 'mnist-demo', steps: Number($<HTMLInputElement>('b-steps').value), seed: Number($<HTMLInputElement>('b-seed').value),
      batchSize: Number($<HTMLInputElement>('b-batch').value),
      // a short run: the base learning rate of the form and 2 warm-up steps instead of the config's 100
      overrides: [`model.base_learning_rate=${Number($<HTMLInputElement>('b-lr').value)}`, 'model.params.scheduler_config.params.warm_up_steps=[2]'],
      onStep: (s) => {
        spent += s.seconds;
        losses.push({ step: s.step, loss: s.loss });
        drawLoss();
        $('t-status').textContent = `training in your browser\nstep ${s.step} / ${s.maxSteps}\nloss ${s.loss.toFixed(4)}\nETA ${fmtEta((spent / s.step) * (s.maxSteps - s.step))}`;
      },
    });
    trainedInPage = true;
    $('t-status').textContent = `${r.reason} in your browser\n${r.losses.length} steps in ${r.seconds.toFixed(1)} s\nsample it: model 'trained'`;
    await refreshModels();
    const url = await browser.sample({ model: 'trained', class: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], n: 10, steps: 20, seed: 0 });
    $<HTMLImageElement>('t-samples').src = url;
    $('t-status').textContent += '\n(samples below: DDIM 20, guidance 3)';
  } catch (e) {
    $('t-status').textContent = `error: ${(e as Error).message}`;
  } finally {
    btn.disabled = false;
    $<HTMLButtonElement>('t-stop').disabled = true;
  }
}

function setMode(): void {
  const b = mode() === 'browser';
  $('backend-box').style.display = b ? '' : 'none';
  $('b-train').parentElement!.style.display = b ? '' : 'none';
  document.body.dataset['mode'] = mode();
  if (b) { runSource?.close(); watched = null; }
  void refreshModels();
}

$<HTMLSelectElement>('backend').addEventListener('change', () => { browser.backend = $<HTMLSelectElement>('backend').value as WebBackend; });
$<HTMLSelectElement>('mode').addEventListener('change', setMode);
$('sample-form').addEventListener('submit', (e) => { void runPlayground(e); });
$('t-stop').addEventListener('click', () => { void stopRun(); });
$('b-train').addEventListener('click', () => { void trainInPage(); });
setMode();
const hashRun = /run=([^&]+)/.exec(location.hash);
if (hashRun) watchRun(decodeURIComponent(hashRun[1]!));
