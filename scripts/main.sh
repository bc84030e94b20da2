#!/usr/bin/env bash
# The main job on a fresh machine: set up, then sample a grid of every MNIST class from the
# shipped class-conditional model (its stored sampler, steps and guidance: models/registry.json)
# into samples/mnist-ddpm.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p samples
node bin/ldm.js sample --model mnist-ddpm --n 40 --seed 0 --out samples/mnist-ddpm.png "$@"
