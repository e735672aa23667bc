//! How long a frame takes through a gateway: a publisher and a viewer in one process, one
//! clock, frames matched by the bytes of their first slice rather than by RTP timestamps
//! (which the gateway rewrites).
//!
//! [`frame_key`] names a frame by content from either end of the wire, [`SendLog`] remembers
//! when each was last sent, and [`LatencyProbe`] plugs into the publisher
//! ([`crate::whip::WhipOptions::sent_video_tap`]) and the viewer
//! ([`crate::whep::WhepOptions::video_tap`]) to pair them.
//!
//! What it measures: from the publisher's last `send` of a frame's packets to the viewer's
//! `recv` of the frame's last packet, so the gateway's depacketizing, remuxing, queuing and
//! repacketizing plus two loopback hops and two SRTP passes. Not a decoder's or a screen's
//! delay; nothing is decoded.

pub mod frame_key;
mod probe;
mod send_log;

pub use probe::{FrameLatency, LatencyProbe, ProbeSnapshot};
pub use send_log::SendLog;
