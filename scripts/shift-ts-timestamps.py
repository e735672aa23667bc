#!/usr/bin/env python3
"""Shift every PTS, DTS and PCR of an MPEG-TS file so that its first PTS lands at a chosen
33-bit value, wrapping at 2^33 as real encoders do (ISO/IEC 13818-1 §2.4.3.7, §2.4.3.5).

ffmpeg normalises start times whatever -output_ts_offset/-itsoffset say, so the PTS-wrap
fixture is made by rewriting the timestamps of an ordinary ffmpeg output in place.

usage: shift-ts-timestamps.py IN OUT FIRST_PTS_90K
"""
import sys

WRAP = 1 << 33


def read_ts(b):
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def write_ts(prefix, v):
    return bytes([
        (prefix << 4) | ((v >> 29) & 0x0E) | 1,
        (v >> 22) & 0xFF,
        ((v >> 14) & 0xFE) | 1,
        (v >> 7) & 0xFF,
        ((v << 1) & 0xFE) | 1,
    ])


def pes_header_offset(pkt):
    """Offset of the payload in a TS packet, or None when it has none."""
    afc = (pkt[3] >> 4) & 3
    if not afc & 1:
        return None
    return 4 + (1 + pkt[4] if afc & 2 else 0)


def first_pts(data):
    for i in range(0, len(data), 188):
        pkt = data[i:i + 188]
        off = pes_header_offset(pkt)
        if pkt[1] & 0x40 and off is not None and pkt[off:off + 3] == b"\x00\x00\x01":
            if pkt[off + 7] & 0x80:
                return read_ts(pkt[off + 9:off + 14])
    raise SystemExit("no PTS found")


def main():
    src, dst, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bytearray(open(src, "rb").read())
    delta = (target - first_pts(data)) % WRAP
    for i in range(0, len(data), 188):
        pkt = memoryview(data)[i:i + 188]
        afc = (pkt[3] >> 4) & 3
        if afc & 2 and pkt[4] > 0 and pkt[5] & 0x10:  # PCR_flag
            base = pkt[6] << 25 | pkt[7] << 17 | pkt[8] << 9 | pkt[9] << 1 | pkt[10] >> 7
            base = (base + delta) % WRAP
            pkt[6], pkt[7], pkt[8], pkt[9] = (base >> 25) & 0xFF, (base >> 17) & 0xFF, (base >> 9) & 0xFF, (base >> 1) & 0xFF
            pkt[10] = (pkt[10] & 0x7F) | ((base & 1) << 7)
        off = pes_header_offset(pkt)
        if not (pkt[1] & 0x40) or off is None or bytes(pkt[off:off + 3]) != b"\x00\x00\x01":
            continue
        flags = pkt[off + 7] >> 6
        if flags & 2:
            pts = (read_ts(pkt[off + 9:off + 14]) + delta) % WRAP
            pkt[off + 9:off + 14] = write_ts(3 if flags == 3 else 2, pts)
        if flags == 3:
            dts = (read_ts(pkt[off + 14:off + 19]) + delta) % WRAP
            pkt[off + 14:off + 19] = write_ts(1, dts)
    open(dst, "wb").write(data)


if __name__ == "__main__":
    main()
