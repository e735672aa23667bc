//! The WHIP endpoint over HTTP (RFC 9725): translates requests into calls on
//! [`WhipServer`] and its answers into responses.
//!
//! | request | answer |
//! |---|---|
//! | `POST /live/{stream}/whip` (also go-livepeer's `/live/video-to-video/{stream}/whip`) | 201, SDP answer, `Location`, `ETag`, `Link`, `Livepeer-Playback-URL` |
//! | `PATCH /live/{stream}/whip/{id}` | 204 trickle, 200 ICE restart (§4.3) |
//! | `DELETE /live/{stream}/whip/{id}` | 200 (OBS takes anything else, 204 included, as a failure) |
//! | `OPTIONS` on either | 204 with `Accept-Post` / `Accept-Patch`, `Link` and CORS preflight headers |
//! | `GET`/`HEAD` on the endpoint | 405 |

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use livegate_media::StreamKey;
use livegate_wish::{
    ascii_header, authorize, created, endpoint_options, read_sdp_offer, respond, session_methods,
    HttpError, SessionResource,
};

use crate::auth::AuthRequest;
use crate::server::{PublishError, WhipServer};

/// go-livepeer's name for the header that tells a publisher where its stream plays.
pub const PLAYBACK_URL: HeaderName = HeaderName::from_static("livepeer-playback-url");

/// The WHIP routes, for the gateway's HTTP server to merge.
pub fn router(server: WhipServer) -> Router {
    Router::new()
        .route(
            "/live/{stream}/whip",
            post(publish).options(endpoint_options::<WhipServer>),
        )
        .route(
            "/live/video-to-video/{stream}/whip",
            post(publish).options(endpoint_options::<WhipServer>),
        )
        .route("/live/{stream}/whip/{id}", session_methods())
        .with_state(server)
}

async fn publish(
    State(server): State<WhipServer>,
    Path(stream): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        authorize(server.token(), &headers)?;
        let key = StreamKey::parse(&stream).map_err(|e| HttpError::bad_request(e.to_string()))?;
        let offer = read_sdp_offer(&headers, body).await?;
        let auth = AuthRequest {
            query: uri.query().unwrap_or("").to_owned(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ..AuthRequest::whip(&key)
        };
        let published = server
            .publish(key.clone(), offer, auth)
            .await
            .map_err(|e| publish_error(&server, e))?;

        let location = format!("/live/{key}/whip/{}", published.id);
        let mut response = created(
            published.answer,
            &location,
            &published.etag,
            &server.config().ice_server_links,
        );
        let out = response.headers_mut();
        out.insert(PLAYBACK_URL, playback_url(&headers, &key));
        Ok(response)
    };
    respond(result.await)
}

/// Where the stream plays over WHEP on this gateway, absolute when the request named its
/// host (players of go-livepeer's API expect a URL they can use as is).
fn playback_url(headers: &HeaderMap, key: &StreamKey) -> HeaderValue {
    let path = format!("/live/{key}/whep");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(host) => HeaderValue::from_str(&format!("http://{host}{path}"))
            .unwrap_or_else(|_| ascii_header(&path)),
        None => ascii_header(&path),
    }
}

fn publish_error(server: &WhipServer, error: PublishError) -> HttpError {
    let reason = error.to_string();
    match error {
        PublishError::BadOffer(_) => HttpError::bad_request(reason),
        PublishError::Unprocessable(_) => HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, reason),
        PublishError::AlreadyLive(_) => HttpError::new(StatusCode::CONFLICT, reason),
        PublishError::Denied(_) => HttpError::new(StatusCode::FORBIDDEN, reason),
        PublishError::TooManyStreams(_)
        | PublishError::TooManySessions(_)
        | PublishError::ShuttingDown
        | PublishError::AuthUnavailable(_)
        | PublishError::ClusterUnavailable(_) => {
            HttpError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
                .retry_after(server.config().retry_after)
        }
    }
}
