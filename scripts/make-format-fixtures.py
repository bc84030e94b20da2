#!/usr/bin/env python3
"""Make the small checkpoint fixtures of test/formats (PyTorch 1.13, run once, outputs committed).

    /usr/bin/python3 scripts/make-format-fixtures.py

Writes into test/fixtures/formats/:
  lightning.ckpt             torch.save (protocol 2) of a Lightning-style dict: state_dict with
                             F32/F64/I64/F16/BF16/I32/U8/I8/BOOL tensors, a transposed
                             (non-contiguous) view, views sharing one storage, a 0-d and an empty
                             tensor, a Parameter, a tensor with a Python attribute (torch 1.13
                             drops it); global_step,
                             epoch, hyper_parameters of every plain kind.
  lightning-p4.ckpt          the same with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL, ...).
  lightning-p5.ckpt          the same with pickle_protocol=5.
  lightning-deflate.ckpt     lightning.ckpt re-zipped with deflate compression.
  lightning.expected.safetensors   every state_dict tensor, contiguous (written by the small
                             independent safetensors writer below); metadata: global_step,
                             epoch and the state_dict key order.
  vgg.pth                    torch.save(model.state_dict()) of a torchvision-VGG-like module
                             (features.0.weight, ..., BatchNorm buffers, classifier).
  vgg.expected.safetensors   its tensors.
  callbacks.ckpt             a state_dict plus a pickled user object and a numpy scalar (globals
                             outside the allow-list: rejected by default, inert stubs on request).
  malicious-os-system.ckpt   a torch zip whose data.pkl calls os.system (hand-written pickle).
  malicious-eval.ckpt        torch.save of an object whose __reduce__ is builtins.eval.
  legacy.pth                 torch.save(..., _use_new_zipfile_serialization=False) (its storage
                             keys are memory addresses: the legacy files differ between runs).
  lightning-legacy.ckpt      the Lightning dict of lightning.ckpt in the legacy format.
  lightning-legacy-p4.ckpt   the same with pickle_protocol=4.
  malicious-legacy.pth       the legacy format with an object whose __reduce__ is builtins.eval.
Nothing in these files is ever unpickled by Python here except by torch.load for the self-check.
"""
import collections
import json
import os
import struct
import zipfile

import numpy as np
import torch

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # reproducible zip timestamps
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'formats')
ST_DTYPES = {
    torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64', torch.int32: 'I32',
    torch.float16: 'F16', torch.bfloat16: 'BF16', torch.uint8: 'U8', torch.int8: 'I8', torch.bool: 'BOOL',
}


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """An independent minimal writer (the official package is not installed here)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name in sorted(tensors):
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {'dtype': ST_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def lightning_checkpoint():
    g = torch.Generator().manual_seed(0)
    base = torch.arange(16, dtype=torch.float32).reshape(4, 4) * 0.25 - 1.0
    w = torch.randn(2, 3, generator=g)
    attr = torch.tensor([1.5, -2.5])
    attr.note = 'a python attribute'  # torch 1.13 drops it (2.x pickles _rebuild_from_type_v2)
    sd = collections.OrderedDict()
    sd['model.w'] = w
    sd['model.t'] = w.t()  # [3, 2] non-contiguous view of w's storage
    sd['model.base'] = base
    sd['model.rows'] = base[1:3]  # shares base's storage, offset 4
    sd['model.col'] = base[:, 1]  # shares base's storage, stride 4
    sd['model.d'] = torch.tensor([1 / 3, -2.0, 1e-300, 0.1], dtype=torch.float64)
    sd['model.i'] = torch.tensor([-2, 0, 2 ** 40], dtype=torch.int64)
    sd['model.h'] = torch.tensor([0.5, -1.25, 65504.0], dtype=torch.float16)
    sd['model.bf'] = torch.tensor([1.0, -3.5], dtype=torch.bfloat16)
    sd['model.i32'] = torch.tensor([-7, 7], dtype=torch.int32)
    sd['model.u8'] = torch.tensor([0, 255], dtype=torch.uint8)
    sd['model.i8'] = torch.tensor([-128, 127], dtype=torch.int8)
    sd['model.b'] = torch.tensor([True, False, True])
    sd['model.s'] = torch.tensor(3.25)  # 0-d
    sd['model.e'] = torch.zeros(0, 3)  # empty
    sd['model.p'] = torch.nn.Parameter(torch.tensor([0.125, 8.0]))
    sd['model.attr'] = attr
    sd['model.nc3'] = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4).permute(2, 0, 1)  # [4, 2, 3]
    ckpt = {
        'state_dict': sd,
        'global_step': 3,
        'epoch': 1,
        'pytorch-lightning_version': '1.4.2',
        'hyper_parameters': {
            'lr': 1e-4, 'betas': (0.9, 0.999), 'flag': True, 'off': False, 'none': None,
            'big': 2 ** 70, 'neg': -5, 'i32': -70000, 'name': 'ünï', 'ints': {1: 'a', 2: 'b'},
            'raw': b'\x00\xff', 'set': {3}, 'nested': [[1, 2], {'k': 'v'}],
        },
    }
    expected = {k: v.detach().clone() for k, v in sd.items()}
    return ckpt, expected


class UserCallback:
    """Stands for pytorch_lightning's ModelCheckpoint: a class outside any allow-list."""

    def __init__(self):
        self.monitor = 'val/loss'
        self.best = np.float64(0.5)


