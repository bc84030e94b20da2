// `npm run bench [-- --json] [--torch] [--reps N] [--w4-only] [--profile] [--jobs] [--precision fp32|bf16] [--tune] [--ab KNOB=VALUE]`:
// the performance benchmark (not a test).
// W1 conv 3x3 fwd / bwd-input / bwd-weight, W2 sgemm 1024^3, W3 attention, and W4: a training
// step and a sampling forward pass of exactly the network of shared/bench/unet_torch.py at
// batch 16. Prints best / median seconds, GFLOP/s and percent of the FP32 peak measured by the
// addon's FMA loop, W4 peak RSS; `--torch` runs the PyTorch anchor (shared/bench/bench_torch.py for
// W1-W3, scripts/bench/torch_anchor.py for W4 and the jobs, in the same precision) and the
// onnxruntime-node anchor when that package is installed, in the same run, and prints ratios (for
// onnxruntime-node also from passes alternating with ours in one process: pairedWithOrt).
// `--precision bf16` runs W4 and the jobs in mixed precision (fp32 with a note where the CPU has
// no native bf16); `--jobs` adds the user's main jobs (bench-jobs.ts); `--profile` prints the
// per-kernel breakdown instead (bench-profile.ts); `--ab KNOB=VALUE` times W4 with a native
// convolution knob as it is and at VALUE, alternating (abW4); `--tune` runs every workload with
// the convolution routes tuned by timing (LDM_CONV_TUNE=1) instead of by rule. On an AVX-512 CPU,
// where the rules were not timed (full width: Winograd and the 1x1 GEMMs off; Zen 4's 256-bit
// halves: Winograd by the AVX2 rules, inferred), the run ends with `--ab tune=on`.
// `--json` prints one object per line.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import {
  type TunedConv, convTunedRoutes, nativeInfo, setConvDirect, setConvGemm1x1, setConvTune, setConvWinograd, setConvWinogradSplit, setConvWinogradTile,
} from '../backend/index.ts';
import { BenchUNet, benchKernels } from '../dev/index.ts';
import * as T from '../tensor/index.ts';
import { Generator } from '../util/index.ts';
import { Adam, mseLoss } from '../nn/index.ts';
import { formatProfile } from './bench-profile.ts';
import { timeSampleJob, timeTrainJob } from './bench-jobs.ts';

interface Row {
  workload: string;
  best_s: number;
  median_s: number;
  gflops: number | null;
  peak_rss_mb: number | null;
  /** Median process CPU seconds (all threads) per repetition, where measured (W4). */
  cpu_s?: number;
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

/** W4 at batch 16: a seeded model, its optimiser, one training step and one sampling forward. */
function w4Setup(): { step: () => void; sample: () => void; flop: number } {
  const gen = new Generator(0);
  const B = 16;
  const model = new BenchUNet();
  const x0 = T.randn([B, 3, 32, 32], gen);
  const opt = new Adam(model.parameters(), { lr: 2e-4 });
  const ab = new Float32Array(1000).map((_, i) => 0.9999 + (0.0001 - 0.9999) * i / 999);
  // As the trainer runs a step: in T.recycle, keeping the parameters and their gradients.
  const params = model.parameters();
  const step = (): void => T.recycle(() => {
    const tt = T.randint(0, 1000, [B], gen);
    const n = T.randn([B, 3, 32, 32], gen);
    const a = T.tensor(Array.from(tt.data, (t) => ab[t]!), [B, 1, 1, 1]);
    const xt = T.noGrad(() => T.add(T.mul(T.sqrt(a), x0), T.mul(T.sqrt(T.sub(1, a)), n)));
    const loss = mseLoss(model.forward(xt, tt), n);
    opt.zeroGrad();
    T.backward(loss);
    opt.step();
  }, () => [params, params.map((p) => p.grad)]);
  const t = T.randint(0, 1000, [B], gen);
  // As the samplers call a network (models' denoiser()): in T.inference, reusing the buffers of the
  // previous pass.
  const sample = (): void => { T.inference(() => model.forward(x0, t)); };
  return { step, sample, flop: benchUnetFlops(B) };
}

/** Wall seconds of each run, and the process CPU seconds of each (on a shared machine wall time
 *  includes waiting for a core; CPU time counts the work). */
function timeRuns(fn: () => void, n: number, warm: number): { times: number[]; cpu: number[] } {
  for (let i = 0; i < warm; i++) fn();
  const times: number[] = [], cpu: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    fn();
    times.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  return { times, cpu };
}

function benchW4(reps: number): Row[] {
  const { step, sample, flop: ff } = w4Setup();
  const tr = timeRuns(step, reps, 2);
  const rssTrain = process.memoryUsage().rss / 2 ** 20;
  const sa = timeRuns(sample, reps * 2, 2);
  const rss = Math.max(rssTrain, process.memoryUsage().rss / 2 ** 20);
  return [{ ...row('W4_train_step', tr.times, 3 * ff, rss), cpu_s: median(tr.cpu) },
    { ...row('W4_sample_fwd', sa.times, ff, rss), cpu_s: median(sa.cpu) }];
}

/** `--profile`: per-kernel breakdown of W4's training step and sampling forward pass. */
function profileW4(reps: number, peak: number): string[] {
  const { step, sample } = w4Setup();
  const lines: string[] = [];
  for (const [name, fn] of [['W4 training step (batch 16)', step], ['W4 sampling forward (batch 16)', sample]] as const) {
    for (let i = 0; i < 2; i++) fn();
    const calls = T.startProfile();
    const t0 = performance.now(), c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) fn();
    const wall = (performance.now() - t0) / 1000, cpu = process.cpuUsage(c0);
    T.stopProfile();
    lines.push(...formatProfile(name, calls, reps, wall, peak),
      `  CPU time per run: user ${(cpu.user / 1e6 / reps).toFixed(3)} s, system ${(cpu.system / 1e6 / reps).toFixed(3)} s ` +
      '(system time is mostly page faults of fresh buffers; wall time on a shared machine includes waiting for a core)', '');
  }
  return lines;
}

