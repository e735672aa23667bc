//! `GET /live/{stream}/status`: what one stream is doing, as JSON ([`StreamView`]), for
//! operators and the web page. Public like the WHEP endpoint itself: it needs the key, which
//! it does not reveal.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use livegate_media::StreamKey;
use livegate_wish::HttpError;

use crate::http::AppState;
use crate::stream_view::StreamView;

pub(crate) async fn stream_status(
    State(state): State<AppState>,
    Path(stream): Path<String>,
) -> Response {
    let Ok(key) = StreamKey::parse(&stream) else {
        return HttpError::bad_request("invalid stream key").into_response();
    };
    match StreamView::of(&state, &key) {
        Some(view) => Json(view).into_response(),
        None => HttpError::not_found("no such stream").into_response(),
    }
}
