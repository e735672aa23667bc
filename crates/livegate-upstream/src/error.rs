//! Why an upstream connection could not be made or did not last.

use std::time::Duration;

/// One upstream connection attempt that failed or ended. Every variant is retried by the
/// supervisor within its restart budget; none is the publisher's fault.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The peer connection could not be built or the answer not applied.
    #[error("WebRTC: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    /// The UDP socket could not be bound.
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The WHIP endpoint URL (after `{stream}` substitution) is not a URL.
    #[error("bad upstream URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The POST or DELETE did not get through (connection refused, timeout).
    #[error("HTTP request to the upstream failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The upstream answered the offer with something other than 201 (RFC 9725 §4.2).
    #[error("the upstream answered {status}: {reason}")]
    Status { status: u16, reason: String },
    /// A 201 without an SDP body.
    #[error("the upstream's 201 carries no SDP answer")]
    NoAnswer,
    /// ICE and DTLS did not complete in time.
    #[error("not connected within {0:?}")]
    ConnectTimeout(Duration),
    /// The connection failed, or the upstream closed it (DTLS close_notify).
    #[error("the connection ended: {0}")]
    Ended(&'static str),
    /// No media came back for the watchdog's timeout while input kept flowing.
    #[error("no media from the upstream for {0:?} while input flowed")]
    NoMedia(Duration),
    /// The output ring could not be fed (the negotiated tracks make no program).
    #[error("cannot mux the upstream's media: {0}")]
    Ingest(#[from] livegate_whip::IngestError),
}
