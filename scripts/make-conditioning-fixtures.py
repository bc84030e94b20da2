#!/usr/bin/env python3
"""Small fixtures for test/models/latent.test.ts (PyTorch 1.13, run once, outputs committed).

    /usr/bin/python3 scripts/make-conditioning-fixtures.py

Writes into test/fixtures/conditioning/:
  x_transformer.safetensors  a line-by-line transcription (torch only: einops is not installed
                             here) of ldm/modules/x_transformer.py on the path TransformerEmbedder /
                             BERTEmbedder use: TransformerWrapper(num_tokens, max_seq_len,
                             attn_layers=Encoder(dim, depth, heads, attn_dim_head)) with the
                             official state_dict keys; random weights; `in.tokens` [2, 12] ->
                             `out.embeddings` (return_embeddings=True) and `out.logits`.
  interpolate.safetensors    torch.nn.functional.interpolate of `in.x` [2, 3, 7, 9] in the modes
                             and sizes listed in the metadata `cases` (out.<case>).
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'conditioning')
ST = {torch.float32: 'F32', torch.int64: 'I64'}


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


# ---- transcription of ldm/modules/x_transformer.py (the Encoder path, no masks) ----

class Attention(nn.Module):
    def __init__(self, dim, dim_head=64, heads=8):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        inner_dim = dim_head * heads
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_k = nn.Linear(dim, inner_dim, bias=False)
        self.to_v = nn.Linear(dim, inner_dim, bias=False)
        self.dropout = nn.Dropout(0.)
        self.to_out = nn.Linear(inner_dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        h = self.heads
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        # rearrange(t, 'b n (h d) -> b h n d', h=h)
        q, k, v = map(lambda t: t.reshape(b, n, h, -1).permute(0, 2, 1, 3), (q, k, v))
        dots = torch.einsum('b h i d, b h j d -> b h i j', q, k) * self.scale
        attn = self.dropout(dots.softmax(dim=-1))
        out = torch.einsum('b h i j, b h j d -> b h i d', attn, v)
        out = out.permute(0, 2, 1, 3).reshape(b, n, -1)  # 'b h n d -> b n (h d)'
        return self.to_out(out)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner_dim = int(dim * mult)
        self.net = nn.Sequential(nn.Sequential(nn.Linear(dim, inner_dim), nn.GELU()), nn.Dropout(0.), nn.Linear(inner_dim, dim))

    def forward(self, x):
        return self.net(x)


class Residual(nn.Module):
    def forward(self, x, residual):
        return x + residual


class Encoder(nn.Module):
    def __init__(self, dim, depth, heads=8, attn_dim_head=64):
        super().__init__()
        self.dim = dim
        self.layers = nn.ModuleList([])
        self.layer_types = ('a', 'f') * depth
        for t in self.layer_types:
            layer = Attention(dim, dim_head=attn_dim_head, heads=heads) if t == 'a' else FeedForward(dim)
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), layer, Residual()]))

    def forward(self, x):
        for norm, block, residual_fn in self.layers:
            residual = x
            x = norm(x)  # pre_norm
            x = residual_fn(block(x), residual)
        return x


class AbsolutePositionalEmbedding(nn.Module):
    def __init__(self, dim, max_seq_len):
        super().__init__()
        self.emb = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, x):
        n = torch.arange(x.shape[1], device=x.device)
        return self.emb(n)[None, :, :]


class TransformerWrapper(nn.Module):
    def __init__(self, num_tokens, max_seq_len, attn_layers):
        super().__init__()
        dim = attn_layers.dim
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = AbsolutePositionalEmbedding(dim, max_seq_len)
        self.emb_dropout = nn.Dropout(0.)
        self.project_emb = nn.Identity()
        self.attn_layers = attn_layers
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_emb.weight, std=0.02)
        self.to_logits = nn.Linear(dim, num_tokens)

    def forward(self, x, return_embeddings=False):
        x = self.token_emb(x)
        x = x + self.pos_emb(x)
        x = self.emb_dropout(x)
        x = self.project_emb(x)
        x = self.attn_layers(x)
        x = self.norm(x)
        return x if return_embeddings else self.to_logits(x)


def x_transformer():
    torch.manual_seed(20240601)
    cfg = dict(num_tokens=40, max_seq_len=12, dim=32, depth=2, heads=2, dim_head=16)
    m = TransformerWrapper(cfg['num_tokens'], cfg['max_seq_len'],
                           Encoder(cfg['dim'], cfg['depth'], heads=cfg['heads'], attn_dim_head=cfg['dim_head'])).eval()
    with torch.no_grad():  # random non-trivial norms and biases
        for name, p in m.named_parameters():
            if name.endswith('bias') or '.0.weight' in name and p.ndim == 1 or name == 'norm.weight':
                p.add_(0.1 * torch.randn_like(p))
    tokens = torch.tensor([[2, 7, 11, 3] + [0] * 8, [2, 5, 9, 13, 17, 21, 25, 29, 33, 37, 39, 3]], dtype=torch.int64)
    with torch.no_grad():
        emb = m(tokens, return_embeddings=True)
        logits = m(tokens)
    t = {k: v for k, v in m.state_dict().items()}
    t['in.tokens'] = tokens
    t['out.embeddings'] = emb
    t['out.logits'] = logits
    write_safetensors(os.path.join(OUT, 'x_transformer.safetensors'), t, {
        'config': json.dumps(cfg), 'state_dict_keys': json.dumps(list(m.state_dict().keys())),
    })


def interpolate():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 7, 9)
    cases = {
        'nearest_s0.5': dict(scale_factor=0.5, mode='nearest'),
        'nearest_5x13': dict(size=(5, 13), mode='nearest'),
        'nearest_s2': dict(scale_factor=2.0, mode='nearest'),
        'bilinear_s0.5': dict(scale_factor=0.5, mode='bilinear'),
        'bilinear_s0.75': dict(scale_factor=0.75, mode='bilinear'),
        'bilinear_4x13': dict(size=(4, 13), mode='bilinear'),
        'bilinear_ac_5x6': dict(size=(5, 6), mode='bilinear', align_corners=True),
        'bicubic_s2': dict(scale_factor=2.0, mode='bicubic'),
        'bicubic_5x4': dict(size=(5, 4), mode='bicubic'),
        'area_3x4': dict(size=(3, 4), mode='area'),
    }
    t = {'in.x': x}
    for name, kw in cases.items():
        t['out.' + name] = F.interpolate(x, **kw)
    write_safetensors(os.path.join(OUT, 'interpolate.safetensors'), t, {
        'cases': json.dumps({k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()} for k, v in cases.items()}),
    })


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    x_transformer()
    interpolate()
    print('wrote', OUT)
