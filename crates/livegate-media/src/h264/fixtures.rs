//! Test-only: the H.264 access units of a fixture, read straight from its transport stream
//! packets, so that the H.264 tests use real x264 output without depending on the demuxer
//! they are meant to serve. Assumes what scripts/make-fixtures.sh guarantees: video on PID
//! 0x100, one access unit per PES packet, no scrambling.

use bytes::Bytes;

use crate::access_unit::Pts90k;

/// Fixtures that carry H.264.
pub(crate) const FIXTURES: [&str; 5] = [
    "h264-baseline-opus.ts",
    "h264-high-opus.ts",
    "h264-bframes-opus.ts",
    "video-only.ts",
    "pts-wrap.ts",
];

const VIDEO_PID: u16 = 0x100;

/// One PES packet of the video PID.
pub(crate) struct VideoAccessUnit {
    pub(crate) pts: Pts90k,
    pub(crate) dts: Option<Pts90k>,
    pub(crate) data: Bytes,
}

pub(crate) fn read_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The video access units of a fixture, in stream order.
pub(crate) fn video_access_units(name: &str) -> Vec<VideoAccessUnit> {
    let ts = read_fixture(name);
    assert_eq!(ts.len() % 188, 0, "{name} is whole TS packets");
    let mut pes_packets: Vec<Vec<u8>> = Vec::new();
    for packet in ts.chunks_exact(188) {
        assert_eq!(packet[0], 0x47, "{name}: sync byte");
        let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
        if pid != VIDEO_PID {
            continue;
        }
        let adaptation_field_control = packet[3] >> 4 & 0x3;
        let mut start = 4;
        if adaptation_field_control & 0x2 != 0 {
            start += 1 + usize::from(packet[4]);
        }
        if adaptation_field_control & 0x1 == 0 || start >= 188 {
            continue;
        }
        if packet[1] & 0x40 != 0 {
            pes_packets.push(Vec::new());
        }
        if let Some(pes) = pes_packets.last_mut() {
            pes.extend_from_slice(&packet[start..]);
        }
    }
    pes_packets.iter().map(|pes| parse_pes(pes)).collect()
}

/// ISO/IEC 13818-1 §2.4.3.6: PES header with PTS, optionally DTS.
fn parse_pes(pes: &[u8]) -> VideoAccessUnit {
    assert_eq!(&pes[..3], &[0, 0, 1], "PES start code prefix");
    let pts_dts_flags = pes[7] >> 6;
    let header_end = 9 + usize::from(pes[8]);
    let timestamp = |at: usize| {
        let b = &pes[at..at + 5];
        Pts90k::new(
            u64::from(b[0] >> 1 & 0x7) << 30
                | u64::from(b[1]) << 22
                | u64::from(b[2] >> 1) << 15
                | u64::from(b[3]) << 7
                | u64::from(b[4] >> 1),
        )
    };
    assert!(pts_dts_flags & 0x2 != 0, "video PES without PTS");
    VideoAccessUnit {
        pts: timestamp(9),
        dts: (pts_dts_flags == 0x3).then(|| timestamp(14)),
        data: Bytes::copy_from_slice(&pes[header_end..]),
    }
}
