//! What a viewer asks for, and how its offer is made.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PacketView;

/// Rewrites the complete offer SDP just before it is POSTed (tests of malformed or unusual
/// offers). The peer connection keeps the offer it made; only the request body changes.
pub type OfferTransform = Arc<dyn Fn(String) -> String + Send + Sync>;

/// Shown every RTP packet of the viewer's video track as it arrives, after SRTP (e.g.
/// [`crate::latency::LatencyProbe`]).
///
/// Called on the viewer's event loop for each packet: an implementation may not block or
/// await, should take a lock only for a few instructions, and should not allocate.
pub trait VideoPacketTap: Send + Sync {
    /// `received_at` is when the datagram carrying it was read from the socket.
    fn on_video_packet(&self, packet: &PacketView<'_>, received_at: Instant);
}

/// How [`crate::whep::WhepClient::play`] builds its offer and treats the answer.
///
/// The default is what a browser player sends: receive-only H.264 and Opus, no data
/// channel, no token, candidates included, only loopback answer candidates used.
#[derive(Clone)]
pub struct WhepOptions {
    /// Offer a recvonly video section (H.264 packetization-mode=1, profiles 42e01f, 42001f,
    /// 640c1f).
    pub video: bool,
    /// Offer a recvonly audio section (Opus 48000/2).
    pub audio: bool,
    /// Open a data channel (label `livegate`), e.g. for `?server_metrics=1` in the URL; its
    /// text messages are read with [`crate::whep::WhepSession::wait_data_message`].
    pub data_channel: bool,
    /// Sent as `Authorization: Bearer …` on the POST and the DELETE (RFC 9725 §4.5).
    pub bearer_token: Option<String>,
    /// Remove every `a=candidate` and `a=end-of-candidates` line from the POSTed offer, as
    /// OBS sends it, so the gateway must learn the viewer as peer-reflexive.
    pub strip_candidates: bool,
    /// Use only answer candidates whose address is a loopback address; the others are
    /// removed before the answer is applied, so no packet of a test or load run leaves the
    /// machine whatever the gateway advertises. [`crate::whep::WhepSession::answer_sdp`]
    /// still returns the answer as received.
    pub loopback_only: bool,
    /// Local UDP address of the viewer's ICE socket. `None`: `127.0.0.1:0` when
    /// `loopback_only`, otherwise every interface (`0.0.0.0:0`).
    pub udp_bind: Option<SocketAddr>,
    /// Last change to the offer body; see [`OfferTransform`].
    pub offer_transform: Option<OfferTransform>,
    /// Pace of ICE connectivity checks. The viewer is the controlling agent and nominates
    /// the pair on its next check after one succeeds, so about one interval is part of every
    /// measured time to connected and to first frame. 50 ms is RFC 8445 §14.2's Ta, as
    /// browsers pace; a small value (5 ms) leaves mostly the gateway's share.
    pub ice_check_interval: Duration,
    /// Limit of each request (POST, DELETE), waiting for the gateway's output included.
    pub request_timeout: Duration,
    /// Shown each video packet; `None` costs nothing.
    pub video_tap: Option<Arc<dyn VideoPacketTap>>,
    /// How many recent frames per kind [`crate::whep::KindStats::frame_log`] keeps.
    pub frame_log_limit: usize,
}

impl Default for WhepOptions {
    fn default() -> Self {
        WhepOptions {
            video: true,
            audio: true,
            data_channel: false,
            bearer_token: None,
            strip_candidates: false,
            loopback_only: true,
            udp_bind: None,
            offer_transform: None,
            ice_check_interval: Duration::from_millis(50),
            request_timeout: Duration::from_secs(30),
            video_tap: None,
            frame_log_limit: 10_000,
        }
    }
}

impl fmt::Debug for WhepOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhepOptions")
            .field("video", &self.video)
            .field("audio", &self.audio)
            .field("data_channel", &self.data_channel)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "…"))
            .field("strip_candidates", &self.strip_candidates)
            .field("loopback_only", &self.loopback_only)
            .field("udp_bind", &self.udp_bind)
            .field(
                "offer_transform",
                &self.offer_transform.as_ref().map(|_| "fn"),
            )
            .field("ice_check_interval", &self.ice_check_interval)
            .field("request_timeout", &self.request_timeout)
            .field("video_tap", &self.video_tap.as_ref().map(|_| "tap"))
            .field("frame_log_limit", &self.frame_log_limit)
            .finish()
    }
}
