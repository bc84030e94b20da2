// `ldm serve` over HTTP (node:http on a free loopback port): the model list, PNG samples, clear
// 4xx JSON errors that never end the server, queued concurrent requests, the SSE trajectory
// stream, and a training run of another process watched live and stopped cleanly from the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startServer, type RunningServer } from '../../src/cli/serve.ts';
import { TINY } from '../train/tiny.ts';

const ROOT = join(import.meta.dirname, '../..');

async function withServer(runs: string | null, f: (s: RunningServer) => Promise<void>): Promise<void> {
  const s = await startServer({ port: 0, host: '127.0.0.1', runs, maxN: 16, maxQueue: 4 });
  try { await f(s); } finally { await s.close(); }
}

const post = (s: RunningServer, path: string, body: string): Promise<Response> =>
  fetch(new URL(path, s.url), { method: 'POST', body, headers: { 'content-type': 'application/json' } });

/** Read an SSE response into [event, data] pairs until `until` returns true or the stream ends. */
async function readEvents(r: Response, until: (ev: string, data: unknown) => boolean): Promise<[string, unknown][]> {
  const out: [string, unknown][] = [];
  const dec = new TextDecoder();
  let buf = '';
  const reader = r.body!.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev && data) {
        out.push([ev, JSON.parse(data)]);
        if (until(ev, JSON.parse(data))) { await reader.cancel(); return out; }
      }
    }
  }
  return out;
}

