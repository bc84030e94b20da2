// The page of `ldm serve` in a real browser: Debian's Chromium, headless, driven by puppeteer-core
// (no browser download). It checks that the page renders the models and runs, that the playground
// samples through the API (trajectory and grid), and the in-browser mode: `window.ldm.browser`
// samples and trains in the page's Web Worker with no compute request to the server, giving the
// same numbers as Node on the same backend (reference and WebAssembly: bit for bit, as both run
// the same JavaScript and the same WebAssembly module), with a falling training loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { launchChromium } from '../helpers/chromium.ts';
import sharp from 'sharp';
import { setBackend } from '../../src/tensor/index.ts';
import { loadConfig, loadMnist, makeGrid } from '../../src/io/index.ts';
import { loadModel, sampleImages, trainInMemory, defaultGuidanceFor } from '../../src/train/index.ts';
import { startServer } from '../../src/cli/serve.ts';

const ROOT = join(import.meta.dirname, '../..');
type Ldm = {
  browser: {
    sample(o: unknown): Promise<string>;
    sampleRaw(o: unknown): Promise<{ data: number[]; shape: number[]; backend: string }>;
    train(o: unknown): Promise<{ losses: number[]; backend: string; batchSize: number }>;
  };
};

/** The grey values of a PNG data URL (first channel). */
async function pngGrey(url: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64')).raw().toBuffer({ resolveWithObject: true });
  const grey = new Uint8Array(info.width * info.height);
  for (let i = 0; i < grey.length; i++) grey[i] = data[i * info.channels]!;
  return { data: grey, width: info.width, height: info.height };
}

// the mnist-demo network made small enough for the reference backend's plain loops
const SHRUNK = ['model.params.unet_config.params.channel_mult=[1,1,1]', 'model.params.unet_config.params.attention_resolutions=[]'];

