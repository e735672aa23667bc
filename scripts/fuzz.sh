#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 60); scripts/test.sh
# runs it bounded (FUZZ_SECONDS=10) in CI. Any crash, panic, timeout (one input > 10 s) or
# out-of-memory fails the script and leaves the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh sdp_offer whip_h264_rtp     some targets, longer
#
# cargo-fuzz needs nightly compiler flags; the machine's only toolchain is stable, so
# RUSTC_BOOTSTRAP=1 unlocks them. Installs cargo-fuzz from crates.io if missing.
#
# Corpora live in fuzz/corpus/<target> (git-ignored, they grow across runs) and are seeded on
# every run: MPEG-TS from tests/fixtures, H.264 Annex B and RTP records made from a fixture
# with ffmpeg and scripts/fuzz-rtp-seeds.py, SDP and sdpfrag from fuzz/seeds/, and every input
# in fuzz/regressions/<target>/ (inputs that once crashed a target, replayed first by
# libFuzzer like any corpus entry). Bounded property tests of the same parsers run in
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
# No AddressSanitizer: these parsers are safe Rust, where ASan finds next to nothing, and
# without it the targets build and run about twice as fast. 16 codegen units instead of
# cargo-fuzz's 1 cut the build (the whole gateway's dependency tree) to a fraction for a
# slightly slower fuzzer.
# FUZZ_TARGET_DIR (default fuzz/target) lets CI keep the build between fresh clones.
build=(--sanitizer none --codegen-units 16 --target-dir "${FUZZ_TARGET_DIR:-fuzz/target}")

targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)

corpus=fuzz/corpus
seed() { # target files...
  local target=$1
  shift
  mkdir -p "$corpus/$target"
  (($#)) && cp -n "$@" "$corpus/$target/"
  return 0
}
fixtures=(tests/fixtures/*.ts)
seed ts_demux "${fixtures[@]}"
seed ts_segment "${fixtures[@]}"
# video_pts_scan takes its chunk size from the first byte: 0xBB is one TS packet.
mkdir -p "$corpus/video_pts_scan"
for f in "${fixtures[@]}"; do
  { printf '\xbb'; head -c 65000 "$f"; } >"$corpus/video_pts_scan/$(basename "$f")"
done
if command -v ffmpeg >/dev/null; then
  mkdir -p "$corpus/h264_nal"
  ffmpeg -v error -i tests/fixtures/h264-baseline-opus.ts -map 0:v -c copy \
    -bsf:v h264_mp4toannexb -frames:v 30 -f h264 - >"$corpus/h264_nal/baseline.h264"
  ffmpeg -v error -i tests/fixtures/h264-baseline-opus.ts -map 0:v -c copy \
    -bsf:v h264_mp4toannexb -f h264 - | scripts/fuzz-rtp-seeds.py "$corpus"
else
  echo "scripts/fuzz.sh: no ffmpeg; the H.264 and RTP targets start without seeds" >&2
fi
mkdir -p "$corpus/opus_packet"
printf '\xfc\xff\xfe' >"$corpus/opus_packet/celt-20ms"
printf '\x7f\xe0\x03\xfc\xff\xfe\x7f\xf8\x01\x00\x10\x01\x48' >"$corpus/opus_packet/control-headers"
for dir in fuzz/seeds/*/ fuzz/regressions/*/; do
  [[ -d $dir ]] || continue
  seed "$(basename "$dir")" "$dir"*
done

echo "== building ${#targets[@]} fuzz targets"
time cargo fuzz build --fuzz-dir fuzz "${build[@]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo fuzz run --fuzz-dir fuzz "${build[@]}" "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "scripts/fuzz.sh: $target failed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units)' "$log" || true
done
echo "scripts/fuzz.sh: ${#targets[@]} targets fuzzed ${seconds}s each, no crash"
