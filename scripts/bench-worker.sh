#!/usr/bin/env bash
# What a re-encoding worker costs, for BENCHMARKS.md: a fresh release gateway runs the
# ffmpeg example worker (examples/workers/ffmpeg-filter.sh: decode, filter, x264 ultrafast
# zerolatency, Opus) on one published stream, the 2 Mbit/s 720p30 bench stream
# (scripts/make-bench-stream.sh) sent over WHIP by `livegate-bench whip` in real time.
#
# The load tool's latency mode matches frames by content, which a filter changes, so the
# latency here is the gateway's own, per frame by PTS (the worker keeps timestamps): from the
# frame's write into the input buffer to its write into the output buffer, as
# `GET /live/{stream}/status` reports it (p50/p99 of the recent frames) at the end of the
# window. The worker's CPU is read from /proc for its pid over the same window.
#
#   scripts/bench-worker.sh [ffmpeg video filter]   (default: the example's edge detection;
#                                                    window 20 s, WINDOW=s to change)
#   WORKER='ffmpeg ... -c copy ...' scripts/bench-worker.sh
#                                   (any other exec command line, e.g. for a comparison)
#
# Binds 127.0.0.1 only; the run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh
target_dir=${CARGO_TARGET_DIR:-target}
window=${WINDOW:-20}
stream=$(scripts/make-bench-stream.sh)
cargo build --locked --release -p livegate -p livegate-bench >/dev/null

log=$(mktemp)
gateway=
trap 'kill $gateway 2>/dev/null || true; wait $gateway 2>/dev/null || true; rm -f "$log"' EXIT
start_gateway "$target_dir/release/livegate" "$log" LIVE_AI_WHEP_ADDR=off \
  LIVE_AI_PIPELINE="exec:${WORKER:-examples/workers/ffmpeg-filter.sh ${1:-}}"
gateway=$gateway_pid addr=$gateway_addr

# One field of the stream's status JSON (a Python expression over `s`), or empty.
status() {
  curl -sf "http://$addr/live/worker/status" |
    python3 -c "import json,sys; s=json.load(sys.stdin); v=$1; print('' if v is None else v)" \
      2>/dev/null || true
}
# utime + stime of a process, in clock ticks (proc(5)).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$target_dir/release/livegate-bench" whip --url "http://$addr/live/worker/whip" \
  --file "$stream" --duration "$((window + 10))" >/dev/null &
publisher=$!
pid=
for _ in $(seq 100); do
  pid=$(status "(s.get('worker') or {}).get('pid')")
  [[ -n $pid ]] && break
  sleep 0.1
done
[[ -n $pid ]] || { echo "no worker started:" >&2; cat "$log" >&2; exit 1; }
# The first seconds carry the worker's start-up (probing, encoder set-up): skip them.
sleep 5
start_ticks=$(ticks "$pid")
start=$(date +%s.%N)
sleep "$window"
end_ticks=$(ticks "$pid")
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
cpu=$(python3 -c "print(f'{100 * ($end_ticks - $start_ticks) / $hz / ($end - $start):.1f}')")
echo "worker pid $pid: CPU $cpu % of one core over ${window} s"
echo "restarts: $(status "s['worker']['restarts']"), timestamps: $(status "s['worker']['timestamps']")"
echo "pipeline latency: p50 $(status "s['worker']['latency']['p50_ms']") ms," \
  "p99 $(status "s['worker']['latency']['p99_ms']") ms" \
  "over $(status "s['worker']['latency']['frames']") frames"
echo "output bitrate: $(status "s['worker']['output']['bitrate_bps']") bit/s"
wait $publisher || true
