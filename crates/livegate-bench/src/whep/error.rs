//! Why a WHEP play or wait did not succeed.

use std::time::{Duration, SystemTime};

/// Errors of [`crate::whep::WhepClient`] and [`crate::whep::WhepSession`].
#[derive(Debug, thiserror::Error)]
pub enum WhepClientError {
    /// The URL cannot be parsed or is not `http://` (this client has no TLS).
    #[error("not a usable WHEP URL: {0}")]
    Url(String),
    /// The local peer connection failed (its socket, the offer, applying the answer).
    #[error("WebRTC: {0}")]
    WebRtc(#[from] super::peer::PeerError),
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
    /// A `201` that is not a usable WHEP answer (no `Location`, body not SDP).
    #[error("bad 201 response: {0}")]
    Protocol(String),
    /// A wait's time ran out; `what` says what was awaited and how far it got.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    /// The peer connection failed or closed while a wait was still unmet.
    #[error("the session ended ({state}) while waiting for {what}")]
    Closed { what: String, state: String },
}

impl WhepClientError {
    /// The HTTP status of a [`WhepClientError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            WhepClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the gateway asked to wait before retrying, read from `Retry-After`
    /// (delay-seconds or HTTP-date, RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WhepClientError::Status {
                retry_after: Some(value),
                ..
            } => super::http::retry_after_delay(value, SystemTime::now()),
            _ => None,
        }
    }
}
