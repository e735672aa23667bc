//! What a client may do with a session once it holds the session's URL (RFC 9725 §4.1):
//! DELETE it, PATCH it (§4.3), and ask OPTIONS of it or of the endpoint.
//!
//! WHIP and WHEP differ in how a session is made (the POST) and in what it carries, not in
//! these methods, so their handlers live here once, generic over the endpoint's server, and
//! each endpoint's router mounts them with its server as the state. Not here: the POST, and
//! the servers' tables, which each keeps under its own lock ([`crate::SessionTable`] is the
//! part they share).

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, MethodRouter};
use livegate_media::StreamKey;
use livegate_rtc::{PatchError, SessionHandle};

use crate::headers::{ACCEPT_PATCH, ACCEPT_POST, SDP, TRICKLE_ICE_SDPFRAG};
use crate::{authorize, patch, preflight, respond, BearerToken, HttpError, ResourceId};

/// Longest a DELETE waits for the session's event loop to take the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the session handlers need from an endpoint's server. A session URL names a session
/// only together with its stream: `id` of another stream is no session.
pub trait SessionResource: Clone + Send + Sync + 'static {
    /// The protocol as clients know it (`"WHIP"`, `"WHEP"`): a 404 names it, so a client
    /// that mixed up its URLs learns which endpoint it asked.
    const KIND: &'static str;

    /// The bearer token every request must carry, if the endpoint has one.
    fn token(&self) -> Option<&BearerToken>;

    /// One `Link` header per ICE server (RFC 9725 §4.4).
    fn ice_server_links(&self) -> &[HeaderValue];

    /// The peer connection of session `id` of `stream`, while the session is in the table.
    fn session_handle(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle>;

    /// Takes session `id` of `stream` out of the table and tells its task to end; `None`
    /// when there is no such session. Taken at once, not when the task winds down, so a
    /// second DELETE is already a 404.
    fn end_session(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle>;

    /// Ends session `id` of `stream` (HTTP DELETE); `false` when there is no such session.
    fn stop(&self, stream: &StreamKey, id: ResourceId) -> impl Future<Output = bool> + Send {
        async move {
            let Some(handle) = self.end_session(stream, id) else {
                return false;
            };
            if !close_in_time(&handle).await {
                tracing::warn!(stream = %stream, session = %id, "{} close not taken by the event loop in time", Self::KIND);
            }
            true
        }
    }
}

/// Closes a session's peer connection, waiting at most two seconds; `false` when its
/// event loop did not take the close by then. Bounded so a DELETE answers even when the
/// event loop is saturated; the session's own task closes the connection as well.
pub async fn close_in_time(handle: &SessionHandle) -> bool {
    tokio::time::timeout(CLOSE_TIMEOUT, handle.close())
        .await
        .is_ok()
}

/// DELETE, PATCH and OPTIONS of a session URL (`.../{stream}/{id}`).
pub fn session_methods<R: SessionResource>() -> MethodRouter<R> {
    delete(stop::<R>)
        .patch(patch_session::<R>)
        .options(session_options)
}

/// The 404 of a URL that names no session of the endpoint.
pub fn no_such_session<R: SessionResource>() -> HttpError {
    HttpError::not_found(format!("no such {} session", R::KIND))
}

/// The stream key and id of a session URL, once the request is authorized. A malformed
/// part is a 404, not a 400: no session can have that URL.
pub fn session_url<R: SessionResource>(
    server: &R,
    headers: &HeaderMap,
    stream: &str,
    id: &str,
) -> Result<(StreamKey, ResourceId), HttpError> {
    authorize(server.token(), headers)?;
    let key = StreamKey::parse(stream).map_err(|_| no_such_session::<R>())?;
    let id = id.parse().map_err(|_| no_such_session::<R>())?;
    Ok((key, id))
}

/// [`session_url`] of a session that is live now.
pub fn live_session<R: SessionResource>(
    server: &R,
    headers: &HeaderMap,
    stream: &str,
    id: &str,
) -> Result<(StreamKey, ResourceId), HttpError> {
    let (key, id) = session_url(server, headers, stream, id)?;
    if server.session_handle(&key, id).is_some() {
        Ok((key, id))
    } else {
        Err(no_such_session::<R>())
    }
}

/// DELETE answers 200: OBS takes anything else, 204 included, as a failure.
async fn stop<R: SessionResource>(
    State(server): State<R>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (key, id) = session_url(&server, &headers, &stream, &id)?;
        if server.stop(&key, id).await {
            Ok(StatusCode::OK.into_response())
        } else {
            Err(no_such_session::<R>())
        }
    };
    respond(result.await)
}

async fn patch_session<R: SessionResource>(
    State(server): State<R>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        // The session is looked up before the body is read, so a PATCH of a session that
        // is gone is a 404 whatever its body.
        let (key, id) = live_session(&server, &headers, &stream, &id)?;
        let fragment = patch::read_sdpfrag(&headers, body).await?;
        let if_match = patch::if_match(&headers);
        // Looked up again: the session may have ended while its body was read.
        let outcome = match server.session_handle(&key, id) {
            Some(handle) => handle.patch(if_match.as_deref(), &fragment).await,
            None => Err(PatchError::SessionGone),
        };
        Ok(patch::response(outcome))
    };
    respond(result.await)
}

/// OPTIONS on an endpoint: `Accept-Post`, the ICE servers (RFC 9725 §4.4: a client may set up
/// its peer connection before it makes its offer) and the CORS preflight. Unauthenticated,
/// as a browser's preflight carries no `Authorization`.
pub async fn endpoint_options<R: SessionResource>(State(server): State<R>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(ACCEPT_POST, SDP);
    for link in server.ice_server_links() {
        headers.append(header::LINK, link.clone());
    }
    preflight(headers, "POST, OPTIONS");
    response
}

/// OPTIONS on a session resource: `Accept-Patch` and the CORS preflight.
pub async fn session_options() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(ACCEPT_PATCH, TRICKLE_ICE_SDPFRAG);
    preflight(headers, "PATCH, DELETE, OPTIONS");
    response
}
