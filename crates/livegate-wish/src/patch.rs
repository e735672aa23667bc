//! PATCH of a session resource: trickle ICE and ICE restart with an
//! `application/trickle-ice-sdpfrag` body (RFC 8840), under `If-Match` preconditions
//! (RFC 9725 §4.3).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use livegate_rtc::{PatchError, PatchOutcome};

use crate::headers::TRICKLE_ICE_SDPFRAG;
use crate::sdp_body::read_text_body;
use crate::{HttpError, MAX_SDP_BYTES};

/// The `If-Match` value, as the transport compares it (a strong ETag or `*`).
pub fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// The fragment of a PATCH: `application/trickle-ice-sdpfrag`, bounded like an offer.
pub async fn read_sdpfrag(headers: &HeaderMap, body: Body) -> Result<String, HttpError> {
    read_text_body(
        headers,
        body,
        "application/trickle-ice-sdpfrag",
        MAX_SDP_BYTES,
    )
    .await
}

/// The HTTP answer to a PATCH: 204 for new candidates, 200 with the fragment and new ETag for
/// an ICE restart; 428, 412, 400, 404 or 500 with the reason otherwise.
pub fn response(outcome: Result<PatchOutcome, PatchError>) -> Response {
    match outcome {
        Ok(PatchOutcome::Trickled) => StatusCode::NO_CONTENT.into_response(),
        Ok(PatchOutcome::Restarted { sdpfrag, etag }) => {
            let mut response = (StatusCode::OK, sdpfrag).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, TRICKLE_ICE_SDPFRAG);
            if let Ok(etag) = HeaderValue::from_str(&etag) {
                headers.insert(header::ETAG, etag);
            }
            response
        }
        Err(error) => {
            let status = match &error {
                PatchError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
                PatchError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
                PatchError::BadFragment(_) | PatchError::BadRequest(_) => StatusCode::BAD_REQUEST,
                PatchError::SessionGone => StatusCode::NOT_FOUND,
                PatchError::RestartFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            HttpError::new(status, error.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_rfc_9725_statuses() {
        assert_eq!(
            response(Ok(PatchOutcome::Trickled)).status(),
            StatusCode::NO_CONTENT
        );
        let restarted = response(Ok(PatchOutcome::Restarted {
            sdpfrag: "a=ice-ufrag:x\r\n".into(),
            etag: "\"abc\"".into(),
        }));
        assert_eq!(restarted.status(), StatusCode::OK);
        assert_eq!(restarted.headers()[header::ETAG], "\"abc\"");
        assert_eq!(
            restarted.headers()[header::CONTENT_TYPE],
            "application/trickle-ice-sdpfrag"
        );
        for (error, status) in [
            (
                PatchError::PreconditionRequired,
                StatusCode::PRECONDITION_REQUIRED,
            ),
            (
                PatchError::PreconditionFailed,
                StatusCode::PRECONDITION_FAILED,
            ),
            (PatchError::BadRequest("no"), StatusCode::BAD_REQUEST),
            (PatchError::SessionGone, StatusCode::NOT_FOUND),
        ] {
            assert_eq!(response(Err(error)).status(), status);
        }
    }

    #[test]
    fn if_match_is_read_trimmed() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers), None);
        headers.insert(header::IF_MATCH, " \"e1\" ".parse().unwrap());
        assert_eq!(if_match(&headers).as_deref(), Some("\"e1\""));
    }
}
