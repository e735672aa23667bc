#!/usr/bin/env bash
# Cluster-mode figures for BENCHMARKS.md: a redis-server and two release gateways on
# loopback, A (origin: `livegate-bench whip` publishes the 2 Mbit/s bench stream to it) and B
# (edge). Prints
#   - time to first frame of one viewer on A, on B with no pull running (the viewer's POST
#     starts the edge pull) and on B while another viewer keeps the pull running;
#   - A's CPU with the publisher only, with N viewers on A, with N viewers on B (one pull), and
#     with N pulls of the internal endpoint (N edges, emulated with curl), over a window each.
#
#   scripts/bench-cluster.sh            (N=10 viewers/edges, 20 TTFF runs, 20 s windows)
#   N=20 RUNS=5 WINDOW=10 scripts/bench-cluster.sh
#
# Binds 127.0.0.1 only; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh
target_dir=${CARGO_TARGET_DIR:-target}
n=${N:-10}
runs=${RUNS:-20}
window=${WINDOW:-20}
secret=bench-cluster-secret
stream=$(scripts/make-bench-stream.sh)
cargo build --locked --release -p livegate -p livegate-bench >/dev/null
bench=$target_dir/release/livegate-bench

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_node NAME: a release gateway in cluster mode; sets NAME_pid and NAME_addr.
start_node() {
  local log
  log=$(mktemp)
  start_gateway "$target_dir/release/livegate" "$log" \
    LIVE_AI_REDIS_URL="redis://127.0.0.1:$port/" LIVE_AI_CLUSTER_SECRET="$secret"
  pids+=("$gateway_pid")
  printf -v "$1_pid" %s "$gateway_pid"
  printf -v "$1_addr" %s "$gateway_addr"
}
start_node a
start_node b

"$bench" whip --url "http://$a_addr/live/bench/whip" --streams 1 --file "$stream" \
  --duration 3600 >/dev/null &
pids+=($!)
sleep 3

# ttff URL: the first-frame time of one viewer, in ms (ICE checks every 5 ms, so the
# figure is mostly the gateways' share).
ttff() {
  "$bench" whep --url "$1" --sessions 1 --duration 1 --ice-check-ms 5 |
    sed -n 's/^first frame   since POST p50 \([0-9]*\) ms.*/\1/p'
}
# median of the numbers on stdin.
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# cpu PID SECONDS: percent of one core PID used over the next SECONDS.
cpu() {
  local hz before after
  hz=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$1/stat")
  sleep "$2"
  after=$(awk '{print $14 + $15}' "/proc/$1/stat")
  echo "scale=2; ($after - $before) * 100 / $hz / $2" | bc
}

echo "== time to first frame, one viewer, $runs runs each (median, ms)"
origin=$(for _ in $(seq "$runs"); do ttff "http://$a_addr/live/bench/whep"; done | median)
cold=$(for _ in $(seq "$runs"); do ttff "http://$b_addr/live/bench/whep"; done | median)
"$bench" whep --url "http://$b_addr/live/bench/whep" --sessions 1 --duration 3600 >/dev/null &
holder=$!
pids+=("$holder")
sleep 3
warm=$(for _ in $(seq "$runs"); do ttff "http://$b_addr/live/bench/whep"; done | median)
kill "$holder"
echo "origin A                   $origin"
echo "edge B, pull starts        $cold"
echo "edge B, pull running       $warm"

echo "== A's CPU, % of one core over $window s"
sleep 2
echo "publisher only             $(cpu "$a_pid" "$window")"
"$bench" whep --url "http://$a_addr/live/bench/whep" --sessions "$n" --duration $((window + 10)) >/dev/null &
viewers=$!
sleep 5
echo "$n viewers on A             $(cpu "$a_pid" "$window")"
wait "$viewers" || true
"$bench" whep --url "http://$b_addr/live/bench/whep" --sessions "$n" --duration $((window + 10)) >/dev/null &
viewers=$!
sleep 5
echo "$n viewers on B (one pull)  $(cpu "$a_pid" "$window")   B: $(cpu "$b_pid" 5) over 5 s"
wait "$viewers" || true
sleep 2
pulls=()
for _ in $(seq "$n"); do
  curl -sS -o /dev/null -H "Authorization: Bearer $secret" \
    "http://$a_addr/internal/streams/bench/output" &
  pulls+=($!)
  pids+=($!)
done
sleep 3
echo "$n edge pulls (curl)        $(cpu "$a_pid" "$window")"
kill "${pulls[@]}" 2>/dev/null || true