test('the page in headless Chromium: models, API sampling, in-page sampling and training', async (t) => {
  let last = performance.now();
  const lap = (what: string): void => { const now = performance.now(); t.diagnostic(`${what}: ${((now - last) / 1000).toFixed(1)} s`); last = now; };
  const profile = mkdtempSync(join(tmpdir(), 'ldm-chromium-'));
  const server = await startServer({ port: 0, host: '127.0.0.1', runs: join(ROOT, 'models', 'logs') });
  let browser: Browser | null = null;
  try {
    browser = await launchChromium(profile);
    const page: Page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));

    lap('launch');
    // 1. the page renders the shipped models and the runs
    await page.goto(server.url);
    await page.waitForSelector('body[data-models]');
    const models = await page.$$eval('#models li b', (l) => l.map((x) => x.textContent));
    assert.ok(['mnist-ddpm', 'mnist-ldm', 'mnist-ldm-text'].every((m) => models.includes(m)), models.join(','));
    const runs = await page.$$eval('#runs a', (l) => l.map((x) => x.textContent));
    assert.ok(runs.includes('mnist-ddpm'), runs.join(','));

    lap('page render');
    // 2. the playground samples on the server: trajectory previews, then the grid
    await page.select('#s-model', 'mnist-ldm');
    for (const [id, v] of [['#s-steps', '4'], ['#s-n', '2'], ['#s-class', '1,2']] as const) {
      await page.$eval(id, (e, val) => { (e as HTMLInputElement).value = val; }, v);
    }
    await page.click('#s-go');
    await page.waitForFunction(() => /^(done|error)/.test(document.getElementById('s-status')!.textContent!), { timeout: 180000 });
    assert.match(await page.$eval('#s-status', (e) => e.textContent!), /^done on the server/);
    const srcs = await page.$$eval('#s-xt, #s-x0, #s-out', (l) => l.map((x) => (x as HTMLImageElement).src.slice(0, 22)));
    assert.deepEqual(srcs, ['data:image/png;base64,', 'data:image/png;base64,', 'data:image/png;base64,']);
    const api = await page.evaluate(async () => {
      const r = await fetch('api/sample', { method: 'POST', body: JSON.stringify({ model: 'mnist-ldm', class: [4], n: 2, steps: 4, seed: 0 }) });
      return { status: r.status, type: r.headers.get('content-type'), bytes: (await r.arrayBuffer()).byteLength };
    });
    assert.equal(api.status, 200);
    assert.equal(api.type, 'image/png');
    assert.ok(api.bytes > 100);

    lap('API sampling');
    // 3. in-browser mode: from here on, no request may reach the API
    await page.select('#mode', 'browser');
    const requests: string[] = [];
    page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));

    // in-page sample on the WebAssembly backend = Node on the same backend, value for value and pixel for pixel
    const req = { model: 'mnist-ddpm', class: [7, 1], n: 2, steps: 4, seed: 5 };
    const raw = await page.evaluate((o) => (window as unknown as { ldm: Ldm }).ldm.browser.sampleRaw({ ...o, backend: 'wasm' }), req);
    const url = await page.evaluate((o) => (window as unknown as { ldm: Ldm }).ldm.browser.sample({ ...o, backend: 'wasm' }), req);
    const m = loadModel({ name: 'mnist-ddpm' });
    const sampleNode = (backend: 'wasm' | 'reference', o: { class: number[]; n: number; steps: number; seed: number; guidance?: number }) => {
      setBackend(backend);
      try {
        return sampleImages(m.model, m.cls, { n: o.n, sampler: m.sampler ?? 'ddim', steps: o.steps, seed: o.seed, labels: o.class, guidance: o.guidance ?? m.guidance ?? defaultGuidanceFor(m.cls) }).samples;
      } finally { setBackend('native'); }
    };
    const node = sampleNode('wasm', req);
    assert.equal(raw.backend, 'wasm');
    assert.deepEqual(raw.shape, [2, 1, 28, 28]);
    assert.deepEqual(raw.data, Array.from(node.f32));
    const png = await pngGrey(url);
    const grid = makeGrid(node, { nrow: 2 });
    assert.deepEqual([png.width, png.height], [grid.width, grid.height]);
    assert.deepEqual(png.data, grid.data);

    lap('in-page wasm sample + Node');
    // the reference backend in the page = the reference backend in Node
    const small = { model: 'mnist-ddpm', class: [3], n: 1, steps: 2, seed: 2, guidance: 1 };
    const rawRef = await page.evaluate((o) => (window as unknown as { ldm: Ldm }).ldm.browser.sampleRaw({ ...o, backend: 'reference' }), small);
    assert.equal(rawRef.backend, 'reference');
    assert.deepEqual(rawRef.data, Array.from(sampleNode('reference', small).f32));

    lap('in-page reference sample + Node');
    // in-page training (Web Worker, MNIST fetched as static files) = trainInMemory in Node, loss for loss
    const tr = await page.evaluate((ov) => (window as unknown as { ldm: Ldm }).ldm.browser.train({ config: 'mnist-demo', steps: 2, seed: 1, batchSize: 1, overrides: ov, backend: 'reference' }), SHRUNK);
    setBackend('reference');
    try {
      const config = loadConfig(join(ROOT, 'configs', 'mnist-demo.yaml'), ['seed=1', 'data.params.batch_size=1', ...SHRUNK]);
      const nodeRun = await trainInMemory({ config, train: loadMnist({ split: 'train' }), steps: 2 });
      assert.deepEqual(tr.losses, nodeRun.losses);
    } finally { setBackend('native'); }

    lap('in-page reference training + Node');
    // a short in-page training run of the mnist-demo network on the fast backend: the loss falls
    const fast = await page.evaluate(() => (window as unknown as { ldm: Ldm }).ldm.browser.train({
      config: 'mnist-demo', steps: 12, seed: 0, batchSize: 4, backend: 'wasm',
      overrides: ['model.base_learning_rate=1e-4', 'model.params.scheduler_config.params.warm_up_steps=[2]'],
    }));
    assert.equal(fast.losses.length, 12);
    assert.ok(fast.losses.every(Number.isFinite));
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    assert.ok(mean(fast.losses.slice(-3)) < mean(fast.losses.slice(0, 3)) - 0.05, `loss did not fall: ${fast.losses.join(', ')}`);
    const trained = await page.evaluate(() => (window as unknown as { ldm: Ldm }).ldm.browser.sample({ model: 'trained', class: [0, 1], n: 2, steps: 2, seed: 0 }));
    assert.match(trained, /^data:image\/png;base64,/);

    lap('in-page wasm training + sample');
    const compute = requests.filter((r) => r.includes('/api/'));
    assert.deepEqual(compute, [], 'in-browser mode made requests to the API');
    const allowed = /^GET \/(worker\.js|models\/[\w.-]+\.(json|safetensors)|configs\/[\w-]+\.yaml|data\/mnist\/[\w-]+)$/;
    assert.deepEqual(requests.filter((r) => !allowed.test(r)), []);
    assert.ok(requests.includes('GET /models/mnist-ddpm.safetensors') && requests.includes('GET /data/mnist/train-images-idx3-ubyte'));
    assert.deepEqual(errors, []);
  } finally {
    await browser?.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
