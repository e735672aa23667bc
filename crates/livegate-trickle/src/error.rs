//! Errors: [`Refusal`] is why the server turned a request down (and the HTTP status it answers
//! with), [`TrickleError`] is what the publisher, subscriber and in-process API report.

use axum::http::StatusCode;

use crate::SeqNo;

/// Why the server refused a request. Every refusal is one HTTP status plus a one-line reason
/// in a `text/plain` body, so a worker's log says what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The channel does not exist (never created, deleted, or expired). 404, as go-livepeer.
    #[error("channel not found")]
    ChannelNotFound,
    /// `DELETE {channel}` of an unknown channel. go-livepeer answers 400 here, not 404.
    #[error("channel not found")]
    DeleteUnknownChannel,
    /// The channel name is empty or not one path segment.
    #[error("invalid channel name {0:?}: one non-empty path segment expected")]
    InvalidChannelName(String),
    /// The seq path segment is not an integer, or is below what the method accepts.
    #[error("invalid seq {0:?}: expected an integer (-1 for the next segment)")]
    InvalidSeq(String),
    /// `ServerConfig::max_channels` channels exist already.
    #[error("channel limit reached ({max_channels} channels)")]
    TooManyChannels { max_channels: usize },
    /// The POST body grew past `ServerConfig::max_segment_bytes`; the segment was ended there.
    #[error("segment exceeds {max_segment_bytes} bytes")]
    SegmentTooLarge { max_segment_bytes: usize },
    /// A POST for a segment that already has bytes or has ended.
    #[error("segment {seq} already written")]
    SegmentAlreadyWritten { seq: SeqNo },
    /// A newer POST for the same (still empty) segment took it over.
    #[error("segment {seq} taken over by a newer POST")]
    SegmentTakenOver { seq: SeqNo },
    /// `DELETE {channel}/{seq}` of a segment the server does not hold.
    #[error("segment {seq} does not exist")]
    NonexistentSegment { seq: SeqNo },
    /// GET of a segment that is gone (too old) or too far ahead: go-livepeer's status 470,
    /// with `Lp-Trickle-Latest` telling the subscriber where to jump.
    #[error("segment {seq} not available; latest is {latest}")]
    SegmentUnavailable { seq: SeqNo, latest: SeqNo },
}

/// go-livepeer's "channel exists but the segment does not" status.
pub const STATUS_SEGMENT_UNAVAILABLE: u16 = 470;

impl Refusal {
    /// The HTTP status the server answers this refusal with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::ChannelNotFound => StatusCode::NOT_FOUND,
            Refusal::DeleteUnknownChannel
            | Refusal::InvalidChannelName(_)
            | Refusal::InvalidSeq(_)
            | Refusal::NonexistentSegment { .. } => StatusCode::BAD_REQUEST,
            Refusal::TooManyChannels { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::SegmentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::SegmentAlreadyWritten { .. } | Refusal::SegmentTakenOver { .. } => {
                StatusCode::CONFLICT
            }
            Refusal::SegmentUnavailable { .. } => {
                StatusCode::from_u16(STATUS_SEGMENT_UNAVAILABLE).expect("470 is a valid status")
            }
        }
    }
}

/// What the publisher, the subscriber and the in-process API report.
#[derive(Debug, thiserror::Error)]
pub enum TrickleError {
    /// The channel URL cannot be used (not http, no host, cannot take a path segment).
    #[error("invalid trickle URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    /// The server does not know the channel (404).
    #[error("channel not found")]
    ChannelNotFound,
    /// The channel was closed (`Lp-Trickle-Closed`); nothing more will be published.
    #[error("channel closed")]
    ChannelClosed,
    /// The server answered with an error status and this one-line reason.
    #[error("server answered {status}: {reason}")]
    Status { status: u16, reason: String },
    /// The in-process server refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The HTTP exchange failed (connection refused or reset, body error).
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// No byte of the segment arrived for the configured stall timeout.
    #[error("segment {seq} stalled: no bytes for {stalled_ms} ms")]
    SegmentStalled { seq: SeqNo, stalled_ms: u64 },
    /// Connection errors went on for every retry.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<TrickleError>,
    },
    /// A preconnected request's task failed (it panicked); the request is retried.
    #[error("preconnected request failed")]
    PreconnectFailed,
    /// The segment writer was used after its POST ended.
    #[error("segment {seq} POST already ended")]
    PostEnded { seq: SeqNo },
}
