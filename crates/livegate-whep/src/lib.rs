//! The media side of WHEP playback: demux each stream's output once, packetize it once, fan
//! it out to every viewer, and start new viewers at once from the GOP cache.
//!
//! ```text
//! output RingBuffer ──▶ StreamOutput (one per stream: demux, SPS/PPS, packetize, GOP cache)
//!                          │ MediaFrame (shared payloads)
//!                          ├──▶ ViewerFeed ──▶ ViewerClock ──▶ RtpFrame ──▶ WebRTC session
//!                          └──▶ ViewerFeed ──▶ ViewerClock ──▶ RtpFrame ──▶ WebRTC session
//! ```
//!
//! - [`packetize`]: RTP payloads of H.264 (RFC 6184) and Opus (RFC 7587) access units.
//! - [`output`]: [`StreamOutput`], the per-stream reader and fan-out, its [`ViewerFeed`]s and
//!   status events, and [`StreamOutputs`], which finds a stream's output.
//! - [`ViewerClock`]: per-viewer RTP timestamps, continuous across worker restarts.
//! - The GOP cache ([`GopLimits`] bounds it) lives inside each output.
//!
//! It knows nothing of HTTP or the WebRTC event loop: a session task takes frames from its
//! feed, maps them with its clock and hands the [`livegate_rtc::RtpFrame`]s to its session.

mod frame;
mod gop;
pub mod output;
pub mod packetize;
mod viewer;

pub use frame::MediaFrame;
pub use gop::GopLimits;
pub use output::{
    Activity, ConfigError, FeedStats, OutputConfig, OutputEvent, OutputEvents, OutputStats,
    OutputStatus, OutputTracks, StreamOutput, StreamOutputs, TracksError, ViewerFeed,
};
pub use viewer::{ViewerClock, ViewerClockStats};