test('models, PNG samples, 4xx errors and queued concurrent requests', async () => {
  await withServer(null, async (s) => {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const models = await (await fetch(new URL('api/models', s.url))).json() as { models: { name: string; kind: string; available: boolean }[]; runs: unknown[] };
    assert.ok(models.models.some((m) => m.name === 'mnist-ddpm' && m.kind === 'ddpm' && m.available));
    assert.deepEqual(models.runs, []);

    const ok = await post(s, 'api/sample', JSON.stringify({ model: 'mnist-ddpm', class: [3, 8], n: 4, steps: 2, seed: 1 }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await ok.arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [4 * 30 + 2, 32]); // 4 cells of 28 px, make_grid padding 2

    const bad: [string, number, RegExp][] = [
      ['{"model": "mnist-ddpm", ', 400, /malformed JSON/],
      ['[1, 2]', 400, /JSON object/],
      [JSON.stringify({ model: 'no-such-model' }), 404, /unknown model 'no-such-model'.*mnist-ddpm/],
      [JSON.stringify({ model: 'mnist-ddpm', n: 500 }), 400, /'n' must be an integer in 1\.\.16/],
      [JSON.stringify({ model: 'mnist-ddpm', colour: 'red' }), 400, /unknown key 'colour'/],
      [JSON.stringify({ model: 'mnist-ddpm', sampler: 'euler-x' }), 400, /'sampler' must be one of/],
      [JSON.stringify({ model: 'mnist-classifier' }), 400, /not a diffusion model/],
      [JSON.stringify({ model: 'mnist-ddpm', n: 2, steps: 2, class: [12] }), 400, /class 12 is outside 0\.\.9/],
      [JSON.stringify({ model: 'mnist-ddpm', n: 2, steps: 2, prompt: ['a seven'] }), 400, /not text-conditional/],
    ];
    for (const [body, status, re] of bad) {
      const r = await post(s, 'api/sample', body);
      assert.equal(r.status, status, body);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.match(((await r.json()) as { error: string }).error, re, body);
    }
    assert.equal((await fetch(new URL('api/sample', s.url))).status, 405);
    assert.equal((await fetch(new URL('api/nothing', s.url))).status, 404);
    assert.equal((await post(s, 'api/sample', 'x'.repeat(70000))).status, 413);
    assert.equal((await fetch(new URL('models/../package.json', s.url))).status, 404);

    // concurrent requests queue on the one sampling worker and all succeed, each with its own seed
    const rs = await Promise.all([0, 1, 2].map((seed) => post(s, 'api/sample', JSON.stringify({ model: 'mnist-ldm', class: [seed], n: 2, steps: 2, seed }))));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    const bytes = await Promise.all(rs.map(async (r) => Buffer.from(await r.arrayBuffer()).toString('base64')));
    assert.equal(new Set(bytes).size, 3);
    // beyond the queue limit: 503, and the server keeps answering
    const many = await Promise.all(Array.from({ length: 7 }, (_, i) => post(s, 'api/sample', JSON.stringify({ model: 'mnist-ldm', n: 1, steps: 1, seed: i, class: [1] }))));
    assert.ok(many.some((r) => r.status === 503) && many.some((r) => r.status === 200));
    assert.equal((await fetch(new URL('api/models', s.url))).status, 200);
  });
});

test('the sample stream sends x_t / x0 previews for every step, then the grid', async () => {
  await withServer(null, async (s) => {
    const r = await fetch(new URL('api/sample/stream?model=mnist-ldm&class=1,2&n=2&steps=5&seed=0', s.url));
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const evs = await readEvents(r, (ev) => ev === 'done' || ev === 'fail');
    const steps = evs.filter(([e]) => e === 'step').map(([, d]) => d as { i: number; total: number; xt: string; x0: string });
    assert.deepEqual(steps.map((d) => d.i), [1, 2, 3, 4, 5]);
    assert.ok(steps.every((d) => d.total === 5 && d.xt.startsWith('data:image/png;base64,') && d.x0.startsWith('data:image/png;base64,')));
    const done = evs.at(-1)!;
    assert.equal(done[0], 'done');
    assert.match((done[1] as { png: string }).png, /^data:image\/png;base64,/);
    const fail = await readEvents(await fetch(new URL('api/sample/stream?model=mnist-ddpm&n=0', s.url)), () => false);
    assert.equal(fail[0]![0], 'fail');
    assert.match((fail[0]![1] as { error: string }).error, /'n' must be/);
  });
});

test('a run of another process is watched live and stopped cleanly from the API', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'ldm-serve-runs-'));
  const out = join(runs, 'tiny');
  const child = spawn(process.execPath, [join(ROOT, 'bin/ldm.js'), 'train', join(ROOT, 'configs/debug.yaml'), ...TINY,
    'lightning.trainer.max_steps=100000', 'lightning.trainer.val_check_interval=0', 'lightning.modelcheckpoint.params.every_n_train_steps=100000', '--out', out],
  { env: { ...process.env, LDM_BACKEND: 'reference' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  try {
    await withServer(runs, async (s) => {
      for (let i = 0; i < 300 && !existsSync(join(out, 'metrics.jsonl')); i++) await new Promise((r) => setTimeout(r, 100));
      const list = await (await fetch(new URL('api/models', s.url))).json() as { runs: { name: string; state: string }[] };
      assert.deepEqual(list.runs.map((r) => [r.name, r.state]), [['tiny', 'running']]);
      const ev = await fetch(new URL('api/runs/tiny/events', s.url));
      const seen = await readEvents(ev, (e, d) => e === 'metrics' && (d as unknown[]).length > 0);
      const rows = seen.find(([e]) => e === 'metrics')![1] as { step: number; loss: number }[];
      assert.ok(rows[0]!.step === 1 && Number.isFinite(rows[0]!.loss));
      const stop = await post(s, 'api/runs/tiny/stop', '');
      assert.equal(stop.status, 200);
      assert.equal(await exited, 0);
      assert.match(stdout, /stopped at step \d+/);
      assert.ok(existsSync(join(out, 'checkpoints', 'last.json')), 'a checkpoint was saved');
      assert.ok(!existsSync(join(out, 'STOP')), 'the stop request was cleared');
      const step = Number(/stopped at step (\d+)/.exec(stdout)![1]);
      assert.equal(JSON.parse(readFileSync(join(out, 'checkpoints', 'last.json'), 'utf8')).step, step);
      const again = await post(s, 'api/runs/tiny/stop', '');
      assert.equal(again.status, 409);
      assert.equal((await fetch(new URL('api/runs/nope/events', s.url))).status, 404);
    });
  } finally {
    child.kill();
    rmSync(runs, { recursive: true, force: true });
  }
});
