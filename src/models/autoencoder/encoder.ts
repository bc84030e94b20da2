// Encoder, Decoder and Model of ldm/modules/diffusionmodules/model.py: the first-stage
// autoencoder's halves (no timestep embedding, temb_ch = 0) and the DDPM-paper UNet (`Model`,
// with a timestep embedding and skip connections). Keys are the official ones: `down.{i}.block.{j}`,
// `down.{i}.attn.{j}`, `down.{i}.downsample.conv`, `mid.block_1`, `mid.attn_1`, `mid.block_2`,
// `up.{i}.block.{j}`, `up.{i}.upsample.conv`, `norm_out`, `conv_out` (and `temb.dense.{0,1}`).
// The Decoder and Model store their up levels in reverse of execution order: `up.0` is the
// HIGHEST resolution and runs last. Not here: AutoencoderKL and the posterior (kl.ts).

import { F, ShapeError, fmtShape, kwargs, required, schemaKeys, type Schema } from '../../util/index.ts';
import * as T from '../../tensor/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { Conv2d, GroupNorm, Linear, Module, ModuleList } from '../../nn/index.ts';
import {
  type AttnType, Downsample, type FeatureLayer, ResnetBlock, Upsample, attnTypeOf, getTimestepEmbedding,
  makeAttn, nonlinearity, Normalize,
} from './blocks.ts';

/** The `ddconfig` keys: one dict is passed to both Encoder(**ddconfig) and Decoder(**ddconfig),
 *  and each ignores the other's keys (`**ignore_kwargs`), so both accept all of them. */


export interface DDConfig {
  ch: number;
  out_ch?: number | null;
  ch_mult?: readonly number[];
  num_res_blocks: number;
  attn_resolutions: readonly number[];
  dropout?: number;
  resamp_with_conv?: boolean;
  in_channels?: number | null;
  resolution: number;
  z_channels: number;
  double_z?: boolean;
  give_pre_end?: boolean;
  tanh_out?: boolean;
  use_linear_attn?: boolean;
  attn_type?: 'vanilla' | 'linear' | 'none';
}

/** The ddconfig as a config gives it (read by readOptions; Encoder / Decoder check what each needs). */
export const DDCONFIG_SCHEMA: Schema<DDConfig> = {
  ch: required(F.int), out_ch: F.int, ch_mult: F.intList, num_res_blocks: required(F.int), attn_resolutions: required(F.intList),
  dropout: F.num, resamp_with_conv: F.bool, in_channels: F.int, resolution: required(F.int), z_channels: required(F.int),
  double_z: F.bool, give_pre_end: F.bool, tanh_out: F.bool, use_linear_attn: F.bool, attn_type: F.oneOf('vanilla', 'linear', 'none'),
};
export const DDCONFIG_KEYS = schemaKeys(DDCONFIG_SCHEMA);

/** One resolution level: `block` (ResnetBlocks), `attn` (after each block when the level's
 *  resolution is in attn_resolutions), and an optional `downsample` / `upsample`. */
export class Level extends Module {
  readonly block = this.child('block', new ModuleList<ResnetBlock>());
  readonly attn = this.child('attn', new ModuleList<FeatureLayer>());
  resample: (Module & FeatureLayer) | null = null;

  /** Run the blocks (each followed by its attention, if any) at this resolution. */
  run(h: Tensor, temb: Tensor | null, skips?: Tensor[]): Tensor {
    let x = h;
    for (let j = 0; j < this.block.length; j++) {
      x = this.block.at(j).forward(skips ? T.cat([x, popSkip(skips)], 1) : x, temb);
      if (this.attn.length > 0) x = this.attn.at(j).forward(x);
    }
    return x;
  }
}

function popSkip(skips: Tensor[]): Tensor {
  const s = skips.pop();
  if (!s) throw new ShapeError('Model: ran out of skip connections');
  return s;
}

/** `mid`: block_1, attn_1, block_2 at the lowest resolution. */
export class Mid extends Module {
  readonly block_1: ResnetBlock;
  readonly attn_1: FeatureLayer;
  readonly block_2: ResnetBlock;
  constructor(ch: number, tembCh: number, dropout: number, attnType: AttnType) {
    super();
    this.block_1 = this.child('block_1', new ResnetBlock({ in_channels: ch, out_channels: ch, temb_channels: tembCh, dropout }));
    this.attn_1 = this.child('attn_1', makeAttn(ch, attnType));
    this.block_2 = this.child('block_2', new ResnetBlock({ in_channels: ch, out_channels: ch, temb_channels: tembCh, dropout }));
  }
  forward(h: Tensor, temb: Tensor | null): Tensor {
    return this.block_2.forward(this.attn_1.forward(this.block_1.forward(h, temb)), temb);
  }
}

