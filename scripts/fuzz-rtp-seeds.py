#!/usr/bin/env python3
"""Seeds for the WHIP RTP fuzz targets (fuzz/fuzz_targets/common/rtp.rs), made at run time.

    ffmpeg -i tests/fixtures/h264-baseline-opus.ts -map 0:v -c copy -bsf:v h264_mp4toannexb \
        -f h264 - | scripts/fuzz-rtp-seeds.py OUT_DIR

reads Annex B H.264 on stdin and writes, in the record format of common/rtp.rs:
  OUT_DIR/whip_h264_rtp/fixture  the access units as RFC 6184 single NAL unit and FU-A
                                 packets (marker on each access unit's last), 30 fps, with
                                 an Opus packet every 20 ms on the second track;
  OUT_DIR/whip_opus_rtp/fixture  Opus packets of several TOC configurations, 20 ms apart.
Each seed stays under 64 KiB (scripts/fuzz.sh runs with -max_len=65536).
"""
import os
import sys

MAX_SEED_BYTES = 60_000
MAX_PAYLOAD = 255  # one length byte per record
# Arrival steps of common/rtp.rs, by index: 4 is 20 ms, 5 is 33 ms.
ARRIVE_20MS, ARRIVE_33MS = 4 << 3, 5 << 3
OPUS_TRACK = 0b10
VIDEO_TS_STEP = 3008 // 16  # ~1/30 s at 90 kHz, in the record's units of 16 ticks
OPUS_TS_STEP = 960 // 16  # 20 ms at 48 kHz


def record(flags, ts_step, payload, seq_step=1):
    assert len(payload) <= MAX_PAYLOAD
    return bytes([flags, seq_step & 0xFF]) + ts_step.to_bytes(2, "big", signed=True) + bytes(
        [len(payload)]) + payload


def nal_units(stream):
    starts = []
    i = 0
    while True:
        i = stream.find(b"\x00\x00\x01", i)
        if i < 0:
            break
        starts.append(i + 3)
        i += 3
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(stream)
        nal = stream[start:end].rstrip(b"\x00")
        if nal:
            yield nal


def access_units(stream):
    """Groups NAL units: a new unit starts at an AUD, SPS, PPS or SEI after a slice, or at a
    slice with first_mb_in_slice = 0 (its first bit after the header is 1) after a slice."""
    unit, has_slice = [], False
    for nal in nal_units(stream):
        kind = nal[0] & 0x1F
        is_slice = kind in (1, 5)
        starts_picture = is_slice and len(nal) > 1 and nal[1] & 0x80
        if has_slice and (kind in (6, 7, 8, 9) or starts_picture):
            yield unit
            unit, has_slice = [], False
        if kind != 9:
            unit.append(nal)
        has_slice |= is_slice
    if unit:
        yield unit


def packets(nal):
    if len(nal) <= MAX_PAYLOAD:
        return [nal]
    indicator = (nal[0] & 0xE0) | 28
    body = nal[1:]
    chunk = MAX_PAYLOAD - 2
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    out = []
    for n, piece in enumerate(pieces):
        header = nal[0] & 0x1F
        if n == 0:
            header |= 0x80
        if n == len(pieces) - 1:
            header |= 0x40
        out.append(bytes([indicator, header]) + piece)
    return out


def h264_seed(stream):
    seed = bytearray()
    frame = 0
    for unit in access_units(stream):
        payloads = [p for nal in unit for p in packets(nal)]
        frame_records = bytearray()
        for n, payload in enumerate(payloads):
            last = n == len(payloads) - 1
            flags = (1 if last else 0) | (ARRIVE_33MS if n == 0 else 0)
            ts_step = VIDEO_TS_STEP if n == 0 and frame > 0 else 0
            frame_records += record(flags, ts_step, payload)
        # Audio: 33 ms of video is about 1.65 Opus packets; send 2 every other frame.
        for _ in range(2 if frame % 2 == 0 else 1):
            frame_records += record(OPUS_TRACK, OPUS_TS_STEP, b"\xfc\xff\xfe")
        if len(seed) + len(frame_records) > MAX_SEED_BYTES:
            break
        seed += frame_records
        frame += 1
    return bytes(seed), frame


def opus_seed():
    # CELT FB 20 ms, SILK WB 20 ms, hybrid FB 20 ms, code 1 (two 10 ms frames), code 3 (three
    # 2.5 ms frames), and one refused payload (code 3 of 140 ms).
    tocs = [b"\xfc\xff\xfe", b"\x48" + bytes(40), b"\x78" + bytes(60), b"\xf5\x01\x02",
            b"\xe3\x03" + bytes(10), b"\xfb\x07"]
    return b"".join(record(ARRIVE_20MS, OPUS_TS_STEP, tocs[i % len(tocs)]) for i in range(60))


def main():
    out = sys.argv[1]
    stream = sys.stdin.buffer.read()
    h264, frames = h264_seed(stream)
    if frames < 2:
        sys.exit("fuzz-rtp-seeds: fewer than two access units on stdin")
    for target, seed in (("whip_h264_rtp", h264), ("whip_opus_rtp", opus_seed())):
        os.makedirs(os.path.join(out, target), exist_ok=True)
        with open(os.path.join(out, target, "fixture"), "wb") as f:
            f.write(seed)
    print(f"fuzz-rtp-seeds: {frames} access units, {len(h264)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
