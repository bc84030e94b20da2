// NLayerDiscriminator (the PatchGAN of pix2pix) and `weights_init` of
// taming/modules/discriminator/model.py. Keys are the official `main.<i>.*` of its nn.Sequential.
// The normalisation is BatchNorm2d (nn) or ActNorm (actnorm.ts); with BatchNorm the inner convs
// have no bias. Not here: the GAN losses (contperceptual.ts).

import { F, Generator, kwargs, readOptions, schemaKeys, type Schema } from '../../util/index.ts';
import type { Tensor } from '../../tensor/index.ts';
import { BatchNorm2d, Conv2d, ConvTranspose2d, type Layer, LeakyReLU, Module, Sequential, initGenerator } from '../../nn/index.ts';
import { ActNorm } from './actnorm.ts';

export interface NLayerDiscriminatorOptions {
  input_nc?: number;
  ndf?: number;
  n_layers?: number;
  use_actnorm?: boolean;
}

export const NLAYER_DISCRIMINATOR_SCHEMA: Schema<NLayerDiscriminatorOptions> = { input_nc: F.int, ndf: F.int, n_layers: F.int, use_actnorm: F.bool };
export const NLAYER_DISCRIMINATOR_KEYS = schemaKeys(NLAYER_DISCRIMINATOR_SCHEMA);

/** `NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3, use_actnorm=False)`: conv 4x4 stride 2 +
 *  LeakyReLU(0.2); n_layers-1 times conv stride 2 + norm + LeakyReLU; conv stride 1 + norm +
 *  LeakyReLU; conv stride 1 to one channel. Padding 1 everywhere. [N, C, H, W] -> [N, 1, h, w]. */
export class NLayerDiscriminator extends Module implements Layer {
  readonly main: Sequential;
  readonly useActnorm: boolean;

  constructor(opts: NLayerDiscriminatorOptions = {}) {
    super();
    const args = kwargs('NLayerDiscriminator', opts, NLAYER_DISCRIMINATOR_KEYS);
    const inputNc = args.posInt('input_nc', 3), ndf = args.posInt('ndf', 64), nLayers = args.posInt('n_layers', 3);
    const ua = args.bool('use_actnorm', false);
    this.useActnorm = ua;
    const norm = (c: number): Module & Layer => (ua ? new ActNorm(c) : new BatchNorm2d(c));
    const useBias = ua; // no bias before BatchNorm2d (it has affine parameters)
    const kw = 4, padw = 1;
    const seq: (Module & Layer)[] = [new Conv2d(inputNc, ndf, kw, { stride: 2, padding: padw }), new LeakyReLU(0.2)];
    let nfMult = 1, nfMultPrev = 1;
    for (let n = 1; n < nLayers; n++) {
      nfMultPrev = nfMult;
      nfMult = Math.min(2 ** n, 8);
      seq.push(new Conv2d(ndf * nfMultPrev, ndf * nfMult, kw, { stride: 2, padding: padw, bias: useBias }), norm(ndf * nfMult), new LeakyReLU(0.2));
    }
    nfMultPrev = nfMult;
    nfMult = Math.min(2 ** nLayers, 8);
    seq.push(new Conv2d(ndf * nfMultPrev, ndf * nfMult, kw, { stride: 1, padding: padw, bias: useBias }), norm(ndf * nfMult), new LeakyReLU(0.2));
    seq.push(new Conv2d(ndf * nfMult, 1, kw, { stride: 1, padding: padw }));
    this.main = this.child('main', new Sequential(...seq));
  }

  forward(input: Tensor): Tensor {
    return this.main.forward(input);
  }
}

/** Modules in `nn.Module.apply` order (children first, then the module itself). */
function applyOrder(m: Module): Module[] {
  return [...m.namedChildren().flatMap(([, c]) => applyOrder(c)), m];
}

/** `weights_init` applied with `.apply(weights_init)`: class name containing 'Conv' -> weight ~
 *  N(0, 0.02) (bias keeps its default init); 'BatchNorm' -> weight ~ N(1, 0.02), bias = 0;
 *  everything else (ActNorm, LeakyReLU) untouched. Draws from `gen` (the global init generator,
 *  torch's global RNG, when omitted) in torch's apply order. Returns the module. */
export function weightsInit<M extends Module>(module: M, gen: Generator = initGenerator()): M {
  for (const m of applyOrder(module)) {
    if (m instanceof Conv2d || m instanceof ConvTranspose2d) {
      m.weight.data = gen.normal(m.weight.size, 0, 0.02);
    } else if (m instanceof BatchNorm2d) {
      m.weight.data = gen.normal(m.weight.size, 1, 0.02);
      m.bias.data = new Float32Array(m.bias.size);
    }
  }
  return module;
}

/** Build from the official kwargs (taming.modules.discriminator.model.NLayerDiscriminator); like
 *  the official constructor, no weights_init (LPIPSWithDiscriminator applies it). */
export function makeNLayerDiscriminator(p: Readonly<Record<string, unknown>>): NLayerDiscriminator {
  return new NLayerDiscriminator(readOptions('NLayerDiscriminator', p, NLAYER_DISCRIMINATOR_SCHEMA));
}