/** The down path shared by Encoder and Model: conv_in, then per level num_res_blocks
 *  ResnetBlocks (+ attention), then a Downsample except at the last level. */
function buildDown(owner: Module, o: { ch: number; chMult: number[]; nRes: number; attnRes: number[]; dropout: number;
  withConv: boolean; resolution: number; tembCh: number; attnType: AttnType }): { down: ModuleList<Level>; blockIn: number; currRes: number } {
  const down = owner.child('down', new ModuleList<Level>());
  const inChMult = [1, ...o.chMult];
  let currRes = o.resolution, blockIn = o.ch;
  o.chMult.forEach((m, i) => {
    const lvl = new Level();
    blockIn = o.ch * inChMult[i]!;
    const blockOut = o.ch * m;
    for (let j = 0; j < o.nRes; j++) {
      lvl.block.push(new ResnetBlock({ in_channels: blockIn, out_channels: blockOut, temb_channels: o.tembCh, dropout: o.dropout }));
      blockIn = blockOut;
      if (o.attnRes.includes(currRes)) lvl.attn.push(makeAttn(blockIn, o.attnType));
    }
    if (i !== o.chMult.length - 1) {
      lvl.resample = lvl.child('downsample', new Downsample(blockIn, o.withConv));
      currRes = Math.floor(currRes / 2);
    }
    down.push(lvl);
  });
  return { down, blockIn, currRes };
}

/** The up path shared by Decoder and Model, built from the lowest resolution upward and stored
 *  with `up.0` = highest resolution (the official `self.up.insert(0, up)`). */
function buildUp(o: { ch: number; chMult: number[]; blocks: number; attnRes: number[]; dropout: number; withConv: boolean;
  tembCh: number; attnType: AttnType; blockIn: number; currRes: number; skipIn?: (i: number, j: number) => number }): { up: ModuleList<Level>; blockIn: number } {
  const levels: Level[] = new Array<Level>(o.chMult.length);
  let blockIn = o.blockIn, currRes = o.currRes;
  for (let i = o.chMult.length - 1; i >= 0; i--) {
    const lvl = new Level();
    const blockOut = o.ch * o.chMult[i]!;
    for (let j = 0; j < o.blocks; j++) {
      const extra = o.skipIn ? o.skipIn(i, j) : 0;
      lvl.block.push(new ResnetBlock({ in_channels: blockIn + extra, out_channels: blockOut, temb_channels: o.tembCh, dropout: o.dropout }));
      blockIn = blockOut;
      if (o.attnRes.includes(currRes)) lvl.attn.push(makeAttn(blockIn, o.attnType));
    }
    if (i !== 0) {
      lvl.resample = lvl.child('upsample', new Upsample(blockIn, o.withConv));
      currRes *= 2;
    }
    levels[i] = lvl;
  }
  return { up: new ModuleList(levels), blockIn };
}

function checkInput(owner: string, x: Tensor, c: number, what: string): void {
  if (x.ndim !== 4 || x.shape[1] !== c) throw new ShapeError(`${owner}: ${what} ${fmtShape(x.shape)} is not [N, ${c}, H, W]`);
}

