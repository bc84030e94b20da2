// LPIPS of taming/modules/losses/lpips.py (the perceptual metric inside LPIPSWithDiscriminator):
// ScalingLayer, torchvision VGG16 `features[0:30]` cut into slice1..slice5 (children keyed by
// the torchvision indices: `net.slice2.5.weight`), NetLinLayer heads `lin0..lin4` (Dropout + 1x1
// conv without bias: `lin<k>.model.1.weight`), normalize_tensor and spatial_average.
// Also the pure key mapping of the standard pretrained files (torchvision `vgg16-*.pth`
// `features.N.*` -> `net.slice<k>.N.*`; LPIPS `vgg.pth` `lin<k>.model.1.weight` kept as is).
// Not here: reading those files (io/pretrained.ts), downloading anything.
//
// Weights: the official constructor loads torchvision's ImageNet VGG16 and the LPIPS heads; we
// cannot download, so a fresh LPIPS holds zero placeholders (no RNG draws) and refuses to run
// until real weights replace them, through `loadPretrained`, `loadStateDict` or a parent's
// checkpoint (e.g. `loss.perceptual_loss.*` of an AutoencoderKL checkpoint).

import { ConfigError, F, ShapeError, checkKwargs, fmtShape, readOptions, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import { Tensor } from '../../tensor/index.ts';
import { Dropout, type Layer, Module, ReLU, Sequential } from '../../nn/index.ts';

/** Channels of the five VGG16 taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. */
export const LPIPS_CHANNELS = [64, 128, 256, 512, 512] as const;

/** torchvision VGG16 cfg 'D' (numbers = 3x3 conv + ReLU, 'M' = MaxPool2d(2, 2)). */
export const VGG16_CFG: readonly (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];

/** The official slice boundaries over torchvision's `features` indices: [start, end). */
export const VGG_SLICES: readonly (readonly [number, number])[] = [[0, 4], [4, 9], [9, 16], [16, 23], [23, 30]];

/** A conv whose weights are zero placeholders until loaded (no RNG draws, frozen). */
class PlaceholderConv2d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The placeholder storages: a weight is "loaded" once its storage has been replaced. */
  readonly placeholders: Float32Array[];
  constructor(cin: number, cout: number, readonly kernel: number, readonly padding: number, bias: boolean) {
    super();
    this.weight = this.param('weight', T.zeros([cout, cin, kernel, kernel]));
    this.bias = bias ? this.param('bias', T.zeros([cout])) : null;
    this.placeholders = [this.weight.f32, ...(this.bias ? [this.bias.f32] : [])];
  }
  get loaded(): boolean {
    return this.weight.data !== this.placeholders[0] && (!this.bias || this.bias.data !== this.placeholders[1]);
  }
  forward(x: Tensor): Tensor {
    return T.conv2d(x, this.weight, this.bias, 1, this.padding);
  }
}

/** torch.nn.MaxPool2d(kernel_size=2, stride=2) (floor mode). */
class MaxPool2d extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return T.maxPool2d(x, 2, 2);
  }
}

