//! livegate from both ends of the wire: a WHEP viewer ([`whep`]) and a WHIP publisher
//! ([`whip`]) for integration tests, and the `livegate-bench` load tool built on them.
//!
//! The client is a real WebRTC peer of its own (the `rtc` core with its own socket, ICE
//! agent, DTLS client and event loop per viewer), so a test that passes with it exercised
//! the gateway's whole path: HTTP, SDP negotiation, ICE, DTLS-SRTP, RTP packetization. The
//! load tool runs hundreds of these in one process; per-packet work beyond SRTP is a lock,
//! a few counters and a NAL header read, so the tool stays cheaper than the gateway it
//! measures.
//!
//! The publisher is the same kind of peer (the `rtc` core, its own socket and loop) playing
//! an MPEG-TS file in real time as OBS would send it.
//!
//! [`latency`] pairs the two in one process to time frames through the gateway.
//!
//! Both clients fail with one [`error::ClientError`]; [`whep::retry_after_delay`] reads a
//! refusal's `Retry-After`.
//!
//! Not here: encoding or decoding, TLS.

mod endpoint;
pub mod error;
mod http;
pub mod latency;
mod lifecycle;
pub mod resource;
mod sdp;
pub mod whep;
pub mod whip;
