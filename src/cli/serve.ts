// `ldm serve [--port P] [--host 127.0.0.1] [--runs DIR]`: a local HTTP server (node:http) with a
// JSON API and the page (web/index.html + the esbuild bundles of src/web):
//   GET  /api/models                 shipped models (models/registry.json) and the runs under --runs
//   POST /api/sample                 JSON {model, class?, prompt?, n, seed, sampler?, steps?, guidance?, eta?} -> image/png grid
//   GET  /api/sample/stream?...      the same as Server-Sent Events: 'step' (x_t and x0 grids as PNG data
//                                    URLs, as each step is computed), then 'done' (the grid) or 'fail'
//   GET  /api/runs/NAME/events       SSE of a training run folder: 'metrics' rows as they are written,
//                                    'images' (latest sample grid and strip), 'status' (step, ETA, state)
//   POST /api/runs/NAME/stop         asks the run to stop: writes RUN/STOP, which `ldm train` checks
//                                    after every step (it saves a checkpoint and ends cleanly)
//   static: /, /app.js, /worker.js, /style.css, /models/*, /configs/*.yaml, /data/mnist/* (what the
//   page's in-browser mode fetches; no computation happens for them)
// Sampling runs in a worker thread (sample-worker.ts) through the functions `ldm sample` uses; the
// requests queue there one at a time. A bad request gets a 4xx JSON {error}; nothing a client
// sends ends the server. Binds to loopback unless --host says otherwise.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { getPath, mnistDataDir, modelsDir, readConfigFile, readRegistry, resolveModel, samplingDefaults } from '../io/index.ts';
import { SAMPLER_NAMES, isSamplerName } from '../diffusion/index.ts';

import type { SampleSpec } from './sample.ts';
import type { SampleJob } from './sample-worker.ts';
import { ROOT, bundleWeb, cliWorker } from './bundle.ts';

export interface ServeOptions {
  port: number;
  host: string;
  /** folder whose sub-folders are training runs (null: none) */
  runs: string | null;
  /** largest n of a sample request (default 64) */
  maxN?: number;
  /** requests waiting for the sampler beyond which new ones get 503 (default 16) */
  maxQueue?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

// ---- the sampling queue ---------------------------------------------------------------------------------

interface WorkerMsg { id: number; type: 'step' | 'done' | 'error'; png?: Uint8Array; xt?: Uint8Array; x0?: Uint8Array; i?: number; total?: number; seconds?: number; error?: string; status?: number }
interface QueuedJob {
  job: SampleJob;
  onStep: ((m: WorkerMsg) => void) | null;
  resolve: (r: { png: Uint8Array; seconds: number }) => void;
  reject: (e: HttpError) => void;
}

/** One worker thread, one job at a time, FIFO; a crashed worker fails its job and is replaced. */
class SampleQueue {
  private worker: Worker | null = null;
  private current: QueuedJob | null = null;
  private waiting: QueuedJob[] = [];
  private nextId = 1;
  constructor(private readonly maxQueue: number) {}

  get length(): number { return this.waiting.length + (this.current ? 1 : 0); }

