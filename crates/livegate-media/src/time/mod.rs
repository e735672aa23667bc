//! Timestamps between MPEG-TS and RTP.
//!
//! MPEG-TS carries a 33-bit 90 kHz PTS that wraps every 26.5 hours and starts anywhere
//! whenever a worker restarts; RTP wants per-track 32-bit timestamps that start at a random
//! value (RFC 3550 §5.1), run at the codec's clock rate, and never go backwards for the life
//! of the RTP stream. The pieces, in the order a unit passes through them:
//!
//! - [`PtsUnwrapper`]: 33-bit PTS → continuous 64-bit 90 kHz time ([`Ticks90k`]).
//! - [`Timeline`]: one per session, shared by its tracks: unwraps every track of the current
//!   source on one epoch and, when the source changes, continues output time after the last
//!   unit sent, with audio and video moved by the same offset (lip sync).
//! - [`RtpClock`]: one per outgoing track: output time → [`RtpTimestamp`] from a random base,
//!   exact at any clock rate (no drift, no jump at the PTS wrap for 48 kHz Opus).
//!
//! Nothing here allocates, locks or reads the wall clock; the caller owns all of it.
//!
//! A WHEP session sending H.264 and Opus, across a worker restart:
//!
//! ```
//! use livegate_media::time::{RtpClock, Ticks90k, Timeline};
//! use livegate_media::{Codec, Pts90k, PTS_WRAP};
//!
//! let video = RtpClock::new(Codec::H264.rtp_clock_rate());
//! let audio = RtpClock::new(Codec::Opus.rtp_clock_rate());
//! let mut timeline = Timeline::new();
//!
//! // The first source: start at its first keyframe, then map every unit.
//! timeline.anchor(Pts90k::new(PTS_WRAP - 1_500), Ticks90k(0));
//! let v1 = video.timestamp(timeline.output_time(Pts90k::new(PTS_WRAP - 1_500)).unwrap());
//! let a1 = audio.timestamp(timeline.output_time(Pts90k::new(300)).unwrap()); // wrapped
//! assert_eq!(v1, video.base());
//! assert_eq!(a1.ticks_since(audio.base()), 960); // 1800 ticks later, at 48 kHz
//!
//! // The worker restarts and its new output starts from PTS 0 after a 2 s freeze (in a
//! // session, the wall-clock time since the last unit sent).
//! timeline.source_changed();
//! let freeze = Ticks90k::from_duration(std::time::Duration::from_secs(2));
//! timeline.anchor(Pts90k::new(0), freeze);
//! let v2 = video.timestamp(timeline.output_time(Pts90k::new(0)).unwrap());
//! let a2 = audio.timestamp(timeline.output_time(Pts90k::new(1_800)).unwrap());
//! // Both tracks continue forward, two seconds after the latest unit (the audio one).
//! assert_eq!(v2.ticks_since(v1), 1_800 + 180_000);
//! assert_eq!(a2.ticks_since(a1), 96_000 + 960);
//! ```

mod rtp;
mod ticks;
mod timeline;
mod unwrap;

pub use rtp::{RtpClock, RtpTimestamp};
pub use ticks::Ticks90k;
pub use timeline::Timeline;
pub use unwrap::PtsUnwrapper;
