// Boots a worker thread on a TypeScript module: registers tsx in the worker (workers do not
// inherit the loader that bin/ldm.js registered) and imports workerData.entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
