// `ldm train ... --serve`: the server of serve.ts in a worker thread of the training process, so
// that it answers while the training loop keeps the main thread busy. It watches the run's parent
// folder; the page's stop button writes RUN/STOP, which the training loop checks after every step.

import { parentPort, workerData } from 'node:worker_threads';
import { startServer, type ServeOptions } from './serve.ts';

const o = (workerData as { options: ServeOptions }).options;
startServer({ ...o, log: () => {} }).then(
  (s) => parentPort!.postMessage({ type: 'listening', url: s.url }),
  (e: unknown) => parentPort!.postMessage({ type: 'error', error: e instanceof Error ? e.message : String(e) }),
);
