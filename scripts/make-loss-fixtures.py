#!/usr/bin/env python3
"""Small fixtures for test/models/losses.test.ts (PyTorch 1.13, run once, outputs committed).

    /usr/bin/python3 scripts/make-loss-fixtures.py [--actnorm-check DIR]

Writes into test/fixtures/losses/:
  lpips_vgg.pth                   torch.save of an OrderedDict in the layout of the released LPIPS
                                  heads file `vgg.pth` (lin0..lin4.model.1.weight, [1, C, 1, 1],
                                  C = 64, 128, 256, 512, 512), random non-negative values.
  lpips_vgg.expected.safetensors  the same tensors (independent minimal safetensors writer).

With --actnorm-check DIR it also writes DIR/tm_nlayer_disc_actnorm.safetensors, a parity-format
file for NLayerDiscriminator(use_actnorm=True) made with a line-by-line transcription of
taming/modules/util.py ActNorm and taming/modules/discriminator/model.py (not committed: the
official harness makes the real one). It checks that the parity handler needs no new code.
With --lpips-check DIR it writes DIR/tm_lpips_check.safetensors: the whole LPIPS (VGG16 slices
built from torchvision's cfg 'D' indices, random weights, no download) on two 16x16 images, with
the VGG taps, to check the full-network path of the handler (not committed).
"""
import collections
import json
import os
import struct
import sys

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'losses')
ST = {torch.float32: 'F32', torch.int64: 'I64', torch.uint8: 'U8'}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        b = t.numpy().tobytes()
        header[name] = {'dtype': ST[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def lpips_heads():
    g = torch.Generator().manual_seed(1234)
    sd = collections.OrderedDict()
    for k, c in enumerate([64, 128, 256, 512, 512]):
        sd['lin%d.model.1.weight' % k] = torch.randn(1, c, 1, 1, generator=g).abs() / c ** 0.5
    os.makedirs(OUT, exist_ok=True)
    torch.save(sd, os.path.join(OUT, 'lpips_vgg.pth'))
    write_safetensors(os.path.join(OUT, 'lpips_vgg.expected.safetensors'), dict(sd))


# ---- transcription of the official ActNorm / NLayerDiscriminator (taming-transformers) ----

class ActNorm(nn.Module):
    def __init__(self, num_features, logdet=False, affine=True, allow_reverse_init=False):
        assert affine
        super().__init__()
        self.logdet = logdet
        self.loc = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.allow_reverse_init = allow_reverse_init
        self.register_buffer('initialized', torch.tensor(0, dtype=torch.uint8))

    def initialize(self, input):
        with torch.no_grad():
            flatten = input.permute(1, 0, 2, 3).contiguous().view(input.shape[1], -1)
            mean = flatten.mean(1).unsqueeze(1).unsqueeze(2).unsqueeze(3).permute(1, 0, 2, 3)
            std = flatten.std(1).unsqueeze(1).unsqueeze(2).unsqueeze(3).permute(1, 0, 2, 3)
            self.loc.data.copy_(-mean)
            self.scale.data.copy_(1 / (std + 1e-6))

    def forward(self, input):
        if self.training and self.initialized.item() == 0:
            self.initialize(input)
            self.initialized.fill_(1)
        return self.scale * (input + self.loc)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=64, n_layers=3, use_actnorm=False):
        super().__init__()
        norm_layer = nn.BatchNorm2d if not use_actnorm else ActNorm
        use_bias = norm_layer != nn.BatchNorm2d
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev = nf_mult
            nf_mult = min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias),
                         norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev = nf_mult
        nf_mult = min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.main = nn.Sequential(*sequence)

    def forward(self, input):
        return self.main(input)


