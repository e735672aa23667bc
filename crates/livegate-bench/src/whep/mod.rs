//! A WHEP viewer (draft-ietf-wish-whep; the resource model of WHIP, RFC 9725) on the async
//! `rtc` sans-I/O core (the one the `webrtc` crate wraps) with its own per-viewer event loop,
//! for tests and load runs against livegate.
//!
//! [`WhepClient::play`] makes a complete recvonly offer (H.264 packetization-mode=1 and
//! Opus), POSTs it and applies the answer; the [`WhepSession`] it returns counts what
//! arrives per packet (frames, keyframes, sequence gaps, time to first frame) and lets a
//! test await progress instead of sleeping:
//!
//! ```no_run
//! # async fn demo() -> Result<(), livegate_bench::whep::WhepClientError> {
//! use std::time::Duration;
//! use livegate_bench::whep::{WhepClient, WhepOptions};
//!
//! let client = WhepClient::new();
//! let session = client
//!     .play("http://127.0.0.1:8935/live/cam/whep", &WhepOptions::default())
//!     .await?;
//! session.wait_video_frames(10, Duration::from_secs(10)).await?;
//! let stats = session.stats();
//! assert!(stats.video.frame_log[0].is_keyframe());
//! println!("first frame after {:?}", stats.first_frame_at);
//! assert_eq!(session.delete().await?, 200);
//! session.wait_closed(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! What it is not: a player. Nothing is decoded or rendered; a frame is judged complete from
//! RTP alone (marker bit, sequence numbers, RFC 6184 NAL headers). It speaks plain HTTP only,
//! sends no PATCH (no trickle, no ICE restart) and, by default, uses only loopback answer
//! candidates ([`WhepOptions::loopback_only`]).

mod client;
mod h264;
mod options;
mod peer;
mod receive;
mod session;

pub use crate::error::PeerError;
pub use crate::http::retry_after_delay;
pub use client::WhepClient;
pub use options::{OfferTransform, VideoPacketTap, WhepOptions};
pub use receive::{FrameRecord, KindStats, PacketView};
pub use session::{SessionStats, WhepSession};

/// Errors of [`WhepClient`] and [`WhepSession`]: the crate's one client error.
pub type WhepClientError = crate::error::ClientError;
