#!/usr/bin/env python3
"""Writes test/fixtures/rng/torch_rng.json: reference draws of PyTorch's CPU generator.

This is the reference for test/util/rng.test.ts, which checks src/util/rng.ts against it. Each
case seeds torch's default generator, makes a sequence of calls on it, and records what each
call returned: all values for small calls; for big ones the first and last 4 values, the
sequential float64 sum and an FNV-1a hash of the float32 bit patterns (or of the integers).
It is not a test by itself and needs nothing but torch.

Run with the PyTorch 1.13 CPU build whose numbers ldm.ts reproduces (x86-64, "CPU capability
usage: AVX2"):
    /usr/bin/python3 scripts/make-rng-fixture.py
"""

import json
import os
import re
import struct

import numpy as np
import torch

FULL_MAX = 20  # calls with at most this many values store them all
EDGE = 4  # otherwise: this many values at each end


def fnv_f32(values):
    h = 0x811C9DC5
    for v in values:
        (w,) = struct.unpack("<I", struct.pack("<f", v))
        h = ((h ^ w) * 0x01000193) & 0xFFFFFFFF
    return h


def fnv_int(values):
    # non-negative integers < 2^53: hash low word then high word
    h = 0x811C9DC5
    for v in values:
        assert 0 <= v < 2**53
        for w in (v & 0xFFFFFFFF, v >> 32):
            h = ((h ^ w) * 0x01000193) & 0xFFFFFFFF
    return h


def record(call, t):
    is_int = t.dtype == torch.int64
    if not is_int:
        assert t.dtype == torch.float32
    if is_int:
        vals = [int(v) for v in t.flatten().tolist()]
    else:
        vals = [float(v) for v in t.flatten().tolist()]
    out = dict(call)
    out["n"] = len(vals)
    # float32 values are written in their shortest round-trip form (Math.fround(x) restores them)
    short = vals if is_int else [float(str(np.float32(v))) for v in vals]
    if len(vals) <= FULL_MAX:
        out["values"] = short
    else:
        out["head"] = short[:EDGE]
        out["tail"] = short[-EDGE:]
        s = 0.0
        for v in vals:
            s += v
        out["sum"] = s
        out["fnv"] = fnv_int(vals) if is_int else fnv_f32(vals)
    return out


def run(call):
    op = call["op"]
    shape = tuple(call["shape"])
    if op == "randn":
        return torch.randn(shape)
    if op == "randn_like":
        return torch.randn_like(torch.empty(shape))
    if op == "rand":
        return torch.rand(shape)
    if op == "normal":
        return torch.normal(call["mean"], call["std"], shape)
    if op == "uniform":
        return torch.empty(shape).uniform_(call["lo"], call["hi"])
    if op == "randint":
        return torch.randint(call["low"], call["high"], shape)
    if op == "randperm":
        assert len(shape) == 1
        return torch.randperm(shape[0])
    raise ValueError(op)


def C(op, *shape, **kw):
    return dict(op=op, shape=list(shape), **kw)


CASES = [
    # the scalar path (< 16 values, cached Box-Muller normal carried across calls), the vector
    # path (>= 16), tails that are not a multiple of 16, shapes
    ("randn-sequence", 0, [C("randn", 5), C("randn", 16), C("randn", 17), C("randn", 37),
                           C("randn", 3, 4), C("randn", 100), C("randn", 1), C("randn", 1)]),
    ("uniform-int-perm", 0, [C("rand", 7), C("rand", 20), C("randint", 8, low=0, high=1000),
                             C("randint", 3, low=0, high=10), C("randperm", 10)]),
    ("seed-42", 42, [C("randn", 5), C("randn", 16), C("randn", 33), C("rand", 4),
                     C("randint", 5, low=-7, high=7), C("randperm", 12)]),
    ("seed-1234", 1234, [C("randn", 2, 3), C("randn", 4, 8), C("rand", 3), C("randn", 15),
                         C("randperm", 25)]),
    ("mixed", 7, [C("randn", 3), C("rand", 5), C("randn", 20), C("randn", 1),
                  C("randint", 6, low=-3, high=4), C("randperm", 7),
                  C("normal", 19, mean=0.5, std=2.0), C("normal", 5, mean=-1.0, std=0.5),
                  C("uniform", 9, lo=0.1, hi=0.3), C("randn_like", 2, 3, 4), C("randn", 1),
                  C("uniform", 3, lo=-2.0, hi=5.0)]),
    ("big", 3, [C("randn", 100003), C("rand", 50000), C("normal", 4099, mean=0.25, std=1.5),
                C("uniform", 20000, lo=0.1, hi=0.3), C("randint", 20000, low=0, high=1000),
                C("randperm", 1000), C("randn", 7)]),
    ("wide-randint", 11, [C("randint", 10, low=0, high=2**33 + 7),
                          C("randint", 6, low=-(2**40), high=2**40),
                          C("randint", 4, low=5, high=6)]),
    # seeds use only their low 32 bits; negative seeds wrap to uint64
    ("seed-2^32+5", 2**32 + 5, [C("rand", 3), C("randn", 3)]),
    ("seed-5", 5, [C("rand", 3), C("randn", 3)]),
    ("seed-neg1", -1, [C("rand", 3), C("randn", 18)]),
]


def main():
    cap = re.search(r"CPU capability usage: (\w+)", torch.__config__.show())
    cases = []
    for name, seed, calls in CASES:
        torch.manual_seed(seed)
        cases.append({"name": name, "seed": str(seed), "calls": [record(c, run(c)) for c in calls]})
    doc = {
        "about": "torch CPU generator reference draws for src/util/rng.ts; "
        "made by scripts/make-rng-fixture.py",
        "torch": torch.__version__,
        "cpu_capability": cap.group(1) if cap else None,
        "cases": cases,
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "test", "fixtures", "rng", "torch_rng.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
