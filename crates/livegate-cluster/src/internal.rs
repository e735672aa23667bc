//! The internal endpoint edges pull from: `GET /internal/streams/{stream}/output`.
//!
//! | answer | when |
//! |---|---|
//! | 401 | no `Authorization: Bearer $LIVE_AI_CLUSTER_SECRET` (compared in constant time) |
//! | 404 | no live stream of that key here, or this node is itself only an edge of it |
//! | 200, chunked `video/mp2t` | the stream's current output generation from the oldest chunk held (so the edge's GOP cache starts with a keyframe), then live; the response ends when that output buffer closes (worker restart: the edge pulls again; stream end) |
//!
//! While there is nothing to send for [`KEEPALIVE`], a null TS packet goes out, so the edge
//! can tell a quiet stream (a publisher in its grace) from a dead connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};
use livegate_media::registry::Stream;
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader};
use livegate_media::StreamKey;
use livegate_wish::{BearerToken, HttpError};

use crate::metrics::ClusterMetrics;
use crate::ts_packets::null_packet;
use crate::{edge, Shared};

/// Longest silence on a pull before a keep-alive null packet.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(1);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/internal/streams/{stream}/output", get(output))
        .with_state(shared)
}

async fn output(
    State(shared): State<Arc<Shared>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared.secret.check(&headers) {
        let mut response = e.into_response();
        let (name, value) = BearerToken::challenge();
        response.headers_mut().insert(name, value);
        return response;
    }
    let key = match StreamKey::parse(&stream) {
        Ok(key) => key,
        Err(e) => return HttpError::bad_request(e.to_string()).into_response(),
    };
    let live = shared.registry.get(&key).filter(|s| !s.is_closed());
    // An edge never serves its copy: pulls go to the origin only, so they cannot loop.
    let Some(stream) = live.filter(|_| !edge::is_edge(&shared, &key)) else {
        return HttpError::not_found(format!("stream {key} is not published on this node"))
            .into_response();
    };
    shared.metrics.origin_pulls.inc();
    tracing::info!(stream = %key, "origin: an edge pulls the stream");
    let chunks = futures_util::stream::unfold(
        Pull::Waiting {
            stream,
            skip: None,
            _active: ActivePull::new(&shared.metrics),
        },
        |pull| async move {
            pull.next()
                .await
                .map(|(chunk, pull)| (Ok::<_, Infallible>(chunk), pull))
        },
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// Counts a pull in `livegate_cluster_origin_pulls_active` while its body is alive (axum
/// drops the body when the edge goes away).
struct ActivePull(ClusterMetrics);

impl ActivePull {
    fn new(metrics: &ClusterMetrics) -> ActivePull {
        metrics.origin_pulls_active.inc();
        ActivePull(metrics.clone())
    }
}

impl Drop for ActivePull {
    fn drop(&mut self) {
        self.0.origin_pulls_active.dec();
    }
}

/// Most bytes sent as one piece of the body.
const BATCH_BYTES: usize = 64 * 1024;

/// `first` and every chunk already waiting after it, as one piece: a frame arrives as a
/// burst of small ring chunks, and one write per burst instead of per chunk is most of an
/// origin's cost per edge.
fn coalesce(first: Bytes, reader: &mut RingReader) -> Bytes {
    let mut batch: Option<BytesMut> = None;
    loop {
        let len = batch.as_ref().map_or(first.len(), BytesMut::len);
        if len >= BATCH_BYTES {
            break;
        }
        match reader.try_read() {
            Some(ReadOutcome::Chunk(chunk)) => batch
                .get_or_insert_with(|| {
                    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
                    batch.extend_from_slice(&first);
                    batch
                })
                .extend_from_slice(&chunk),
            Some(ReadOutcome::Lagged { .. }) => continue,
            // Closed is reported again by the next read, which ends the body.
            Some(ReadOutcome::Closed) | None => break,
        }
    }
    batch.map_or(first, BytesMut::freeze)
}

/// Where a response body is.
enum Pull {
    /// The stream has no open output yet (`skip`: the closed one it has).
    Waiting {
        stream: Arc<Stream>,
        skip: Option<Arc<RingBuffer>>,
        _active: ActivePull,
    },
    Reading {
        reader: RingReader,
        _active: ActivePull,
    },
}

impl Pull {
    /// The next piece of the body, or `None` to end it.
    async fn next(self) -> Option<(Bytes, Pull)> {
        match self {
            Pull::Waiting {
                stream,
                mut skip,
                _active,
            } => {
                let deadline = tokio::time::Instant::now() + KEEPALIVE;
                loop {
                    let next = stream.next_output(skip.as_ref());
                    match tokio::time::timeout_at(deadline, next).await {
                        Err(_) => {
                            let waiting = Pull::Waiting {
                                stream,
                                skip,
                                _active,
                            };
                            return Some((null_packet(), waiting));
                        }
                        Ok(Err(_closed)) => return None,
                        // An output that already ended (a publisher in its grace: with
                        // passthrough the output is its closed input) is not sent again;
                        // the next generation is.
                        Ok(Ok(buffer)) if buffer.is_closed() => skip = Some(buffer),
                        Ok(Ok(buffer)) => {
                            let reader = buffer.reader_from_oldest();
                            return Box::pin(Pull::Reading { reader, _active }.next()).await;
                        }
                    }
                }
            }
            Pull::Reading {
                mut reader,
                _active,
            } => loop {
                match tokio::time::timeout(KEEPALIVE, reader.read()).await {
                    Err(_) => return Some((null_packet(), Pull::Reading { reader, _active })),
                    Ok(ReadOutcome::Chunk(chunk)) => {
                        let batch = coalesce(chunk, &mut reader);
                        return Some((batch, Pull::Reading { reader, _active }));
                    }
                    // The edge was too slow for the ring: it loses what it missed, as a
                    // local viewer would, and its demuxer resynchronises.
                    Ok(ReadOutcome::Lagged { .. }) => continue,
                    Ok(ReadOutcome::Closed) => return None,
                }
            },
        }
    }
}
