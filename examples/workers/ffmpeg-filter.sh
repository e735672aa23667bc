#!/bin/sh
# An exec pipeline worker: MPEG-TS (H.264 + Opus) on stdin, the same stream with a visible
# video effect on stdout, re-encoded for WebRTC playback.
#
#   LIVE_AI_PIPELINE="exec:examples/workers/ffmpeg-filter.sh" cargo run -p livegate
#   LIVE_AI_PIPELINE="exec:examples/workers/ffmpeg-filter.sh negate" cargo run -p livegate
#
# The first argument is the ffmpeg video filter (default: edge detection). livegate sets
# LIVE_AI_STREAM_KEY (logged here so the worker's stderr says which stream it serves).
#
# Choices, and why:
# - `-flags low_delay` and a small probe: a live worker must not sit on input to guess its
#   format; the gateway's MPEG-TS carries SPS/PPS before every keyframe, so the first keyframe
#   is enough to start. Not `-fflags nobuffer`: on a pipe it drops the packets read while
#   probing, which are the first keyframe (ffmpeg 5.1: the first GOP, or all output, is lost).
# - `-copyts`: output timestamps are the input's, so the gateway can match frames by PTS to
#   measure the pipeline's latency and viewers see no timeline jump on a restart.
# - H.264 constrained baseline, no B-frames (`-bf 0`), `-tune zerolatency`, ultrafast, a
#   keyframe every 30 frames (`-g 30`): what browsers decode over WebRTC, one frame in, one
#   frame out, and a new viewer waits at most a second for a keyframe.
# - Opus at 48 kHz in 20 ms frames: the only audio codec WebRTC players must take.
# - `-f mpegts -muxdelay 0 -muxpreload 0 -flush_packets 1`: every packet is written as soon
#   as it is muxed instead of being buffered for a constant-rate transport stream.
# - `-map 0:v:0? -map 0:a:0?`: a stream with only video or only audio passes too.
set -eu

filter="${1:-edgedetect=low=0.1:high=0.3}"
echo "ffmpeg-filter worker for stream ${LIVE_AI_STREAM_KEY:-?}: $filter" >&2

exec ffmpeg -hide_banner -nostdin -nostats -loglevel "${FFMPEG_LOGLEVEL:-warning}" \
    -flags low_delay -probesize 32768 -analyzeduration 200000 \
    -f mpegts -i pipe:0 \
    -map '0:v:0?' -map '0:a:0?' -copyts \
    -vf "$filter,format=yuv420p" \
    -c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -bf 0 -g 30 \
    -c:a libopus -b:a 64k -ar 48000 -ac 2 -application lowdelay -frame_duration 20 \
    -f mpegts -muxdelay 0 -muxpreload 0 -flush_packets 1 pipe:1
