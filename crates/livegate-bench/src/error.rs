//! Why a WHEP play, a WHIP publish or a wait on either did not succeed: one error type for
//! both clients, since they fail the same ways (same HTTP exchange, same peer connection).

use std::time::{Duration, SystemTime};

use livegate_upstream::UpstreamError;
use rtc::shared::error::Error as RtcError;

/// Which client failed; it names the URL and the resource in messages, so a load report
/// reads "the publish ended" for a publisher and "the session ended" for a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A viewer ([`crate::whep`]).
    Whep,
    /// A publisher ([`crate::whip`]).
    Whip,
}

impl Side {
    /// The protocol's name, as in "WHEP URL".
    pub fn protocol(self) -> &'static str {
        match self {
            Side::Whep => "WHEP",
            Side::Whip => "WHIP",
        }
    }

    /// What the resource is called, as in "the publish ended".
    pub fn resource(self) -> &'static str {
        match self {
            Side::Whep => "session",
            Side::Whip => "publish",
        }
    }
}

/// Errors of [`crate::whep::WhepClient`], [`crate::whep::WhepSession`],
/// [`crate::whip::WhipClient`] and [`crate::whip::WhipPublisher`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be parsed or is not `http://` (this client has no TLS).
    #[error("not a usable {} URL: {reason}", side.protocol())]
    Url { side: Side, reason: String },
    /// The local peer connection failed (its socket, the offer, applying the answer).
    #[error("WebRTC: {0}")]
    WebRtc(#[from] PeerError),
    /// The request did not complete: connection refused, reset, request timeout.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The gateway answered the offer with something other than `201 Created`.
    #[error("HTTP {status}: {reason}")]
    Status {
        status: u16,
        /// The first line of the body (the gateway's one-line reason).
        reason: String,
        /// The `Retry-After` header as sent (409, 429, 503).
        retry_after: Option<String>,
    },
    /// A `201` that is not a usable answer (no `Location`, body not SDP).
    #[error("bad 201 response: {0}")]
    Protocol(String),
    /// A wait's time ran out; `what` says what was awaited and how far it got.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    /// The peer connection failed or closed while a wait was still unmet.
    #[error("the {} ended ({state}) while waiting for {what}", side.resource())]
    Closed {
        side: Side,
        what: String,
        state: String,
    },
}

impl ClientError {
    /// The HTTP status of a [`ClientError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the gateway asked to wait before retrying, read from `Retry-After`
    /// (delay-seconds or HTTP-date, RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status {
                retry_after: Some(value),
                ..
            } => crate::http::retry_after_delay(value, SystemTime::now()),
            _ => None,
        }
    }
}

/// Why a peer connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0}")]
    Rtc(#[from] RtcError),
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no local description after applying the offer")]
    NoLocalDescription,
    /// What else building an offer with livegate-upstream's [`OfferingPeer`] may say.
    ///
    /// [`OfferingPeer`]: livegate_upstream::offer::OfferingPeer
    #[error("{0}")]
    Offer(UpstreamError),
}

/// The publisher's peer is livegate-upstream's; its errors read as this crate's always have.
impl From<UpstreamError> for PeerError {
    fn from(error: UpstreamError) -> PeerError {
        match error {
            UpstreamError::Rtc(e) => PeerError::Rtc(e),
            UpstreamError::Io(e) => PeerError::Io(e),
            // What OfferingPeer::offer says when the core has no local description.
            UpstreamError::NoAnswer => PeerError::NoLocalDescription,
            other => PeerError::Offer(other),
        }
    }
}
