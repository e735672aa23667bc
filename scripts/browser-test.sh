#!/usr/bin/env bash
# Headless Chromium (Debian's) plays livegate's test streams over WHEP: it must decode video
# frames and receive audio samples, and DELETE must end each session. Prints the time from the
# WHEP POST to the first decoded frame for every run and their median, for a stream with a
# 1 s GOP and one with an 8 s GOP (the start must not wait for the next keyframe). Then a page
# publishes its fake camera over WHIP and another plays it over WHEP through passthrough, and
# through a second gateway running the ffmpeg example worker (exec, colour removed), and
# the gateway's own page at / does the same with its buttons (screenshots in target/browser/).
#
#   scripts/browser-test.sh [runs]        (default 3; BENCHMARKS.md uses 10 with --release)
#   PROFILE=release scripts/browser-test.sh 10
#
# Needs chromium and node (scripts/test.sh installs chromium). Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/gateway.sh
runs=${1:-3}
profile=${PROFILE:-dev}
target_dir=${CARGO_TARGET_DIR:-target}
out="$target_dir/browser"
mkdir -p "$out"

if [[ $profile == release ]]; then
  cargo build --locked --release -p livegate
  bin="$target_dir/release/livegate"
else
  cargo build --locked -p livegate
  bin="$target_dir/debug/livegate"
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

gateways=()
trap 'kill "${gateways[@]}" 2>/dev/null || true' EXIT

log="$out/gateway.log"
start_gateway "$bin" "$log" \
  LIVE_AI_TEST_STREAM="gop1s=$PWD/tests/fixtures/h264-baseline-opus.ts,gop8s=$PWD/tests/fixtures/long-gop.ts"
gateways+=("$gateway_pid")
addr=$gateway_addr

# A second gateway whose pipeline is the ffmpeg example worker removing colour: the browser
# publishes to it and plays the worker's output.
exec_log="$out/gateway-exec.log"
start_gateway "$bin" "$exec_log" \
  LIVE_AI_PIPELINE="exec:$PWD/examples/workers/ffmpeg-filter.sh hue=s=0"
gateways+=("$gateway_pid")
exec_addr=$gateway_addr

status=0
for stream in gop1s gop8s; do
  echo "== $stream"
  node tests/browser/whep-play.mjs --gateway "http://$addr" --stream "$stream" --runs "$runs" \
    --audio --screenshot "$out/whep-play-$stream.png" || status=$?
done
echo "== WHIP publish (fake camera) -> passthrough -> WHEP play"
node tests/browser/whip-whep.mjs --gateway "http://$addr" --stream browser-cam \
  --screenshot "$out/whip-whep.png" || status=$?
echo "== WHIP publish with simulcast (rids 0, 1, 2) -> the first layer -> WHEP play"
node tests/browser/whip-whep.mjs --gateway "http://$addr" --stream browser-simulcast \
  --simulcast || status=$?
echo "== WHIP publish (fake camera) -> exec ffmpeg worker (hue=s=0) -> WHEP play, gray"
node tests/browser/whip-whep.mjs --gateway "http://$exec_addr" --stream browser-exec \
  --expect-gray --screenshot "$out/whip-exec-whep.png" || status=$?
echo "== the page at /: Publish in one tab, Play in another"
node tests/browser/web-page.mjs --gateway "http://$addr" --screenshot "$out/web-page.png" || status=$?
if ((status)); then
  echo "browser test failed; gateway log:"
  tail -50 "$log"
  echo "exec gateway log:"
  tail -50 "$exec_log"
fi
exit $status
