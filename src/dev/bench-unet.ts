// The benchmark network W4: exactly the small DDPM UNet of shared/bench/unet_torch.py (base 64,
// mults (1,2,2), 2 ResBlocks per level, GroupNorm(32)+SiLU, one 4-head self-attention block at
// 16x16, input 3x32x32; 6.14 M parameters), so our training step and sampling forward pass can be
// timed against PyTorch's on the same work. Dev tooling (dev/), not a model of the library: those are in models/.

import * as T from '../tensor/index.ts';
import { Tensor } from '../tensor/index.ts';
import { Conv2d, GroupNorm, Linear, Module, ModuleList, Sequential, SiLU } from '../nn/index.ts';

class ResBlock extends Module {
  readonly n1: GroupNorm; readonly c1: Conv2d; readonly t: Linear; readonly n2: GroupNorm; readonly c2: Conv2d;
  readonly skip: Conv2d | null;
  constructor(cin: number, cout: number, tdim: number) {
    super();
    this.n1 = this.child('n1', new GroupNorm(32, cin));
    this.c1 = this.child('c1', new Conv2d(cin, cout, 3, { padding: 1 }));
    this.t = this.child('t', new Linear(tdim, cout));
    this.n2 = this.child('n2', new GroupNorm(32, cout));
    this.c2 = this.child('c2', new Conv2d(cout, cout, 3, { padding: 1 }));
    this.skip = this.optionalChild('skip', cin !== cout ? new Conv2d(cin, cout, 1) : null);
  }
  forward(x: Tensor, te: Tensor): Tensor {
    let h = this.c1.forward(this.n1.forwardSilu(x));                     // [B, cout, H, W]
    h = T.add(h, T.reshape(this.t.forward(te), [te.dim(0), -1, 1, 1]));
    h = this.c2.forward(this.n2.forwardSilu(h));
    return T.add(h, this.skip ? this.skip.forward(x) : x);
  }
}

class Attn extends Module {
  readonly n: GroupNorm; readonly qkv: Conv2d; readonly proj: Conv2d;
  constructor(c: number, readonly heads = 4) {
    super();
    this.n = this.child('n', new GroupNorm(32, c));
    this.qkv = this.child('qkv', new Conv2d(c, 3 * c, 1));
    this.proj = this.child('proj', new Conv2d(c, c, 1));
  }
  forward(x: Tensor): Tensor {
    const [b, c, hh, ww] = x.shape as [number, number, number, number];
    const d = c / this.heads, hw = hh * ww;
    // [B, 3C, H, W] -> [3, B, heads, HW, d]
    const qkv = T.permute(T.reshape(this.qkv.forward(this.n.forward(x)), [b, 3, this.heads, d, hw]), [1, 0, 2, 4, 3]);
    const [q, k, v] = T.chunk(qkv, 3, 0) as [Tensor, Tensor, Tensor];
    const o = T.scaledDotProductAttention(T.reshape(q, [b * this.heads, hw, d]), T.reshape(k, [b * this.heads, hw, d]),
      T.reshape(v, [b * this.heads, hw, d]));                            // [B*heads, HW, d]
    const oc = T.reshape(T.permute(T.reshape(o, [b, this.heads, hw, d]), [0, 1, 3, 2]), [b, c, hh, ww]);
    return T.add(x, this.proj.forward(oc));
  }
}

type Block = { res?: ResBlock; attn?: Attn; conv?: Conv2d; up?: boolean };

export class BenchUNet extends Module {
  readonly temb: Sequential; readonly cin: Conv2d; readonly out: Sequential;
  private readonly downBlocks: Block[] = [];
  private readonly midBlocks: ResBlock[] = [];
  private readonly upBlocks: Block[] = [];
  constructor(readonly ch = 64, mults: readonly number[] = [1, 2, 2], nres = 2, attnRes: readonly number[] = [16], img = 32) {
    super();
    const td = ch * 4;
    this.temb = this.child('temb', new Sequential(new Linear(ch, td), new SiLU(), new Linear(td, td), new SiLU()));
    this.cin = this.child('cin', new Conv2d(3, ch, 3, { padding: 1 }));
    const down = this.child('down', new ModuleList());
    const chans = [ch];
    let c = ch, res = img, nattn = 0;
    mults.forEach((m, li) => {
      for (let r = 0; r < nres; r++) {
        const blk = new ModuleList();
        const res_ = blk.push(new ResBlock(c, ch * m, td));
        c = ch * m;
        const b: Block = { res: res_ };
        if (attnRes.includes(res) && r === nres - 1 && nattn === 0) { b.attn = blk.push(new Attn(c)); nattn++; }
        down.push(blk); this.downBlocks.push(b); chans.push(c);
      }
      if (li !== mults.length - 1) {
        const blk = new ModuleList();
        this.downBlocks.push({ conv: blk.push(new Conv2d(c, c, 3, { stride: 2, padding: 1 })) });
        down.push(blk); chans.push(c); res /= 2;
      }
    });
    const mid = this.child('mid', new ModuleList());
    for (let i = 0; i < 2; i++) this.midBlocks.push(mid.push(new ResBlock(c, c, td)));
    const up = this.child('up', new ModuleList());
    [...mults.entries()].reverse().forEach(([li, m]) => {
      for (let r = 0; r < nres + 1; r++) {
        const blk = new ModuleList();
        this.upBlocks.push({ res: blk.push(new ResBlock(c + chans.pop()!, ch * m, td)) });
        c = ch * m;
        up.push(blk);
      }
      if (li !== 0) {
        const blk = new ModuleList();
        blk.push(new Module()); // nn.Upsample holds no weights; keeps index 1 for the conv as in torch
        this.upBlocks.push({ conv: blk.push(new Conv2d(c, c, 3, { padding: 1 })), up: true });
        up.push(blk); res *= 2;
      }
    });
    this.out = this.child('out', new Sequential(new GroupNorm(32, c), new SiLU(), new Conv2d(c, 3, 3, { padding: 1 })));
  }

  forward(x: Tensor, t: Tensor): Tensor {
    const half = this.ch / 2;
    const freqs = new Float32Array(half).map((_, i) => Math.exp(-Math.log(10000) * i / half));
    const tf = T.toFloat(t);
    const e = T.mul(T.reshape(tf, [-1, 1]), T.tensor(freqs, [1, half]));  // [B, half]
    const te = this.temb.forward(T.cat([T.sin(e), T.cos(e)], 1));        // [B, 4ch]
    let h = this.cin.forward(x);
    const hs = [h];
    // Each block in T.tidy, as UNetModel does: under T.inference its dead buffers serve the next.
    for (const b of this.downBlocks) {
      const hi = h;
      h = T.tidy(() => b.res ? (b.attn ? b.attn.forward(b.res.forward(hi, te)) : b.res.forward(hi, te)) : b.conv!.forward(hi));
      hs.push(h);
    }
    for (const m of this.midBlocks) { const hi = h; h = T.tidy(() => m.forward(hi, te)); }
    for (const b of this.upBlocks) {
      const hi = h;
      h = T.tidy(() => b.res ? b.res.forward(T.cat([hi, hs.pop()!], 1), te) : b.conv!.forward(T.upsampleNearest(hi, 2)));
    }
    return this.out.forward(h);
  }
}
