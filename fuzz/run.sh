#!/usr/bin/env bash
# Runs every fuzz target for a fixed time, one after another (not in CI):
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 60)
# Installs cargo-fuzz when missing (needs the nightly toolchain). Exits non-zero on the first
# crash; libFuzzer leaves the crashing input under fuzz/artifacts/<target>/.
# FUZZ_SANITIZER=address turns AddressSanitizer on (default none: our code forbids `unsafe`, and
# the run finds panics, overflows and hangs several times faster without it).
# FUZZ_TARGETS="rrule sdp_answer" runs only those.
set -euo pipefail
seconds="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
sanitizer="${FUZZ_SANITIZER:-none}"
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-$here/target}"
cargo +nightly fuzz build -s "$sanitizer" --release
for target in $targets; do
    echo "== $target: ${seconds} s"
    mkdir -p "corpus/$target" "artifacts/$target"
    # -max_len: datagrams and messages are small; -timeout: one input taking >10 s is a hang.
    if ! nice -n 10 cargo +nightly fuzz run -s "$sanitizer" --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/"; then
        echo "fuzz target $target crashed: see fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "all fuzz targets ran ${seconds} s without a crash"
