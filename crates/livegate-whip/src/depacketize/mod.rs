//! Access units from RTP payloads, one codec per file:
//!
//! - [`h264`]: RFC 6184 single NAL unit, STAP-A and FU-A packets into Annex B access units.
//! - [`opus`]: RFC 7587, one Opus packet per payload, checked and passed on as it is.
//!
//! Packets come in sequence order with losses marked (from the private `reorder` module); timestamps,
//! loss policy and muxing are the ingest's.

pub mod h264;
pub mod opus;

pub use h264::{DepacketizeStats, H264Limits};
