//! Why a WHIP publish or wait did not succeed.

use std::time::{Duration, SystemTime};

use crate::whep::PeerError;

/// Errors of [`crate::whip::WhipClient`] and [`crate::whip::WhipPublisher`].
#[derive(Debug, thiserror::Error)]
pub enum WhipClientError {
    /// The URL cannot be parsed or is not `http://` (this client has no TLS).
    #[error("not a usable WHIP URL: {0}")]
    Url(String),
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
        /// The `Retry-After` header as sent (503).
        retry_after: Option<String>,
    },
    /// A `201` that is not a usable WHIP answer (no `Location`, body not SDP).
    #[error("bad 201 response: {0}")]
    Protocol(String),
    /// A wait's time ran out; `what` says what was awaited and how far it got.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    /// The peer connection failed or closed while a wait was still unmet.
    #[error("the publish ended ({state}) while waiting for {what}")]
    Closed { what: String, state: String },
}

impl WhipClientError {
    /// The HTTP status of a [`WhipClientError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            WhipClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the gateway asked to wait before retrying, read from `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WhipClientError::Status {
                retry_after: Some(value),
                ..
            } => crate::whep::retry_after_delay(value, SystemTime::now()),
            _ => None,
        }
    }
}
