// Images out: tensors [B, C, H, W] in [-1, 1] -> grids (torchvision `make_grid` layout: nrow images
// per row, `padding` pixels around each, pad value), nearest-neighbour upscaling, image files
// (PNG, or JPEG / WebP when the extension says so) written atomically through sharp; and a loss-curve PNG drawn into a raw RGB buffer (axes, tick labels in
// a built-in 3x5 pixel font, optional log scale, raw and smoothed series) — no plotting library.

import { dirname, extname } from 'node:path';
import sharp from 'sharp';
import { InputFileError, OutputFileError, ShapeError, fmtShape } from '../util/index.ts';
import { addPngText } from '../formats/index.ts';
import { Tensor as TensorCtor, type Tensor } from '../tensor/index.ts';
import { ensureDir, writeFileAtomic } from './tensors.ts';

/** A raw 8-bit image, channels-last. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB) */
  channels: number;
}

export interface GridOptions {
  /** images per row (default 8, as make_grid) */
  nrow?: number;
  /** pixels between and around images (default 2) */
  padding?: number;
  /** pad value in [0, 1] (default 0: black) */
  padValue?: number;
  /** integer nearest-neighbour scale of the finished grid (default 1) */
  upscale?: number;
  /** PNG tEXt chunks to write (e.g. `parameters`: the generation parameters, as A1111 writes them) */
  text?: Readonly<Record<string, string>>;
}

/** [-1, 1] -> 0..255 as the official `log_images` saving does: ((x + 1) / 2).clamp(0, 1) * 255, rounded. */
export function toByte(v: number): number {
  const u = Math.min(1, Math.max(0, (v + 1) / 2));
  return Math.round(u * 255);
}

/** torchvision.utils.make_grid on x [B, C, H, W] in [-1, 1] (C = 1 or 3). */
export function makeGrid(x: Tensor, opts: GridOptions = {}): RawImage {
  if (x.ndim !== 4 || (x.shape[1] !== 1 && x.shape[1] !== 3)) {
    throw new ShapeError(`makeGrid: expected [B, 1|3, H, W] images, got ${fmtShape(x.shape)}`);
  }
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const nrow = Math.max(1, opts.nrow ?? 8);
  const pad = opts.padding ?? 2;
  const xmaps = Math.min(nrow, B), ymaps = Math.ceil(B / xmaps);
  const cellH = H + pad, cellW = W + pad;
  const width = cellW * xmaps + pad, height = cellH * ymaps + pad;
  const data = new Uint8Array(width * height * C).fill(Math.round((opts.padValue ?? 0) * 255));
  const v = x.f32;
  for (let b = 0; b < B; b++) {
    const gx = (b % xmaps) * cellW + pad, gy = Math.floor(b / xmaps) * cellH + pad;
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let xx = 0; xx < W; xx++) {
          data[((gy + y) * width + gx + xx) * C + c] = toByte(v[((b * C + c) * H + y) * W + xx]!);
        }
      }
    }
  }
  return upscale({ data, width, height, channels: C }, opts.upscale ?? 1);
}

/** Nearest-neighbour integer upscaling. */
export function upscale(img: RawImage, k: number): RawImage {
  if (!Number.isInteger(k) || k < 1) throw new ShapeError(`upscale: factor must be a positive integer, got ${k}`);
  if (k === 1) return img;
  const { width: w, height: h, channels: c } = img;
  const W = w * k, H = h * k;
  const out = new Uint8Array(W * H * c);
  for (let y = 0; y < H; y++) {
    const sy = Math.floor(y / k);
    for (let x = 0; x < W; x++) {
      const s = (sy * w + Math.floor(x / k)) * c, d = (y * W + x) * c;
      for (let j = 0; j < c; j++) out[d + j] = img.data[s + j]!;
    }
  }
  return { data: out, width: W, height: H, channels: c };
}

