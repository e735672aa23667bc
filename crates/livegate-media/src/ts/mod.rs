//! MPEG-TS (ISO/IEC 13818-1) for H.264 and Opus: [`demux`] turns any byte stream into tracks
//! and access units, [`mux`] turns access units back into a stream ffmpeg accepts.

pub mod demux;
pub mod mux;
pub mod segment;

/// Size of one transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;
/// stream_type of H.264 in a PMT (ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// stream_type of private PES data, which carries Opus together with an `Opus` registration
/// descriptor.
pub const STREAM_TYPE_PRIVATE_PES: u8 = 0x06;
