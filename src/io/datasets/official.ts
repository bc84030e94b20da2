// The official data set classes of latent-diffusion / taming-transformers configs, reading the same
// on-disk layouts from a folder the user gives (`data_root`), decoded into memory like every
// ldm.ts data set (shorter side to `size`, center crop, RGB, [-1, 1] when batched):
//   ldm.data.imagenet.ImageNetTrain / ImageNetValidation   <data_root>/ILSVRC2012_{train,validation}/
//       data/<synset>/*.JPEG, filelist.txt (relative paths; listed from data/ when absent),
//       synset_human.txt (optional: captions); labels = index of the sorted synsets (official
//       keep_orig_class_label=False). Default data_root as the official code:
//       $XDG_CACHE_HOME/autoencoders/data (~/.cache/autoencoders/data).
//   ldm.data.lsun.LSUN{Churches,Bedrooms,Cats}{Train,Validation}   <data_root>/data/lsun/<list>.txt
//       with paths relative to <data_root>/data/lsun/<churches|bedrooms|cats>/ (the official code
//       opens them relative to its working directory: data_root defaults to the current folder).
//   taming.data.faceshq.FFHQ{Train,Validation}   <data_root>/data/ffhq{train,validation}.txt, images
//       under <data_root>/data/ffhq/;  CelebAHQ{Train,Validation}: <data_root>/data/celebahq{train,
//       validation}.txt listing .npy files [1, 3, H, W] uint8 under <data_root>/data/celebahq/.
// Resampling is sharp's (shorter side to size, then the center crop; LSUN crops first, the same
// square up to rounding); `interpolation` is checked, not used.
// What it is not: ImageNetSR* (super-resolution pairs through the BSR degradation pipeline) is not
// implemented and stops with an error saying what to use instead; random crops (ImageNetTrain's
// default random_crop) are taken as center crops, since examples are decoded once at load time.
// `limit` (ldm.ts) keeps the first n files of a list: the whole of ImageNet does not fit in memory.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { extname, join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import { ConfigError, InputFileError, checkKwargs } from '../../util/index.ts';
import { ArrayImageDataset } from './types.ts';
import { IMAGE_EXTENSIONS, decodeImage } from './folder.ts';

export interface ListDatasetOptions {
  name: string;
  /** absolute file paths, with their labels */
  files: readonly { file: string; label: number }[];
  classNames: readonly string[];
  captionOf: (label: number) => string;
  size: number;
  flipP: number;
  onWarning?: ((message: string) => void) | undefined;
}

/** .npy (NumPy format 1.x/2.x/3.x) holding uint8 [1, 3, H, W] or [3, H, W] -> RGB HWC pixels. */
export function readNpyImage(file: string): { data: Uint8Array; width: number; height: number } {
  const b = readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 1, 6) !== 'NUMPY' || b[0] !== 0x93) throw new InputFileError(`${file}: not a .npy file`);
  const major = b[6]!;
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (descr !== '|u1' || fortran) throw new InputFileError(`${file}: expected a C-order uint8 array, got descr ${descr}${fortran ? ', Fortran order' : ''}`);
  const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
  if (dims.length !== 3 || dims[0] !== 3) throw new InputFileError(`${file}: expected shape [1, 3, H, W] or [3, H, W], got [${shape.join(', ')}]`);
  const [, h, w] = dims as [number, number, number];
  const src = b.subarray(start + hlen);
  if (src.length < 3 * h * w) throw new InputFileError(`${file}: ${src.length} data bytes for [3, ${h}, ${w}]`);
  const data = new Uint8Array(h * w * 3); // CHW -> HWC
  for (let c = 0; c < 3; c++) for (let p = 0; p < h * w; p++) data[p * 3 + c] = src[c * h * w + p]!;
  return { data, width: w, height: h };
}

