//! The WebRTC transport of livegate: every peer connection of a server role (WHIP ingest or
//! WHEP playback) on one UDP port, on the webrtc-rs sans-I/O core (`rtc`).
//!
//! An [`RtcServer`] owns one UDP socket, a dispatcher task that reads it, optionally a TCP
//! listener on the same port number for ICE over TCP ([`RtcConfig::ice_tcp`]), and N shard
//! event loops (one per core by default) among which the peer connections are spread. The HTTP
//! layers hand it SDP offers with [`RtcServer::accept`] and get back a complete answer at once
//! (our host candidates are known up front, so there is no gathering to wait for), a
//! [`SessionHandle`] to send media or close, and a queue of [`SessionEvent`]s.
//!
//! # The event loop contract
//!
//! The dispatcher routes each datagram to the shard owning its session and does nothing
//! else. A shard owns its `RTCPeerConnection`s; nothing else touches them. It reacts to:
//!
//! | input | what the loop does |
//! |---|---|
//! | a datagram | routed by the dispatcher (STUN request → session by the local ufrag in USERNAME; anything else → session by remote address; unknown → dropped and counted), then `handle_read` |
//! | an ICE-TCP frame | de-framed (RFC 4571) by its connection's task and routed the same way, by (remote address, TCP); then `handle_read` with `TransportProtocol::TCP`. A connection whose first packet is not a STUN check for one of our sessions, that sends a frame over 2 KiB, or that no session answers within 10 s is closed and counted |
//! | a session's deadline | `handle_timeout` |
//! | a [`SessionHandle`] command | media to send, keyframe request, stats, close |
//! | a snapshot request ([`RtcServer::sessions_snapshot`]) | every session's [`SessionStats`] in one reply |
//!
//! and after each, drains that session's `poll_write` (to the socket, or with 2-byte framing
//! to the TCP connection of that remote address, whose bounded queue drops when full),
//! `poll_event` (state changes, tracks, data channels) and `poll_read` (media and RTCP for
//! the owner). A session whose connection fails or closes is removed from every table (its
//! TCP connections closed) and its owner told once, through [`SessionHandle::state`].
//!
//! Who may block: nobody. The loop never waits for an owner: a full event queue drops the
//! event and counts it; an owner that stops reading only loses its own events.
//!
//! Metrics: the loop counts media (RTP packets and bytes, frames, NACK/PLI/FIR, loss) in
//! counters of its own that [`RtcServer::stats`] sums; it never touches a metrics library.

mod bitrate;
mod candidates;
mod config;
mod ice_server;
mod ice_tcp;
mod interceptor;
mod offer;
mod peer;
mod reception;
mod retransmit;
mod router;
mod sdpfrag;
mod sender_report;
mod server;
mod session_limit;
mod shard;
mod stun;
mod udp;

use std::fmt;

use bytes::Bytes;
pub use livegate_media::Codec;

pub use bitrate::BitrateMeter;
pub use config::RtcConfig;
pub use ice_server::{IceServer, IceServerError};
pub use interceptor::DeliverRtcp;
pub use offer::{
    Direction, MediaKind, Offer, OfferError, OfferedCodec, OfferedMedia, MAX_CANDIDATES, MAX_LINES,
    MAX_LINE_BYTES, MAX_MEDIA_SECTIONS,
};
pub use sdpfrag::{SdpFrag, SdpFragError};
pub use server::{RtcServer, ServerStats};
pub use session_limit::SessionLimit;

/// Identifies a session inside one [`RtcServer`]. Not secret and not a URL: the HTTP layers
/// keep their own unguessable resource ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// The shard that owns the session: ids are allocated as `n * shards + shard`.
    pub(crate) fn shard(self, shards: usize) -> usize {
        (self.0 % shards as u64) as usize
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtc-{}", self.0)
    }
}

/// What a session does with media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRole {
    /// A publisher sends to us (WHIP): we receive H.264 and Opus.
    Receive,
    /// We send to a viewer (WHEP) the listed tracks, as far as the offer accepts them.
    Send(SendSpec),
    /// A publisher that may also get media back (WHIP echo): we receive as with
    /// [`SessionRole::Receive`], and where the offer's first audio or video section is
    /// `sendrecv` we answer it `sendrecv` and send the listed track of that kind on the same
    /// transceiver (RFC 3264 §6.1, RFC 8829 §5.3.1). The H.264 format sent is the offer's
    /// first with `packetization-mode=1` (or the [`SendSpec`]'s profile if offered), answered
    /// with the offer's own fmtp; Opus as offered. Sections the offer only sends are answered
    /// `recvonly` exactly as [`SessionRole::Receive`] would, so an offer with no `sendrecv`
    /// section gets the same answer and [`Accepted::send_tracks`] is empty.
    Both(SendSpec),
}

/// The tracks a sending session offers, all in one media stream so players lip-sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSpec {
    /// The `msid` stream id shared by the tracks.
    pub stream_id: String,
    /// At most one H.264 and one Opus track.
    pub tracks: Vec<Codec>,
    /// The stream's H.264 `profile-level-id` (from its SPS), preferred among the offered
    /// H.264 formats.
    pub h264_profile_level_id: Option<String>,
}