/** `Encoder`: x [N, in_channels, H, W] -> [N, 2*z_channels (double_z) or z_channels, H/2^(L-1), W/2^(L-1)]. */
export class Encoder extends Module {
  readonly ch: number;
  readonly numResolutions: number;
  readonly numResBlocks: number;
  readonly resolution: number;
  readonly inChannels: number;
  readonly zChannels: number;
  readonly doubleZ: boolean;
  readonly conv_in: Conv2d;
  readonly down: ModuleList<Level>;
  readonly mid: Mid;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(opts: DDConfig) {
    super();
    const kw = kwargs('Encoder', opts, DDCONFIG_KEYS);
    this.ch = kw.int('ch');
    const chMult = kw.intList('ch_mult', [1, 2, 4, 8]);
    this.numResolutions = chMult.length;
    this.numResBlocks = kw.int('num_res_blocks');
    this.resolution = kw.int('resolution');
    this.inChannels = kw.int('in_channels');
    this.zChannels = kw.int('z_channels');
    this.doubleZ = kw.bool('double_z', true);
    const attnType = attnTypeOf(kw);
    this.conv_in = this.child('conv_in', new Conv2d(this.inChannels, this.ch, 3, { padding: 1 }));
    const { down, blockIn } = buildDown(this, {
      ch: this.ch, chMult, nRes: this.numResBlocks, attnRes: kw.intList('attn_resolutions'), dropout: kw.num('dropout', 0),
      withConv: kw.bool('resamp_with_conv', true), resolution: this.resolution, tembCh: 0, attnType,
    });
    this.down = down;
    this.mid = this.child('mid', new Mid(blockIn, 0, kw.num('dropout', 0), attnType));
    this.norm_out = this.child('norm_out', Normalize(blockIn));
    this.conv_out = this.child('conv_out', new Conv2d(blockIn, this.doubleZ ? 2 * this.zChannels : this.zChannels, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    checkInput('Encoder', x, this.inChannels, 'input');
    let h = this.conv_in.forward(x); // [N, ch, H, W]
    for (const lvl of this.down) {
      h = lvl.run(h, null);
      if (lvl.resample) h = lvl.resample.forward(h); // [N, C, H/2, W/2]
    }
    h = this.mid.forward(h, null);
    return this.conv_out.forward(nonlinearity(this.norm_out.forward(h)));
  }
}

/** `Decoder`: z [N, z_channels, h, w] -> [N, out_ch, h*2^(L-1), w*2^(L-1)] (or the features before
 *  norm_out with give_pre_end; tanh applied with tanh_out). */
export class Decoder extends Module {
  readonly ch: number;
  readonly numResolutions: number;
  readonly numResBlocks: number;
  readonly resolution: number;
  readonly zChannels: number;
  readonly givePreEnd: boolean;
  readonly tanhOut: boolean;
  /** (1, z_channels, curr_res, curr_res) at the lowest resolution, as the official code prints it. */
  readonly zShape: readonly [number, number, number, number];
  lastZShape: readonly number[] | null = null;
  readonly conv_in: Conv2d;
  readonly mid: Mid;
  readonly up: ModuleList<Level>;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(opts: DDConfig) {
    super();
    const kw = kwargs('Decoder', opts, DDCONFIG_KEYS);
    this.ch = kw.int('ch');
    const chMult = kw.intList('ch_mult', [1, 2, 4, 8]);
    this.numResolutions = chMult.length;
    this.numResBlocks = kw.int('num_res_blocks');
    this.resolution = kw.int('resolution');
    this.zChannels = kw.int('z_channels');
    const outCh = kw.int('out_ch');
    this.givePreEnd = kw.bool('give_pre_end', false);
    this.tanhOut = kw.bool('tanh_out', false);
    const dropout = kw.num('dropout', 0);
    const attnType = attnTypeOf(kw);
    const blockIn = this.ch * chMult[this.numResolutions - 1]!;
    const currRes = Math.floor(this.resolution / 2 ** (this.numResolutions - 1));
    this.zShape = [1, this.zChannels, currRes, currRes];
    this.conv_in = this.child('conv_in', new Conv2d(this.zChannels, blockIn, 3, { padding: 1 }));
    this.mid = this.child('mid', new Mid(blockIn, 0, dropout, attnType));
    const built = buildUp({
      ch: this.ch, chMult, blocks: this.numResBlocks + 1, attnRes: kw.intList('attn_resolutions'), dropout,
      withConv: kw.bool('resamp_with_conv', true), tembCh: 0, attnType, blockIn, currRes,
    });
    this.up = this.child('up', built.up);
    this.norm_out = this.child('norm_out', Normalize(built.blockIn));
    this.conv_out = this.child('conv_out', new Conv2d(built.blockIn, outCh, 3, { padding: 1 }));
  }

  forward(z: Tensor): Tensor {
    checkInput('Decoder', z, this.zChannels, 'latent');
    this.lastZShape = z.shape;
    let h = this.mid.forward(this.conv_in.forward(z), null); // [N, ch*ch_mult[-1], h, w]
    for (let i = this.numResolutions - 1; i >= 0; i--) {
      const lvl = this.up.at(i);
      h = lvl.run(h, null);
      if (lvl.resample) h = lvl.resample.forward(h); // [N, C, 2h, 2w]
    }
    if (this.givePreEnd) return h;
    h = this.conv_out.forward(nonlinearity(this.norm_out.forward(h)));
    return this.tanhOut ? T.tanh(h) : h;
  }

  get_last_layer(): Tensor {
    return this.conv_out.weight;
  }
}

/** The kwargs of `Model` (the DDPM-paper UNet of model.py). */
export interface ModelOptions {
  ch: number;
  out_ch: number;
  ch_mult?: readonly number[];
  num_res_blocks: number;
  attn_resolutions: readonly number[];
  dropout?: number;
  resamp_with_conv?: boolean;
  in_channels: number;
  resolution: number;
  use_timestep?: boolean;
  use_linear_attn?: boolean;
  attn_type?: 'vanilla' | 'linear' | 'none';
}

export const MODEL_SCHEMA: Schema<ModelOptions> = {
  ch: required(F.int), out_ch: required(F.int), ch_mult: F.intList, num_res_blocks: required(F.int), attn_resolutions: required(F.intList),
  dropout: F.num, resamp_with_conv: F.bool, in_channels: required(F.int), resolution: required(F.int), use_timestep: F.bool,
  use_linear_attn: F.bool, attn_type: F.oneOf('vanilla', 'linear', 'none'),
};
export const MODEL_KEYS = schemaKeys(MODEL_SCHEMA);

/** `temb`: the timestep MLP, `temb.dense.0` (ch -> 4ch) and `temb.dense.1` (4ch -> 4ch). */
class TimestepMlp extends Module {
  readonly dense: ModuleList<Linear>;
  constructor(ch: number, tembCh: number) {
    super();
    this.dense = this.child('dense', new ModuleList([new Linear(ch, tembCh), new Linear(tembCh, tembCh)]));
  }
}

/** `Model`: the DDPM-paper UNet of model.py. forward(x [N, in_channels(-context), H, W], t [N],
 *  context aligned [N, Cc, H, W] concatenated on channels) -> [N, out_ch, H, W]. */
export class Model extends Module {
  readonly ch: number;
  readonly tembCh: number;
  readonly numResolutions: number;
  readonly numResBlocks: number;
  readonly resolution: number;
  readonly inChannels: number;
  readonly useTimestep: boolean;
  readonly temb: TimestepMlp | null;
  readonly conv_in: Conv2d;
  readonly down: ModuleList<Level>;
  readonly mid: Mid;
  readonly up: ModuleList<Level>;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(opts: ModelOptions) {
    super();
    const kw = kwargs('Model', opts, MODEL_KEYS);
    this.ch = kw.int('ch');
    this.tembCh = this.ch * 4;
    const chMult = kw.intList('ch_mult', [1, 2, 4, 8]);
    this.numResolutions = chMult.length;
    this.numResBlocks = kw.int('num_res_blocks');
    this.resolution = kw.int('resolution');
    this.inChannels = kw.int('in_channels');
    this.useTimestep = kw.bool('use_timestep', true);
    const dropout = kw.num('dropout', 0), withConv = kw.bool('resamp_with_conv', true);
    const attnRes = kw.intList('attn_resolutions'), attnType = attnTypeOf(kw);
    // temb is registered first (official key order); the ResnetBlocks get temb_proj even when
    // use_timestep is false, as in the official code.
    this.temb = this.useTimestep ? this.child('temb', new TimestepMlp(this.ch, this.tembCh)) : null;
    this.conv_in = this.child('conv_in', new Conv2d(this.inChannels, this.ch, 3, { padding: 1 }));
    const d = buildDown(this, { ch: this.ch, chMult, nRes: this.numResBlocks, attnRes, dropout, withConv,
      resolution: this.resolution, tembCh: this.tembCh, attnType });
    this.down = d.down;
    this.mid = this.child('mid', new Mid(d.blockIn, this.tembCh, dropout, attnType));
    const inChMult = [1, ...chMult];
    const built = buildUp({
      ch: this.ch, chMult, blocks: this.numResBlocks + 1, attnRes, dropout, withConv, tembCh: this.tembCh, attnType,
      blockIn: d.blockIn, currRes: d.currRes,
      // skip_in = ch*ch_mult[i] for all but the last block of a level, which takes ch*in_ch_mult[i].
      skipIn: (i, j) => this.ch * (j === this.numResBlocks ? inChMult[i]! : chMult[i]!),
    });
    this.up = this.child('up', built.up);
    this.norm_out = this.child('norm_out', Normalize(built.blockIn));
    this.conv_out = this.child('conv_out', new Conv2d(built.blockIn, kw.int('out_ch'), 3, { padding: 1 }));
  }

  forward(x: Tensor, t: Tensor | null = null, context: Tensor | null = null): Tensor {
    const xin = context ? T.cat([x, context], 1) : x; // aligned context, concatenated on channels
    let temb: Tensor | null = null;
    if (this.temb) {
      if (!t) throw new ShapeError('Model: use_timestep is true but no timesteps were given');
      temb = getTimestepEmbedding(t, this.ch); // [N, ch]
      temb = this.temb.dense.at(1).forward(nonlinearity(this.temb.dense.at(0).forward(temb))); // [N, 4ch]
    }
    const hs: Tensor[] = [this.conv_in.forward(xin)];
    for (const lvl of this.down) {
      for (let j = 0; j < lvl.block.length; j++) {
        let h = lvl.block.at(j).forward(hs[hs.length - 1]!, temb);
        if (lvl.attn.length > 0) h = lvl.attn.at(j).forward(h);
        hs.push(h);
      }
      if (lvl.resample) hs.push(lvl.resample.forward(hs[hs.length - 1]!));
    }
    let h = this.mid.forward(hs[hs.length - 1]!, temb);
    for (let i = this.numResolutions - 1; i >= 0; i--) {
      const lvl = this.up.at(i);
      h = lvl.run(h, temb, hs);
      if (lvl.resample) h = lvl.resample.forward(h);
    }
    return this.conv_out.forward(nonlinearity(this.norm_out.forward(h)));
  }

  get_last_layer(): Tensor {
    return this.conv_out.weight;
  }
}
