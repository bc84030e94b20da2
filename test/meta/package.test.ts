// The npm package as a user gets it: `npm pack` (prepack builds dist/ with JavaScript and .d.ts),
// installed from the tarball into a scratch folder with no network (`npm install --offline`; the
// dependencies come from links to this checkout's node_modules), then:
//  1. plain `node` imports 'ldm.ts' (exports condition "import") and runs a UNet forward;
//  2. a strict NodeNext TypeScript consumer type-checks against the shipped .d.ts ("types");
//  3. `npx ldm --version` runs the built CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function run(cmd: string, args: readonly string[], opts: SpawnSyncOptions): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts, env: { ...process.env, DEBUG: '', npm_config_loglevel: 'error', ...opts.env } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${String(r.stdout)}\n${String(r.stderr)}`);
  return String(r.stdout);
}

const CONSUMER_JS = `import { models, tensor as T, util } from 'ldm.ts';
const unet = new models.UNetModel({ image_size: 8, in_channels: 1, out_channels: 1, model_channels: 32, num_res_blocks: 1,
  attention_resolutions: [], channel_mult: [1], num_heads: 1 });
const y = T.noGrad(() => unet.forward(T.randn([2, 1, 8, 8], new util.Generator(0)), T.tensor([3, 7], [2], 'int64')));
console.log(JSON.stringify({ shape: y.shape, finite: Array.from(y.toArray()).every(Number.isFinite) }));
`;

const CONSUMER_TS = `import { diffusion, models, tensor as T, util } from 'ldm.ts';
const unet: models.UNetModel = new models.UNetModel({ image_size: 8, in_channels: 1, out_channels: 1, model_channels: 32,
  num_res_blocks: 1, attention_resolutions: [], channel_mult: [1], num_heads: 1 });
const y: T.Tensor = unet.forward(T.randn([1, 1, 8, 8], new util.Generator(0)), T.tensor([3], [1], 'int64'));
const sampler: diffusion.Sampler = diffusion.getSampler('ddim');
export const out: readonly number[] = y.shape;
export { sampler };
`;

test('npm pack -> install in a scratch folder -> plain node, a strict NodeNext TypeScript consumer, npx ldm --version', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ldm-pack-'));
  try {
    const packed = run('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: ROOT }).trim().split('\n').at(-1)!;
    const tarball = join(tmp, packed);
    assert.ok(existsSync(tarball), `npm pack wrote no ${tarball}`);

    const app = join(tmp, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // the dependencies, offline: links to this checkout's installed packages
    const nm = join(ROOT, 'node_modules');
    for (const name of readdirSync(nm)) {
      if (name.startsWith('.') || name.startsWith('@')) continue;
      symlinkSync(join(nm, name), join(app, 'node_modules', name), 'dir');
    }
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app });
    const pkg = join(app, 'node_modules', 'ldm.ts');
    assert.ok(existsSync(join(pkg, 'dist', 'index.js')) && existsSync(join(pkg, 'dist', 'index.d.ts')), 'the package ships dist/ JS and .d.ts');
    assert.ok(!existsSync(join(pkg, 'src')), 'the package ships no TypeScript sources');

    // 1. plain node
    writeFileSync(join(app, 'run.mjs'), CONSUMER_JS);
    const r = JSON.parse(run(process.execPath, ['run.mjs'], { cwd: app }).trim().split('\n').at(-1)!) as { shape: number[]; finite: boolean };
    assert.deepEqual(r, { shape: [2, 1, 8, 8], finite: true });

    // 2. a strict NodeNext consumer (its own @types/node, as any Node project has)
    mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
    symlinkSync(join(nm, '@types', 'node'), join(app, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
      files: ['consumer.ts'],
    }));
    run(process.execPath, [join(nm, 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app });

    // 3. the CLI from the built JavaScript
    assert.equal(run('npx', ['--offline', '--no-install', 'ldm', '--version'], { cwd: app }).trim(), VERSION);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
