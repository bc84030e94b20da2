// `ldm train CONFIG [key.path=value ...] [--resume DIR] [--out DIR]` and the progress display:
// a cli-progress bar (step, loss, it/s, img/s, ETA) on a terminal, plain lines otherwise; the
// first Ctrl-C saves a checkpoint and stops, a second one exits at once.

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { cliWorker } from './bundle.ts';
import cliProgress from 'cli-progress';
import { ConfigError } from '../util/index.ts';
import { applyOverrides, loadConfig, loadTrainingCheckpoint, validateConfig, type ConfigTree, type DataModule } from '../io/index.ts';
import { train, type AnyTrainResult, type TrainEvent } from '../train/index.ts';

const fmtTime = (s: number): string => {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
};

/** Renders trainer events on stderr (bar on a TTY, lines otherwise). */
export function progressReporter(quiet = false): { onEvent: (e: TrainEvent) => void; stop: () => void } {
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  let lastLine = 0;
  let every = 1;
  const say = (msg: string): void => {
    if (bar) bar.stop();
    process.stderr.write(`${msg}\n`);
    if (bar) { bar.start(bar.getTotal(), Math.round(bar.getProgress() * bar.getTotal())); }
  };
  const onEvent = (e: TrainEvent): void => {
    switch (e.type) {
      case 'start':
        say(`${e.resumed ? 'resuming' : 'training'} at step ${e.step}/${e.maxSteps}: ${(e.parameters / 1e6).toFixed(2)}M parameters, ` +
          `lr ${e.learningRate.toExponential(2)}, batch ${e.batchSize}, ${e.dataset} (${e.examples} images) -> ${e.outDir}`);
        every = Math.max(1, Math.floor(e.maxSteps / 100));
        if (tty && !quiet) {
          bar = new cliProgress.SingleBar({
            format: ' {bar} {value}/{total} | loss {loss} | {its} it/s | {ips} img/s | ETA {eta_h}',
            hideCursor: true, stream: process.stderr, etaBuffer: 50,
          }, cliProgress.Presets.shades_classic);
          bar.start(e.maxSteps, e.step, { loss: '-', its: '-', ips: '-', eta_h: '?' });
        }
        break;
      case 'step': {
        const payload = { loss: e.loss.toFixed(4), its: e.itPerSec.toFixed(2), ips: e.imgPerSec.toFixed(1), eta_h: fmtTime(e.etaSec) };
        if (bar) bar.update(e.step, payload);
        else if (!quiet && (e.step % every === 0 || e.step === e.maxSteps || Date.now() - lastLine > 30000)) {
          lastLine = Date.now();
          process.stderr.write(`step ${e.step}/${e.maxSteps} loss ${payload.loss} lr ${e.lr.toExponential(2)} ${payload.its} it/s ${payload.ips} img/s ETA ${payload.eta_h}\n`);
        }
        break;
      }
      case 'checkpoint': if (!quiet) say(`checkpoint: ${e.path}`); break;
      case 'images': if (!quiet) say(`images: ${e.paths.join(', ')}`); break;
      case 'val': if (!quiet) say(`validation at step ${e.step}: ${Object.entries(e.values).filter(([k]) => /loss(_ema)?$/.test(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`); break;
      case 'info': case 'warn': say(`${e.type === 'warn' ? 'warning: ' : ''}${e.message}`); break;
      case 'done':
        if (bar) { bar.stop(); bar = null; }
        break;
      default: break;
    }
  };
  return { onEvent, stop: () => { if (bar) { bar.stop(); bar = null; } } };
}

export interface TrainCommandOptions {
  resume?: string;
  /** start a new run from a trained model's weights (train/init-from.ts) */
  initFrom?: string;
  out?: string;
  quiet?: boolean;
  data?: DataModule;
  /** also serve the page (ldm serve) on this port, watching the run live */
  serve?: { port: number; host: string };
}

