//! H.264 bitstream helpers on `h264-reader`: what the gateway must know about an access unit
//! without decoding it.
//!
//! - [`nal`]: Annex B NAL unit iteration and types, IDR and parameter-set detection.
//! - [`sps`]: resolution and the SDP `profile-level-id` from a sequence parameter set.
//! - [`parameter_sets`]: remembering the last SPS/PPS and putting them in front of an IDR
//!   that lacks them, so a viewer that starts at that IDR can decode it.
//! - [`bframes`]: noticing B-frames (PTS ≠ DTS), which WebRTC players handle badly.

pub mod bframes;
pub mod nal;
pub mod parameter_sets;
pub mod sps;

pub use bframes::BFrameDetector;
pub use nal::{has_parameter_sets, is_idr, nal_type, nal_units, NalType};
pub use parameter_sets::ParameterSetCache;
pub use sps::SpsInfo;

/// Why H.264 data could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    #[error("not a sequence parameter set NAL unit")]
    NotSps,
    #[error("malformed sequence parameter set: {0}")]
    BadSps(String),
}
