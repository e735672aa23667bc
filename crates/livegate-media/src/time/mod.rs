//! Timestamps between MPEG-TS and RTP.
//!
//! MPEG-TS carries a 33-bit 90 kHz PTS that wraps every 26.5 hours and restarts whenever a
//! worker restarts; RTP wants per-track 32-bit timestamps that start at a random value
//! (RFC 3550 §5.1) and never go backwards for the life of a session. The pieces:
//!
//! - [`PtsUnwrapper`]: 33-bit PTS → continuous 64-bit 90 kHz time.
//! - [`Timeline`]: one per session, shared by its tracks: unwraps every track of the current
//!   source on one epoch, and rebases a new source (worker restart) so that output time
//!   continues after the last unit sent, with audio and video moved by the same offset.
//! - [`RtpClock`]: one per outgoing track: output time → [`RtpTimestamp`] with a random base,
//!   exact at 48 kHz for Opus.

mod rtp;
mod timeline;
mod unwrap;

pub use rtp::{RtpClock, RtpTimestamp};
pub use timeline::Timeline;
pub use unwrap::PtsUnwrapper;
