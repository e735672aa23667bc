//! An HTTP error as the client sees it: a status and a one-line reason.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A refused request. The reason is the whole `text/plain` body, one line, so a client (or a
/// person with curl) learns what was wrong without reading the server's logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct HttpError {
    pub status: StatusCode,
    pub reason: Cow<'static, str>,
    /// Sent as `Retry-After` (whole seconds): when a retry may succeed (409 not published
    /// yet, 429, 503).
    pub retry_after: Option<Duration>,
}

impl HttpError {
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> HttpError {
        HttpError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> HttpError {
        self.retry_after = Some(after);
        self
    }

    pub fn bad_request(reason: impl Into<Cow<'static, str>>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, reason)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        // One line: a reason that came from a parser may carry newlines of its input.
        let mut body: String = self
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        body.push('\n');
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(after) = self.retry_after {
            // RFC 9110 §10.2.3: delay-seconds, at least one so clients do not spin.
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
        ) {
            // The request's body was left unread, so the connection cannot carry another
            // request (RFC 9112 §9.6): say so, or a client reuses it and its next request
            // fails on the close.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn body_is_one_line_and_retry_after_whole_seconds() {
        let response = HttpError::new(StatusCode::CONFLICT, "not\npublished\r yet")
            .retry_after(Duration::from_millis(1_500))
            .into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"not published  yet\n");
    }

    #[test]
    fn an_unread_body_closes_the_connection() {
        for status in [StatusCode::PAYLOAD_TOO_LARGE, StatusCode::REQUEST_TIMEOUT] {
            let response = HttpError::new(status, "x").into_response();
            assert_eq!(response.headers()[header::CONNECTION], "close");
        }
        let response = HttpError::bad_request("x").into_response();
        assert!(!response.headers().contains_key(header::CONNECTION));
    }

    #[test]
    fn sub_second_retry_after_rounds_up_to_one() {
        let response = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "busy")
            .retry_after(Duration::ZERO)
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
