//! A WHIP publisher (RFC 9725) on the `rtc` sans-I/O core with its own per-publisher event
//! loop, for tests and load runs against livegate: the mirror of [`crate::whep`].
//!
//! [`WhipClient::publish`] makes a complete sendonly offer (H.264 packetization-mode=1 PT 96
//! and Opus PT 111, or the layout OBS sends, see [`OfferShape`]), POSTs it and applies the
//! answer. Once connected, the [`WhipPublisher`] plays a [`MediaFile`] in real time by
//! decoding time, in a loop with continuing timestamps: H.264 one NAL unit per packet (FU-A
//! when large, SPS and PPS as their own packets before each IDR, as OBS sends them), Opus one
//! packet per RTP packet, RTP timestamps from the presentation times at 90 kHz and 48 kHz on
//! random bases. Keyframe requests (PLI, FIR) from the gateway are counted, not answered:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use livegate_bench::whip::{MediaFile, WhipClient, WhipOptions};
//!
//! let options = WhipOptions {
//!     media: Some(MediaFile::load("tests/fixtures/h264-baseline-opus.ts").await?),
//!     ..WhipOptions::default()
//! };
//! let publisher = WhipClient::new()
//!     .publish("http://127.0.0.1:8935/live/cam/whip", &options)
//!     .await?;
//! println!("201 after {:?}; plays at {:?}", publisher.resource().answered_after(), publisher.resource().playback_url());
//! publisher.wait_connected(Duration::from_secs(10)).await?;
//! publisher.wait_video_frames_sent(90, Duration::from_secs(10)).await?;
//! println!("{:?}", publisher.stats());
//! assert_eq!(publisher.delete().await?, 200);
//! publisher.wait_closed(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! What it is not: an encoder (it sends a file's access units as they are, and cannot make
//! a keyframe on request), or a congestion-controlled sender (no TWCC, no pacing within a
//! frame). It speaks plain HTTP only and sends no PATCH.

mod client;
mod media;
mod options;
mod pacer;
mod payload;
mod peer;
mod publisher;

pub use client::WhipClient;
pub use media::{MediaFile, MediaFileError, MAX_FILE_BYTES};
pub use options::{OfferShape, SentVideoTap, WhipOptions};
#[cfg(test)]
pub(crate) use payload::ObsH264Payloads;
pub use peer::SentStats;
pub use publisher::WhipPublisher;

/// Errors of [`WhipClient`] and [`WhipPublisher`]: the crate's one client error.
pub type WhipClientError = crate::error::ClientError;
