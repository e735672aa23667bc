//! The HTTP accept loop: axum's router on hyper's HTTP/1 connections, with the read
//! deadlines `axum::serve` does not offer.
//!
//! A slow-loris client (one that sends half a request and stalls) costs a connection and a
//! task for as long as the server waits, so the server waits a bounded time
//! (`LIVE_AI_HTTP_READ_TIMEOUT`): for a request's headers (hyper's `header_read_timeout`),
//! and for the whole body of an SDP offer or trickle-ICE fragment (the bodies the gateway
//! reads at once; other bodies, such as the hosted trickle channels' segment uploads, stream
//! for as long as the media does). Each request carries its peer address as
//! [`ConnectInfo`], as `into_make_service_with_connect_info` would give it.
//!
//! Shutdown: when `stop` is cancelled the listener is closed, every connection finishes its
//! in-flight request and closes (hyper's graceful shutdown), and [`serve`] returns once all
//! have.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request};
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use livegate_wish::BodyTimedOut;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Media types of the bodies that must arrive within the read timeout.
const DEADLINE_BODIES: [&str; 2] = ["application/sdp", "application/trickle-ice-sdpfrag"];

/// Serves `app` on `listener` until `stop`, then drains (see the module doc).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    read_timeout: Duration,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: the listener is fine, the moment is not.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, peer, app.clone(), read_timeout, stop.clone()));
            }
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.cancelled() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    read_timeout: Duration,
    stop: CancellationToken,
) {
    let service = app.map_request(move |request: Request<Incoming>| {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        let read_at_once = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                DEADLINE_BODIES
                    .iter()
                    .any(|d| t.trim().eq_ignore_ascii_case(d))
            });
        let body = if read_at_once {
            Body::new(DeadlineBody {
                inner: Body::new(body),
                deadline: Box::pin(tokio::time::sleep(read_timeout)),
                timeout: read_timeout,
            })
        } else {
            Body::new(body)
        };
        Request::from_parts(parts, body)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error while draining");
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes: the reader
/// (`livegate_wish::read_sdp_offer`) then answers 408 instead of waiting for ever.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
