#!/usr/bin/env bash
# End-to-end WHEP load figures for BENCHMARKS.md: a fresh release gateway plays the 2 Mbit/s
# bench stream (scripts/make-bench-stream.sh) and `livegate-bench whep` holds N viewers for
# a steady window, charging the gateway's CPU and memory per viewer.
#
#   scripts/bench-whep.sh [N ...]          (default: 10 100 300; window 20 s each)
#
# Binds 127.0.0.1 only; every run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh
target_dir=${CARGO_TARGET_DIR:-target}
window=${WINDOW:-20}
stream=$(scripts/make-bench-stream.sh)
cargo build --locked --release -p livegate -p livegate-bench >/dev/null
counts=("$@")
((${#counts[@]})) || counts=(10 100 300)

for n in "${counts[@]}"; do
  log=$(mktemp)
  start_gateway "$target_dir/release/livegate" "$log" \
    LIVE_AI_WHIP_ADDR=off LIVE_AI_TEST_STREAM="bench=$stream"
  gateway=$gateway_pid addr=$gateway_addr
  echo "== $n viewers"
  "$target_dir/release/livegate-bench" whep --url "http://$addr/live/bench/whep" \
    --sessions "$n" --duration "$window" --cpu-of "$gateway" || true
  kill $gateway
  wait $gateway 2>/dev/null || true
  rm -f "$log"
done
