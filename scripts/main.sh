#!/usr/bin/env bash
# The main job on a fresh machine: set up, then sample a grid of every MNIST class from the
# shipped class-conditional model (DDIM, 50 steps, its default guidance) into samples/mnist-ddpm.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p samples
node bin/ldm.js sample --model mnist-ddpm --sampler ddim --steps 50 --n 40 --seed 0 --out samples/mnist-ddpm.png "$@"
