//! H.264 bitstream helpers on `h264-reader`: what the gateway must know about an access unit
//! without decoding it. Nothing here decodes pictures or rewrites slices; the only bytes it
//! ever adds are parameter sets a late-joining decoder needs.
//!
//! - [`nal`]: Annex B NAL unit iteration and types, IDR and parameter-set detection.
//! - [`sps`]: resolution and the SDP `profile-level-id` from a sequence parameter set.
//! - [`parameter_sets`]: remembering the last SPS/PPS and putting them in front of an IDR
//!   that lacks them, so a viewer that starts at that IDR can decode it.
//! - [`bframes`]: noticing B-frames (PTS ≠ DTS), which WebRTC players handle badly.

pub mod bframes;
#[cfg(test)]
mod fixtures;
pub mod nal;
pub mod parameter_sets;
pub mod sps;

pub use bframes::BFrameDetector;
pub use nal::{
    contains_parameter_sets, is_idr_access_unit, nal_type, nal_units, NalType, NalUnits,
};
pub use parameter_sets::ParameterSetCache;
pub use sps::SpsInfo;

/// Former name of [`is_idr_access_unit`], still used by the demuxer.
#[doc(hidden)]
pub use nal::is_idr_access_unit as is_idr;

/// Why H.264 data could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// The NAL unit handed to an SPS parser is empty or of another type.
    #[error("not a sequence parameter set NAL unit")]
    NotSps,
    /// h264-reader rejected the SPS (truncated, or a field out of range); the reason is its
    /// error, formatted.
    #[error("malformed sequence parameter set: {0}")]
    BadSps(String),
}