/** Start `ldm serve` in a worker thread watching the run folder's parent; resolves to the page URL. */
function serveInThread(out: string, o: { port: number; host: string }): Promise<{ url: string; worker: Worker }> {
  const worker = cliWorker('serve-thread', { options: { port: o.port, host: o.host, runs: dirname(resolve(out)) } });
  return new Promise((res, rej) => {
    worker.once('message', (m: { type: string; url?: string; error?: string }) => {
      if (m.type === 'listening') res({ url: m.url!, worker });
      else rej(new ConfigError(`--serve: ${m.error}`));
    });
    worker.once('error', rej);
  });
}

function timestamp(): string {
  const d = new Date();
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Split `train` positionals into the config path and key=value overrides. */
export function splitTrainArgs(args: readonly string[]): { config: string | undefined; overrides: string[] } {
  const [first, ...rest] = args;
  if (first !== undefined && !first.includes('=')) return { config: first, overrides: rest };
  return { config: undefined, overrides: [...args] };
}

export async function trainCommand(args: readonly string[], o: TrainCommandOptions): Promise<AnyTrainResult> {
  const { config: configPath, overrides } = splitTrainArgs(args);
  let config: ConfigTree;
  let out: string;
  if (o.resume) {
    // the run's own config, with the command line's overrides on top (e.g. a longer max_steps)
    if (configPath) process.stderr.write(`note: --resume uses the run's saved config; ${configPath} is not read (give overrides as key.path=value)\n`);
    const ck = loadTrainingCheckpoint(o.resume);
    config = applyOverrides(ck.sidecar.config, overrides);
    validateConfig(config);
    out = o.resume;
    if (o.out && o.out !== o.resume) throw new ConfigError('--resume continues in the run folder it names; leave out --out');
    if (o.initFrom) throw new ConfigError('--init-from starts a new run; --resume continues one from its own checkpoint (give one of them)');
  } else {
    if (!configPath) throw new ConfigError('train: give a config file (e.g. configs/mnist-ddpm.yaml) or --resume RUN_DIR');
    config = loadConfig(configPath, overrides);
    out = o.out ?? join('runs', `${basename(configPath, extname(configPath))}-${timestamp()}`);
  }
  // RUN/STOP (written by the page's stop button, or by hand) ends the run like Ctrl-C
  // RUN/RUNNING (this process's pid while it trains) tells `ldm serve` the run is live
  const stopFile = join(out, 'STOP'), runningFile = join(out, 'RUNNING');
  rmSync(stopFile, { force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(runningFile, `${process.pid}\n`);
  let served: { url: string; worker: Worker } | null = null;
  if (o.serve) {
    served = await serveInThread(out, o.serve);
    process.stderr.write(`watch it live: ${served.url}#run=${encodeURIComponent(basename(resolve(out)))}\n`);
  }
  const rep = progressReporter(o.quiet);
  let stopRequested = false;
  const onSigint = (): void => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    process.stderr.write('\nstopping after this step (checkpoint is being written; Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await train({
      config, outDir: out, resume: o.resume !== undefined, ...(o.initFrom ? { initFrom: o.initFrom } : {}), onEvent: rep.onEvent, shouldStop: () => stopRequested || existsSync(stopFile),
      ...(o.data ? { data: o.data } : {}),
    }).catch((e: unknown) => {
      // "config: ..." errors of the trainer are about the config file: name it
      if (e instanceof ConfigError && e.message.startsWith('config:')) {
        throw new ConfigError(`${o.resume ? `${o.resume} (the run's saved config)` : configPath}: ${e.message}`);
      }
      throw e;
    });
    rep.stop();
    // Ctrl-C: the checkpoint is written; exit 130 as interrupted commands do
    if (stopRequested && r.reason === 'stopped') process.exitCode = 130;
    console.log(`${r.reason === 'finished' ? 'finished' : 'stopped'} at step ${r.step} (${r.imgPerSec.toFixed(1)} img/s); run folder: ${out}` +
      (r.modelPath ? `\nmodel: ${r.modelPath}\nsample it: ldm sample ${r.modelPath} --out ${join(out, 'samples.png')}` : `\nresume: ldm train --resume ${out}`));
    return r;
  } finally {
    rep.stop();
    process.off('SIGINT', onSigint);
    rmSync(stopFile, { force: true });
    rmSync(runningFile, { force: true });
    if (served) process.stderr.write(`still serving ${served.url} (Ctrl-C to quit)\n`);
  }
}
