#!/usr/bin/env bash
# Runs the browser tests: installs Debian's chromium, coturn and the npm packages when missing, then
# drives two headless Chromium pages against the real server binary ($SKAERM_BIN).
set -euo pipefail
cd "$(dirname "$0")"

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
apt_updated=""
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium"
  $sudo_cmd apt-get update -qq && apt_updated=1
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

# coturn for turn.test.mjs (which starts its own turnserver on loopback; it skips, saying so,
# when coturn is missing). The package's own service is stopped and disabled: with its default
# configuration it would be an unauthenticated relay on every interface.
if [ ! -x /usr/bin/turnserver ]; then
  echo "installing Debian coturn"
  [ -n "$apt_updated" ] || { $sudo_cmd apt-get update -qq && apt_updated=1; }
  if DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq coturn >/dev/null; then
    if command -v systemctl >/dev/null 2>&1; then
      $sudo_cmd systemctl disable --now coturn >/dev/null 2>&1 || true
    fi
  else
    echo "could not install coturn: the TURN browser test will be skipped" >&2
  fi
fi

# ice-restart.test.mjs cuts a peer connection's UDP for real with iptables (root only; the test
# skips itself, saying why, when iptables is missing or unusable).
if ! command -v iptables >/dev/null 2>&1 && ! [ -x /usr/sbin/iptables ]; then
  echo "installing Debian iptables"
  [ -n "$apt_updated" ] || { $sudo_cmd apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq iptables >/dev/null ||
    echo "could not install iptables: the ICE-restart browser test will be skipped" >&2
fi

# bad-network.test.mjs puts the citizen's browser in a network namespace behind a shaped veth
# pair (ip, tc; root only, skipped with the reason otherwise). Without sch_netem in the kernel
# it delays packets with delay-line.py (python3).
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
if ! has ip || ! has tc; then
  echo "installing Debian iproute2"
  [ -n "$apt_updated" ] || { $sudo_cmd apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq iproute2 >/dev/null ||
    echo "could not install iproute2: the bad-network browser test will be skipped" >&2
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "installing Debian python3"
  [ -n "$apt_updated" ] || { $sudo_cmd apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3 >/dev/null ||
    echo "could not install python3: the bad-network browser test fails where the kernel has no netem" >&2
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
