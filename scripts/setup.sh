#!/usr/bin/env bash
# Set up a fresh machine for ldm.ts: system packages (oneDNN for the native backend, the
# Fashion-MNIST data set, a C++ toolchain, Chromium for the browser tests), then npm dependencies
# (which build the native addon).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libdnnl-dev >/dev/null 2>&1 || need+=(libdnnl-dev)
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
command -v g++ >/dev/null 2>&1 || need+=(g++)
# Debian's Chromium: the browser tests drive it headless through puppeteer-core (no browser download)
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else SUDO=none; fi
  if [ "$SUDO" = none ]; then
    echo "ldm.ts setup: missing system packages ${need[*]} and no root/sudo to install them; continuing (the reference backend works without oneDNN)" >&2
  else
    echo "ldm.ts setup: installing ${need[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
      $SUDO apt-get update >/dev/null 2>&1 || true
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
    }
  fi
fi

if [ ! -d node_modules/tsx ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
else
  node scripts/build-native.mjs
fi

# the built package (dist/: JavaScript + .d.ts); bin/ldm.js runs it when it is up to date
npm run -s build