async function decodeAny(file: string, size: number): Promise<Uint8Array> {
  if (extname(file).toLowerCase() !== '.npy') return decodeImage(file, size, 'center', 3);
  const img = readNpyImage(file);
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(size, size, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 3) throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Decode a list of files (a few in flight, order kept); a file that cannot be read stops the load
 *  with its name (the official loaders would fail on it too). */
export async function loadImageList(o: ListDatasetOptions): Promise<ArrayImageDataset> {
  if (o.files.length === 0) throw new InputFileError(`${o.name}: the file list is empty`);
  const stride = o.size * o.size * 3;
  const data = new Uint8Array(o.files.length * stride);
  const inFlight = 4;
  for (let s = 0; s < o.files.length; s += inFlight) {
    const part = o.files.slice(s, s + inFlight);
    const res = await Promise.allSettled(part.map((e) => decodeAny(e.file, o.size)));
    res.forEach((r, j) => {
      if (r.status === 'rejected') throw new InputFileError(`${o.name}: cannot read ${part[j]!.file}: ${(r.reason as Error)?.message ?? String(r.reason)}`);
      data.set(r.value, (s + j) * stride);
    });
  }
  return new ArrayImageDataset(o.name, data, Int32Array.from(o.files.map((e) => e.label)), o.size, o.size, 3, o.classNames, o.captionOf, o.flipP);
}

// ---- parameters ------------------------------------------------------------------------------

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function sizeParam(owner: string, v: unknown, dflt?: number): number {
  const s = v ?? dflt;
  if (!isInt(s) || s < 1) throw new ConfigError(`${owner}: 'size' (output image size in pixels) must be a positive integer, got ${JSON.stringify(v)}`);
  return s;
}

function limitParam(owner: string, v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isInt(v) || v < 1) throw new ConfigError(`${owner}: 'limit' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function rootParam(owner: string, v: unknown, dflt: string): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${owner}: 'data_root' must be a folder path, got ${JSON.stringify(v)}`);
  return resolve(v);
}

