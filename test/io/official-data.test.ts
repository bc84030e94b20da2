// The official data set classes (ImageNet, LSUN, FFHQ / CelebA-HQ) on tiny generated folders in
// their official on-disk layouts, through the data section of the official YAML files; errors
// that name the class and what to pass; every official config passes training validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DATA_TARGETS, applyOverrides, buildDataFromConfig, readConfigFile, readNpyImage, validateConfig } from '../../src/io/index.ts';

const DIR = join(import.meta.dirname, '../fixtures/official-configs');
const near = (a: number[], b: number[]): void => assert.ok(a.every((v, i) => Math.abs(v - b[i]!) <= 4), `${a} vs ${b}`);
const tmp = (): string => mkdtempSync(join(tmpdir(), 'ldm-data-'));

/** A solid-colour w x h image file (format by extension). */
async function solid(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  mkdirSync(join(file, '..'), { recursive: true });
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).toFile(file);
}

/** A .npy file holding uint8 [1, 3, h, w] (CelebA-HQ layout), one colour per channel. */
function npy(file: string, w: number, h: number, rgb: [number, number, number]): void {
  mkdirSync(join(file, '..'), { recursive: true });
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3, ${h}, ${w}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(3 * h * w);
  for (let c = 0; c < 3; c++) body.fill(rgb[c]!, c * h * w, (c + 1) * h * w);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

test('every official config passes training validation (its data targets are known)', () => {
  for (const d of readdirSync(DIR, { withFileTypes: true }).filter((e) => e.isDirectory())) {
    for (const f of readdirSync(join(DIR, d.name)).filter((n) => n.endsWith('.yaml'))) {
      assert.doesNotThrow(() => validateConfig(readConfigFile(join(DIR, d.name, f))), `${d.name}/${f}`);
    }
  }
});

test('ImageNetTrain / ImageNetValidation: ILSVRC2012_*/data/<synset>/*.JPEG, filelist.txt, synset_human.txt', async () => {
  const root = tmp();
  const tr = join(root, 'ILSVRC2012_train');
  await solid(join(tr, 'data/n02/b.JPEG'), 40, 30, [0, 255, 0]);
  await solid(join(tr, 'data/n01/a.JPEG'), 30, 40, [255, 0, 0]);
  await solid(join(tr, 'data/n01/c.JPEG'), 20, 20, [0, 0, 255]);
  writeFileSync(join(tr, 'synset_human.txt'), 'n01 tench, Tinca tinca\nn02 goldfish\n');
  const warnings: string[] = [];
  const ds = await DATA_TARGETS['ldm.data.imagenet.ImageNetTrain']({ data_root: root, config: { size: 8 } }, { onWarning: (m) => warnings.push(m) });
  assert.equal(ds.length, 3);
  assert.deepEqual([ds.height, ds.width, ds.channels], [8, 8, 3]);
  assert.deepEqual(ds.classNames, ['n01', 'n02']);
  assert.deepEqual([0, 1, 2].map((i) => ds.label(i)), [0, 0, 1]); // listed from data/ in sorted order
  near([...ds.pixels(0).slice(0, 3)], [255, 0, 0]); // JPEG: within a few levels
  near([...ds.pixels(2).slice(0, 3)], [0, 255, 0]);
  assert.equal(ds.caption(2), 'goldfish');
  assert.match(warnings.join('\n'), /random_crop is taken as a center crop/);
  // filelist.txt decides order and membership; limit keeps the first n
  writeFileSync(join(tr, 'filelist.txt'), 'n02/b.JPEG\nn01/c.JPEG\n');
  const l = await DATA_TARGETS['ldm.data.imagenet.ImageNetTrain']({ data_root: root, config: { size: 4 }, limit: 1 }, {});
  assert.equal(l.length, 1);
  assert.deepEqual(l.classNames, ['n02']);
  await solid(join(root, 'ILSVRC2012_validation/data/n05/v.JPEG'), 9, 9, [10, 20, 30]);
  const v = await DATA_TARGETS['ldm.data.imagenet.ImageNetValidation']({ data_root: root, config: { size: 4 } }, {});
  assert.equal(v.length, 1);
  assert.equal(v.caption(0), 'n05');
  await assert.rejects(DATA_TARGETS['ldm.data.imagenet.ImageNetTrain']({ data_root: join(root, 'nope'), config: { size: 8 } }, {}),
    /ImageNetTrain: .*ILSVRC2012_train\/data not found; pass data_root: FOLDER holding ILSVRC2012_train\/data\/<synset>\/\*\.JPEG/);
  await assert.rejects(DATA_TARGETS['ldm.data.imagenet.ImageNetSRTrain']({ size: 256, degradation: 'pil_nearest' }, {}),
    /ImageNetSRTrain: .*not implemented.*use ldm\.data\.imagenet\.ImageNetTrain/);
});

test('LSUN: data/lsun/<list>.txt under data_root, images under data/lsun/<category>/; flip_p 0.5 / 0', async () => {
  const root = tmp();
  await solid(join(root, 'data/lsun/churches/x/1.webp'), 50, 30, [200, 100, 0]);
  await solid(join(root, 'data/lsun/churches/2.png'), 30, 30, [0, 100, 200]);
  writeFileSync(join(root, 'data/lsun/church_outdoor_train.txt'), 'x/1.webp\n2.png\n');
  writeFileSync(join(root, 'data/lsun/church_outdoor_val.txt'), '2.png\n');
  const t = await DATA_TARGETS['ldm.data.lsun.LSUNChurchesTrain']({ data_root: root, size: 16 }, {});
  assert.equal(t.length, 2);
  assert.equal(t.flipP, 0.5);
  assert.deepEqual([...t.pixels(1).slice(0, 3)], [0, 100, 200]);
  const v = await DATA_TARGETS['ldm.data.lsun.LSUNChurchesValidation']({ data_root: root, size: 16 }, {});
  assert.equal(v.flipP, 0);
  assert.equal(v.length, 1);
  await assert.rejects(DATA_TARGETS['ldm.data.lsun.LSUNBedroomsTrain']({ data_root: root, size: 16 }, {}),
    /LSUNBedroomsTrain: .*data\/lsun\/bedrooms_train\.txt not found; pass data_root: FOLDER holding data\/lsun\/bedrooms_train\.txt/);
  await assert.rejects(DATA_TARGETS['ldm.data.lsun.LSUNChurchesTrain']({ data_root: root, size: 16, interpolation: 'cubic' }, {}), /interpolation/);
  // through the official YAML's data section, with data_root given as an override
  const cfg = applyOverrides(readConfigFile(join(DIR, 'latent-diffusion/lsun_churches-ldm-kl-8.yaml')),
    [`data.params.train.params.data_root=${root}`, `data.params.validation.params.data_root=${root}`, 'data.params.train.params.size=8', 'data.params.validation.params.size=8']);
  validateConfig(cfg);
  const dm = await buildDataFromConfig(cfg);
  assert.equal(dm.batchSize, 96);
  assert.equal(dm.train!.length, 2);
  assert.equal(dm.validation!.length, 1);
  assert.equal(dm.train!.height, 8);
});

test('FFHQ images and CelebA-HQ .npy arrays (taming faceshq layout)', async () => {
  const root = tmp();
  await solid(join(root, 'data/ffhq/00000.png'), 24, 24, [1, 2, 3]);
  await solid(join(root, 'data/ffhq/00001.png'), 24, 24, [4, 5, 6]);
  writeFileSync(join(root, 'data/ffhqtrain.txt'), '00000.png\n00001.png\n');
  writeFileSync(join(root, 'data/ffhqvalidation.txt'), '00001.png\n');
  const f = await DATA_TARGETS['taming.data.faceshq.FFHQTrain']({ data_root: root, size: 8 }, {});
  assert.equal(f.length, 2);
  assert.deepEqual([...f.pixels(1).slice(0, 3)], [4, 5, 6]);
  assert.equal((await DATA_TARGETS['taming.data.faceshq.FFHQValidation']({ data_root: root, size: 8 }, {})).length, 1);
  npy(join(root, 'data/celebahq/imgHQ00000.npy'), 12, 10, [9, 99, 199]);
  writeFileSync(join(root, 'data/celebahqtrain.txt'), 'imgHQ00000.npy\n');
  const r = readNpyImage(join(root, 'data/celebahq/imgHQ00000.npy'));
  assert.deepEqual([r.width, r.height, ...r.data.slice(0, 3)], [12, 10, 9, 99, 199]);
  const c = await DATA_TARGETS['taming.data.faceshq.CelebAHQTrain']({ data_root: root, size: 8 }, {});
  assert.equal(c.length, 1);
  assert.deepEqual([...c.pixels(0).slice(0, 3)], [9, 99, 199]);
  await assert.rejects(DATA_TARGETS['taming.data.faceshq.CelebAHQValidation']({ data_root: root, size: 8 }, {}),
    /CelebAHQValidation: .*data\/celebahqvalidation\.txt not found; pass data_root: FOLDER holding data\/celebahqvalidation\.txt and the \.npy arrays/);
  writeFileSync(join(root, 'data/ffhqvalidation.txt'), 'missing.png\n');
  await assert.rejects(DATA_TARGETS['taming.data.faceshq.FFHQValidation']({ data_root: root, size: 8 }, {}), /FFHQValidation .*cannot read .*missing\.png/);
});

test('ldm train reads an official data class (LSUNChurchesTrain) from data_root', async () => {
  const root = tmp();
  for (let i = 0; i < 4; i++) await solid(join(root, `data/lsun/churches/${i}.png`), 20 + i, 16, [40 * i, 100, 200 - 30 * i]);
  writeFileSync(join(root, 'data/lsun/church_outdoor_train.txt'), '0.png\n1.png\n2.png\n3.png\n');
  const ROOT = join(import.meta.dirname, '../..');
  const p = 'model.params.';
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/ldm.js'), 'train', join(ROOT, 'configs/debug.yaml'),
    `${p}channels=3`, `${p}image_size=8`, `${p}unet_config.params.in_channels=3`, `${p}unet_config.params.out_channels=3`,
    `${p}unet_config.params.image_size=8`, `${p}unet_config.params.num_classes=null`, `${p}conditioning_key=null`, `${p}ucg_training=null`,
    'data.params.batch_size=2', 'data.params.train.target=ldm.data.lsun.LSUNChurchesTrain', `data.params.train.params={data_root: ${root}, size: 8}`,
    'data.params.validation=null', 'lightning.trainer.max_steps=2', 'lightning.trainer.val_check_interval=2',
    'lightning.callbacks.image_logger.params.guidance_scale=1', // unconditional here: no guidance in the image logger
    '--out', join(root, 'run'), '-q'],
  { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(root, 'run/model.safetensors')));
  assert.match(readFileSync(join(root, 'run/config.yaml'), 'utf8'), /ldm\.data\.lsun\.LSUNChurchesTrain/);
});
