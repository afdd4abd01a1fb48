#!/usr/bin/env bash
# Instructions per forwarded packet of the relay's media worker, counted by callgrind.
#
#   loadtest/callgrind.sh [out-dir]        (after `cargo build --release -p skaerm-server -p skaerm-loadtest`)
#
# SKAERM_BIN=<path> profiles another `skaerm` binary (an older build, to compare).
# Runs a 2-visit load-test step against the release `skaerm` under `valgrind --tool=callgrind`;
# once media flows it zeroes the counters, reads `skaerm_rtp_packets_forwarded_total`, waits
# 15 s, reads it again and dumps. Prints the media worker's instructions divided by the packets
# forwarded in between. Instruction counts do not depend on what else the machine is doing, so
# two builds compare reliably (loadtest/README.md, "Why each miss"). Needs valgrind, curl, ss.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d /tmp/skaerm-callgrind-XXXXXX)}"
skaerm="${SKAERM_BIN:-$root/target/release/skaerm}"
mkdir -p "$out"
for tool in valgrind callgrind_control curl ss; do
  command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing" >&2; exit 2; }
done
wrapper="$out/skaerm-under-callgrind.sh"
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$out/callgrind.out.%p "$skaerm" "\$@"
EOF
chmod +x "$wrapper"

"$root/target/release/skaerm-loadtest" run --mode skaerm --visits 2 --seconds 40 --warmup 5 \
  --skaerm-bin "$wrapper" --step-timeout 300 >"$out/run.json" 2>"$out/run.log" &
loadtest=$!

forwarded() {
  curl -s "http://$1/metrics" | awk '/^skaerm_rtp_packets_forwarded_total/ {print int($2)}'
}
pid="" addr="" f0=""
for _ in $(seq 1 180); do
  sleep 1
  pid=$(pgrep -f "valgrind.*callgrind-out-file=$out" | head -1 || true)
  [ -n "$pid" ] || continue
  addr=$(ss -ltnpH | awk -v p="pid=$pid," 'index($0, p) {print $4; exit}')
  [ -n "$addr" ] || continue
  f0=$(forwarded "$addr")
  [ -n "$f0" ] && [ "$f0" -gt 2000 ] && break
done
[ -n "$f0" ] || { echo "callgrind.sh: media never flowed (see $out/run.log)" >&2; kill "$loadtest" 2>/dev/null; exit 1; }
callgrind_control -z "$pid" >/dev/null
f0=$(forwarded "$addr")
sleep 15
f1=$(forwarded "$addr")
callgrind_control -d "$pid" >/dev/null
wait "$loadtest" || true

# The media worker is the thread with the most instructions in the dump after zeroing.
worker=$(grep -H '^summary:' "$out"/callgrind.out."$pid".1-* | sort -t' ' -k2 -n | tail -1 | cut -d: -f1)
instructions=$(awk '/^summary:/ {print $2}' "$worker")
packets=$((f1 - f0))
echo "media worker: $instructions instructions / $packets packets forwarded = $((instructions / packets)) per packet"
echo "profile: $worker (callgrind_annotate --inclusive=yes $worker)"
