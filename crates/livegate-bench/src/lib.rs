//! livegate from the player's side of the wire: a WHEP client for integration tests
//! ([`whep`]) and the `livegate-bench` load tool built on it.
//!
//! The client is a real WebRTC peer of its own (the `rtc` core with its own socket, ICE
//! agent, DTLS client and event loop per viewer), so a test that passes with it exercised
//! the gateway's whole path: HTTP, SDP negotiation, ICE, DTLS-SRTP, RTP packetization. The
//! load tool runs hundreds of these in one process; per-packet work beyond SRTP is a lock,
//! a few counters and a NAL header read, so the tool stays cheaper than the gateway it
//! measures.
//!
//! Not here: WHIP publishing (a later `whip` subcommand), decoding, TLS.

pub mod whep;
