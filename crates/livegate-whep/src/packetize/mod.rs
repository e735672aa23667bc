//! RTP payloads of one access unit, built once per stream and shared by every viewer.
//!
//! A payload here is what follows the 12-byte RTP header: the WebRTC event loop adds payload
//! type, SSRC, sequence number, timestamp and the marker bit (on the last payload of a frame),
//! so the same payloads serve every session. One codec per file:
//!
//! - [`H264Packetizer`]: RFC 6184 non-interleaved mode (packetization-mode=1): single NAL
//!   unit packets, STAP-A for small parameter sets, FU-A for large NAL units.
//! - [`opus_payloads`]: RFC 7587, one Opus packet per payload.
//!
//! Not here: RTP headers, timestamps (each viewer has its own, see [`crate::ViewerClock`]),
//! parameter-set injection (done on the access unit before packetizing, see
//! [`crate::output`]), and depacketizing.

mod h264;
mod opus;

pub use h264::H264Packetizer;
pub use opus::opus_payloads;

/// Default largest RTP payload: 1200 bytes keeps a packet with RTP header, SRTP tag, header
/// extensions, UDP and IPv6 headers under 1280 bytes, the IPv6 minimum MTU that WebRTC
/// stacks assume (libwebrtc uses the same figure).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1200;

/// Smallest usable payload bound: an FU-A fragment needs its 2 header bytes plus one byte of
/// NAL unit (RFC 6184 §5.8).
pub const MIN_MAX_PAYLOAD_BYTES: usize = 3;

/// Largest usable payload bound: a STAP-A gives each aggregated NAL unit a 16-bit size
/// (RFC 6184 §5.7.1), and no UDP datagram is larger anyway.
pub const MAX_MAX_PAYLOAD_BYTES: usize = u16::MAX as usize;

/// Why a packetizer could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The payload bound is outside [`MIN_MAX_PAYLOAD_BYTES`]..=[`MAX_MAX_PAYLOAD_BYTES`].
    #[error(
        "max payload size {0} bytes is outside {MIN_MAX_PAYLOAD_BYTES}..={MAX_MAX_PAYLOAD_BYTES}"
    )]
    MaxPayloadOutOfRange(usize),
}
