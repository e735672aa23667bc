#!/usr/bin/env bash
# Runs each cargo-fuzz target for a while (default 60 s each; FUZZ_SECONDS to change).
# cargo-fuzz needs nightly compiler flags; the machine's only toolchain is stable, so
# RUSTC_BOOTSTRAP=1 unlocks them. Installs cargo-fuzz from crates.io if missing.
# Bounded property-based fuzz tests of the same parsers run in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/ts_demux
# Seed the demuxer with the fixtures so it starts from real streams.
cp -n tests/fixtures/*.ts fuzz/corpus/ts_demux/ 2>/dev/null || true
for target in $(cargo fuzz list --fuzz-dir fuzz); do
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run --fuzz-dir fuzz "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
