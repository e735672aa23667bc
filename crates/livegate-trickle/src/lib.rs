//! go-livepeer's **trickle** protocol: live media as numbered HTTP segments, each streamed
//! while it is being written.
//!
//! A *channel* (one path segment, e.g. `stream1` or `stream1-out`) is a sequence of
//! *segments* numbered from 0 ([`SeqNo`]). A publisher `POST`s segment `n` with a chunked body
//! that may last the whole segment, and opens the POST for `n + 1` while `n` is still being
//! written (a *preconnect*), so the next segment starts without connection setup. Subscribers
//! `GET` segment `n` and receive its bytes as they arrive; `-1` asks for the next segment to
//! start. The server keeps a few segments per channel; a subscriber that asks for one that is
//! gone, or too far ahead, gets status 470 with `Lp-Trickle-Latest` and jumps there.
//!
//! This crate is our own implementation of what go-livepeer's `trickle/` package does, so
//! that livepeer-compatible workers (ai-runner style) can pull a stream's input and push its
//! output:
//!
//! - [`server`]: [`TrickleServer`], the channel store, with an `axum` router to nest under a
//!   prefix such as `/ai/trickle`, and in-process [`LocalPublisher`] / [`LocalSubscriber`];
//! - [`publisher`]: [`TricklePublisher`], the preconnecting HTTP publisher;
//! - [`subscriber`]: [`TrickleSubscriber`], the HTTP subscriber that follows a channel from
//!   `-1`, recovers from 470 and connection errors, and times out stalled segments;
//! - [`headers`]: the `Lp-Trickle-*` headers; [`error`]: [`Refusal`] and [`TrickleError`].
//!
//! The `trickle-echo` binary is a pass-through worker built on the client: it copies every
//! input segment to an output channel chunk by chunk.
//!
//! ```no_run
//! # async fn run() -> Result<(), livegate_trickle::TrickleError> {
//! use bytes::Bytes;
//! use livegate_trickle::{TricklePublisher, TrickleSubscriber};
//!
//! let mut publisher = TricklePublisher::new("http://127.0.0.1:8935/ai/trickle/s1")?;
//! let mut segment = publisher.next_segment(); // seq 0; seq 1 is preconnected now
//! segment.write(Bytes::from_static(b"...mpeg-ts...")).await?;
//! segment.finish().await?;
//!
//! let mut subscriber = TrickleSubscriber::new("http://127.0.0.1:8935/ai/trickle/s1")?;
//! while let Some(mut segment) = subscriber.next_segment().await? {
//!     while let Some(chunk) = segment.next_chunk().await {
//!         let _bytes = chunk?;
//!     }
//! }
//! publisher.close().await?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod headers;
pub mod publisher;
pub mod server;
pub mod subscriber;

pub use error::{Refusal, TrickleError};
pub use publisher::{PublisherConfig, SegmentWriter, TricklePublisher};
pub use server::{
    CloseReason, LocalPublisher, LocalSegmentWriter, LocalSubscriber, SegmentEnd, SegmentReader,
    ServerConfig, ServerEvent, TrickleServer,
};
pub use subscriber::{SubscribedSegment, SubscriberConfig, TrickleSubscriber};

/// A segment's sequence number within its channel: 0, 1, 2, … Negative values only appear in
/// requests: [`SEQ_NEXT`] and [`SEQ_CURRENT`].
pub type SeqNo = i64;

/// In a GET: the next segment to start (the server's write head); in a POST: the write head.
pub const SEQ_NEXT: SeqNo = -1;
/// In a GET: the segment being written now (go-livepeer's `Current`).
pub const SEQ_CURRENT: SeqNo = -2;

/// The channel URL with any trailing `/` removed, checked to be plain `http://` (this crate's
/// client has no TLS).
pub(crate) fn channel_url(url: &str) -> Result<String, TrickleError> {
    let invalid = |reason| TrickleError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("not a URL"))?;
    if parsed.scheme() != "http" {
        return Err(invalid("only http:// is supported"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a channel URL takes no query or fragment"));
    }
    let trimmed = url.trim_end_matches('/');
    if parsed.path().trim_matches('/').is_empty() {
        return Err(invalid("no channel in the path"));
    }
    Ok(trimmed.to_string())
}