function readList(owner: string, txt: string, what: string): string[] {
  if (!existsSync(txt)) throw new InputFileError(`${owner}: ${txt} not found (${what})`);
  return readFileSync(txt, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
}

// ---- ImageNet ----------------------------------------------------------------------------------

function imagenet(split: 'train' | 'validation') {
  const owner = split === 'train' ? 'ImageNetTrain' : 'ImageNetValidation';
  const NAME = split === 'train' ? 'ILSVRC2012_train' : 'ILSVRC2012_validation';
  return async (p: Record<string, unknown>, ctx: { onWarning?: (m: string) => void }): Promise<ArrayImageDataset> => {
    checkKwargs(owner, p, ['config', 'process_images', 'data_root', 'limit']);
    const cfg = (p['config'] ?? {}) as Record<string, unknown>;
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new ConfigError(`${owner}: 'config' must be a mapping (e.g. {size: 256})`);
    checkKwargs(`${owner} config`, cfg, ['size', 'keep_orig_class_label', 'sub_indices', `${owner}/random_crop`]);
    if (p['process_images'] === false) throw new ConfigError(`${owner}: process_images: false (file paths instead of images) cannot be trained on; remove it`);
    if (cfg['keep_orig_class_label'] || cfg['sub_indices'] !== undefined) {
      throw new ConfigError(`${owner}: keep_orig_class_label / sub_indices need the official index_synset.yaml mapping, which is not implemented; remove them (labels are then the index of the sorted synsets)`);
    }
    const size = sizeParam(owner, cfg['size'], 256);
    const cache = process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache');
    const base = rootParam(owner, p['data_root'], join(cache, 'autoencoders', 'data'));
    const root = join(base, NAME), datadir = join(root, 'data');
    if (!existsSync(datadir)) {
      throw new InputFileError(`${owner}: ${datadir} not found; pass data_root: FOLDER holding ${NAME}/data/<synset>/*.JPEG ` +
        `(e.g. data.params.${split}.params.data_root=/datasets/imagenet), or use ldm.data.folder.ImageFolder with root: a folder of class sub-folders`);
    }
    const list = join(root, 'filelist.txt');
    let rel: string[];
    if (existsSync(list)) rel = readList(owner, list, 'relative image paths');
    else {
      rel = readdirSync(datadir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()
        .flatMap((syn) => readdirSync(join(datadir, syn)).filter((f) => f.toUpperCase().endsWith('.JPEG')).map((f) => `${syn}/${f}`)).sort();
    }
    rel = rel.filter((r) => r.split('/').pop() !== 'n06596364_9591.JPEG'); // the official ignore list
    const limit = limitParam(owner, p['limit']);
    if (limit !== undefined) rel = rel.slice(0, limit);
    const synsets = rel.map((r) => r.split('/')[0]!);
    const classNames = [...new Set(synsets)].sort();
    const idx = new Map(classNames.map((s, i) => [s, i]));
    const human = new Map<string, string>();
    const hp = join(root, 'synset_human.txt');
    if (existsSync(hp)) {
      for (const line of readFileSync(hp, 'utf8').split(/\r?\n/)) {
        const m = /^(\S+)\s+(.+)$/.exec(line.trim());
        if (m) human.set(m[1]!, m[2]!);
      }
    }
    const randomCrop = cfg[`${owner}/random_crop`] ?? split === 'train';
    if (randomCrop) ctx.onWarning?.(`${owner}: random_crop is taken as a center crop (examples are decoded once at load time)`);
    return loadImageList({
      name: `${owner} ${relative(process.cwd(), root) || root}`, size, flipP: 0, onWarning: ctx.onWarning,
      files: rel.map((r, i) => ({ file: join(datadir, r), label: idx.get(synsets[i]!)! })),
      classNames, captionOf: (l) => human.get(classNames[l]!) ?? classNames[l]!,
    });
  };
}

function imagenetSR(owner: string) {
  return async (_p: Record<string, unknown>, _ctx: { onWarning?: (m: string) => void }): Promise<ArrayImageDataset> => {
    throw new ConfigError(`${owner}: super-resolution pairs through the BSR degradation pipeline are not implemented; ` +
      `an autoencoder trains on the 'image' key alone: use ldm.data.imagenet.${owner.includes('Train') ? 'ImageNetTrain' : 'ImageNetValidation'} ` +
      "(params: {data_root: FOLDER, config: {size: 256}}) or ldm.data.folder.ImageFolder (params: {root: FOLDER, size: 256})");
  };
}

// ---- LSUN --------------------------------------------------------------------------------------

function lsun(owner: string, list: string, folder: string, flipDefault: number) {
  return async (p: Record<string, unknown>, ctx: { onWarning?: (m: string) => void }): Promise<ArrayImageDataset> => {
    checkKwargs(owner, p, ['size', 'interpolation', 'flip_p', 'data_root', 'limit']);
    const size = sizeParam(owner, p['size']);
    const interp = p['interpolation'] ?? 'bicubic';
    if (!['linear', 'bilinear', 'bicubic', 'lanczos'].includes(String(interp))) {
      throw new ConfigError(`${owner}: 'interpolation' must be linear, bilinear, bicubic or lanczos, got ${JSON.stringify(interp)}`);
    }
    const flipP = p['flip_p'] ?? flipDefault;
    if (typeof flipP !== 'number' || flipP < 0 || flipP > 1) throw new ConfigError(`${owner}: 'flip_p' must be a probability in [0, 1], got ${JSON.stringify(flipP)}`);
    const base = rootParam(owner, p['data_root'], process.cwd());
    const txt = join(base, 'data', 'lsun', list), dir = join(base, 'data', 'lsun', folder);
    if (!existsSync(txt)) {
      throw new InputFileError(`${owner}: ${txt} not found; pass data_root: FOLDER holding data/lsun/${list} and the images under data/lsun/${folder}/ ` +
        '(the layout the official code reads from its working directory), or use ldm.data.folder.ImageFolder with root: an image folder');
    }
    let rel = readList(owner, txt, `image paths relative to data/lsun/${folder}`);
    const limit = limitParam(owner, p['limit']);
    if (limit !== undefined) rel = rel.slice(0, limit);
    return loadImageList({
      name: `${owner} ${relative(process.cwd(), dir) || dir}`, size, flipP, onWarning: ctx.onWarning,
      files: rel.map((r) => ({ file: join(dir, r), label: 0 })), classNames: [folder], captionOf: () => `a photo of ${folder}`,
    });
  };
}

// ---- FFHQ / CelebA-HQ (taming) ------------------------------------------------------------------

function faces(owner: string, list: string, folder: string) {
  return async (p: Record<string, unknown>, ctx: { onWarning?: (m: string) => void }): Promise<ArrayImageDataset> => {
    checkKwargs(owner, p, ['size', 'keys', 'data_root', 'limit']);
    const size = sizeParam(owner, p['size']);
    const keys = p['keys'];
    if (keys !== undefined && keys !== null && !(Array.isArray(keys) && keys.every((k) => k === 'image'))) {
      throw new ConfigError(`${owner}: keys ${JSON.stringify(keys)}: only 'image' is provided`);
    }
    const base = rootParam(owner, p['data_root'], process.cwd());
    const txt = join(base, 'data', list), dir = join(base, 'data', folder);
    const kind = folder === 'celebahq' ? '.npy arrays [1, 3, H, W] uint8' : 'images';
    if (!existsSync(txt)) {
      throw new InputFileError(`${owner}: ${txt} not found; pass data_root: FOLDER holding data/${list} and the ${kind} under data/${folder}/ ` +
        '(the layout taming-transformers reads from its working directory), or use ldm.data.folder.ImageFolder with root: an image folder');
    }
    let rel = readList(owner, txt, `paths relative to data/${folder}`);
    const limit = limitParam(owner, p['limit']);
    if (limit !== undefined) rel = rel.slice(0, limit);
    const bad = rel.find((r) => !(folder === 'celebahq' ? r.toLowerCase().endsWith('.npy') : (IMAGE_EXTENSIONS as readonly string[]).includes(extname(r).toLowerCase())));
    if (bad) throw new InputFileError(`${owner}: ${txt} lists ${bad}, which is not one of the ${kind}`);
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new InputFileError(`${owner}: ${dir} (the ${kind} of ${list}) not found`);
    return loadImageList({
      name: `${owner} ${relative(process.cwd(), dir) || dir}`, size, flipP: 0, onWarning: ctx.onWarning,
      files: rel.map((r) => ({ file: join(dir, r), label: 0 })), classNames: ['face'], captionOf: () => 'a photo of a face',
    });
  };
}

/** Official data set class paths -> loaders (merged into DATA_TARGETS). */
export const OFFICIAL_DATA_TARGETS = {
  'ldm.data.imagenet.ImageNetTrain': imagenet('train'),
  'ldm.data.imagenet.ImageNetValidation': imagenet('validation'),
  'ldm.data.imagenet.ImageNetSRTrain': imagenetSR('ImageNetSRTrain'),
  'ldm.data.imagenet.ImageNetSRValidation': imagenetSR('ImageNetSRValidation'),
  'ldm.data.lsun.LSUNChurchesTrain': lsun('LSUNChurchesTrain', 'church_outdoor_train.txt', 'churches', 0.5),
  'ldm.data.lsun.LSUNChurchesValidation': lsun('LSUNChurchesValidation', 'church_outdoor_val.txt', 'churches', 0),
  'ldm.data.lsun.LSUNBedroomsTrain': lsun('LSUNBedroomsTrain', 'bedrooms_train.txt', 'bedrooms', 0.5),
  'ldm.data.lsun.LSUNBedroomsValidation': lsun('LSUNBedroomsValidation', 'bedrooms_val.txt', 'bedrooms', 0),
  'ldm.data.lsun.LSUNCatsTrain': lsun('LSUNCatsTrain', 'cat_train.txt', 'cats', 0.5),
  'ldm.data.lsun.LSUNCatsValidation': lsun('LSUNCatsValidation', 'cat_val.txt', 'cats', 0),
  'taming.data.faceshq.FFHQTrain': faces('FFHQTrain', 'ffhqtrain.txt', 'ffhq'),
  'taming.data.faceshq.FFHQValidation': faces('FFHQValidation', 'ffhqvalidation.txt', 'ffhq'),
  'taming.data.faceshq.CelebAHQTrain': faces('CelebAHQTrain', 'celebahqtrain.txt', 'celebahq'),
  'taming.data.faceshq.CelebAHQValidation': faces('CelebAHQValidation', 'celebahqvalidation.txt', 'celebahq'),
};