def actnorm_check(out_dir):
    seed = 777
    init = {'input_nc': 3, 'ndf': 16, 'n_layers': 3, 'use_actnorm': True}
    torch.manual_seed(seed)
    m = NLayerDiscriminator(**init).apply(weights_init)
    x = torch.randn(2, 3, 32, 32) * 2 + 0.5
    x2 = torch.randn(2, 3, 32, 32)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    tensors = dict(sd)
    tensors['in.x'], tensors['in.x2'] = x, x2
    outs = {}
    with torch.no_grad():
        m.eval()
        outs['out.eval_init.output'] = m(x)
        m.train()
        outs['out.train.output'] = m(x)
        for k, v in m.state_dict().items():
            if k.endswith(('.loc', '.scale', '.initialized')):
                outs['out.train.' + k] = v.clone()
        outs['out.train2.output'] = m(x2)  # already initialised: no re-init
        m.eval()
        outs['out.eval_after.output'] = m(x2)
    tensors.update(outs)
    call = {
        'eval_init': 'out.eval_init.output = copy.eval()(in.x)',
        'train': 'm = copy.train(); out.train.output = m(in.x); state after it',
        'train2': 'out.train2.output = m(in.x2) (second train call)',
        'eval_after': 'm.eval(); out.eval_after.output = m(in.x2)',
    }
    meta = {
        'fixture': 'tm_nlayer_disc_actnorm',
        'config': json.dumps({'class': 'taming.modules.discriminator.model.NLayerDiscriminator', 'init': init,
                              'call': call, 'seed': seed}),
        'state_dict_keys': json.dumps(list(sd.keys())),
        'input_keys': json.dumps(['in.x', 'in.x2']),
        'output_keys': json.dumps(list(outs.keys())),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, 'tm_nlayer_disc_actnorm.safetensors'), tensors, meta)


def lpips_check(out_dir):
    torch.manual_seed(99)
    cfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']
    feats, cin = [], 3
    for v in cfg:
        if v == 'M':
            feats.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(cin, v, kernel_size=3, padding=1)
            nn.init.normal_(conv.weight, 0.0, (2.0 / (cin * 9)) ** 0.5)  # He init keeps deep taps image-dependent
            nn.init.normal_(conv.bias, 0.0, 0.01)
            feats += [conv, nn.ReLU(inplace=True)]
            cin = v
    net = nn.Module()
    bounds = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]
    for s_, (a, b) in enumerate(bounds):
        seq = nn.Sequential()
        for i in range(a, b):
            seq.add_module(str(i), feats[i])
        net.add_module('slice%d' % (s_ + 1), seq)
    lins = [nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False)) for c in [64, 128, 256, 512, 512]]
    for l in lins:
        l[1].weight.data.abs_()
    shift = torch.Tensor([-.030, -.088, -.188])[None, :, None, None]
    scale = torch.Tensor([.458, .448, .450])[None, :, None, None]
    x, y = torch.randn(2, 3, 16, 16).clamp(-1, 1), torch.randn(2, 3, 16, 16).clamp(-1, 1)
    tensors = {'scaling_layer.shift': shift, 'scaling_layer.scale': scale}
    for k, v in net.state_dict().items():
        tensors['net.' + k] = v
    for k, l in enumerate(lins):
        tensors['lin%d.model.1.weight' % k] = l[1].weight.data
    sd_keys = list(tensors.keys())
    outs = {}
    with torch.no_grad():
        def taps(img):
            h, r = (img - shift) / scale, []
            for s_ in range(5):
                h = getattr(net, 'slice%d' % (s_ + 1))(h)
                r.append(h)
            return r
        t0, t1 = taps(x), taps(y)
        val = 0
        for k in range(5):
            n0 = t0[k] / (torch.sqrt(torch.sum(t0[k] ** 2, dim=1, keepdim=True)) + 1e-10)
            n1 = t1[k] / (torch.sqrt(torch.sum(t1[k] ** 2, dim=1, keepdim=True)) + 1e-10)
            lk = lins[k].eval()((n0 - n1) ** 2)
            outs['out.lin.%d' % k] = lk
            val = val + lk.mean([2, 3], keepdim=True)
            outs['out.feats0.%d' % k], outs['out.feats1.%d' % k] = t0[k], t1[k]
        outs['out.lpips'] = val
    tensors.update(outs)
    tensors['in.x'], tensors['in.y'] = x, y
    meta = {
        'fixture': 'tm_lpips_check',
        'config': json.dumps({'class': 'taming.modules.losses.lpips.LPIPS', 'init': {'use_dropout': True}, 'eval': True}),
        'state_dict_keys': json.dumps(sd_keys), 'input_keys': json.dumps(['in.x', 'in.y']),
        'output_keys': json.dumps(list(outs.keys())),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, 'tm_lpips_check.safetensors'), tensors, meta)


if __name__ == '__main__':
    lpips_heads()
    if '--actnorm-check' in sys.argv:
        actnorm_check(sys.argv[sys.argv.index('--actnorm-check') + 1])
    if '--lpips-check' in sys.argv:
        lpips_check(sys.argv[sys.argv.index('--lpips-check') + 1])