/** An nn.Sequential filled with `add_module(str(x), features[x])`: children keep torchvision's indices. */
class IndexedSequential extends Module implements Layer {
  readonly layers: (Module & Layer)[] = [];
  add(index: number, m: Module & Layer): void {
    this.child(String(index), m);
    this.layers.push(m);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
}

/** The torchvision `vgg16().features` layers, index -> module (0..30). */
function vgg16Features(): (Module & Layer)[] {
  const out: (Module & Layer)[] = [];
  let cin = 3;
  for (const v of VGG16_CFG) {
    if (v === 'M') { out.push(new MaxPool2d()); continue; }
    out.push(new PlaceholderConv2d(cin, v, 3, 1, true), new ReLU());
    cin = v;
  }
  return out;
}

/** `vgg16` of lpips.py: slice1..5 over torchvision features[0:30]; forward returns the five taps. */
export class Vgg16Slices extends Module {
  readonly slices: IndexedSequential[];
  constructor() {
    super();
    const f = vgg16Features();
    this.slices = VGG_SLICES.map(([a, b], s) => {
      const seq = this.child(`slice${s + 1}`, new IndexedSequential());
      for (let i = a; i < b; i++) seq.add(i, f[i]!);
      return seq;
    });
  }
  /** [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3]. */
  forward(x: Tensor): Tensor[] {
    const outs: Tensor[] = [];
    let h = x;
    for (const s of this.slices) outs.push(h = s.forward(h));
    return outs;
  }
  convs(): PlaceholderConv2d[] {
    return this.namedModules().map(([, m]) => m).filter((m): m is PlaceholderConv2d => m instanceof PlaceholderConv2d);
  }
}

/** `ScalingLayer`: (x - shift) / scale with buffers shift/scale [1, 3, 1, 1]. */
export class ScalingLayer extends Module implements Layer {
  constructor() {
    super();
    this.buffer('shift', T.tensor([-0.030, -0.088, -0.188], [1, 3, 1, 1]));
    this.buffer('scale', T.tensor([0.458, 0.448, 0.450], [1, 3, 1, 1]));
  }
  forward(x: Tensor): Tensor {
    return T.div(T.sub(x, this.getBuffer('shift')), this.getBuffer('scale'));
  }
}

/** `NetLinLayer(chn_in, chn_out=1, use_dropout)`: model = Sequential([Dropout(),] Conv2d(chn_in, chn_out, 1, bias=False)). */
export class NetLinLayer extends Module {
  readonly model: Sequential;
  readonly conv: PlaceholderConv2d;
  constructor(chnIn: number, chnOut = 1, useDropout = false) {
    super();
    this.conv = new PlaceholderConv2d(chnIn, chnOut, 1, 0, false);
    this.model = this.child('model', useDropout ? new Sequential(new Dropout(), this.conv) : new Sequential(this.conv));
  }
}

/** `normalize_tensor(x, eps=1e-10)`: x / (sqrt(sum(x^2, dim=1, keepdim)) + eps) (eps outside the sqrt). */
export function normalizeTensor(x: Tensor, eps = 1e-10): Tensor {
  const norm = T.sqrt(T.sum(T.square(x), 1, true)); // [N, 1, H, W]
  return T.div(x, T.add(norm, eps));
}

/** `spatial_average(x, keepdim=True)`: mean over dims [2, 3]. */
export function spatialAverage(x: Tensor, keepdim = true): Tensor {
  return T.mean(x, [2, 3], keepdim);
}

export interface LpipsHeadOutputs {
  /** The metric [N, 1, 1, 1] = sum of `res`. */
  value: Tensor;
  /** normalize_tensor of each tap of the first / second image. */
  norm0: Tensor[];
  norm1: Tensor[];
  /** lin<k>.model(diff_k) [N, 1, H_k, W_k]. */
  lin: Tensor[];
  /** spatial_average(lin_k) [N, 1, 1, 1]. */
  res: Tensor[];
}

export interface LPIPSOptions {
  use_dropout?: boolean;
}

export const LPIPS_SCHEMA: Schema<LPIPSOptions> = { use_dropout: F.bool };
export const LPIPS_KEYS = schemaKeys(LPIPS_SCHEMA);

/** `LPIPS(use_dropout=True)`: frozen (requires_grad False); gradients still flow to the images.
 *  The official LPIPSWithDiscriminator calls `.eval()` once, but a later `.train()` of a parent
 *  (Lightning) re-enables the heads' Dropout(0.5); Module.train() reproduces that. */
export class LPIPS extends Module {
  readonly scaling_layer: ScalingLayer;
  readonly net: Vgg16Slices;
  readonly lins: NetLinLayer[];
  constructor(opts: LPIPSOptions = {}) {
    super();
    checkKwargs('LPIPS', opts, LPIPS_KEYS);
    const useDropout = opts.use_dropout ?? true;
    this.scaling_layer = this.child('scaling_layer', new ScalingLayer());
    this.net = this.child('net', new Vgg16Slices());
    this.lins = LPIPS_CHANNELS.map((c, k) => this.child(`lin${k}`, new NetLinLayer(c, 1, useDropout)));
    this.freeze();
  }

  /** Whether the VGG16 and the heads hold real weights (not the placeholders). */
  get loaded(): { vgg: boolean; lin: boolean } {
    return { vgg: this.net.convs().every((c) => c.loaded), lin: this.lins.every((l) => l.conv.loaded) };
  }

  /** Load weights given in the standard pretrained layouts (see `lpipsStateDictFromPretrained`). */
  loadPretrained(sd: ReadonlyMap<string, Tensor>, source = 'LPIPS pretrained weights'): void {
    const mapped = lpipsStateDictFromPretrained(sd, source);
    const own = this.stateDict();
    for (const k of mapped.keys()) if (!own.has(k)) throw new ConfigError(`${source}: '${k}' is not an LPIPS weight`);
    this.loadStateDict(mapped, false, source);
  }

