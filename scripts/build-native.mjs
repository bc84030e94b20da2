#!/usr/bin/env node
// Builds the native backend addon build/ldm_native.node from native/*.cc with a direct g++
// command line (no node-gyp: it would try to download Node headers). Runs as npm's `install`
// script, so it never fails the install: when the addon cannot be built (no compiler, no
// oneDNN headers, a compile error) it prints one line and exits 0, and ldm.ts uses the
// reference backend. When oneDNN headers are missing and we run as root without a terminal
// (CI), it first tries `apt-get install -y libdnnl-dev`.
//
//   node scripts/build-native.mjs            build when a source is newer than the addon
//   node scripts/build-native.mjs --force    always rebuild (and show compiler errors)
//   --verbose                                 print the commands and compiler output
//   LDM_NATIVE=0                              skip the build
//
// Flags: -O3 -march=x86-64-v3 (AVX2/FMA, safe on any recent x86-64 CI machine; no
// -march=native). The heavy ops run in oneDNN, which picks AVX-512 at run time itself; the
// FMA peak probe in addon.cc uses a target("avx512f") function behind a CPUID check.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'native');
const outDir = join(root, 'build');
const objDir = join(outDir, 'obj');
const target = join(outDir, 'ldm_native.node');
const args = new Set(process.argv.slice(2));
const force = args.has('--force');
const verbose = args.has('--verbose') || force;

function giveUp(reason, detail) {
  if (detail && verbose) process.stderr.write(detail.trimEnd() + '\n');
  console.log(`ldm.ts: native backend not built (${reason}); using the reference backend`);
  process.exit(0);
}

function log(msg) {
  if (verbose) console.log(msg);
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

if (process.env.LDM_NATIVE === '0') giveUp('LDM_NATIVE=0');
if (process.platform !== 'linux' || process.arch !== 'x64') giveUp(`unsupported platform ${process.platform}-${process.arch}`);

const sources = existsSync(srcDir) ? readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort() : [];
const headers = existsSync(srcDir) ? readdirSync(srcDir).filter((f) => f.endsWith('.h')) : [];
if (sources.length === 0) giveUp('no sources in native/');

// Up to date? (the addon is newer than every source and header, and than this script)
if (!force && existsSync(target)) {
  const built = statSync(target).mtimeMs;
  const inputs = [...sources, ...headers].map((f) => join(srcDir, f));
  inputs.push(fileURLToPath(import.meta.url));
  if (inputs.every((f) => statSync(f).mtimeMs < built)) {
    log('ldm.ts: native backend up to date');
    process.exit(0);
  }
}

const cxx = process.env.CXX || 'g++';
if (!has(cxx)) giveUp(`no C++ compiler (${cxx})`);

const nodeIncludes = [process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node']
  .filter((d) => d && existsSync(join(d, 'node_api.h')));
if (nodeIncludes.length === 0) giveUp('node_api.h not found (install Node headers, e.g. Debian libnode-dev)');

const dnnlHeader = () => ['/usr/include/oneapi/dnnl/dnnl.hpp', '/usr/local/include/oneapi/dnnl/dnnl.hpp'].some((f) => existsSync(f));
if (!dnnlHeader()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const interactive = Boolean(process.stdin.isTTY);
  if (isRoot && !interactive && has('apt-get')) {
    log('ldm.ts: installing libdnnl-dev with apt-get');
    const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libdnnl-dev'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8',
    });
    if (r.status !== 0) log(r.stderr ?? '');
  }
  if (!dnnlHeader()) giveUp('oneDNN headers not found: apt-get install libdnnl-dev');
}

const cflags = ['-std=c++17', '-O3', '-march=x86-64-v3', '-mavx2', '-mfma', '-fopenmp', '-fPIC',
  '-fvisibility=hidden', '-DNAPI_VERSION=8', '-Wall', '-Wno-unknown-pragmas', ...nodeIncludes.map((d) => `-I${d}`)];
const ldflags = ['-shared', '-fopenmp', '-Wl,--as-needed', '-ldnnl'];

function run(cmd, argv) {
  log(`${cmd} ${argv.join(' ')}`);
  return new Promise((done) => {
    const p = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', (e) => done({ code: -1, out: String(e) }));
    p.on('close', (code) => done({ code, out }));
  });
}

mkdirSync(objDir, { recursive: true });
const jobs = Math.max(1, Math.min(cpus().length, sources.length));
const queue = [...sources];
const failures = [];
async function worker() {
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    const r = await run(cxx, [...cflags, '-c', join(srcDir, f), '-o', join(objDir, f.replace(/\.cc$/, '.o'))]);
    if (r.code !== 0) failures.push({ f, out: r.out });
    else if (r.out.trim()) log(r.out);
  }
}
await Promise.all(Array.from({ length: jobs }, worker));
if (failures.length > 0) {
  giveUp(`compile error in native/${failures[0].f}`, failures.map((x) => x.out).join('\n'));
}
const tmp = `${target}.tmp-${process.pid}`;
const link = await run(cxx, [...sources.map((f) => join(objDir, f.replace(/\.cc$/, '.o'))), '-o', tmp, ...ldflags]);
if (link.code !== 0) {
  rmSync(tmp, { force: true });
  giveUp('link error (is libdnnl-dev installed?)', link.out);
}
renameSync(tmp, target);
// Check that it loads (a missing shared library shows here, not at first use).
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(target)}).info()`], { encoding: 'utf8' });
if (check.status !== 0) {
  rmSync(target, { force: true });
  giveUp('the built addon does not load', check.stderr);
}
console.log(`ldm.ts: native backend built (${target.slice(root.length + 1)})`);