interface TorchRow { workload: string; times: number[]; cpu_times?: number[]; flop?: number; peak_rss_mb?: number; engine?: string }

/** The tuned PyTorch setting of shared/bench/README.md; OMP_WAIT_POLICY as ours (passive: on
 *  2 shared cores spinning threads cost 2-3x, to both engines). */
function torchEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env, OPENBLAS_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000',
    TORCH_THREADS: '2', OMP_WAIT_POLICY: process.env['OMP_WAIT_POLICY'] ?? 'passive', ...extra,
  };
  delete env['OPENBLAS_CORETYPE'];
  return env;
}

/** Runs one anchor script (python or node) and parses its JSON lines, with the peak RSS of the
 *  process on every row. */
function runAnchor(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, what: string): TorchRow[] {
  const py = cmd.endsWith('python3');
  const argv = py ? ['-c', `import resource,runpy,sys,json; sys.argv=${JSON.stringify(args)}; runpy.run_path(sys.argv[0], run_name='__main__'); print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))`] : [...args];
  const r = spawnSync(cmd, argv, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${what} failed: ${(r.stderr || String(r.error ?? '')).slice(-800)}`);
  const rows: TorchRow[] = [];
  let rss: number | undefined;
  for (const line of r.stdout.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const o = JSON.parse(line) as TorchRow;
    if (o.workload) rows.push({ ...o, workload: o.workload.replace(/_1attn$/, '') });
    else if (o.peak_rss_mb) rss = o.peak_rss_mb;
  }
  if (rss) for (const o of rows) o.peak_rss_mb = rss;
  return rows;
}

/** onnxruntime-node for W4's sampling pass (shared/bench/export_onnx.py + ort_bench.mjs), when the
 *  package resolves from this repo (npm i --no-save onnxruntime-node@1.17.0 --ignore-scripts: 1.17
 *  ships its binaries; later versions download them at install). Null with a reason otherwise. */
function runOrt(root: string, benchDir: string, reps: number): { rows: TorchRow[]; note: string | null; paired?: () => Promise<Paired> } {
  let ortMain: string;
  try { ortMain = createRequire(join(root, 'package.json')).resolve('onnxruntime-node'); } catch {
    return { rows: [], note: 'onnxruntime-node is not installed (npm i --no-save onnxruntime-node@1.17.0 --ignore-scripts)' };
  }
  const dir = mkdtempSync(join(tmpdir(), 'ldm-bench-ort-'));
  try {
    const ex = spawnSync('/usr/bin/python3', [join(benchDir, 'export_onnx.py'), dir], { env: torchEnv({}), encoding: 'utf8' });
    if (ex.status !== 0) return { rows: [], note: `export_onnx.py failed: ${ex.stderr.trim().split('\n').pop() ?? ''}` };
    // ort_bench.mjs imports 'onnxruntime-node': run a copy next to this repo's node_modules.
    const script = join(root, 'node_modules', `.ldm-ort-bench-${process.pid}.mjs`);
    writeFileSync(script, readFileSync(join(benchDir, 'ort_bench.mjs'), 'utf8').replace(/i < 12/, `i < ${Math.max(12, 2 * reps + 2)}`));
    let rows: TorchRow[];
    try {
      rows = runAnchor(process.execPath, [script, dir], root, torchEnv({}), 'onnxruntime-node anchor');
    } finally { rmSync(script, { force: true }); }
    return {
      rows: rows.map((r) => ({ ...r, times: r.times.slice(0, -2) })), note: `onnxruntime-node at ${dirname(ortMain)}`,
      paired: () => pairedWithOrt(ortMain, dir, 2 * reps + 2).finally(() => rmSync(dir, { recursive: true, force: true })),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { rows: [], note: (e as Error).message };
  }
}

interface Paired { ours: number[]; theirs: number[] }

/** W4's sampling pass on ldm.ts and on onnxruntime-node (the model export_onnx.py wrote to dir)
 *  alternating pass by pass in this process, the first engine switching each pair and a pause
 *  between passes (so that neither's threads still spin when the other starts): on a shared
 *  machine whose other tenants take a core for minutes at a time, the separate runs above can
 *  meet different minutes; paired passes meet the same ones. Seconds per pass of each. */
async function pairedWithOrt(ortMain: string, dir: string, pairs: number): Promise<Paired> {
  interface OrtTensorCtor { new (type: string, data: Float32Array | BigInt64Array, dims: number[]): unknown }
  interface OrtSession { run(feeds: Record<string, unknown>): Promise<unknown>; release?(): Promise<void> }
  const ort = createRequire(ortMain)(ortMain) as {
    Tensor: OrtTensorCtor; InferenceSession: { create(path: string, o: Record<string, unknown>): Promise<OrtSession> };
  };
  const session = await ort.InferenceSession.create(join(dir, 'w4.onnx'),
    { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const xb = readFileSync(join(dir, 'x.bin')), tb = readFileSync(join(dir, 't.bin'));
  const feeds = {
    x: new ort.Tensor('float32', new Float32Array(xb.buffer.slice(xb.byteOffset, xb.byteOffset + xb.length)), [16, 3, 32, 32]),
    t: new ort.Tensor('int64', new BigInt64Array(tb.buffer.slice(tb.byteOffset, tb.byteOffset + tb.length)), [16]),
  };
  const { sample } = w4Setup();
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 50));
  // Seconds of one pass, then the pause.
  const once = async (pass: () => unknown): Promise<number> => {
    const t0 = performance.now(); await pass(); const d = performance.now() - t0; await pause(); return d / 1000;
  };
  const oursOnce = (): Promise<number> => once(sample), theirsOnce = (): Promise<number> => once(() => session.run(feeds));
  for (let i = 0; i < 2; i++) { await oursOnce(); await theirsOnce(); }
  const ours: number[] = [], theirs: number[] = [];
  for (let i = 0; i < pairs; i++) {
    if (i % 2 === 0) { ours.push(await oursOnce()); theirs.push(await theirsOnce()); }
    else { theirs.push(await theirsOnce()); ours.push(await oursOnce()); }
  }
  await session.release?.();
  return { ours, theirs };
}

const flag = (argv: readonly string[], name: string, def: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
};

/** The native convolution knobs `--ab` can turn: each sets a value (a string of the knob's own
 *  values) and, given undefined, only reads the one in effect. */
const AB_KNOBS: Record<string, { values: readonly string[]; set: (v?: string) => string | number | null }> = {
  winograd: { values: ['auto', 'on', 'off'], set: (v) => setConvWinograd(v as 'auto' | 'on' | 'off' | undefined) },
  gemm1x1: { values: ['auto', 'on', 'off'], set: (v) => setConvGemm1x1(v as 'auto' | 'on' | 'off' | undefined) },
  direct: { values: ['auto', 'on', 'off'], set: (v) => setConvDirect(v as 'auto' | 'on' | 'off' | undefined) },
  'wino-tile': { values: ['auto', '2', '4'], set: (v) => setConvWinogradTile(v === undefined || v === 'auto' ? v : Number(v) as 2 | 4) },
  'wino-split': { values: ['auto', 'tiles', 'images'], set: (v) => setConvWinogradSplit(v as 'auto' | 'tiles' | 'images' | undefined) },
  tune: { values: ['off', 'on'], set: (v) => setConvTune(v as 'on' | 'off' | undefined) },
};

/** `--ab KNOB=VALUE`: W4's training step and sampling pass with a native convolution knob as it
 *  is and at VALUE, alternating run by run (the first setting switching each pair) so that both
 *  meet the same minutes of a shared machine. For choosing a default on a machine kind the auto
 *  rules were not measured on, e.g. `--ab winograd=on` where AVX-512 keeps Winograd off. */
function abW4(name: string, value: string, reps: number, print: (s: string) => void): number {
  const knob = AB_KNOBS[name]!;
  const base = knob.set();
  if (base === null) { console.error('bench: --ab needs the native backend'); return 2; }
  const { step, sample } = w4Setup();
  for (const [what, fn, n] of [['training step', step, reps], ['sampling pass', sample, 2 * reps]] as const) {
    const a: number[] = [], b: number[] = [];
    const timed = (setting: string | undefined): number => {
      knob.set(setting);
      const t0 = performance.now(); fn(); return (performance.now() - t0) / 1000;
    };
    timed(String(base)); timed(value);  // warm both
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) { a.push(timed(String(base))); b.push(timed(value)); }
      else { b.push(timed(value)); a.push(timed(String(base))); }
    }
    knob.set(String(base));
    const ratios = a.map((x, i) => b[i]! / x);
    print(`W4 ${what}, ${n} pairs: ${name}=${base} best ${Math.min(...a).toFixed(4)} s median ${median(a).toFixed(4)} s; ` +
      `${name}=${value} best ${Math.min(...b).toFixed(4)} s median ${median(b).toFixed(4)} s → time ratio ${value}/${base} ` +
      `${(Math.min(...b) / Math.min(...a)).toFixed(2)}x (best), ${median(ratios).toFixed(2)}x (median of pairs)`);
  }
  if (name === 'tune') printTuned(convTunedRoutes(), print);
  return 0;
}

/** What tuning chose, pass by pass: the routes kept (against the rules' choice) and each
 *  geometry where the two differ, with the candidates' times. */
function printTuned(tuned: readonly TunedConv[], print: (s: string) => void): void {
  const geom = (t: TunedConv): string =>
    `${t.pass} ${t.cin}->${t.cout} ${t.kh}x${t.kw}${t.strideH > 1 ? ` s${t.strideH}` : ''} ${t.h}x${t.w} n${t.n}`;
  const count = (pick: (t: TunedConv) => string): string => {
    const c = new Map<string, number>();
    for (const t of tuned) c.set(pick(t), (c.get(pick(t)) ?? 0) + 1);
    return [...c].map(([k, v]) => `${k} ${v}`).join(', ');
  };
  print(`tuned ${tuned.length} passes: kept ${count((t) => t.route)}; the rules take ${count((t) => t.rule)}`);
  for (const t of tuned.filter((x) => x.route !== x.rule)) {
    const ms = Object.entries(t.ms).map(([r, v]) => `${r} ${v!.toFixed(2)}`).join(' / ');
    print(`  ${geom(t)}: ${t.route} instead of ${t.rule} (ms ${ms})`);
  }
}

export async function benchMain(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const torch = argv.includes('--torch');
  const reps = Number(flag(argv, '--reps', '5'));
  const only = argv.includes('--w4-only');
  const profile = argv.includes('--profile');
  const jobs = argv.includes('--jobs');
  const tune = argv.includes('--tune');
  const ab = flag(argv, '--ab', '');
  const [abName, abValue] = ab.split('=') as [string, string | undefined];
  if (ab && (!AB_KNOBS[abName] || abValue === undefined || !AB_KNOBS[abName]!.values.includes(abValue))) {
    console.error(`bench: --ab takes KNOB=VALUE with KNOB one of ${Object.keys(AB_KNOBS).join(', ')} and VALUE one of its values ` +
      `(${Object.entries(AB_KNOBS).map(([k, v]) => `${k}: ${v.values.join('|')}`).join('; ')}), got '${ab}'`);
    return 2;
  }
  const wanted = flag(argv, '--precision', 'fp32');
  if (wanted !== 'fp32' && wanted !== 'bf16') { console.error(`bench: --precision must be fp32 or bf16, got '${wanted}'`); return 2; }
  const info = nativeInfo();
  // The best of five probes 200 ms apart: one probe (six 15 ms loops) that met a core held by the
  // host or another process came out at half the peak (102 against 201 GFLOP/s), doubling every
  // "% of peak" after it.
  let peak = info.available ? info.peakGflops() : Number.NaN;
  for (let i = 1; i < 5 && info.available; i++) {
    await new Promise((r) => setTimeout(r, 200));
    peak = Math.max(peak, info.peakGflops());
  }
  const print = (s: string): void => { if (!json) console.log(s); };
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const halves = info.isa === 'avx512' && info.fmaBits === 256;  // Zen 4: AVX-512 at AVX2's FMA rate
  print(`backend: ${T.backendName()}${info.available ? ` (oneDNN ${info.onednnVersion}, ${info.threads} threads, ${info.isa}${halves ? ' in 256-bit halves' : ''}${info.bf16 ? `, bf16 on ${info.bf16}` : ', no native bf16'})` : ` (${info.reason})`}`);
  print(`measured FP32 peak: ${Number.isFinite(peak) ? peak.toFixed(0) : 'n/a'} GFLOP/s`);
  const rows: Row[] = [];
  // W1-W3 are kernel rows, always fp32 (the PyTorch kernel anchor is fp32).
  if (!only && !profile && !ab) {
    if (info.available) for (const r of benchKernels(undefined, { reps: 7 })) rows.push(row(r.workload, r.times, r.flop));
    else print('W1-W3 need the native backend; skipped');
  }
  const precision = T.setPrecision(wanted);
  print(`precision: ${precision}${T.precisionFallback() ? ` (asked for ${wanted}: ${T.precisionFallback()})` : ''}${precision === 'bf16' ? ' (W4 and the jobs; W1-W3 fp32)' : ''}${T.precisionEmulated() ? ' EMULATED (LDM_BF16_EMULATE=1): these times are not bf16\'s' : ''}`);
  if (tune && setConvTune('on') !== null) print('convolution routes: tuned by timing, each pass and geometry at its first call (--tune)');
  if (profile) {
    for (const l of profileW4(Math.max(1, Math.min(reps, 3)), peak)) print(l);
    return 0;
  }
  if (ab) return abW4(abName, abValue!, reps, print);
  // W4 peak RSS is this process's; run first-class rows before it so RSS reflects W4's working set.
  rows.push(...benchW4(reps));
  if (tune) printTuned(convTunedRoutes(), print);
  if (jobs) {
    rows.push(row('job_train_100_steps', [await timeTrainJob(root)], null));
    rows.push(row('job_sample_100_ddim50_cfg', [timeSampleJob()], null));
  }
  let torchRows: TorchRow[] = [];
  let ortRows: TorchRow[] = [];
  let paired: Paired | null = null;
  if (torch) {
    const benchDir = [join(root, '../shared/bench'), join(root, 'shared/bench')].find((d) => existsSync(join(d, 'unet_torch.py')));
    if (!benchDir) { console.error('bench --torch: shared/bench (the PyTorch anchor) not found beside the repo'); return 2; }
    const anchor = join(root, 'scripts/bench/torch_anchor.py');
    const env = torchEnv({ LDM_SHARED_BENCH: benchDir, PRECISION: precision, REPS: String(reps) });
    try {
      if (!only) torchRows.push(...runAnchor('/usr/bin/python3', ['bench_torch.py'], benchDir, env, 'PyTorch anchor bench_torch.py'));
      torchRows.push(...runAnchor('/usr/bin/python3', [anchor, 'w4'], root, env, 'PyTorch anchor torch_anchor.py w4'));
      if (jobs) torchRows.push(...runAnchor('/usr/bin/python3', [anchor, 'jobs'], root, env, 'PyTorch anchor torch_anchor.py jobs'));
    } catch (e) { console.error(`bench --torch: ${(e as Error).message}`); return 2; }
    if (precision === 'fp32') {
      const o = runOrt(root, benchDir, reps);
      ortRows = o.rows;
      if (o.note) print(`onnxruntime anchor: ${o.note}`);
      if (o.paired) {
        try { paired = await o.paired(); } catch (e) { print(`onnxruntime anchor: paired passes failed: ${(e as Error).message}`); }
      }
    } else print('onnxruntime anchor: fp32 only (skipped with --precision bf16)');
  }
  for (const r of rows) {
    const tr = torchRows.find((t) => t.workload === r.workload);
    const orr = ortRows.find((t) => t.workload === r.workload);
    if (json) {
      console.log(JSON.stringify({ ...r, engine: 'ldm.ts', precision }));
      for (const [x, engine] of [[tr, tr?.engine ?? 'pytorch'], [orr, 'onnxruntime-node']] as const) {
        if (x) console.log(JSON.stringify({ ...row(x.workload, x.times, x.flop ?? null, x.peak_rss_mb ?? null), engine }));
      }
      continue;
    }
    const pct = r.gflops && Number.isFinite(peak) ? ` ${(100 * r.gflops / peak).toFixed(0)}% of peak` : '';
    let line = `${r.workload.padEnd(26)} best ${r.best_s.toFixed(4)} s  median ${r.median_s.toFixed(4)} s  ${r.gflops ? `${r.gflops.toFixed(0)} GFLOP/s` : ''}${pct}${r.peak_rss_mb ? `  peak RSS ${r.peak_rss_mb.toFixed(0)} MB` : ''}`;
    for (const [x, name] of [[tr, tr?.engine ?? 'pytorch'], [orr, 'onnxruntime-node']] as const) {
      if (!x) continue;
      const tb = Math.min(...x.times);
      const cpuRatio = r.cpu_s !== undefined && x.cpu_times ? `, CPU-time ratio ${(r.cpu_s / median(x.cpu_times)).toFixed(2)}x (${r.cpu_s.toFixed(3)} / ${median(x.cpu_times).toFixed(3)} s)` : '';
      line += `\n${''.padEnd(26)} ${name} best ${tb.toFixed(4)} s → time ratio ours/theirs ${(r.best_s / tb).toFixed(2)}x, throughput ${(tb / r.best_s).toFixed(2)}x${cpuRatio}${x.peak_rss_mb && r.peak_rss_mb ? `, RSS ratio ${(r.peak_rss_mb / x.peak_rss_mb).toFixed(2)}` : ''}`;
    }
    print(line);
  }
  if (paired) {
    // Per pair, theirs / ours: the throughput ratio of two passes that met the same minute.
    const ratios = paired.ours.map((o, i) => paired!.theirs[i]! / o);
    const [ob, tb] = [Math.min(...paired.ours), Math.min(...paired.theirs)];
    if (json) console.log(JSON.stringify({ workload: 'W4_sample_fwd_paired_ort', ours: paired.ours, onnxruntime: paired.theirs }));
    else print(`${'W4_sample_fwd paired'.padEnd(26)} ${paired.ours.length} pairs of passes alternating with onnxruntime-node in this process: ` +
      `ours best ${ob.toFixed(4)} s median ${median(paired.ours).toFixed(4)} s, theirs best ${tb.toFixed(4)} s median ` +
      `${median(paired.theirs).toFixed(4)} s → throughput ${(tb / ob).toFixed(2)}x (best), ${median(ratios).toFixed(2)}x (median of pairs)`);
  }
  // The routes' auto rules were measured on AVX2 CPUs (Winograd, the 1x1 GEMMs) and for the
  // direct kernels on AVX-512 ones; on AVX-512 the run shows what tuning would change.
  if (info.isa === 'avx512' && !tune && !json && precision === 'fp32') {
    print(halves
      ? 'AVX-512 in 256-bit halves (Zen 4): Winograd by the AVX2 rules (inferred, not timed here), the 1x1 GEMMs off; W4 by rule and tuned (--ab tune=on):'
      : 'AVX-512: the rules keep Winograd and the 1x1 GEMMs off here; W4 by rule and tuned (--ab tune=on):');
    return abW4('tune', 'on', Math.min(reps, 3), print);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await benchMain(process.argv.slice(2));
}