/** Stack images vertically (widths padded with black to the widest), with `gap` black rows between. */
export function stackVertical(imgs: readonly RawImage[], gap = 0): RawImage {
  const channels = Math.max(...imgs.map((i) => i.channels));
  const width = Math.max(...imgs.map((i) => i.width));
  const height = imgs.reduce((s, i) => s + i.height, 0) + gap * Math.max(0, imgs.length - 1);
  const out = new Uint8Array(width * height * channels);
  let y0 = 0;
  for (const im of imgs) {
    for (let y = 0; y < im.height; y++) {
      for (let x = 0; x < im.width; x++) {
        for (let c = 0; c < channels; c++) out[((y0 + y) * width + x) * channels + c] = im.data[(y * im.width + x) * im.channels + Math.min(c, im.channels - 1)]!;
      }
    }
    y0 += im.height + gap;
  }
  return { data: out, width, height, channels };
}

/** PNG bytes of a raw image (with tEXt chunks keyword -> text). */
export async function encodePng(img: RawImage, text: Readonly<Record<string, string>> = {}): Promise<Uint8Array> {
  const buf = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 },
  }).png({ compressionLevel: 9 }).toBuffer();
  let png = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  for (const [k, v] of Object.entries(text).reverse()) png = addPngText(png, k, v);
  return png;
}

/** Write a PNG atomically (temp file + rename), with optional tEXt chunks. */
export async function writePng(path: string, img: RawImage, text: Readonly<Record<string, string>> = {}): Promise<void> {
  const bytes = await encodePng(img, text);
  ensureDir(dirname(path));
  writeFileAtomic(path, bytes);
}

/** Image formats written by file extension (no extension: PNG). */
export const IMAGE_FORMATS = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.webp': 'webp' } as const;

/** The format a path's extension names, or an OutputFileError naming the ones we write. */
export function imageFormatOf(path: string): 'png' | 'jpeg' | 'webp' {
  const ext = extname(path).toLowerCase();
  if (ext === '') return 'png';
  const f = (IMAGE_FORMATS as Record<string, 'png' | 'jpeg' | 'webp'>)[ext];
  if (f === undefined) {
    throw new OutputFileError(`cannot write ${path}: '${ext}' is not an image format ldm writes (${Object.keys(IMAGE_FORMATS).join(', ')})`);
  }
  return f;
}

/** Encoded bytes of a raw image in a format (JPEG / WebP at quality 95: grids of small digits need it). */
export async function encodeImage(img: RawImage, format: 'png' | 'jpeg' | 'webp', text: Readonly<Record<string, string>> = {}): Promise<Uint8Array> {
  if (format === 'png') return encodePng(img, text); // tEXt chunks: PNG only
  const s = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 },
  });
  const buf = await (format === 'jpeg' ? s.jpeg({ quality: 95 }) : s.webp({ quality: 95 })).toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** Write an image atomically in the format its extension names (.png, .jpg / .jpeg, .webp). */
export async function writeImage(path: string, img: RawImage, text: Readonly<Record<string, string>> = {}): Promise<void> {
  const bytes = await encodeImage(img, imageFormatOf(path), text);
  ensureDir(dirname(path));
  writeFileAtomic(path, bytes);
}

/** Write x [B, C, H, W] in [-1, 1] as a grid image (format by extension, see writeImage). */
export async function saveImageGrid(path: string, x: Tensor, opts: GridOptions = {}): Promise<RawImage> {
  const g = makeGrid(x, opts);
  await writeImage(path, g, opts.text ?? {});
  return g;
}

/** Decode a PNG / JPEG file into a raw image (tests and `ldm eval` on image files). */
export async function readImageRaw(path: string): Promise<RawImage> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: info.channels };
}

// ---- the loss curve -------------------------------------------------------------------------------

