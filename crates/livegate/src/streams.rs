//! The operator API over every stream: `GET /streams` lists them ([`StreamView`] each, by
//! key), `DELETE /streams/{key}` kicks a stream's publisher and ends the stream. Who may use
//! them, and why the list is not public, is [`crate::admin`]'s job. In cluster mode the list
//! also shows the fleet as Redis knows it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{middleware, Extension, Json, Router};
use livegate_cluster::{Cluster, ClusterView};
use livegate_media::StreamKey;
use livegate_wish::{respond, HttpError};
use serde::Serialize;

use crate::admin;
use crate::http::AppState;
use crate::stream_view::StreamView;

/// `GET /streams`'s body. An object, so fields can be added without breaking clients.
#[derive(Debug, Serialize)]
struct StreamList {
    /// Sorted by key.
    streams: Vec<StreamView>,
    /// Cluster mode only: every node and every stream's origin, fleet-wide.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Fleet>,
}

/// The fleet part of the list, or why Redis could not give it (the local list still works).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Fleet {
    View(ClusterView),
    Unavailable { error: String },
}

/// The operator routes, behind [`admin::require`]. `DELETE` only when a token is configured.
pub(crate) fn router(state: AppState) -> Router {
    let access = state.admin.clone();
    let mut router = Router::new().route("/streams", get(list));
    if access.allows_changes() {
        router = router.route("/streams/{key}", delete(end));
    }
    router
        .route_layer(middleware::from_fn_with_state(access, admin::require))
        .with_state(state)
}

async fn list(
    State(state): State<AppState>,
    cluster: Option<Extension<Cluster>>,
) -> Json<StreamList> {
    // The registry holds every open stream, those in their republish grace included.
    let streams = state
        .registry
        .keys()
        .iter()
        .filter_map(|key| StreamView::of(&state, key))
        .collect();
    let cluster = match cluster {
        Some(Extension(cluster)) => Some(match cluster.view().await {
            Ok(view) => Fleet::View(view),
            Err(e) => Fleet::Unavailable {
                error: e.to_string(),
            },
        }),
        None => None,
    };
    Json(StreamList { streams, cluster })
}

/// 204 once the publisher is closed and the stream ended; 404 for a key WHIP does not hold;
/// 409 for a stream WHIP did not publish (a test stream has no publisher to kick).
async fn end(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    respond(
        async {
            let key = StreamKey::parse(&key).map_err(|e| HttpError::bad_request(e.to_string()))?;
            if let Some(whip) = &state.whip {
                if whip.end_stream(&key).await {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
            }
            match state.registry.get(&key) {
                Some(stream) if !stream.is_closed() => Err(HttpError::new(
                    StatusCode::CONFLICT,
                    format!("stream {key} has no WHIP publisher to end it with"),
                )),
                _ => Err(HttpError::not_found(format!("no such stream: {key}"))),
            }
        }
        .await,
    )
}
