//! The optional `Authorization: Bearer` check of an endpoint (RFC 9725 §4.5, RFC 6750).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;

use crate::HttpError;

/// A configured bearer token. Compared in constant time so response timing does not reveal
/// how much of a guess was right.
#[derive(Clone)]
pub struct BearerToken(Vec<u8>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    pub fn new(token: impl Into<String>) -> BearerToken {
        BearerToken(token.into().into_bytes())
    }

    /// Checks a request's `Authorization` header: 401 with a reason when it is missing,
    /// malformed or wrong.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        let unauthorized = |reason: &'static str| HttpError::new(StatusCode::UNAUTHORIZED, reason);
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer token"))?;
        let presented = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
            .ok_or_else(|| unauthorized("Authorization is not a Bearer token"))?;
        // ct_eq on slices of different lengths is false without looking at the bytes; the
        // length of the secret is not what we protect.
        if bool::from(presented.trim_ascii().ct_eq(&self.0)) {
            Ok(())
        } else {
            Err(unauthorized("wrong bearer token"))
        }
    }

    /// The `WWW-Authenticate` challenge that goes with a 401 (RFC 6750 §3).
    pub fn challenge() -> (header::HeaderName, HeaderValue) {
        (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn accepts_only_the_configured_token() {
        let token = BearerToken::new("s3cret");
        assert_eq!(token.check(&headers(Some("Bearer s3cret"))), Ok(()));
        for (value, reason) in [
            (None, "missing Authorization: Bearer token"),
            (
                Some("Basic czNjcmV0"),
                "Authorization is not a Bearer token",
            ),
            (Some("Bearer s3cre"), "wrong bearer token"),
            (Some("Bearer s3cret2"), "wrong bearer token"),
            (Some("Bearer "), "wrong bearer token"),
        ] {
            let error = token.check(&headers(value)).unwrap_err();
            assert_eq!(error.status, StatusCode::UNAUTHORIZED, "{value:?}");
            assert_eq!(error.reason, reason, "{value:?}");
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        assert!(!format!("{:?}", BearerToken::new("s3cret")).contains("s3cret"));
    }
}