/** 3x5 glyphs (rows of 3 bits, MSB left) for tick labels and short titles. */
const FONT: Readonly<Record<string, readonly number[]>> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 2, 2], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], '+': [0, 2, 7, 2, 0], 'e': [0, 7, 7, 4, 7], 'k': [4, 5, 6, 5, 5],
  's': [0, 3, 6, 1, 6], 't': [2, 7, 2, 2, 3], 'p': [0, 7, 5, 7, 4], 'l': [6, 2, 2, 2, 7], 'o': [0, 7, 5, 5, 7],
  'g': [0, 7, 5, 7, 1], 'm': [0, 7, 7, 5, 5], 'a': [0, 6, 1, 7, 7], 'r': [0, 7, 4, 4, 4], 'i': [2, 0, 2, 2, 2],
  'n': [0, 6, 5, 5, 5], 'v': [0, 5, 5, 5, 2], 'd': [1, 1, 7, 5, 7], 'b': [4, 4, 7, 5, 7], 'c': [0, 7, 4, 4, 7],
  'u': [0, 5, 5, 5, 7], 'f': [3, 2, 7, 2, 2], 'h': [4, 4, 7, 5, 5], 'w': [0, 5, 5, 7, 7], 'x': [0, 5, 2, 2, 5],
  'y': [0, 5, 7, 1, 7], '%': [5, 1, 2, 4, 5], ',': [0, 0, 0, 2, 4], ':': [0, 2, 0, 2, 0],
  ' ': [0, 0, 0, 0, 0], '(': [1, 2, 2, 2, 1], ')': [4, 2, 2, 2, 4], '/': [1, 1, 2, 4, 4], '=': [0, 7, 0, 7, 0],
  '_': [0, 0, 0, 0, 7], 'j': [1, 0, 1, 5, 7], 'q': [0, 7, 5, 7, 1], 'z': [0, 7, 1, 4, 7], '^': [2, 5, 0, 0, 0],
};

type RGB = readonly [number, number, number];

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: RGB): void {
    x = Math.round(x); y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.data[o] = c[0]; this.data[o + 1] = c[1]; this.data[o + 2] = c[2];
  }
  line(x0: number, y0: number, x1: number, y1: number, c: RGB): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, c);
  }
  /** Text at (x, y) top-left, `scale` pixels per font pixel. */
  text(s: string, x: number, y: number, c: RGB, scale = 2): void {
    let cx = x;
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[ch.toLowerCase()] ?? FONT[' ']!;
      g.forEach((row, ry) => {
        for (let bx = 0; bx < 3; bx++) {
          if (row & (4 >> bx)) for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) this.set(cx + bx * scale + dx, y + ry * scale + dy, c);
        }
      });
      cx += 4 * scale;
    }
  }
  textWidth(s: string, scale = 2): number {
    return s.length * 4 * scale - scale;
  }
}

/** A short label for a tick value. */
function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  if (a >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  return `${+v.toPrecision(3)}`;
}

/** About n "nice" tick values covering [lo, hi]. */
function niceTicks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export interface CurveOptions {
  width?: number;
  height?: number;
  /** log10 y axis (values <= 0 are left out) */
  logScale?: boolean;
  title?: string;
  /** exponential smoothing factor of the dark line (default 0.9; 0 = none) */
  smoothing?: number;
}

/** Draw y against x (e.g. loss against step): light raw series, dark smoothed series. */
export function drawCurve(xs: readonly number[], ys: readonly number[], opts: CurveOptions = {}): RawImage {
  const W = opts.width ?? 640, H = opts.height ?? 400;
  const cv = new Canvas(W, H);
  const left = 70, right = 16, top = 28, bottom = 40;
  const log = opts.logScale ?? false;
  const pts = xs.map((x, i) => [x, ys[i]!] as const).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
  const axis: RGB = [0, 0, 0], grid: RGB = [225, 225, 225];
  if (opts.title) cv.text(opts.title, left, 8, axis, 2);
  const pw = W - left - right, ph = H - top - bottom;
  cv.line(left, top, left, top + ph, axis);
  cv.line(left, top + ph, left + pw, top + ph, axis);
  if (pts.length === 0) return { data: cv.data, width: W, height: H, channels: 3 };
  const tf = (y: number): number => (log ? Math.log10(y) : y);
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => tf(p[1]))), y1 = Math.max(...pts.map((p) => tf(p[1])));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const ypad = (y1 - y0) * 0.05;
  y0 -= ypad; y1 += ypad;
  const px = (x: number): number => left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => top + ph - ((tf(y) - y0) / (y1 - y0)) * ph;
  // ticks and grid
  for (const t of niceTicks(x0, x1, 6)) {
    const X = px(t);
    cv.line(X, top, X, top + ph - 1, grid);
    cv.line(X, top + ph, X, top + ph + 4, axis);
    const s = fmtTick(t);
    cv.text(s, X - cv.textWidth(s) / 2, top + ph + 8, axis);
  }
  const yt = log
    ? niceTicks(Math.floor(y0), Math.ceil(y1), 6).filter((e) => Number.isInteger(e)).flatMap((e) => (y1 - y0 > 3 ? [1] : [1, 2, 5]).map((m) => Math.log10(m) + e)).filter((e) => e >= y0 && e <= y1)
    : niceTicks(y0, y1, 6);
  for (const t of yt) {
    const Y = top + ph - ((t - y0) / (y1 - y0)) * ph;
    cv.line(left + 1, Y, left + pw, Y, grid);
    cv.line(left - 4, Y, left, Y, axis);
    const s = fmtTick(log ? 10 ** t : t);
    cv.text(s, left - 8 - cv.textWidth(s), Y - 5, axis);
  }
  // raw series (light), then smoothed (dark)
  const light: RGB = [160, 190, 235], dark: RGB = [20, 60, 160];
  const a = opts.smoothing ?? 0.9;
  // smoothing 0: the raw series is the only one, drawn dark with a dot at each point
  for (let i = 1; i < pts.length; i++) cv.line(px(pts[i - 1]![0]), py(pts[i - 1]![1]), px(pts[i]![0]), py(pts[i]![1]), a > 0 ? light : dark);
  if (a === 0) for (const [x, y] of pts) for (let d = -2; d <= 2; d++) cv.line(px(x) - 2, py(y) + d, px(x) + 2, py(y) + d, dark);
  if (a > 0 && pts.length > 1) {
    let s = tf(pts[0]![1]);
    let prev: [number, number] | null = null;
    for (const [x, y] of pts) {
      s = a * s + (1 - a) * tf(y);
      const Y = top + ph - ((s - y0) / (y1 - y0)) * ph;
      if (prev) { cv.line(prev[0], prev[1], px(x), Y, dark); cv.line(prev[0], prev[1] + 1, px(x), Y + 1, dark); }
      prev = [px(x), Y];
    }
  }
  return { data: cv.data, width: W, height: H, channels: 3 };
}

