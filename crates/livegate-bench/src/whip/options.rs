//! What a publisher offers and plays.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::MediaFile;
use crate::whep::OfferTransform;

/// Told of every H.264 access unit the publisher sent, once the last of its packets left the
/// socket (e.g. [`crate::latency::LatencyProbe`]).
///
/// Called on the publisher's event loop: an implementation may not block or await, and
/// should take a lock only for a few instructions.
pub trait SentVideoTap: Send + Sync {
    /// `access_unit` is the file's Annex B access unit as read (before parameter sets were
    /// added or delimiters dropped); `sent_at` is just after its last packet's `send`.
    fn on_video_frame_sent(&self, access_unit: &[u8], sent_at: Instant);
}

/// How the offer's media sections are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OfferShape {
    /// Video first (mid 0, H.264 PT 96), then audio (mid 1, Opus PT 111), with our host
    /// candidate and end-of-candidates: what a browser publisher sends after gathering.
    #[default]
    Standard,
    /// What OBS (libdatachannel) sends: audio first (mid 0, Opus PT 111), then one H.264
    /// format (mid 1, PT 96), and no `a=candidate` line at all, so the gateway learns the
    /// publisher only as a peer-reflexive candidate from its STUN checks (RFC 8445 §7.3.1.3).
    Obs,
}

/// How [`crate::whip::WhipClient::publish`] builds its offer and what it sends.
///
/// The default offers H.264 and Opus ([`OfferShape::Standard`]), no token, uses only
/// loopback answer candidates, and sends nothing until [`WhipOptions::media`] is set.
#[derive(Clone)]
pub struct WhipOptions {
    /// Offer a sendonly video section (H.264 packetization-mode=1, PT 96).
    pub video: bool,
    /// Offer a sendonly audio section (Opus 48000/2, PT 111).
    pub audio: bool,
    pub shape: OfferShape,
    /// Sent as `Authorization: Bearer …` on the POST and the DELETE (RFC 9725 §4.5).
    pub bearer_token: Option<String>,
    /// Last change to the offer body (the peer connection keeps the offer it made).
    pub offer_transform: Option<OfferTransform>,
    /// The file played once connected, paced in real time; `None` sends no media.
    pub media: Option<Arc<MediaFile>>,
    /// Told when each video frame went out; `None` costs nothing.
    pub sent_video_tap: Option<Arc<dyn SentVideoTap>>,
    /// Passes over the file before the media stops (the connection stays up); `None` loops
    /// until the publisher is closed.
    pub passes: Option<u64>,
    /// Use only answer candidates whose address is a loopback address, so no packet of a
    /// test or load run leaves the machine whatever the gateway advertises.
    pub loopback_only: bool,
    /// Local UDP address of the publisher's ICE socket. `None`: `127.0.0.1:0` when
    /// `loopback_only`, else the address this host would use to reach the URL's host.
    pub udp_bind: Option<SocketAddr>,
    /// Pace of ICE connectivity checks (the publisher is the controlling agent; the gateway
    /// is ICE-lite). 50 ms is RFC 8445 §14.2's Ta.
    pub ice_check_interval: Duration,
    /// Limit of each request (POST, DELETE).
    pub request_timeout: Duration,
}

impl Default for WhipOptions {
    fn default() -> Self {
        WhipOptions {
            video: true,
            audio: true,
            shape: OfferShape::Standard,
            bearer_token: None,
            offer_transform: None,
            media: None,
            sent_video_tap: None,
            passes: None,
            loopback_only: true,
            udp_bind: None,
            ice_check_interval: Duration::from_millis(50),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for WhipOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhipOptions")
            .field("video", &self.video)
            .field("audio", &self.audio)
            .field("shape", &self.shape)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "…"))
            .field(
                "offer_transform",
                &self.offer_transform.as_ref().map(|_| "fn"),
            )
            .field("media", &self.media.as_ref().map(|m| m.path().to_owned()))
            .field(
                "sent_video_tap",
                &self.sent_video_tap.as_ref().map(|_| "tap"),
            )
            .field("passes", &self.passes)
            .field("loopback_only", &self.loopback_only)
            .field("udp_bind", &self.udp_bind)
            .field("ice_check_interval", &self.ice_check_interval)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}
