// An image folder as a data set: PNG / JPEG / WebP / TIFF / GIF files decoded with `sharp`,
// resized (shorter side to `size`, then a center crop, or squashed to size x size), converted to
// RGB (or grey), held in memory as uint8. Class labels come from the first level of sub-folders
// (sorted names, or the order of `class_names` when given); files directly in the root get
// label 0. An unreadable or corrupt file is reported by name: skipped and counted
// (on_error: skip, the default) or the load stops (on_error: stop), never silently dropped.

import { readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import sharp from 'sharp';
import { ConfigError, InputFileError } from '../../util/index.ts';
import { ArrayImageDataset } from './types.ts';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.gif'] as const;

export interface ImageFolderOptions {
  root: string;
  /** output size (square), e.g. 32 */
  size: number;
  /** 'center': shorter side to size, center crop (default); 'resize': squash to size x size */
  crop?: 'center' | 'resize';
  /** 3 (RGB, default) or 1 (grey) */
  channels?: 1 | 3;
  flipP?: number;
  /** explicit class order (names of sub-folders); default: sorted sub-folder names */
  classNames?: readonly string[];
  /** 'skip' (default): report and skip unreadable files; 'stop': throw on the first one */
  onError?: 'skip' | 'stop';
  /** keep only the first n files (in sorted order) */
  limit?: number;
  /** called once per skipped file with a message naming it */
  onWarning?: (message: string) => void;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export class ImageFolderDataset extends ArrayImageDataset {
  constructor(name: string, data: Uint8Array, labels: Int32Array, size: number, channels: number, classNames: readonly string[],
    flipP: number, readonly root: string, readonly files: readonly string[], readonly skipped: readonly SkippedFile[]) {
    super(name, data, labels, size, size, channels, classNames, (l) => captionFor(classNames[l] ?? `class ${l}`), flipP);
  }
}

function captionFor(name: string): string {
  const noun = name.replace(/[_-]+/g, ' ').trim().toLowerCase();
  return `a photo of ${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;
}

function listImages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && (IMAGE_EXTENSIONS as readonly string[]).includes(extname(e.name).toLowerCase()))
    .map((e) => join(dir, e.name))
    .sort();
}

/** Decode one file to uint8 [size, size, channels]. */
export async function decodeImage(file: string, size: number, crop: 'center' | 'resize', channels: 1 | 3): Promise<Uint8Array> {
  let img = sharp(file, { failOn: 'error' }).rotate();
  img = img.flatten({ background: '#000000' });
  img = img.resize(size, size, { fit: crop === 'center' ? 'cover' : 'fill', position: 'centre' });
  img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size) throw new Error(`decoded to ${info.width}x${info.height}, expected ${size}x${size}`);
  if (info.channels === channels) return new Uint8Array(data.buffer, data.byteOffset, data.length);
  // grey source asked for RGB (or the reverse): expand / take the first channel
  const out = new Uint8Array(size * size * channels);
  for (let p = 0; p < size * size; p++) for (let c = 0; c < channels; c++) out[p * channels + c] = data[p * info.channels + Math.min(c, info.channels - 1)]!;
  return out;
}

/** Load every image under `root` (see the file comment). */
export async function loadImageFolder(opts: ImageFolderOptions): Promise<ImageFolderDataset> {
  const { root, size } = opts;
  const crop = opts.crop ?? 'center';
  const channels = opts.channels ?? 3;
  const onError = opts.onError ?? 'skip';
  if (!Number.isInteger(size) || size < 1) throw new ConfigError(`ImageFolder: size must be a positive integer, got ${size}`);
  if (crop !== 'center' && crop !== 'resize') throw new ConfigError(`ImageFolder: crop must be 'center' or 'resize', got '${String(crop)}'`);
  if (channels !== 1 && channels !== 3) throw new ConfigError(`ImageFolder: channels must be 1 or 3, got ${String(channels)}`);
  if (onError !== 'skip' && onError !== 'stop') throw new ConfigError(`ImageFolder: on_error must be 'skip' or 'stop', got '${String(onError)}'`);
  let st;
  try {
    st = statSync(root);
  } catch {
    throw new InputFileError(`ImageFolder: ${root} does not exist`);
  }
  if (!st.isDirectory()) throw new InputFileError(`ImageFolder: ${root} is not a folder`);

  // 1. classes: first-level sub-folders (sorted or as class_names says); loose files are class 0
  const subdirs = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  let classNames: string[];
  if (opts.classNames) {
    classNames = [...opts.classNames];
    const unknown = subdirs.filter((d) => !classNames.includes(d) && listImages(join(root, d)).length > 0);
    if (unknown.length > 0) throw new ConfigError(`ImageFolder: sub-folder(s) ${unknown.join(', ')} of ${root} are not in class_names (${classNames.join(', ')})`);
  } else {
    classNames = subdirs.filter((d) => listImages(join(root, d)).length > 0);
  }
  const entries: { file: string; label: number }[] = [];
  const loose = listImages(root);
  if (loose.length > 0 && classNames.length === 0) classNames = ['image'];
  for (const f of loose) entries.push({ file: f, label: 0 });
  classNames.forEach((name, label) => {
    if (subdirs.includes(name)) for (const f of listImages(join(root, name))) entries.push({ file: f, label });
  });
  if (entries.length === 0) throw new InputFileError(`ImageFolder: no images (${IMAGE_EXTENSIONS.join(' ')}) in ${root}`);
  const todo = opts.limit !== undefined ? entries.slice(0, opts.limit) : entries;

  // 2. decode (a few files in flight), keeping order
  const stride = size * size * channels;
  const decoded: (Uint8Array | null)[] = new Array(todo.length).fill(null);
  const skipped: SkippedFile[] = [];
  const inFlight = 4;
  for (let s = 0; s < todo.length; s += inFlight) {
    const part = todo.slice(s, s + inFlight);
    const res = await Promise.allSettled(part.map((e) => decodeImage(e.file, size, crop, channels)));
    res.forEach((r, j) => {
      const file = part[j]!.file;
      if (r.status === 'fulfilled') {
        decoded[s + j] = r.value;
        return;
      }
      const reason = (r.reason as Error)?.message ?? String(r.reason);
      if (onError === 'stop') {
        throw new InputFileError(`ImageFolder: cannot read image ${file}: ${reason} (set on_error: skip to skip unreadable files)`);
      }
      skipped.push({ file, reason });
      opts.onWarning?.(`ImageFolder: skipping unreadable image ${file}: ${reason}`);
    });
  }
  if (skipped.length > 0) opts.onWarning?.(`ImageFolder: skipped ${skipped.length} unreadable file(s) of ${todo.length} in ${root}`);
  const keep = todo.map((e, i) => ({ ...e, px: decoded[i] })).filter((e): e is { file: string; label: number; px: Uint8Array } => e.px !== null);
  if (keep.length === 0) throw new InputFileError(`ImageFolder: none of the ${todo.length} files in ${root} could be read (first: ${skipped[0]?.file}: ${skipped[0]?.reason})`);
  const data = new Uint8Array(keep.length * stride);
  keep.forEach((e, i) => data.set(e.px, i * stride));
  const labels = Int32Array.from(keep.map((e) => e.label));
  return new ImageFolderDataset(`ImageFolder ${relative(process.cwd(), root) || root}`, data, labels, size, channels, classNames,
    opts.flipP ?? 0, root, keep.map((e) => e.file), skipped);
}