/**
 * A grid with a text label left of each row (e.g. the trajectory strip's `#0 x_t` / `#0 x0`
 * rows): white margin, black 3x5-font text scaled to the row height; the grid becomes RGB.
 * rows = the grid's number of image rows; labels beyond it are ignored.
 */
export function labelRows(grid: RawImage, labels: readonly string[], rows: number): RawImage {
  const rowH = grid.height / Math.max(1, rows);
  const scale = Math.max(1, Math.min(3, Math.floor(rowH / 9)));
  const margin = Math.max(...labels.map((l) => l.length), 1) * 4 * scale + 2 * scale;
  const c = new Canvas(grid.width + margin, grid.height);
  for (let y = 0; y < grid.height; y++) {
    for (let x = 0; x < grid.width; x++) {
      const s = (y * grid.width + x) * grid.channels, d = (y * c.width + margin + x) * 3;
      for (let j = 0; j < 3; j++) c.data[d + j] = grid.data[s + Math.min(j, grid.channels - 1)]!;
    }
  }
  labels.slice(0, rows).forEach((l, r) => c.text(l, scale, Math.round(r * rowH + rowH / 2 - 2.5 * scale), [0, 0, 0], scale));
  return { data: c.data, width: c.width, height: c.height, channels: 3 };
}

/**
 * An image file as a tensor [1, C, H, W] (C = 1 grey or 3 RGB), resized to width x height with
 * sharp (Lanczos, aspect ratio not kept: the model's size), alpha dropped; values in [-1, 1]
 * (range 'signed', what the models take) or [0, 1] (range 'unit', masks).
 */
export async function readImageTensor(path: string, o: { channels: number; height: number; width: number; range?: 'signed' | 'unit' }): Promise<Tensor> {
  if (o.channels !== 1 && o.channels !== 3) throw new ShapeError(`readImageTensor: channels must be 1 or 3, got ${o.channels}`);
  let img = sharp(path).resize(o.width, o.height, { fit: 'fill' }).removeAlpha();
  img = o.channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new InputFileError(`${path}: cannot read the image (${(e as Error).message})`);
  }
  const { data, info } = raw;
  const C = o.channels, H = o.height, W = o.width, ch = info.channels;
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < H * W; p++) {
      const u = data[p * ch + Math.min(c, ch - 1)]! / 255;
      out[c * H * W + p] = o.range === 'unit' ? u : u * 2 - 1;
    }
  }
  return new TensorCtor(out, [1, C, H, W]);
}
