# Sourced, not run, by the scripts that start a livegate gateway of their own (bench-*.sh,
# browser-test.sh, soak.sh): `source scripts/lib/gateway.sh` from the repository root.

# start_gateway BIN LOG [NAME=VALUE ...]
#
# Starts the gateway binary BIN in the background with its HTTP, WHIP and WHEP servers on
# ephemeral 127.0.0.1 ports and the NAME=VALUE settings on top (e.g. LIVE_AI_WHIP_ADDR=off,
# LIVE_AI_PIPELINE=exec:cat), its stdout and stderr in LOG, and returns once it has logged
# `livegate listening http=ADDR`: it accepts requests from then on. Sets gateway_pid to its pid
# (as soon as it is started) and gateway_addr to ADDR. They are variables rather than printed
# so that the caller calls this in its own shell, not a `$(...)` subshell, and the gateway is
# its child to `kill` and `wait` for.
#
# Fails with the log on stderr if the gateway exits first or has not logged the line within
# gateway_start_timeout_s seconds (10 unless the caller sets it); a gateway that is still
# running then is stopped.
start_gateway() {
  local bin=$1 log=$2
  shift 2
  gateway_addr=
  env LIVE_AI_HTTP_ADDR=127.0.0.1:0 LIVE_AI_WHIP_ADDR=127.0.0.1:0 LIVE_AI_WHEP_ADDR=127.0.0.1:0 \
    "$@" "$bin" >"$log" 2>&1 &
  gateway_pid=$!
  local timeout_s=${gateway_start_timeout_s:-10} status
  for _ in $(seq $((timeout_s * 10))); do
    gateway_addr=$(sed -n '/livegate listening http=/{s/.*livegate listening http=\([0-9.:]*\).*/\1/p;q;}' "$log")
    [[ -n $gateway_addr ]] && return 0
    if ! kill -0 "$gateway_pid" 2>/dev/null; then
      status=0
      wait "$gateway_pid" || status=$?
      echo "${0##*/}: $bin exited with status $status before it listened; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  kill "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  echo "${0##*/}: $bin did not log \`livegate listening\` within ${timeout_s} s; its log:" >&2
  cat "$log" >&2
  return 1
}
