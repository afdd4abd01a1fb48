#!/usr/bin/env bash
# Runs the browser tests: installs Debian's chromium and the npm packages when missing, then
# drives two headless Chromium pages against the real server binary ($SKAERM_BIN).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

# ice-restart.test.mjs cuts a peer connection's UDP for real with iptables (root only; the test
# skips itself, saying why, when iptables is missing or unusable).
if ! command -v iptables >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian iptables"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null || echo "could not install iptables"
fi

if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

export SKAERM_BIN="${SKAERM_BIN:-$(cd ../.. && pwd)/target/debug/skaerm}"
if [ ! -x "$SKAERM_BIN" ]; then
  echo "server binary $SKAERM_BIN is missing: build it first (cargo build)" >&2
  exit 1
fi
npm test