  submit(model: SampleJob['model'], spec: SampleSpec, onStep: ((m: WorkerMsg) => void) | null): Promise<{ png: Uint8Array; seconds: number }> {
    if (this.waiting.length >= this.maxQueue) return Promise.reject(new HttpError(503, `busy: ${this.length} sample requests are queued; try again later`));
    return new Promise((resolve, reject) => {
      this.waiting.push({ job: { id: this.nextId++, model, spec, previews: onStep !== null }, onStep, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Worker {
    const w = cliWorker('sample-worker', {});
    w.on('message', (m: WorkerMsg) => {
      const c = this.current;
      if (!c || m.id !== c.job.id) return;
      if (m.type === 'step') { c.onStep?.(m); return; }
      this.current = null;
      if (m.type === 'done') c.resolve({ png: m.png!, seconds: m.seconds! });
      else c.reject(new HttpError(m.status ?? 500, m.error ?? 'sampling failed'));
      this.pump();
    });
    const dead = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = null;
      const c = this.current;
      this.current = null;
      c?.reject(new HttpError(500, `the sampling worker stopped (${why}); the next request starts a new one`));
      this.pump();
    };
    w.on('error', (e) => dead(e.message));
    w.on('exit', (code) => dead(`exit code ${code}`));
    w.unref();
    return w;
  }

  private pump(): void {
    if (this.current || this.waiting.length === 0) return;
    this.current = this.waiting.shift()!;
    this.worker ??= this.spawn();
    this.worker.postMessage(this.current.job);
  }

  async close(): Promise<void> {
    for (const q of this.waiting) q.reject(new HttpError(503, 'server closing'));
    this.waiting = [];
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}

// ---- request validation ---------------------------------------------------------------------------

const SAMPLE_KEYS = ['model', 'class', 'prompt', 'n', 'seed', 'sampler', 'steps', 'guidance', 'eta'] as const;

function intIn(v: unknown, key: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new HttpError(400, `'${key}' must be an integer in ${lo}..${hi}, got ${JSON.stringify(v)}`);
  return v;
}

function numIn(v: unknown, key: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new HttpError(400, `'${key}' must be a number in ${lo}..${hi}, got ${JSON.stringify(v)}`);
  return v;
}

/** A sample request body -> the model to load and the spec for drawSamples (400/404 on bad input). */
export function parseSampleRequest(body: unknown, ctx: { runs: string | null; maxN: number }): { model: SampleJob['model']; spec: SampleSpec } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object like {"model": "mnist-ddpm", "n": 8, "seed": 0}');
  const b = body as Record<string, unknown>;
  const unknownKey = Object.keys(b).find((k) => !(SAMPLE_KEYS as readonly string[]).includes(k));
  if (unknownKey !== undefined) throw new HttpError(400, `unknown key '${unknownKey}' (allowed: ${SAMPLE_KEYS.join(', ')})`);
  if (typeof b['model'] !== 'string' || b['model'] === '') throw new HttpError(400, "'model' must be a model name (GET /api/models lists them)");
  const name = b['model'];
  let model: SampleJob['model'];
  if (name.startsWith('run:')) {
    const run = name.slice(4);
    const dir = ctx.runs !== null && /^[\w.-]+$/.test(run) ? join(ctx.runs, run) : null;
    if (!dir || !existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'checkpoints'))) throw new HttpError(404, `unknown model '${name}': no run '${run}' with a model under ${ctx.runs ?? '(no --runs folder)'}`);
    model = { checkpoint: dir };
  } else {
    const e = readRegistry().find((r) => r.name === name);
    if (!e) throw new HttpError(404, `unknown model '${name}' (shipped: ${readRegistry().filter((r) => r.kind === 'ddpm' || r.kind === 'ldm').map((r) => r.name).join(', ')})`);
    if (e.kind !== 'ddpm' && e.kind !== 'ldm') throw new HttpError(400, `'${name}' is a ${e.kind ?? 'file'}, not a diffusion model`);
    if (!resolveModel(name).available) throw new HttpError(404, `the shipped model '${name}' has no weights file here`);
    model = { name };
  }
  const n = intIn(b['n'] ?? 8, 'n', 1, ctx.maxN);
  const seed = intIn(b['seed'] ?? 0, 'seed', 0, 2 ** 53 - 1);
  // the shipped model's stored sampler and steps where the request names none (as `ldm sample`)
  const d = 'name' in model ? samplingDefaults({ name: model.name }) : {};
  const sampler = b['sampler'] ?? d.sampler ?? 'ddim';
  if (typeof sampler !== 'string' || !isSamplerName(sampler)) throw new HttpError(400, `'sampler' must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(b['sampler'])}`);
  const steps = intIn(b['steps'] ?? d.steps ?? 50, 'steps', 1, 1000);
  const spec: SampleSpec = { sampler, steps, seed, n };
  if (b['eta'] !== undefined && b['eta'] !== null) spec.eta = numIn(b['eta'], 'eta', 0, 10);
  if (b['guidance'] !== undefined && b['guidance'] !== null) spec.guidance = numIn(b['guidance'], 'guidance', 0, 50);
  if (b['class'] !== undefined && b['class'] !== null) {
    const c = Array.isArray(b['class']) ? b['class'] : [b['class']];
    if (c.length === 0 || c.length > 1024) throw new HttpError(400, "'class' must be a non-empty list of class indices");
    spec.class = c.map((v, i) => intIn(v, `class[${i}]`, 0, 100000));
  }
  if (b['prompt'] !== undefined && b['prompt'] !== null) {
    const p = Array.isArray(b['prompt']) ? b['prompt'] : [b['prompt']];
    if (p.length === 0 || p.some((s) => typeof s !== 'string' || s.length === 0 || s.length > 500)) throw new HttpError(400, "'prompt' must be a non-empty list of non-empty strings");
    spec.prompt = p as string[];
  }
  if (spec.class && spec.prompt) throw new HttpError(400, "give 'class' or 'prompt', not both");
  if (sampler === 'plms' && spec.eta !== undefined && spec.eta !== 0) throw new HttpError(400, "'eta' must be 0 for plms");
  return { model, spec };
}

/** Query string of GET /api/sample/stream -> the JSON body form (class=1,2  prompt=a|b). */
function queryToBody(q: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of q) {
    if (k === 'model' || k === 'sampler') out[k] = v;
    else if (k === 'prompt') out[k] = v.split('|').map((s) => s.trim()).filter((s) => s.length > 0);
    else if (k === 'class') out[k] = v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
    else out[k] = v.trim() === '' ? undefined : Number(v);
  }
  return out;
}

// ---- training runs ------------------------------------------------------------------------------------

interface RunInfo { name: string; dir: string; step: number; maxSteps: number | null; state: 'running' | 'stopping' | 'finished' | 'stopped' | 'idle'; model: string | null; loss: number | null; etaSec: number | null }

const isRunDir = (d: string): boolean => existsSync(join(d, 'metrics.jsonl')) || existsSync(join(d, 'config.yaml'));

function lastLossRow(dir: string): { step: number; loss: number; img_per_s?: number } | null {
  const p = join(dir, 'metrics.jsonl');
  if (!existsSync(p)) return null;
  // the last lines only (a long run's file is megabytes)
  const size = statSync(p).size, take = Math.min(size, 16384);
  const buf = Buffer.alloc(take);
  const fd = openSync(p, 'r');
  try { readSync(fd, buf, 0, take, size - take); } finally { closeSync(fd); }
  const lines = buf.toString('utf8').split('\n').reverse();
  for (const l of lines) {
    try {
      const r = JSON.parse(l) as { step?: unknown; loss?: unknown };
      if (typeof r.step === 'number' && typeof r.loss === 'number') return r as { step: number; loss: number };
    } catch { /* a partial first line */ }
  }
  return null;
}

/** The pid in RUN/RUNNING (written by `ldm train` while it trains) if that process is alive. */
function trainingPid(dir: string): number | null {
  const f = join(dir, 'RUNNING');
  if (!existsSync(f)) return null;
  const pid = Number(readFileSync(f, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0); // signal 0: exists?
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null; // killed with -9: the file stays, the process is gone
  }
}

function runInfo(dir: string): RunInfo {
  let maxSteps: number | null = null, batch = 1;
  try {
    const cfg = readConfigFile(join(dir, 'config.yaml'));
    const ms = getPath(cfg, 'lightning.trainer.max_steps'), bs = getPath(cfg, 'data.params.batch_size'), acc = getPath(cfg, 'lightning.trainer.accumulate_grad_batches');
    if (typeof ms === 'number') maxSteps = ms;
    if (typeof bs === 'number') batch = bs * (typeof acc === 'number' ? acc : 1);
  } catch { /* a run without a readable config still shows its metrics */ }
  const last = lastLossRow(dir);
  const step = last?.step ?? 0;
  const model = existsSync(join(dir, 'model.safetensors')) ? 'model.safetensors' : existsSync(join(dir, 'checkpoints', 'last.json')) ? 'checkpoints' : null;
  let state: RunInfo['state'];
  if (trainingPid(dir) !== null) state = existsSync(join(dir, 'STOP')) ? 'stopping' : 'running';
  else if (existsSync(join(dir, 'model.safetensors')) && (maxSteps === null || step >= maxSteps)) state = 'finished';
  else state = model ? 'stopped' : 'idle';
  const ips = last?.img_per_s;
  const etaSec = maxSteps !== null && typeof ips === 'number' && ips > 0 ? ((maxSteps - step) * batch) / ips : null;
  return { name: basename(dir), dir, step, maxSteps, state, model, loss: last?.loss ?? null, etaSec };
}

function listRuns(root: string | null): RunInfo[] {
  if (root === null || !existsSync(root)) return [];
  const dirs = isRunDir(root) ? [root] : readdirSync(root).map((n) => join(root, n)).filter((d) => statSync(d).isDirectory() && isRunDir(d));
  return dirs.map(runInfo).sort((a, b) => a.name.localeCompare(b.name));
}

/** The newest images of a run: images/samples_step-N.png and strip_step-N.png (trainer), else samples.png / strip.png. */
function latestImages(dir: string): { samples: string | null; strip: string | null } {
  const pick = (prefix: string): string | null => {
    const img = join(dir, 'images');
    if (existsSync(img)) {
      const f = readdirSync(img).filter((n) => n.startsWith(`${prefix}_step-`) && n.endsWith('.png')).sort().pop();
      if (f) return `images/${f}`;
    }
    const flat = readdirSync(dir).filter((n) => n.startsWith(prefix) && n.endsWith('.png')).sort().pop();
    return flat ?? null;
  };
  return { samples: pick('samples'), strip: pick('strip') };
}

// ---- HTTP plumbing --------------------------------------------------------------------------------------

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'text/javascript', '.json': 'application/json', '.png': 'image/png', '.yaml': 'text/yaml' };

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function sendFile(res: ServerResponse, path: string, type?: string): void {
  if (!existsSync(path) || !statSync(path).isFile()) throw new HttpError(404, `not found: ${basename(path)}`);
  const bytes = readFileSync(path);
  const ext = /\.[a-z]+$/.exec(path)?.[0] ?? '';
  res.writeHead(200, { 'content-type': type ?? TYPES[ext] ?? 'application/octet-stream', 'content-length': bytes.length, 'cache-control': 'no-cache' });
  res.end(bytes);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { reject(new HttpError(413, `the body is larger than ${limit} bytes`)); req.resume(); return; }
      parts.push(c);
    });
    req.on('end', () => resolveBody(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function sse(res: ServerResponse): (event: string, data: unknown) => void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write(': ldm.ts\n\n');
  return (event, data) => { if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`); };
}

const dataUrl = (png: Uint8Array): string => `data:image/png;base64,${Buffer.from(png).toString('base64')}`;

// ---- the server ---------------------------------------------------------------------------------------

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  const maxN = o.maxN ?? 64;
  const runsRoot = o.runs !== null ? resolve(o.runs) : null;
  const queue = new SampleQueue(o.maxQueue ?? 16);
  // the browser build, made on the first request for it (the API alone needs no bundling)
  const bundles = new Map<string, Promise<string>>();
  const bundle = (e: 'page' | 'worker'): Promise<string> => {
    let p = bundles.get(e);
    if (!p) { p = bundleWeb(e); bundles.set(e, p); p.catch(() => bundles.delete(e)); }
    return p;
  };
  const webDir = join(ROOT, 'web');
  const watchers = new Set<() => void>();

  const findRun = (name: string): string => {
    const r = listRuns(runsRoot).find((x) => x.name === name);
    if (!r) throw new HttpError(404, `unknown run '${name}'${runsRoot === null ? ' (the server was started without --runs)' : ` under ${runsRoot}`}`);
    return r.dir;
  };

  const watchRun = (req: IncomingMessage, res: ServerResponse, dir: string): void => {
    const send = sse(res);
    const mp = join(dir, 'metrics.jsonl');
    let offset = 0, rest = '', lastImages = '', lastStatus = '';
    const tick = (): void => {
      try {
        if (existsSync(mp)) {
          const size = statSync(mp).size;
          if (size < offset) { offset = 0; rest = ''; } // truncated (a resumed run rewinds its metrics)
          if (size > offset) {
            const fd = openSync(mp, 'r');
            const buf = Buffer.alloc(size - offset);
            try { readSync(fd, buf, 0, buf.length, offset); } finally { closeSync(fd); }
            offset = size;
            const lines = (rest + buf.toString('utf8')).split('\n');
            rest = lines.pop() ?? '';
            const rows = lines.filter((l) => l.trim() !== '').map((l) => { try { return JSON.parse(l) as unknown; } catch { return null; } }).filter((r) => r !== null);
            if (rows.length > 0) send('metrics', rows);
          }
        }
        const im = latestImages(dir);
        const key = JSON.stringify(im);
        if (key !== lastImages) {
          lastImages = key;
          const url = (f: string | null): string | null => (f ? `api/runs/${encodeURIComponent(basename(dir))}/files/${f}?t=${Date.now()}` : null);
          send('images', { samples: url(im.samples), strip: url(im.strip) });
        }
        const info = runInfo(dir);
        const st = JSON.stringify({ step: info.step, maxSteps: info.maxSteps, etaSec: info.etaSec === null ? null : Math.round(info.etaSec), state: info.state, loss: info.loss });
        if (st !== lastStatus) { lastStatus = st; res.write(`event: status\ndata: ${st}\n\n`); }
      } catch (e) {
        send('fail', { error: (e as Error).message });
      }
    };
    tick();
    const timer = setInterval(tick, 1000);
    const stop = (): void => { clearInterval(timer); watchers.delete(stop); if (!res.writableEnded) res.end(); };
    watchers.add(stop);
    req.on('close', stop);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = decodeURIComponent(url.pathname);
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';
    let m: RegExpExecArray | null;
    if (get && (path === '/' || path === '/index.html')) return sendFile(res, join(webDir, 'index.html'));
    if (get && path === '/style.css') return sendFile(res, join(webDir, 'style.css'));
    if (get && (path === '/app.js' || path === '/worker.js')) {
      const js = await bundle(path === '/app.js' ? 'page' : 'worker');
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-cache', 'content-length': Buffer.byteLength(js) });
      res.end(js);
      return;
    }
    if (get && path === '/models/registry.json') return sendFile(res, join(modelsDir(), 'registry.json'));
    if (get && (m = /^\/models\/([\w.-]+\.safetensors)$/.exec(path))) {
      if (!readRegistry().some((e) => e.checkpoint === m![1])) throw new HttpError(404, `not a shipped model file: ${m[1]}`);
      return sendFile(res, join(modelsDir(), m[1]!), 'application/octet-stream');
    }
    if (get && (m = /^\/configs\/([\w-]+\.yaml)$/.exec(path))) return sendFile(res, join(ROOT, 'configs', m[1]!));
    if (get && (m = /^\/data\/mnist\/((?:train|t10k)-(?:images-idx3|labels-idx1)-ubyte)$/.exec(path))) return sendFile(res, join(mnistDataDir(), m[1]!), 'application/octet-stream');

    if (path === '/api/models') {
      if (!get) throw new HttpError(405, 'use GET /api/models');
      const models = readRegistry().map((e) => ({ name: e.name, kind: e.kind ?? null, description: e.description ?? '', available: resolveModel(e.name).available }));
      const runs = listRuns(runsRoot).map(({ dir: _d, ...r }) => r);
      return sendJson(res, 200, { models, runs });
    }
    if (path === '/api/sample') {
      if (method !== 'POST') throw new HttpError(405, 'use POST /api/sample with a JSON body');
      const text = await readBody(req, 65536);
      let body: unknown;
      try { body = JSON.parse(text); } catch (e) { throw new HttpError(400, `malformed JSON body: ${(e as Error).message}`); }
      const r = parseSampleRequest(body, { runs: runsRoot, maxN });
      const out = await queue.submit(r.model, r.spec, null);
      log(`sample ${JSON.stringify(body)} in ${out.seconds.toFixed(1)} s`);
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': out.png.length, 'x-seconds': out.seconds.toFixed(3), 'cache-control': 'no-store' });
      res.end(Buffer.from(out.png));
      return;
    }
    if (path === '/api/sample/stream') {
      if (!get) throw new HttpError(405, 'use GET /api/sample/stream?model=...');
      const send = sse(res);
      let closed = false;
      req.on('close', () => { closed = true; });
      try {
        const r = parseSampleRequest(queryToBody(url.searchParams), { runs: runsRoot, maxN });
        const out = await queue.submit(r.model, r.spec, (s) => {
          if (!closed) send('step', { i: s.i, total: s.total, xt: dataUrl(s.xt!), x0: dataUrl(s.x0!) });
        });
        send('done', { png: dataUrl(out.png), seconds: out.seconds });
      } catch (e) {
        send('fail', { error: (e as Error).message, status: e instanceof HttpError ? e.status : 500 });
      }
      res.end();
      return;
    }
    if ((m = /^\/api\/runs\/([\w.-]+)\/(events|stop|files\/(.+))$/.exec(path))) {
      const dir = findRun(m[1]!);
      if (m[2] === 'events') {
        if (!get) throw new HttpError(405, 'use GET');
        watchRun(req, res, dir);
        return;
      }
      if (m[2] === 'stop') {
        if (method !== 'POST') throw new HttpError(405, 'use POST to stop a run');
        const info = runInfo(dir);
        if (info.state !== 'running' && info.state !== 'stopping') throw new HttpError(409, `run '${m[1]}' is ${info.state}, not running`);
        writeFileSync(join(dir, 'STOP'), `stop requested from ldm serve at ${new Date().toISOString()}\n`);
        log(`stop requested for ${dir}`);
        return sendJson(res, 200, { ok: true, run: m[1], message: 'the run saves a checkpoint and stops after its current step' });
      }
      const f = m[3]!;
      if (!get || !/^(images\/)?[\w.-]+\.png$/.test(f)) throw new HttpError(404, `not found: ${f}`);
      return sendFile(res, join(dir, f));
    }
    throw new HttpError(404, `not found: ${method} ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) log(`error: ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) sendJson(res, status, { error: e instanceof Error ? e.message : String(e) });
      else if (!res.writableEnded) res.end();
    });
  });
  server.on('clientError', (_e, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'); });
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(o.port, o.host, () => { server.off('error', rej); res(); }); });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/`,
    port,
    close: async () => {
      for (const w of [...watchers]) w();
      await queue.close();
      await new Promise<void>((res) => { server.close(() => res()); server.closeAllConnections(); });
    },
  };
}
