#!/usr/bin/env bash
# Generates the 2 Mbit/s stream the load figures in BENCHMARKS.md are measured with:
# 1280x720 30 fps constrained-baseline H.264 at ~2 Mbit/s with a 2 s GOP, plus 64 kbit/s
# stereo Opus, 20 s long. Not committed (about 5 MB): written to target/bench/ and rebuilt
# from this script whenever needed.
#
#   scripts/make-bench-stream.sh            -> target/bench/720p-2mbps.ts
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CARGO_TARGET_DIR:-target}/bench
mkdir -p "$out"
[[ -s $out/720p-2mbps.ts ]] && { echo "$out/720p-2mbps.ts"; exit 0; }
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
  -t 20 -c:v libx264 -preset veryfast -profile:v baseline -bf 0 -pix_fmt yuv420p \
  -b:v 2M -maxrate 2M -bufsize 1M -g 60 -keyint_min 60 -sc_threshold 0 \
  -c:a libopus -b:a 64k -ac 2 -frame_duration 20 \
  -f mpegts -muxrate 0 "$out/720p-2mbps.ts"
echo "$out/720p-2mbps.ts"
