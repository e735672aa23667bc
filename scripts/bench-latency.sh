#!/usr/bin/env bash
# The latency livegate adds, for BENCHMARKS.md: a fresh release gateway (WHIP and WHEP on
# 127.0.0.1) and `livegate-bench latency`, which publishes the 2 Mbit/s bench
# stream (scripts/make-bench-stream.sh) over WHIP and plays it back over WHEP in one process,
# timing every video frame from the publisher's send of its last packet to the viewer's
# receipt of it (frames matched by content). The viewer's first second (the GOP cache
# replay) is reported apart from the steady state.
#
#   scripts/bench-latency.sh [extra livegate-bench latency options, e.g. --json]
#                                           (window 20 s, WINDOW=s to change)
#
# PIPELINE picks what sits between input and output (default passthrough):
#   PIPELINE=exec-cat    an exec worker that is `cat` (the exec path's own cost)
#   PIPELINE=exec-copy   an exec worker that is `ffmpeg -c copy` (demux and remux, no coding)
#   PIPELINE=trickle     the gateway's own trickle channels with a trickle-echo process as the
#                        worker (segments cut, published and read back over HTTP)
#
# Binds 127.0.0.1 only; the run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh
target_dir=${CARGO_TARGET_DIR:-target}
window=${WINDOW:-20}
stream=$(scripts/make-bench-stream.sh)
cargo build --locked --release -p livegate -p livegate-bench -p livegate-trickle >/dev/null

pipeline=passthrough
case ${PIPELINE:-passthrough} in
  passthrough) ;;
  exec-copy)
    pipeline="exec:ffmpeg -hide_banner -nostdin -loglevel error -probesize 32768 \
-analyzeduration 200000 -f mpegts -i pipe:0 -map 0 -c copy -copyts -f mpegts -muxdelay 0 \
-muxpreload 0 -flush_packets 1 pipe:1" ;;
  exec-cat) pipeline="exec:cat" ;;
  trickle) pipeline=trickle ;;
  *) echo "PIPELINE: passthrough, exec-cat, exec-copy or trickle" >&2; exit 2 ;;
esac

log=$(mktemp)
gateway=
worker=
trap 'kill $gateway $worker 2>/dev/null || true; wait $gateway 2>/dev/null || true; rm -f "$log"' EXIT
start_gateway "$target_dir/release/livegate" "$log" LIVE_AI_PIPELINE="$pipeline"
gateway=$gateway_pid addr=$gateway_addr
if [[ $pipeline == trickle ]]; then
  # The channels exist once the publisher is in; the echo retries until then and exits when
  # the input channel closes.
  (for _ in $(seq 50); do
     "$target_dir/release/trickle-echo" --subscribe "http://$addr/ai/trickle/lat" \
       --publish "http://$addr/ai/trickle/lat-out" 2>/dev/null && break
     sleep 0.2
   done) &
  worker=$!
fi
"$target_dir/release/livegate-bench" latency --whip-url "http://$addr/live/lat/whip" \
  --whep-url "http://$addr/live/lat/whep" --file "$stream" --duration "$window" \
  --cpu-of "$gateway" "$@"
