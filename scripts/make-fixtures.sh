#!/usr/bin/env bash
# Generates the small MPEG-TS fixtures in tests/fixtures/ with ffmpeg (Debian's package).
# They are committed; rerun this only to change them. Every fixture is synthetic (testsrc2
# video, sine audio), 2 s long at 320x240/30 fps, with a 1 s GOP, so the whole set stays at a
# few hundred KB.
#
#   h264-baseline-opus.ts  constrained baseline H.264 + stereo Opus
#   h264-high-opus.ts      high profile H.264 without B-frames + stereo Opus
#   h264-bframes-opus.ts   high profile H.264 with B-frames (PTS != DTS) + stereo Opus
#   video-only.ts          constrained baseline H.264, no audio
#   audio-only.ts          stereo Opus, no video
#   pts-wrap.ts            H.264 + Opus whose PTS starts 1 s before the 2^33 wrap (5 s long)
#   long-gop.ts            baseline H.264 + Opus, 8 s with one IDR: a viewer's start must not
#                          wait for the next keyframe
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"

ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
video_in=(-f lavfi -i "testsrc2=size=320x240:rate=30")
audio_in=(-f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo")
x264=(-c:v libx264 -preset veryfast -crf 34 -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p)
opus=(-c:a libopus -b:a 32k -ac 2 -frame_duration 20)
# Fixed muxer settings so reruns are byte-stable and PIDs are predictable.
ts=(-f mpegts -mpegts_flags +resend_headers -muxrate 0 -fflags +bitexact)

ff "${video_in[@]}" "${audio_in[@]}" -t 2 "${x264[@]}" -profile:v baseline -bf 0 "${opus[@]}" "${ts[@]}" h264-baseline-opus.ts
ff "${video_in[@]}" "${audio_in[@]}" -t 2 "${x264[@]}" -profile:v high -bf 0 "${opus[@]}" "${ts[@]}" h264-high-opus.ts
ff "${video_in[@]}" "${audio_in[@]}" -t 2 "${x264[@]}" -profile:v high -bf 2 "${opus[@]}" "${ts[@]}" h264-bframes-opus.ts
ff "${video_in[@]}" -t 2 "${x264[@]}" -profile:v baseline -bf 0 -an "${ts[@]}" video-only.ts
ff "${audio_in[@]}" -t 2 "${opus[@]}" -vn "${ts[@]}" audio-only.ts
# ffmpeg rebases start times whatever -output_ts_offset says, so shift the timestamps of a
# normal 5 s clip: first PTS at 2^33 - 90000 (1 s before the wrap).
ff "${video_in[@]}" "${audio_in[@]}" -t 5 "${x264[@]}" -profile:v baseline -bf 0 "${opus[@]}" "${ts[@]}" pts-wrap.src.ts
python3 ../../scripts/shift-ts-timestamps.py pts-wrap.src.ts pts-wrap.ts $(( (1 << 33) - 90000 ))
rm pts-wrap.src.ts
ff "${video_in[@]}" "${audio_in[@]}" -t 8 "${x264[@]}" -g 240 -keyint_min 240 -profile:v baseline -bf 0 "${opus[@]}" "${ts[@]}" long-gop.ts

ls -l ./*.ts
