#!/usr/bin/env bash
# Runs every test of Skærm from a fresh clone: lints, Rust unit/integration/end-to-end tests,
# the two-browser test in headless Debian Chromium, and the load-test smoke run.
# Installs what it needs when missing (Debian chromium and coturn, npm packages).
#
# PostgreSQL cases run when TEST_DATABASE_URL is set (e.g.
# postgres://postgres@127.0.0.1:5432/test); without it they are skipped and say so.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "Rust tests (unit, storage, relay, end-to-end)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "load-test smoke run (3 visits through the real skaerm binary, zero loss, media both ways)"
target/debug/skaerm-loadtest smoke --skaerm-bin target/debug/skaerm --visits 3 --seconds 3

step "browser test (two headless Chromium pages through the relay)"
SKAERM_BIN="$PWD/target/debug/skaerm" tests/browser/run.sh

step "all tests passed"
