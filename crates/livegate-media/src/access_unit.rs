//! Access units and tracks: the unit of media that flows between demuxer, muxer, RTP
//! packetizers and depacketizers.

use bytes::Bytes;

/// Number of distinct values of an MPEG-TS PTS/DTS (ISO/IEC 13818-1 §2.4.3.7: 33 bits).
pub const PTS_WRAP: u64 = 1 << 33;

/// A presentation (or decoding) timestamp on the 90 kHz MPEG-TS clock, as carried on the wire:
/// 33 bits, wrapping every 2^33 ticks (about 26.5 hours). Unwrap it with
/// [`crate::time::PtsUnwrapper`] before doing arithmetic across a wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pts90k(u64);

impl Pts90k {
    /// The largest representable value, `2^33 - 1`.
    pub const MAX: Pts90k = Pts90k(PTS_WRAP - 1);

    /// Wraps `ticks` into the 33-bit range.
    pub const fn new(ticks: u64) -> Self {
        Pts90k(ticks & (PTS_WRAP - 1))
    }

    /// The 33-bit tick count.
    pub const fn ticks(self) -> u64 {
        self.0
    }

    /// `self + ticks`, wrapping at 2^33 as the wire format does.
    pub const fn wrapping_add(self, ticks: u64) -> Self {
        Pts90k::new(self.0.wrapping_add(ticks))
    }
}

/// The codecs livegate carries end to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC in Annex B byte-stream form (MPEG-TS stream_type 0x1B).
    H264,
    /// Opus, one Opus packet per access unit (MPEG-TS stream_type 0x06 with an `Opus`
    /// registration descriptor, ETSI TS 102 366 style framing inside the PES).
    Opus,
}

impl Codec {
    /// The RTP clock rate of the codec (RFC 6184 §8.2.1, RFC 7587 §4.1).
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::H264 => 90_000,
            Codec::Opus => 48_000,
        }
    }
}

/// One elementary stream of an MPEG-TS program, as announced by its PMT.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Track {
    /// The PID that carries the stream's PES packets.
    pub pid: u16,
    pub codec: Codec,
    /// Opus channel count from the Opus extension descriptor; `None` for video.
    pub channels: Option<u8>,
}

/// One decodable unit of media: an H.264 access unit (Annex B, all NAL units of one picture)
/// or exactly one Opus packet.
///
/// `data` is reference-counted, so cloning an access unit to fan it out to many viewers does
/// not copy the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// PID of the track the unit belongs to.
    pub pid: u16,
    pub codec: Codec,
    pub pts: Pts90k,
    /// Decoding timestamp when it differs from `pts` (H.264 with B-frames).
    pub dts: Option<Pts90k>,
    /// An H.264 IDR picture (always `true` for Opus, whose packets are all independent).
    pub keyframe: bool,
    pub data: Bytes,
}