  private requireLoaded(what: 'vgg' | 'lin'): void {
    const l = this.loaded;
    if (!l[what]) {
      throw new ConfigError(`LPIPS: the ${what === 'vgg' ? 'VGG16 (net.slice*)' : 'lin0..lin4 head'} weights are not loaded ` +
        `(the official code downloads torchvision's vgg16 ImageNet weights and LPIPS' vgg.pth); load them with ` +
        `loadLpipsPretrained (io) or from a checkpoint holding the LPIPS keys`);
    }
  }

  /** The part after the VGG: normalize_tensor, squared difference, lin<k>, spatial_average, sum. */
  head(outs0: readonly Tensor[], outs1: readonly Tensor[]): LpipsHeadOutputs {
    this.requireLoaded('lin');
    if (outs0.length !== LPIPS_CHANNELS.length || outs1.length !== LPIPS_CHANNELS.length) {
      throw new ShapeError(`LPIPS.head: expected ${LPIPS_CHANNELS.length} feature maps per image, got ${outs0.length} and ${outs1.length}`);
    }
    const norm0: Tensor[] = [], norm1: Tensor[] = [], lin: Tensor[] = [], res: Tensor[] = [];
    LPIPS_CHANNELS.forEach((c, k) => {
      const f0 = outs0[k]!, f1 = outs1[k]!;
      if (f0.ndim !== 4 || f0.shape[1] !== c) throw new ShapeError(`LPIPS.head: feature ${k} is ${fmtShape(f0.shape)}, expected [N, ${c}, H, W]`);
      const n0 = normalizeTensor(f0), n1 = normalizeTensor(f1);
      const diff = T.square(T.sub(n0, n1));
      const l = this.lins[k]!.model.forward(diff); // [N, 1, H_k, W_k]
      norm0.push(n0); norm1.push(n1); lin.push(l); res.push(spatialAverage(l, true));
    });
    let value = res[0]!;
    for (let k = 1; k < res.length; k++) value = T.add(value, res[k]!);
    return { value, norm0, norm1, lin, res };
  }

  /** LPIPS(input, target) [N, 1, 1, 1]; images in [-1, 1], [N, 3, H, W]. */
  forward(input: Tensor, target: Tensor): Tensor {
    this.requireLoaded('vgg');
    if (input.ndim !== 4 || input.shape[1] !== 3) throw new ShapeError(`LPIPS: input ${fmtShape(input.shape)} is not [N, 3, H, W]`);
    const outs0 = this.net.forward(this.scaling_layer.forward(input));
    const outs1 = this.net.forward(this.scaling_layer.forward(target));
    return this.head(outs0, outs1).value;
  }
}

/** Map the standard pretrained layouts to LPIPS state-dict keys (pure; the files are read in io/):
 *  torchvision VGG16 `features.<i>.{weight,bias}` -> `net.slice<k>.<i>.*` (classifier.* dropped),
 *  LPIPS heads `lin<k>.model.1.weight` (vgg.pth) kept; keys already in our layout pass through. */
export function lpipsStateDictFromPretrained(sd: ReadonlyMap<string, Tensor>, source = 'pretrained weights'): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of sd) {
    const f = /^features\.(\d+)\.(weight|bias)$/.exec(k);
    if (f) {
      const i = Number(f[1]);
      const s = VGG_SLICES.findIndex(([a, b]) => i >= a && i < b);
      if (s < 0) throw new ConfigError(`${source}: '${k}' is outside torchvision's features[0:30] used by LPIPS`);
      out.set(`net.slice${s + 1}.${i}.${f[2]}`, t);
      continue;
    }
    if (k.startsWith('classifier.')) continue;
    if (/^(net\.slice\d\.\d+|lin\d\.model\.\d|scaling_layer)\./.test(k)) { out.set(k, t); continue; }
    throw new ConfigError(`${source}: unexpected key '${k}' (expected torchvision 'features.N.*' or LPIPS 'lin<k>.model.1.weight')`);
  }
  return out;
}

/** Build LPIPS from its official kwargs (taming.modules.losses.lpips.LPIPS). */
export function makeLPIPS(p: Readonly<Record<string, unknown>>): LPIPS {
  return new LPIPS(readOptions('LPIPS', p, LPIPS_SCHEMA));
}
