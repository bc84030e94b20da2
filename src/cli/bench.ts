// `npm run bench [-- --json] [--torch] [--reps N]`: the performance benchmark (not a test).
// W1 conv 3x3 fwd / bwd-input / bwd-weight, W2 sgemm 1024^3, W3 attention, and W4: a training
// step and a sampling forward pass of exactly the network of shared/bench/unet_torch.py at
// batch 16. Prints best / median seconds, GFLOP/s and percent of the FP32 peak measured by the
// addon's FMA loop, W4 peak RSS; `--torch` runs the PyTorch anchor in the same run and prints
// ratios. `--json` prints one object per line.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { nativeInfo } from '../backend/index.ts';
import { BenchUNet, benchKernels } from '../dev/index.ts';
import * as T from '../tensor/index.ts';
import { Generator } from '../util/index.ts';
import { Adam, mseLoss } from '../nn/index.ts';

interface Row {
  workload: string;
  best_s: number;
  median_s: number;
  gflops: number | null;
  peak_rss_mb: number | null;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function row(workload: string, times: number[], flop: number | null, rss: number | null = null): Row {
  const best = Math.min(...times);
  return { workload, best_s: best, median_s: median(times), gflops: flop ? flop / best / 1e9 : null, peak_rss_mb: rss };
}

/** Forward FLOPs of BenchUNet at batch b, counted as unet_torch.py's hooks count them. */
function benchUnetFlops(b: number): number {
  let flop = 0;
  // Convs 2*out.numel*cin*k*k, linears 2*out.numel*in, attention 4*B*C*HW^2, layer by layer.
  const trace = (cin: number, cout: number, k: number, hw: number): void => { flop += 2 * b * cout * hw * cin * k * k; };
  const lin = (i: number, o: number): void => { flop += 2 * b * o * i; };
  const ch = 64, td = 256;
  lin(ch, td); lin(td, td);
  trace(3, ch, 3, 1024);
  const mults = [1, 2, 2];
  let c = ch, hw = 1024, res = 32;
  const chans = [ch];
  const resblock = (ci: number, co: number, s: number): void => { trace(ci, co, 3, s); lin(td, co); trace(co, co, 3, s); if (ci !== co) trace(ci, co, 1, s); };
  let nattn = 0;
  mults.forEach((m, li) => {
    for (let r = 0; r < 2; r++) {
      resblock(c, ch * m, hw); c = ch * m; chans.push(c);
      if (res === 16 && r === 1 && nattn === 0) { trace(c, 3 * c, 1, hw); trace(c, c, 1, hw); flop += 2 * 2 * b * c * hw * hw; nattn++; }
    }
    if (li !== mults.length - 1) { trace(c, c, 3, hw / 4); chans.push(c); hw /= 4; res /= 2; }
  });
  resblock(c, c, hw); resblock(c, c, hw);
  [...mults.entries()].reverse().forEach(([li, m]) => {
    for (let r = 0; r < 3; r++) { resblock(c + chans.pop()!, ch * m, hw); c = ch * m; }
    if (li !== 0) { hw *= 4; trace(c, c, 3, hw); }
  });
  trace(c, 3, 3, hw);
  return flop;
}

function benchW4(reps: number): Row[] {
  const gen = new Generator(0);
  const B = 16;
  const model = new BenchUNet();
  const x0 = T.randn([B, 3, 32, 32], gen);
  const opt = new Adam(model.parameters(), { lr: 2e-4 });
  const ab = new Float32Array(1000).map((_, i) => 0.9999 + (0.0001 - 0.9999) * i / 999);
  const ff = benchUnetFlops(B);
  const step = (): void => {
    const tt = T.randint(0, 1000, [B], gen);
    const n = T.randn([B, 3, 32, 32], gen);
    const a = T.tensor(Array.from(tt.data, (t) => ab[t]!), [B, 1, 1, 1]);
    const xt = T.noGrad(() => T.add(T.mul(T.sqrt(a), x0), T.mul(T.sqrt(T.sub(1, a)), n)));
    const loss = mseLoss(model.forward(xt, tt), n);
    opt.zeroGrad();
    T.backward(loss);
    opt.step();
  };
  const time = (fn: () => void, n: number, warm: number): number[] => {
    for (let i = 0; i < warm; i++) fn();
    const ts: number[] = [];
    for (let i = 0; i < n; i++) { const t0 = performance.now(); fn(); ts.push((performance.now() - t0) / 1000); }
    return ts;
  };
  const trainTimes = time(step, reps, 2);
  const rssTrain = process.memoryUsage().rss / 2 ** 20;
  const t = T.randint(0, 1000, [B], gen);
  const sampleTimes = time(() => { T.noGrad(() => model.forward(x0, t)); }, reps * 2, 2);
  const rss = Math.max(rssTrain, process.memoryUsage().rss / 2 ** 20);
  return [row('W4_train_step', trainTimes, 3 * ff, rss), row('W4_sample_fwd', sampleTimes, ff, rss)];
}

interface TorchRow { workload: string; times: number[]; flop?: number; peak_rss_mb?: number }

function runTorch(benchDir: string): TorchRow[] {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000', TORCH_THREADS: '2' };
  delete env['OPENBLAS_CORETYPE'];
  const rows: TorchRow[] = [];
  for (const script of ['bench_torch.py', 'unet_torch.py']) {
    // Peak RSS of the anchor process via GNU time's %M when available.
    const r = spawnSync('/usr/bin/python3', ['-c', `import resource,runpy,sys,json; sys.argv=['${script}']; runpy.run_path('${script}', run_name='__main__'); print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))`], { cwd: benchDir, env, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`PyTorch anchor ${script} failed: ${r.stderr.slice(-800)}`);
    let rss: number | undefined;
    for (const line of r.stdout.split('\n')) {
      if (!line.trim().startsWith('{')) continue;
      const o = JSON.parse(line) as TorchRow & { peak_rss_mb?: number };
      if (o.workload) rows.push({ ...o, workload: o.workload.replace(/_1attn$/, '') });
      else if (o.peak_rss_mb) rss = o.peak_rss_mb;
    }
    if (script === 'unet_torch.py' && rss) for (const o of rows) if (o.workload.startsWith('W4')) o.peak_rss_mb = rss;
  }
  return rows;
}

export function benchMain(argv: readonly string[]): number {
  const json = argv.includes('--json');
  const torch = argv.includes('--torch');
  const ri = argv.indexOf('--reps');
  const reps = ri >= 0 ? Number(argv[ri + 1]) : 5;
  const only = argv.includes('--w4-only');
  const info = nativeInfo();
  const peak = info.available ? info.peakGflops() : Number.NaN;
  const print = (s: string): void => { if (!json) console.log(s); };
  print(`backend: ${T.backendName()}${info.available ? ` (oneDNN ${info.onednnVersion}, ${info.threads} threads, ${info.isa})` : ` (${info.reason})`}`);
  print(`measured FP32 peak: ${Number.isFinite(peak) ? peak.toFixed(0) : 'n/a'} GFLOP/s`);
  const rows: Row[] = [];
  if (!only) {
    if (info.available) for (const r of benchKernels(undefined, { reps: 7 })) rows.push(row(r.workload, r.times, r.flop));
    else print('W1-W3 need the native backend; skipped');
  }
  // W4 peak RSS is this process's; run first-class rows before it so RSS reflects W4's working set.
  rows.push(...benchW4(reps));
  let torchRows: TorchRow[] = [];
  if (torch) {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
    const benchDir = [join(root, '../shared/bench'), join(root, 'shared/bench')].find((d) => existsSync(join(d, 'unet_torch.py')));
    if (!benchDir) { console.error('bench --torch: shared/bench (the PyTorch anchor) not found beside the repo'); return 2; }
    try { torchRows = runTorch(benchDir); } catch (e) { console.error(`bench --torch: ${(e as Error).message}`); return 2; }
  }
  for (const r of rows) {
    const tr = torchRows.find((t) => t.workload === r.workload);
    if (json) {
      console.log(JSON.stringify({ ...r, engine: 'ldm.ts' }));
      if (tr) {
        const t = row(tr.workload, tr.times, tr.flop ?? null, tr.peak_rss_mb ?? null);
        console.log(JSON.stringify({ ...t, engine: 'pytorch' }));
      }
      continue;
    }
    const pct = r.gflops && Number.isFinite(peak) ? ` ${(100 * r.gflops / peak).toFixed(0)}% of peak` : '';
    let line = `${r.workload.padEnd(20)} best ${r.best_s.toFixed(4)} s  median ${r.median_s.toFixed(4)} s  ${r.gflops ? `${r.gflops.toFixed(0)} GFLOP/s` : ''}${pct}${r.peak_rss_mb ? `  peak RSS ${r.peak_rss_mb.toFixed(0)} MB` : ''}`;
    if (tr) {
      const tb = Math.min(...tr.times);
      line += `\n${''.padEnd(20)} pytorch best ${tb.toFixed(4)} s → time ratio ours/torch ${(r.best_s / tb).toFixed(2)}x, throughput ${(tb / r.best_s).toFixed(2)}x${tr.peak_rss_mb && r.peak_rss_mb ? `, RSS ratio ${(r.peak_rss_mb / tr.peak_rss_mb).toFixed(2)}` : ''}`;
    }
    print(line);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = benchMain(process.argv.slice(2));
}
