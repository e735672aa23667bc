//! Header names and values the WHIP and WHEP endpoints send and read.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

/// `Accept-Post` on OPTIONS of an endpoint (RFC 9725 §4.1, W3C LDP).
pub const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");
/// `Accept-Patch` on the 201 and OPTIONS of a session (RFC 5789 §3.1).
pub const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");

pub const SDP: HeaderValue = HeaderValue::from_static("application/sdp");
pub const TRICKLE_ICE_SDPFRAG: HeaderValue =
    HeaderValue::from_static("application/trickle-ice-sdpfrag");

/// Headers a browser page must be allowed to read from a cross-origin response: without
/// `Location` a WHIP/WHEP client cannot find its session (Fetch standard, CORS-safelisted
/// response headers do not include it).
pub const CORS_EXPOSE: HeaderValue =
    HeaderValue::from_static("Location, ETag, Link, Accept-Patch, Retry-After");
/// Request headers a WHIP/WHEP page sends cross-origin.
pub const CORS_ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Content-Type, Authorization, If-Match");

/// Whether the request's `Content-Type` is `media_type`, comparing only the type and subtype
/// and ignoring case and parameters (RFC 9110 §8.3.1).
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_ignores_case_and_parameters() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            headers
        };
        assert!(has_media_type(&with("application/sdp"), "application/sdp"));
        assert!(has_media_type(
            &with(" APPLICATION/sdp ; charset=UTF-8"),
            "application/sdp"
        ));
        assert!(!has_media_type(
            &with("application/sdpx"),
            "application/sdp"
        ));
        assert!(!has_media_type(&with("text/sdp"), "application/sdp"));
        assert!(!has_media_type(&HeaderMap::new(), "application/sdp"));
    }
}
