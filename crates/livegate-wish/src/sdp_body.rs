//! Reading an SDP body (an offer, or a trickle-ICE fragment) from a request, checking what
//! can be checked before reading it.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};

use crate::headers::has_media_type;
use crate::HttpError;

/// Largest SDP body read. A browser's offer with audio, video, a data channel and a dozen
/// candidates is under 10 KiB; anything much larger is not an offer we want to parse.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// A request body's deadline passed before it was all received: what the HTTP server puts
/// in a body it gives a bounded time (slow-loris), and what the readers here answer 408 to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimedOut(pub std::time::Duration);

/// The SDP offer of a WHIP or WHEP POST: `Content-Type: application/sdp` (parameters
/// allowed), at most [`MAX_SDP_BYTES`], UTF-8 and not empty.
///
/// The size is refused from `Content-Length` before anything is read when the client sent
/// one, and while reading otherwise, so an oversized body is never buffered whole.
pub async fn read_sdp_offer(headers: &HeaderMap, body: Body) -> Result<String, HttpError> {
    read_text_body(headers, body, "application/sdp", MAX_SDP_BYTES).await
}

/// A text body of media type `media_type`, at most `limit` bytes (see [`read_sdp_offer`]).
pub async fn read_text_body(
    headers: &HeaderMap,
    body: Body,
    media_type: &str,
    limit: usize,
) -> Result<String, HttpError> {
    if !has_media_type(headers, media_type) {
        let given = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {media_type}, not {given}"),
        ));
    }
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes fails either at the limit or because the client's body broke off.
        if is_length_limit(&e) {
            too_large()
        } else if let Some(timed_out) = find_source::<BodyTimedOut>(&e) {
            // RFC 9110 §15.5.9: the client did not send a complete request in time.
            HttpError::new(StatusCode::REQUEST_TIMEOUT, timed_out.to_string())
        } else {
            HttpError::bad_request(format!("reading the body failed: {e}"))
        }
    })?;
    let text =
        String::from_utf8(bytes.into()).map_err(|_| HttpError::bad_request("body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(HttpError::bad_request("empty body"));
    }
    Ok(text)
}

fn find_source<T: std::error::Error + 'static>(error: &axum::Error) -> Option<&T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(content_type: &str, length: Option<usize>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        if let Some(n) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        headers
    }

    #[tokio::test]
    async fn accepts_sdp_with_parameters() {
        let offer = "v=0\r\n";
        for content_type in ["application/sdp", "Application/SDP; charset=utf-8"] {
            let text = read_sdp_offer(&headers(content_type, None), Body::from(offer))
                .await
                .unwrap();
            assert_eq!(text, offer);
        }
    }

    #[tokio::test]
    async fn refuses_wrong_type_size_encoding_and_emptiness() {
        let cases: [(HeaderMap, Body, StatusCode, &str); 5] = [
            (
                headers("text/plain", None),
                Body::from("v=0"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/sdp, not text/plain",
            ),
            (
                headers("application/sdp", Some(MAX_SDP_BYTES + 1)),
                Body::from("v=0"),
                StatusCode::PAYLOAD_TOO_LARGE,
                "body larger than 65536 bytes",
            ),
            (
                headers("application/sdp", None),
                Body::from(vec![b'a'; MAX_SDP_BYTES + 1]),
                StatusCode::PAYLOAD_TOO_LARGE,
                "body larger than 65536 bytes",
            ),
            (
                headers("application/sdp", None),
                Body::from(vec![0xff, 0xfe]),
                StatusCode::BAD_REQUEST,
                "body is not UTF-8",
            ),
            (
                headers("application/sdp", None),
                Body::from(" \r\n"),
                StatusCode::BAD_REQUEST,
                "empty body",
            ),
        ];
        for (headers, body, status, reason) in cases {
            let error = read_sdp_offer(&headers, body).await.unwrap_err();
            assert_eq!((error.status, error.reason.as_ref()), (status, reason));
        }
    }

    #[tokio::test]
    async fn missing_content_type_is_415() {
        let error = read_sdp_offer(&HeaderMap::new(), Body::from("v=0"))
            .await
            .unwrap_err();
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(error.reason.ends_with("not none"), "{}", error.reason);
    }
}
