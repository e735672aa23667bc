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
//! On top of that media side sit the endpoint and its sessions:
//!
//! - [`WhepServer`]: admits viewers (limits, waiting for output, tracks from the PMT),
//!   answers their offers through [`livegate_rtc`] and keeps the session table.
//! - a session task per viewer: takes frames from its feed, maps them with its clock and
//!   hands the [`livegate_rtc::RtpFrame`]s to its peer connection.
//! - [`http`]: the WHEP routes, translating HTTP into calls on [`WhepServer`].

mod config;
mod frame;
mod gop;
pub mod http;
mod metrics;
pub mod output;
pub mod packetize;
pub mod remote;
mod server;
mod server_metrics;
mod session;
mod viewer;

pub use config::WhepConfig;
pub use metrics::WhepMetrics;
pub use remote::{AttachFuture, Attachment, RemoteLease, RemoteStreams, RemoteUnavailable};
pub use server::{PlayError, PlayOptions, Played, WhepServer};

pub use frame::MediaFrame;
pub use gop::GopLimits;
pub use output::{
    Activity, ConfigError, FeedStats, OutputConfig, OutputEvent, OutputEvents, OutputStats,
    OutputStatus, OutputTracks, StreamOutput, StreamOutputs, TracksError, ViewerFeed,
};
pub use viewer::{ViewerClock, ViewerClockStats};
