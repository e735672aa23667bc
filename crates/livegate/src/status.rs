//! `GET /live/{stream}/status`: what one stream is doing, as JSON, for operators and the
//! web page. It reads what the parts already keep (the registry, the pipeline's status board,
//! the WHEP seat count); it measures nothing itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use livegate_media::StreamKey;
use serde_json::json;

use crate::http::AppState;

pub(crate) async fn stream_status(
    State(state): State<AppState>,
    Path(stream): Path<String>,
) -> Response {
    let Ok(key) = StreamKey::parse(&stream) else {
        return (StatusCode::BAD_REQUEST, "invalid stream key\n").into_response();
    };
    let live = state.registry.get(&key).filter(|s| !s.is_closed());
    let worker = state.workers.status.get(&key);
    if live.is_none() && worker.is_none() {
        return (StatusCode::NOT_FOUND, "no such stream\n").into_response();
    }
    let generation = live
        .as_ref()
        .map(|s| s.subscribe_output().borrow().generation);
    let viewers = state.whep.as_ref().map(|whep| whep.viewers(&key));
    Json(json!({
        "stream": key.as_str(),
        "live": live.is_some(),
        "output_generation": generation,
        "viewers": viewers,
        "pipeline": worker.as_ref().map(|w| w.pipeline),
        "worker": worker,
    }))
    .into_response()
}
