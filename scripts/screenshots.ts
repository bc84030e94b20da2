// Screenshots of the page of `ldm serve` for the README (docs/serve-*.png), taken with Debian's
// Chromium through puppeteer-core: (1) a live training run of configs/mnist-demo.yaml watched from
// the page while a sample is drawn in the playground on the server; (2) the in-browser mode after a
// short training run and a sample computed in the page. Run by hand: `npx tsx scripts/screenshots.ts`
// (a few minutes: it trains for real).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startServer } from '../src/cli/serve.ts';
import { launchChromium } from '../test/helpers/chromium.ts';

const ROOT = resolve(import.meta.dirname, '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const runs = mkdtempSync(join(tmpdir(), 'ldm-shots-'));
const out = join(runs, 'mnist-demo');
const child = spawn(process.execPath, [join(ROOT, 'bin/ldm.js'), 'train', join(ROOT, 'configs/mnist-demo.yaml'),
  'lightning.callbacks.image_logger.params.batch_frequency=15', 'lightning.callbacks.image_logger.params.sample_steps=10',
  'lightning.trainer.val_check_interval=0', '--out', out], { stdio: 'inherit' });
const server = await startServer({ port: 0, host: '127.0.0.1', runs });
const browser = await launchChromium(mkdtempSync(join(tmpdir(), 'ldm-chromium-')));
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  for (let i = 0; i < 600 && !existsSync(join(out, 'images')); i++) await sleep(1000);
  await sleep(8000);
  await page.goto(`${server.url}#run=mnist-demo`);
  await page.waitForSelector('body[data-models]');
  await page.select('#s-model', 'mnist-ddpm');
  await page.$eval('#s-class', (e) => { (e as HTMLInputElement).value = '0,1,2,3,4,5,6,7'; });
  await page.click('#s-go');
  await page.waitForFunction(() => document.getElementById('s-status')!.textContent!.startsWith('step 12'), { timeout: 300000 });
  await page.screenshot({ path: join(ROOT, 'docs', 'serve-live.png') });
  await page.waitForFunction(() => document.getElementById('s-status')!.textContent!.startsWith('done'), { timeout: 300000 });
  // stop the run from the page
  await page.click('#t-stop');
  await new Promise((r) => child.on('exit', r));

  await page.select('#mode', 'browser');
  await page.$eval('#b-steps', (e) => { (e as HTMLInputElement).value = '20'; });
  await page.$eval('#b-batch', (e) => { (e as HTMLInputElement).value = '8'; });
  await page.click('#b-train');
  await page.waitForFunction(() => (document.getElementById('t-samples') as HTMLImageElement).src.startsWith('data:'), { timeout: 900000 });
  await page.select('#s-model', 'mnist-ldm');
  await page.$eval('#s-class', (e) => { (e as HTMLInputElement).value = '0,1,2,3,4,5,6,7,8,9'; });
  await page.$eval('#s-n', (e) => { (e as HTMLInputElement).value = '10'; });
  await page.click('#s-go');
  await page.waitForFunction(() => document.getElementById('s-status')!.textContent!.startsWith('done'), { timeout: 300000 });
  await page.screenshot({ path: join(ROOT, 'docs', 'serve-browser.png') });
  console.log('wrote docs/serve-live.png, docs/serve-browser.png');
} finally {
  child.kill();
  await browser.close();
  await server.close();
  rmSync(runs, { recursive: true, force: true });
}
