#!/usr/bin/env bash
# The test command: set up (system packages, npm, native addon), typecheck, then the whole suite
# (unit tests on every backend, layer check, parity fixtures against the official code).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npm test
