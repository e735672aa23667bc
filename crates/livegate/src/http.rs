//! The HTTP front door: routes requests to the parts of the gateway and translates their
//! answers into HTTP. It holds no media state of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use livegate_media::registry::StreamRegistry;
use livegate_pipeline::trickle::HOSTED_PATH;
use livegate_pipeline::WorkerContext;
use livegate_whep::WhepServer;
use livegate_whip::WhipServer;
use livegate_wish::headers::CORS_EXPOSE;

use crate::admin::AdminAccess;
use crate::metrics::Metrics;
use crate::rtc_metrics::RtcMetrics;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub rtc: RtcMetrics,
    /// False until every server is up, and again once shutdown has begun, so a load
    /// balancer stops sending new sessions to a draining node.
    pub ready: Arc<AtomicBool>,
    pub allow_cors: bool,
    /// The streams, for the status route.
    pub registry: StreamRegistry,
    /// The pipeline workers' status board.
    pub workers: WorkerContext,
    pub whep: Option<WhepServer>,
    /// The publishers, for the streams API.
    pub whip: Option<WhipServer>,
    /// Who may use the operator routes (`/streams`).
    pub admin: AdminAccess,
}

/// The gateway's routes, with WHEP's and WHIP's when they are enabled. `openapi.yaml`
/// documents every one, which `tests/openapi.rs` checks against this router.
pub fn router(state: AppState, whep: Option<WhepServer>, whip: Option<WhipServer>) -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/live/{stream}/status", get(crate::status::stream_status))
        .with_state(state.clone())
        .merge(crate::streams::router(state.clone()));
    if let Some(trickle) = &state.workers.trickle_server {
        router = router.nest(HOSTED_PATH, trickle.router());
    }
    if let Some(whep) = whep {
        router = router.merge(livegate_whep::http::router(whep));
    }
    if let Some(whip) = whip {
        router = router.merge(livegate_whip::http::router(whip));
    }
    router.layer(middleware::from_fn_with_state(state, observe))
}

/// The try-it page: publish a camera, play a stream. Embedded, so the binary is all an
/// operator needs.
async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("web/index.html"))
}

/// Liveness: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the gateway accepts new sessions.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// The registry as Prometheus text, the WebRTC metrics first brought up to date from a
/// snapshot of every session (at most 200 ms per role).
async fn metrics(State(state): State<AppState>) -> Response {
    state.rtc.refresh().await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts every response by route and status, and adds CORS headers to every response,
/// errors included, when CORS is allowed.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut response = next.run(request).await;
    state
        .metrics
        .http_responses
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    if state.allow_cors {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSE);
    }
    response
}
