//! The media core of livegate: everything between bytes and access units that knows nothing
//! of WebRTC or HTTP.
//!
//! The data flow of the gateway is publisher → input [`ring::RingBuffer`] → pipeline worker →
//! output [`ring::RingBuffer`] → viewers. This crate owns the shared vocabulary of that flow:
//!
//! - [`AccessUnit`], [`Codec`] and [`Track`]: what a demuxed stream is made of.
//! - [`Pts90k`]: the 33-bit MPEG-TS presentation timestamp, and in [`time`] the unwrapping and
//!   RTP timestamp mapping that the WebRTC side needs.
//! - [`ts`]: MPEG-TS demuxing (on `mpeg2ts-reader`) and muxing of H.264 and Opus.
//! - [`h264`]: parameter sets, keyframes and B-frame detection (on `h264-reader`).
//! - [`opus`]: Opus packet durations and the control header that frames Opus in MPEG-TS.
//! - [`ring`]: the closable, many-reader ring that holds a stream's input or output.
//! - [`registry`]: streams by [`StreamKey`], and waiting for a stream's output.
//! - `testing` (feature `testing`, for other crates' tests): fixtures and H.264 test data.

pub mod access_unit;
pub mod h264;
pub mod opus;
pub mod registry;
pub mod ring;
pub mod stream_key;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod ts;

pub use access_unit::{AccessUnit, Codec, Pts90k, Track, PTS_WRAP};
pub use stream_key::{StreamKey, StreamKeyError};
