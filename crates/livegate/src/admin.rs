//! Who may use the operator API (`/streams`).
//!
//! - With `LIVE_AI_ADMIN_TOKEN` set, every operator request carries
//!   `Authorization: Bearer <token>` (compared in constant time by [`BearerToken`]), from
//!   anywhere, this machine included; else 401.
//! - Without it, the routes that change anything (`DELETE /streams/{key}`) are not mounted at
//!   all, so no request can end a stream. The streams list is still served, but only to
//!   clients on this machine (a loopback peer address, without a `Forwarded` or
//!   `X-Forwarded-For` header), else 403.
//!
//! Why the list is not public without a token: stream keys are often the only secret of a
//! stream. With no WHEP token a key is enough to watch it, and a key in its republish grace
//! can be taken over by whoever publishes it first. A public list would hand both out. Why it
//! is not simply off: on a developer's machine (`cargo run`, the page at
//! `http://localhost:8935/`) the list should work with nothing configured, and whoever can
//! reach the loopback interface can already read the process's memory. A reverse proxy on the
//! same host makes every request look local; proxies that say so with a forwarding header are
//! refused, and an operator behind any proxy should set the token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use livegate_wish::{respond, BearerToken, HttpError};

/// How operator requests are let in; see the module docs.
#[derive(Clone, Debug)]
pub enum AdminAccess {
    /// `LIVE_AI_ADMIN_TOKEN`: the bearer token, from anywhere.
    Token(BearerToken),
    /// No token configured: read-only routes, from this machine only.
    LocalOnly,
}

impl AdminAccess {
    /// From `LIVE_AI_ADMIN_TOKEN` (empty: none).
    pub fn from_config(token: &str) -> AdminAccess {
        if token.is_empty() {
            AdminAccess::LocalOnly
        } else {
            AdminAccess::Token(BearerToken::new(token))
        }
    }

    /// Whether the routes that change anything are mounted.
    pub fn allows_changes(&self) -> bool {
        matches!(self, AdminAccess::Token(_))
    }

    /// Lets a request in or says why not (401 for a token, 403 for a remote peer).
    pub fn check(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), HttpError> {
        match self {
            AdminAccess::Token(token) => token.check(headers),
            AdminAccess::LocalOnly if is_direct_local(peer, headers) => Ok(()),
            AdminAccess::LocalOnly => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "the operator API answers only this machine unless LIVE_AI_ADMIN_TOKEN is set",
            )),
        }
    }
}

/// A loopback peer that no proxy speaks for. An unknown peer (a server built without
/// connection info) is not local.
fn is_direct_local(peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let forwarded = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    peer.is_some_and(|addr| addr.ip().to_canonical().is_loopback()) && !forwarded
}

/// Middleware of the operator routes: [`AdminAccess::check`], with the `WWW-Authenticate`
/// challenge on a 401.
pub(crate) async fn require(
    State(access): State<AdminAccess>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    match access.check(peer, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => respond(Err(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    fn peer(addr: &str) -> Option<SocketAddr> {
        Some(addr.parse().unwrap())
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    #[test]
    fn without_a_token_only_direct_local_peers_get_in() {
        let access = AdminAccess::from_config("");
        assert!(!access.allows_changes());
        let none = HeaderMap::new();
        assert!(access.check(peer("127.0.0.1:5000"), &none).is_ok());
        assert!(access.check(peer("[::1]:5000"), &none).is_ok());
        assert!(access.check(peer("[::ffff:127.0.0.1]:5000"), &none).is_ok());
        for remote in ["192.0.2.1:5000", "[2001:db8::1]:5000"] {
            let err = access.check(peer(remote), &none).unwrap_err();
            assert_eq!(err.status, StatusCode::FORBIDDEN);
        }
        assert!(access.check(None, &none).is_err());
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        assert!(access.check(peer("127.0.0.1:5000"), &proxied).is_err());
    }

    #[test]
    fn with_a_token_everyone_needs_it() {
        let access = AdminAccess::from_config("s3cret");
        assert!(access.allows_changes());
        let local = peer("127.0.0.1:5000");
        let err = access.check(local, &HeaderMap::new()).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(access.check(local, &bearer("wrong")).is_err());
        assert!(access
            .check(peer("192.0.2.1:5000"), &bearer("s3cret"))
            .is_ok());
    }
}
