#!/usr/bin/env bash
# End-to-end WHIP ingest figures for BENCHMARKS.md: a fresh release gateway (passthrough, WHIP
# and WHEP on 127.0.0.1) and `livegate-bench whip` publishing the 2 Mbit/s bench stream
# (scripts/make-bench-stream.sh) as K streams for a steady window, charging the gateway's CPU
# and memory per published stream, with POST → 201 times.
#
#   scripts/bench-whip.sh [K ...]          (default: 1 10; window 20 s each, WINDOW=s to change)
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
((${#counts[@]})) || counts=(1 10)

for k in "${counts[@]}"; do
  log=$(mktemp)
  start_gateway "$target_dir/release/livegate" "$log"
  gateway=$gateway_pid addr=$gateway_addr
  echo "== $k publishers"
  "$target_dir/release/livegate-bench" whip --url "http://$addr/live/load{n}/whip" \
    --streams "$k" --file "$stream" --duration "$window" --cpu-of "$gateway" || true
  kill $gateway
  wait $gateway 2>/dev/null || true
  rm -f "$log"
done
