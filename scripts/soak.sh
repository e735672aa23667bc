#!/usr/bin/env bash
# Soak: a gateway on 127.0.0.1 with the `exec:cat` pipeline, churned by `livegate-bench churn`
# (publish/unpublish cycles on new stream keys, WHEP joins and leaves, SIGKILLed workers),
# then checked on /metrics: sessions and streams back to 0, tokio tasks back to the count of
# the fresh gateway, and RSS at most 10 % above its value after a warm-up churn.
#
#   scripts/soak.sh                    long run: 600 s, 100 cycles, 1000 joins, 20 kills, release
#   SOAK_SECONDS=60 SOAK_CYCLES=10 SOAK_JOINS=100 SOAK_KILLS=4 SOAK_PROFILE=dev scripts/soak.sh
#                                      the short run scripts/test.sh does
#
# Binds 127.0.0.1 only; every wait is
# bounded and the gateway is stopped on exit whatever happens. Exits non-zero on any failed
# step or check.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh

seconds=${SOAK_SECONDS:-600}
cycles=${SOAK_CYCLES:-100}
joins=${SOAK_JOINS:-1000}
kills=${SOAK_KILLS:-20}
streams=${SOAK_STREAMS:-2}
profile=${SOAK_PROFILE:-release}
file=tests/fixtures/h264-baseline-opus.ts
# How long the gateway may take to be idle again after a churn (republish grace, closes).
settle_secs=${SOAK_SETTLE_SECONDS:-60}

if [[ $profile == release ]]; then
  cargo build --locked --release -p livegate -p livegate-bench
  bin=${CARGO_TARGET_DIR:-target}/release
else
  cargo build --locked -p livegate -p livegate-bench
  bin=${CARGO_TARGET_DIR:-target}/debug
fi

work=$(mktemp -d)
gateway=
cleanup() {
  local status=$?
  if ((status != 0)) && [[ -f $work/gateway.log ]]; then
    echo "soak: failed; the gateway's last log lines:" >&2
    tail -n 30 "$work/gateway.log" >&2
  fi
  if [[ -n $gateway ]] && kill -0 "$gateway" 2>/dev/null; then
    kill "$gateway"
    wait "$gateway" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

gateway_start_timeout_s=20
start_gateway "$bin/livegate" "$work/gateway.log" \
  LIVE_AI_PIPELINE=exec:cat LIVE_AI_REPUBLISH_GRACE=1s LIVE_AI_LOG_LEVEL=warn,livegate=info
gateway=$gateway_pid addr=$gateway_addr

scrape() { curl -sf --max-time 5 "http://$addr/metrics" >"$work/metrics"; }
# Sum of every series of a metric in the last scrape (0 when absent).
metric() { awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $2 } END { printf "%d\n", sum }' "$work/metrics"; }
sessions() { echo $(( $(metric livegate_rtc_sessions) + $(metric livegate_whep_sessions_active) + $(metric livegate_whip_publishers_active) )); }

# Scrapes until no session or stream is left and the task count is `$1` (any when empty),
# for at most settle_secs; prints "tasks rss_bytes" of that scrape.
wait_idle() {
  local want_tasks=$1 deadline=$((SECONDS + settle_secs))
  while :; do
    scrape
    local s t
    s=$(sessions) t=$(metric livegate_runtime_alive_tasks)
    if ((s == 0)) && (($(metric livegate_streams) == 0)) && [[ -z $want_tasks || $t == "$want_tasks" ]]; then
      echo "$t $(metric process_resident_memory_bytes)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      echo "soak: not idle after ${settle_secs}s: sessions=$s streams=$(metric livegate_streams) tasks=$t (want ${want_tasks:-any})" >&2
      grep -E '^livegate_(rtc_sessions|whep_sessions_active|whip_publishers_active|streams|runtime_alive_tasks)' "$work/metrics" >&2
      return 1
    fi
    sleep 0.5
  done
}

churn() { # cycles joins kills seconds
  "$bin/livegate-bench" churn --url "http://$addr" --file "$file" --streams "$streams" \
    --publish-cycles "$1" --whep-joins "$2" --worker-kills "$3" --duration "$4" \
    --gateway-pid "$gateway"
}

read -r tasks_fresh _ < <(wait_idle "")
echo "== soak: fresh gateway at $addr: $tasks_fresh tasks"

# The warm-up has the main run's density (joins per cycle, viewers at once) on at least two
# cycles per lane and kills a worker if the run does, so the allocator has seen the peak.
warm_cycles=$((cycles / 10 > 2 * streams ? cycles / 10 : 2 * streams))
warm_joins=$((joins * warm_cycles / cycles))
warm_kills=$((kills > 0 ? (kills * warm_cycles / cycles > 0 ? kills * warm_cycles / cycles : 1) : 0))
warm_secs=$((seconds * warm_cycles / cycles > 5 ? seconds * warm_cycles / cycles : 5))
echo "== soak: warm-up ($warm_cycles cycles, $warm_joins joins, $warm_kills kills over ${warm_secs}s)"
churn "$warm_cycles" "$warm_joins" "$warm_kills" "$warm_secs"
read -r tasks_warm rss_warm < <(wait_idle "$tasks_fresh")
echo "== soak: idle after warm-up: $tasks_warm tasks, RSS $((rss_warm / 1024)) KiB"

echo "== soak: $cycles cycles, $joins joins, $kills worker kills over ${seconds}s"
started=$SECONDS
churn "$cycles" "$joins" "$kills" "$seconds"
read -r tasks_end rss_end < <(wait_idle "$tasks_fresh")
echo "== soak: idle $((SECONDS - started))s after the start: $tasks_end tasks, RSS $((rss_end / 1024)) KiB"

limit=$((rss_warm + rss_warm / 10))
if ((rss_end > limit)); then
  echo "soak: RSS $((rss_end / 1024)) KiB is more than 10 % above $((rss_warm / 1024)) KiB after warm-up" >&2
  exit 1
fi
kill -0 "$gateway" || { echo "soak: the gateway died" >&2; exit 1; }
echo "soak: ok: RSS $((rss_warm / 1024)) → $((rss_end / 1024)) KiB ($(( (rss_end - rss_warm) * 100 / rss_warm ))%), tasks $tasks_warm → $tasks_end"
