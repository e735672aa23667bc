//! The pull task of one edge stream: the origin's output, over HTTP, into the local stream.
//!
//! Each response of the internal endpoint is one output generation of the origin (it ends
//! when the origin's worker restarts or its stream ends), so each becomes a new output buffer
//! here ([`Stream::set_output`]) and the viewers follow it as they follow a local worker
//! restart. Between responses the task asks Redis who the origin is now:
//!
//! | the pull ended | Redis says | then |
//! |---|---|---|
//! | cleanly | the same or another node | pull again at once (a new generation) |
//! | cleanly, or 404 | nobody | the stream ended: close it now |
//! | broken (origin died, stalled) | anything, or Redis is down | retry every [`RETRY_INTERVAL`] the origin Redis names (or the last one known) for up to the republish grace, then close |
//!
//! So a publisher that republishes on any node within the grace continues the stream for
//! this edge's viewers, and an origin that died ends them cleanly (DTLS close_notify) once
//! the grace is over.

use std::sync::Arc;
use std::time::Duration;

use livegate_media::registry::Stream;
use livegate_media::ring::{RingBuffer, DEFAULT_CAPACITY_BYTES};
use livegate_media::StreamKey;
use reqwest::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::edge::{lookup, Origin};
use crate::internal::KEEPALIVE;
use crate::ts_packets::PacketFramer;
use crate::Shared;

/// Pause between attempts while the origin cannot be reached.
const RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// A response that brings nothing, not even the origin's keep-alive, for this long is
/// broken (a silent partition would otherwise freeze the viewers for ever).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
const _: () = assert!(KEEPALIVE.as_millis() * 3 <= STALL_TIMEOUT.as_millis());

/// How one response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullEnd {
    /// The origin finished the response: its output generation ended.
    Finished,
    /// The origin does not have the stream (any more).
    NotFound,
    /// Connection refused or reset, a bad status, a stall; `connected`: after media flowed.
    Broken { connected: bool },
}

/// Pulls `key` into `stream` until `cancel` (the last viewer left) or the stream's end.
pub(crate) async fn run(
    shared: Arc<Shared>,
    key: StreamKey,
    stream: Arc<Stream>,
    origin: Origin,
    cancel: CancellationToken,
) {
    shared.metrics.edge_pulls_active.inc();
    let ended = tokio::select! {
        why = follow(&shared, &key, &stream, origin) => Some(why),
        // The last viewer left (its lease removes the stream) or a local publisher took the
        // stream over (it lives on): either way the stream is not the pull's to end.
        _ = cancel.cancelled() => None,
    };
    shared.metrics.edge_pulls_active.dec();
    match ended {
        Some(why) => {
            tracing::info!(stream = %key, reason = why, "edge: pull ended");
            // Ends the local viewers' sessions (StreamEnded).
            shared.registry.remove(&stream);
        }
        None => tracing::info!(stream = %key, "edge: pull stopped"),
    }
}

/// Follows the stream from origin to origin; returns why it ended.
async fn follow(
    shared: &Shared,
    key: &StreamKey,
    stream: &Arc<Stream>,
    mut origin: Origin,
) -> &'static str {
    // Since when no pull has worked, once one broke.
    let mut broken_since: Option<Instant> = None;
    loop {
        let end = pull(shared, key, stream, &origin).await;
        tracing::debug!(stream = %key, origin = %origin.url, ?end, "edge: response ended");
        match end {
            PullEnd::Finished => broken_since = None,
            PullEnd::Broken { connected: true } => broken_since = Some(Instant::now()),
            PullEnd::Broken { connected: false } | PullEnd::NotFound => {
                broken_since.get_or_insert_with(Instant::now);
            }
        }
        match lookup(shared, key).await {
            Ok(Some(now)) if now.node == shared.node_id => {
                return "the stream is published on this node now";
            }
            Ok(Some(now)) => {
                if now != origin {
                    tracing::info!(stream = %key, origin = %now.url, "edge: the stream has a new origin");
                    broken_since = None;
                }
                origin = now;
            }
            Ok(None) if matches!(end, PullEnd::Finished | PullEnd::NotFound) => {
                return "the origin ended the stream";
            }
            // Claim expired (the origin died) or Redis is away: the publisher may still
            // come back anywhere within the grace.
            Ok(None) | Err(_) => {}
        }
        if let Some(since) = broken_since {
            if since.elapsed() >= shared.config.republish_grace {
                return "the origin is gone and no publisher came back within the grace";
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }
}

/// One response of the origin's internal endpoint into a new output buffer.
async fn pull(shared: &Shared, key: &StreamKey, stream: &Arc<Stream>, origin: &Origin) -> PullEnd {
    let url = format!("{}/internal/streams/{key}/output", origin.url);
    let request = shared
        .http
        .get(&url)
        .bearer_auth(&shared.config.secret)
        .send();
    let mut response = match tokio::time::timeout(STALL_TIMEOUT, request).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::debug!(stream = %key, %url, error = %e, "edge: origin unreachable");
            return PullEnd::Broken { connected: false };
        }
        Err(_) => return PullEnd::Broken { connected: false },
    };
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return PullEnd::NotFound,
        status => {
            tracing::warn!(stream = %key, %url, %status, "edge: the origin refused the pull");
            return PullEnd::Broken { connected: false };
        }
    }
    let ring = RingBuffer::new(DEFAULT_CAPACITY_BYTES);
    stream.set_output(ring.clone());
    let mut framer = PacketFramer::default();
    loop {
        match tokio::time::timeout(STALL_TIMEOUT, response.chunk()).await {
            Ok(Ok(Some(piece))) => {
                if let Some(chunk) = framer.push(piece) {
                    if ring.write(chunk).is_err() {
                        // The local stream was closed (last viewer left, or evicted).
                        return PullEnd::Finished;
                    }
                }
            }
            Ok(Ok(None)) => return PullEnd::Finished,
            Ok(Err(e)) => {
                tracing::info!(stream = %key, %url, error = %e, "edge: the pull broke");
                return PullEnd::Broken { connected: true };
            }
            Err(_) => {
                tracing::info!(stream = %key, %url, "edge: the pull stalled");
                return PullEnd::Broken { connected: true };
            }
        }
    }
}