/// A session that was accepted.
pub struct Accepted {
    pub handle: SessionHandle,
    /// The complete SDP answer, candidates included.
    pub answer: String,
    pub events: tokio::sync::mpsc::Receiver<SessionEvent>,
    /// For sending sessions (and [`SessionRole::Both`] where the offer is `sendrecv`): the
    /// tracks the offer accepted, in the order of [`SendSpec::tracks`]; send with the index
    /// into this list.
    pub send_tracks: Vec<Codec>,
    /// The local ICE ufrag (the STUN USERNAME prefix peers use).
    pub ice_ufrag: String,
    /// Strong entity tag of the ICE session for the resource's `ETag` header (RFC 9725
    /// §4.3.1); it changes on every ICE restart.
    pub etag: String,
}

/// What a PATCH did (RFC 9725 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOutcome {
    /// New remote candidates were added: answer 204.
    Trickled,
    /// ICE restarted: answer 200 with this fragment and the new ETag.
    Restarted { sdpfrag: String, etag: String },
}

/// Why a PATCH was refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 428: PATCH without If-Match.
    #[error("If-Match is required")]
    PreconditionRequired,
    /// 412: If-Match names another ICE session.
    #[error("If-Match does not match the current ICE session")]
    PreconditionFailed,
    /// 400.
    #[error(transparent)]
    BadFragment(#[from] SdpFragError),
    /// 400: `If-Match: *` without new credentials, or candidates for an old ICE generation
    /// with nothing else.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 500-class: the restart failed; the session is left as it was where rtc allows.
    #[error("ICE restart failed: {0}")]
    RestartFailed(String),
    /// 404.
    #[error("no such session")]
    SessionGone,
}

/// Connection state as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Answer sent, ICE/DTLS in progress.
    Connecting,
    /// Media can flow.
    Connected,
    /// Gone for good; the reason is for logs and metrics.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The owner closed it (e.g. HTTP DELETE).
    Local,
    /// ICE failed: the peer went silent past the failed timeout, or never connected.
    Failed,
    /// The peer closed DTLS or the connection.
    Remote,
    /// The server shut down.
    Shutdown,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::Failed => "failed",
            CloseReason::Remote => "remote",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// What a session reports to its owner.
#[derive(Debug)]
pub enum SessionEvent {
    /// An RTP packet from the peer, with the codec its payload type was negotiated for.
    Rtp {
        codec: Codec,
        packet: rtc::rtp::Packet,
    },
    /// The peer asked for a keyframe (PLI or FIR) on a track we send.
    KeyframeRequested { codec: Codec },
    /// The peer opened a data channel.
    DataChannelOpen { label: String },
    /// A message on a data channel.
    DataChannelMessage { label: String, data: Bytes },
    /// The peer's RTCP Sender Report for a track it sends us: the RTP timestamp that
    /// corresponds to an NTP wall-clock time (RFC 3550 §6.4.1), which is how its audio and
    /// video are put on one clock.
    SenderReport {
        codec: Codec,
        /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction below).
        ntp_time: u64,
        rtp_time: u32,
    },
}

/// One frame's RTP payloads, packetized once and shared by every session that sends it.
#[derive(Debug, Clone)]
pub struct RtpFrame {
    /// RTP timestamp in the session's clock for this track.
    pub timestamp: u32,
    /// Payloads in order; the last one gets the marker bit.
    pub payloads: std::sync::Arc<[Bytes]>,
}

/// Statistics of one session, the same shape for both directions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    /// Bits per second sent, summed over every track and layer.
    pub bitrate_out_bps: u64,
    /// Bits per second received, summed over every track and layer.
    pub bitrate_in_bps: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Packets lost: of what we send, as the peer's RTCP receiver reports say (cumulative,
    /// RFC 3550 §6.4.1, summed over tracks); of what we receive, counted by us.
    pub packets_lost: i64,
    /// Interarrival jitter in seconds (RFC 3550 §6.4.1), of the worst track: of what we
    /// send, as the peer's receiver reports say; of what we receive, as ours say.
    pub jitter_s: f64,
    /// Fraction of packets lost, 0 to 1: of what we send, the peer's latest receiver report
    /// (the worst track); of what we receive, over the interval since the previous call (at
    /// least [`BitrateMeter::MIN_INTERVAL`]).
    pub fraction_lost: f64,
    /// Round-trip time in seconds: from the peer's receiver reports (LSR/DLSR) when we send
    /// and it has seen our sender reports, else from the selected pair's STUN checks.
    pub rtt_s: f64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    /// NACKs (RFC 4585 §6.2.1) received from the peer; the packets they ask for are sent
    /// again while the track still keeps them.
    pub nacks_received: u64,
    /// Video frames per second, sent (frames written) or received (RTP marker bits, RFC 6184
    /// §5.1), over the interval since the previous call (at least
    /// [`BitrateMeter::MIN_INTERVAL`]). `None` when the session has no video: not negotiated
    /// for sending, none seen yet when receiving. The resolution is not here: at the RTP
    /// level it would take parsing every SPS.
    pub frames_per_second: Option<f64>,
    /// Keyframe requests (PLI/FIR) received from the peer.
    pub keyframe_requests_received: u64,
    /// Events dropped because the owner did not keep up.
    pub dropped_events: u64,
}

/// Why a command could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session is closed")]
    Closed,
    #[error("the event loop is saturated; frame dropped")]
    Saturated,
}

/// Why an offer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("WebRTC negotiation failed: {0}")]
    Negotiation(String),
    /// The shared [`RtcConfig::session_limit`] is reached.
    #[error("the gateway already has {limit} WebRTC sessions, its limit")]
    TooManySessions { limit: usize },
    #[error("the WebRTC server is shutting down")]
    ShuttingDown,
}

pub use server::SessionHandle;
