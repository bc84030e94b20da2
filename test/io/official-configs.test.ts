// The 12 YAML files of the official configs/ folder (copies in test/fixtures/official-configs)
// build here with the official counts: parameters (trainable and frozen), state-dict entries,
// buffers, parameters per top-level child, and the exact list of state-dict keys and shapes in
// order (sha256), as scripts/fixtures/official_counts.py measured them on the official
// instantiate_from_config(config.model) (counts.json). Also: `ldm inspect CONFIG.yaml --json`,
// model-only validation (data / lightning never stop a build), ckpt_path resolution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspectConfig, readConfigFile, validateConfig, validateModelConfig } from '../../src/io/index.ts';
import { buildShapesOnly, isShapesOnly, setInitSeed } from '../../src/nn/index.ts';
import { UNetModel } from '../../src/models/index.ts';

const ROOT = join(import.meta.dirname, '../..');
const DIR = join(ROOT, 'test/fixtures/official-configs');
interface Counts {
  target: string; parameters: number; trainable_parameters: number; state_dict_keys: number; buffers: number;
  children: Record<string, number>; keys_sha256: string;
}
const counts = (JSON.parse(readFileSync(join(DIR, 'counts.json'), 'utf8')) as { configs: Record<string, Counts> }).configs;
const yamls = readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory())
  .flatMap((d) => readdirSync(join(DIR, d.name)).filter((f) => f.endsWith('.yaml')).map((f) => `${d.name}/${f}`)).sort();

test('the 12 official configs and their official counts are present', () => {
  assert.equal(yamls.length, 12);
  assert.deepEqual(Object.keys(counts).sort(), yamls);
  assert.deepEqual(yamls.filter((y) => y.startsWith('autoencoder/')).length, 4);
  assert.deepEqual(yamls.filter((y) => y.startsWith('latent-diffusion/')).length, 7);
});

for (const name of yamls) {
  test(`official config ${name} builds with the official counts`, () => {
    const c = inspectConfig(join(DIR, name));
    const want = counts[name]!;
    assert.equal(c.target, want.target);
    assert.equal(c.parameters, want.parameters, 'parameters');
    assert.equal(c.trainable_parameters, want.trainable_parameters, 'trainable parameters');
    assert.equal(c.state_dict_keys, want.state_dict_keys, 'state_dict entries');
    assert.equal(c.buffers, want.buffers, 'buffers');
    assert.deepEqual(c.children, want.children);
    assert.equal(c.keys_sha256, want.keys_sha256, 'state_dict keys and shapes, in order');
  });
}

test('ldm inspect CONFIG.yaml --json prints one object with target, parameters, state_dict_keys', () => {
  const name = 'latent-diffusion/lsun_churches-ldm-kl-8.yaml';
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/ldm.js'), 'inspect', join(DIR, name), '--json'], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Counts & { ckpt_paths: { key: string; path: string; exists: boolean }[] };
  assert.equal(j.target, 'ldm.models.diffusion.ddpm.LatentDiffusion');
  assert.equal(j.parameters, counts[name]!.parameters);
  assert.equal(j.state_dict_keys, counts[name]!.state_dict_keys);
  // the relative ckpt_path is resolved against the config's folder and not read
  assert.deepEqual(j.ckpt_paths, [{ key: 'model.params.first_stage_config.params.ckpt_path', path: join(DIR, 'latent-diffusion/models/first_stage_models/kl-f8/model.ckpt'), exists: false }]);
  const t = spawnSync(process.execPath, [join(ROOT, 'bin/ldm.js'), 'inspect', join(DIR, 'autoencoder/autoencoder_kl_32x32x4.yaml')], { encoding: 'utf8', cwd: ROOT });
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /ldm\.models\.autoencoder\.AutoencoderKL/);
  assert.match(t.stdout, /parameters\s+101,135,657/);
  assert.match(t.stdout, /state_dict keys\s+304/);
});

test('data and lightning sections never stop inspecting; training validation still checks them', () => {
  const tree = readConfigFile(join(DIR, 'latent-diffusion/cin256-v2.yaml'));
  tree['data'] = { target: 'somewhere.Unknown', params: { nonsense: 1 } };
  tree['lightning'] = { trainer: { made_up_key: true } };
  assert.doesNotThrow(() => validateModelConfig(tree));
  assert.throws(() => validateConfig(tree), /unknown key 'data\.params\.nonsense'|somewhere\.Unknown/);
  const dir = mkdtempSync(join(tmpdir(), 'ldm-cfg-'));
  const text = readFileSync(join(DIR, 'autoencoder/autoencoder_kl_64x64x3.yaml'), 'utf8').replace('data:', 'data:\n  bogus: 1');
  writeFileSync(join(dir, 'ae.yaml'), text);
  assert.equal(inspectConfig(join(dir, 'ae.yaml')).parameters, counts['autoencoder/autoencoder_kl_64x64x3.yaml']!.parameters);
  // the model section is still checked
  tree['model'] = { target: 'ldm.models.diffusion.ddpm.LatentDifusion' };
  assert.throws(() => validateModelConfig(tree), /did you mean 'ldm\.models\.diffusion\.ddpm\.LatentDiffusion'/);
});

test('relative ckpt_paths resolve against the config file folder, absolute ones stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldm-ckpt-'));
  writeFileSync(join(dir, 'c.yaml'), [
    'model:', '  target: ldm.models.diffusion.ddpm.LatentDiffusion', '  params:', '    ckpt_path: sub/whole.ckpt',
    '    first_stage_config:', '      params:', '        ckpt_path: ../fs.ckpt', '    cond_stage_config:', '      params:', '        ckpt_path: /abs/c.ckpt',
  ].join('\n'));
  const cwd = process.cwd();
  process.chdir(tmpdir());
  try {
    const t = readConfigFile(join(dir, 'c.yaml')) as { model: { params: Record<string, { params: Record<string, unknown> } | string> } };
    assert.equal(t.model.params['ckpt_path'], join(dir, 'sub/whole.ckpt'));
    assert.equal((t.model.params['first_stage_config'] as { params: Record<string, unknown> }).params['ckpt_path'], resolve(dir, '../fs.ckpt'));
    assert.equal((t.model.params['cond_stage_config'] as { params: Record<string, unknown> }).params['ckpt_path'], '/abs/c.ckpt');
  } finally {
    process.chdir(cwd);
  }
});

test('shapes-only builds draw nothing and leave normal builds as they were, also after a throw', () => {
  const cfg = { image_size: 4, in_channels: 2, model_channels: 32, out_channels: 2, num_res_blocks: 1, attention_resolutions: [1], channel_mult: [1], num_heads: 2 };
  const weights = (): number[] => Array.from(new UNetModel(cfg).namedParameters()[0]![1].f32.slice(0, 5));
  setInitSeed(5);
  const ref = weights();
  setInitSeed(5);
  const shaped = buildShapesOnly(() => new UNetModel(cfg));
  assert.equal(shaped.namedParameters().length, new UNetModel(cfg).namedParameters().length);
  setInitSeed(5);
  buildShapesOnly(() => new UNetModel(cfg));
  assert.throws(() => buildShapesOnly(() => { throw new Error('boom'); }), /boom/);
  assert.equal(isShapesOnly(), false);
  assert.deepEqual(weights(), ref); // the generator was not consumed by the shapes-only builds
  assert.ok(ref.some((v) => v !== 0));
});
