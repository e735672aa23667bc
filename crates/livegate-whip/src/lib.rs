//! The media side of WHIP ingest: a publisher's RTP turned into MPEG-TS in the stream's
//! input buffer, as it arrives.
//!
//! ```text
//! SessionEvent::Rtp ──▶ Ingest ──▶ input RingBuffer ──▶ pipeline worker
//!                        │ per track: reorder ─▶ depacketize ─▶ timestamps
//!                        │ then: loss policy, start at the first keyframe, mux
//!                        └──▶ want_keyframe() ──▶ SessionHandle::request_keyframe()
//! ```
//!
//! - [`ingest`]: [`Ingest`], the whole path for one publisher, sans-I/O; the module docs
//!   hold the event loop contract, the start rules and the loss policy. [`IngestConfig`] and
//!   [`IngestStats`] go with it.
//! - `reorder` (private): sequence-number order within a small window,
//!   holes given up.
//! - [`depacketize`]: H.264 per RFC 6184 (single NAL unit, STAP-A, FU-A), Opus per RFC 7587.
//! - [`timing`]: 32-bit RTP timestamp unwrapping, exact clock conversion to 90 kHz, 1 MHz
//!   video clock detection, audio/video alignment by sender reports or arrival times.
//! - [`keyframe`]: when to ask the publisher for a keyframe, rate limited.
//!
//! On top of it sit the endpoint and its sessions:
//!
//! - [`WhipServer`]: admits publishers (stream key reservation, 409 or replacement, stream
//!   limit), answers through [`livegate_rtc`], gives each stream its input buffer and
//!   pipeline worker, and keeps a stream through its publisher's short absence
//!   (`republish_grace`).
//! - a session task per publisher: RTP events into its [`Ingest`], keyframe requests back,
//!   the input buffer closed when the publisher goes; its data channel relayed to and from
//!   the pipeline worker (`data_channel`).
//! - `echo`: a publisher whose offer is `sendrecv` gets the stream's output back on the same
//!   peer connection, as a WHEP viewer would ([`WhipConfig::echo`]), which makes livegate an
//!   upstream another gateway's `whip:<url>` pipeline can use.
//! - [`http`]: the WHIP routes (RFC 9725).
//!
//! Not here: the peer connection (`livegate_rtc`), NACK generation (rtc's interceptors),
//! pipeline workers (`livegate_pipeline`).

pub mod auth;
mod config;
mod data_channel;
pub mod depacketize;
mod echo;
pub mod http;
pub mod ingest;
pub mod keyframe;
mod metrics;
pub mod origin;
mod reorder;
mod server;
mod session;
mod stats;
pub mod timing;

pub use config::{OnConflict, WhipConfig};
pub use depacketize::{DepacketizeStats, H264Limits};
pub use ingest::{Ingest, IngestConfig, IngestError, AUDIO_PID, START_PTS_90K, VIDEO_PID};
pub use keyframe::KeyframeReason;
pub use metrics::WhipMetrics;
pub use origin::{ClaimError, ClaimFuture, ClaimGuard, OriginClaim, OriginClaims};
pub use server::{PublishError, Published, PublisherState, WhipServer};
pub use stats::{AvAlignment, IngestStats, TrackStats};
pub use timing::TrackClock;
