//! Response pieces both endpoints build the same way.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::headers::{ACCEPT_PATCH, CORS_ALLOW_HEADERS, SDP, TRICKLE_ICE_SDPFRAG};
use crate::{BearerToken, HttpError};

/// The response of a handler, with the `WWW-Authenticate` challenge RFC 6750 §3 asks for on
/// a 401.
pub fn respond(result: Result<Response, HttpError>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            let unauthorized = error.status == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthorized {
                let (name, value) = BearerToken::challenge();
                response.headers_mut().insert(name, value);
            }
            response
        }
    }
}

/// Checks the request against the endpoint's token, if it has one.
pub fn authorize(token: Option<&BearerToken>, headers: &HeaderMap) -> Result<(), HttpError> {
    match token {
        Some(token) => token.check(headers),
        None => Ok(()),
    }
}

/// CORS preflight answers (Fetch standard §3.2.3) and `Allow`. `Access-Control-Allow-Origin`
/// itself is added to every response by the gateway when `LIVE_AI_ALLOW_CORS` is set, so
/// without it these headers grant nothing.
pub fn preflight(headers: &mut HeaderMap, methods: &'static str) {
    headers.insert(header::ALLOW, HeaderValue::from_static(methods));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_ALLOW_HEADERS);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// A header value from text the server built from validated ASCII (stream keys, resource
/// ids, paths).
pub fn ascii_header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("header text built from validated ASCII")
}

/// The `201 Created` of a session (RFC 9725 §4.2): the SDP answer, the resource's `Location`
/// and `ETag`, `Accept-Patch`, and one `Link` per ICE server (§4.4). Callers add their own
/// headers to it.
pub fn created(
    answer: String,
    location: &str,
    etag: &str,
    ice_server_links: &[HeaderValue],
) -> Response {
    let mut response = (StatusCode::CREATED, answer).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, SDP);
    out.insert(header::LOCATION, ascii_header(location));
    if let Ok(etag) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(ACCEPT_PATCH, TRICKLE_ICE_SDPFRAG);
    for link in ice_server_links {
        out.append(header::LINK, link.clone());
    }
    response
}