class Evil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/ldm-formats-pwned')",))


def torch_zip(path, pickle_bytes, archive='archive'):
    """A torch.save-shaped zip holding a hand-written data.pkl (stored entries)."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(f'{archive}/data.pkl', FIXED_TIME), pickle_bytes)
        z.writestr(zipfile.ZipInfo(f'{archive}/version', FIXED_TIME), '3\n')


def main():
    os.makedirs(OUT, exist_ok=True)
    p = lambda name: os.path.join(OUT, name)

    ckpt, expected = lightning_checkpoint()
    torch.save(ckpt, p('lightning.ckpt'))
    torch.save(ckpt, p('lightning-p4.ckpt'), pickle_protocol=4)
    torch.save(ckpt, p('lightning-p5.ckpt'), pickle_protocol=5)
    with zipfile.ZipFile(p('lightning.ckpt')) as zin, \
            zipfile.ZipFile(p('lightning-deflate.ckpt'), 'w', zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), zin.read(info.filename), zipfile.ZIP_DEFLATED)
    meta = {'global_step': '3', 'epoch': '1', 'keys': json.dumps(list(expected))}
    write_safetensors(p('lightning.expected.safetensors'), expected, meta)

    torch.manual_seed(1)
    vgg = torch.nn.Module()
    vgg.features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    vgg.classifier = torch.nn.Sequential(torch.nn.Linear(8, 2))
    vgg.features[3].running_mean.uniform_(-1, 1)
    vgg.features[3].num_batches_tracked.fill_(7)
    torch.save(vgg.state_dict(), p('vgg.pth'))
    write_safetensors(p('vgg.expected.safetensors'), dict(vgg.state_dict()))

    torch.save({'state_dict': collections.OrderedDict(w=torch.ones(2)), 'callbacks': {'cb': UserCallback()}},
               p('callbacks.ckpt'))

    # GLOBAL 'os system', BINUNICODE argument, TUPLE1, REDUCE, STOP: never executed by the reader.
    cmd = b'touch /tmp/ldm-formats-pwned'
    evil = b'\x80\x02cos\nsystem\nX' + struct.pack('<I', len(cmd)) + cmd + b'\x85R.'
    torch_zip(p('malicious-os-system.ckpt'), evil)
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': Evil()}, p('malicious-eval.ckpt'), pickle_protocol=4)

    torch.save({'w': torch.ones(2)}, p('legacy.pth'), _use_new_zipfile_serialization=False)
    torch.save(ckpt, p('lightning-legacy.ckpt'), _use_new_zipfile_serialization=False)
    torch.save(ckpt, p('lightning-legacy-p4.ckpt'), _use_new_zipfile_serialization=False, pickle_protocol=4)
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': Evil()}, p('malicious-legacy.pth'),
               _use_new_zipfile_serialization=False)

    # Self-check with PyTorch (safe files only).
    for name in ['lightning.ckpt', 'lightning-p4.ckpt', 'lightning-p5.ckpt', 'lightning-deflate.ckpt',
                 'lightning-legacy.ckpt', 'lightning-legacy-p4.ckpt']:
        back = torch.load(p(name))
        for k, v in expected.items():
            assert torch.equal(back['state_dict'][k], v), (name, k)
    for name in sorted(os.listdir(OUT)):
        print(f'{os.path.getsize(p(name)):8d}  {name}')


if __name__ == '__main__':
    main()
