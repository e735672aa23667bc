//! The WHEP endpoint over HTTP (draft-ietf-wish-whep, with the resource model of RFC 9725):
//! translates requests into calls on [`WhepServer`] and its answers into responses.
//!
//! | request | answer |
//! |---|---|
//! | `POST /live/{stream}/whep` (also go-livepeer's `/live/video-to-video/{stream}-out/whep`) | 201, SDP answer, `Location`, `ETag`, `Link` |
//! | `PATCH /live/{stream}/whep/{id}` | 204 trickle, 200 ICE restart (RFC 9725 §4.3) |
//! | `DELETE /live/{stream}/whep/{id}` | 200 |
//! | `OPTIONS` on either | 204 with `Accept-Post` / `Accept-Patch` and CORS preflight headers |
//! | `POST /live/{stream}/whep/{id}/sse` | 201, `Location` of the event stream |
//! | `GET /live/{stream}/whep/{id}/sse?events=...` | `text/event-stream` of `active`, `inactive`, `viewercount` |

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures_util::stream::{self, Stream};
use livegate_media::StreamKey;
use livegate_wish::{
    ascii_header, authorize, created, endpoint_options, live_session, no_such_session,
    read_sdp_offer, respond, session_methods, session_options, session_url, HttpError, ResourceId,
    SessionResource,
};
use serde::Deserialize;

use crate::output::OutputEvent;
use crate::server::{PlayError, PlayOptions, WhepServer};

/// The `rel` of the server-sent events extension's `Link` (draft-ietf-wish-whep §4.6).
const SSE_REL: &str = "urn:ietf:params:whep:ext:core:server-sent-events";
/// Event types we send.
const SSE_EVENTS: [&str; 3] = ["active", "inactive", "viewercount"];

/// The WHEP routes, for the gateway's HTTP server to merge.
pub fn router(server: WhepServer) -> Router {
    Router::new()
        .route(
            "/live/{stream}/whep",
            post(play).options(endpoint_options::<WhepServer>),
        )
        .route(
            "/live/video-to-video/{stream_out}/whep",
            post(play_livepeer).options(endpoint_options::<WhepServer>),
        )
        .route("/live/{stream}/whep/{id}", session_methods())
        .route(
            "/live/{stream}/whep/{id}/sse",
            post(subscribe_events)
                .get(event_stream)
                .options(session_options),
        )
        .with_state(server)
}

#[derive(Debug, Default, Deserialize)]
struct PlayQuery {
    server_metrics: Option<String>,
}

async fn play(
    State(server): State<WhepServer>,
    Path(stream): Path<String>,
    Query(query): Query<PlayQuery>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let client_ip = client.map(|Extension(ConnectInfo(addr))| addr.ip());
    respond(play_stream(&server, &stream, query, client_ip, &headers, body).await)
}

/// go-livepeer's player path: the output of stream `X` is `X-out`.
async fn play_livepeer(
    State(server): State<WhepServer>,
    Path(stream_out): Path<String>,
    Query(query): Query<PlayQuery>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let client_ip = client.map(|Extension(ConnectInfo(addr))| addr.ip());
    let Some(stream) = stream_out.strip_suffix("-out") else {
        return HttpError::not_found(format!(
            "expected /live/video-to-video/{{stream}}-out/whep, got {stream_out}"
        ))
        .into_response();
    };
    respond(play_stream(&server, stream, query, client_ip, &headers, body).await)
}

async fn play_stream(
    server: &WhepServer,
    stream: &str,
    query: PlayQuery,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(server.token(), headers)?;
    let key = stream_key(stream)?;
    let offer = read_sdp_offer(headers, body).await?;
    let options = PlayOptions {
        server_metrics: query
            .server_metrics
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        client_ip,
    };
    let played = match server.play(key.clone(), offer, options).await {
        // The fleet's origin serves this stream (LIVE_AI_CLUSTER_REDIRECT).
        Err(PlayError::Redirect(url)) => {
            return Ok((
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, ascii_header(&url))],
            )
                .into_response())
        }
        played => played.map_err(|e| play_error(server, e))?,
    };

    let location = session_path(&key, played.id);
    let mut response = created(
        played.answer,
        &location,
        &played.etag,
        &server.config().ice_server_links,
    );
    response.headers_mut().append(
        header::LINK,
        ascii_header(&format!(
            "<{location}/sse>; rel=\"{SSE_REL}\"; events=\"{}\"",
            SSE_EVENTS.join(",")
        )),
    );
    Ok(response)
}

fn play_error(server: &WhepServer, error: PlayError) -> HttpError {
    let retry_after = server.config().retry_after;
    let reason = error.to_string();
    match error {
        PlayError::BadOffer(_) | PlayError::Unusable(_) => HttpError::bad_request(reason),
        PlayError::TooManyViewers { .. } | PlayError::TooManyPendingFromClient { .. } => {
            HttpError::new(StatusCode::TOO_MANY_REQUESTS, reason).retry_after(retry_after)
        }
        PlayError::NotPublished(_) | PlayError::StreamEnded(_) => {
            HttpError::new(StatusCode::CONFLICT, reason).retry_after(retry_after)
        }
        PlayError::Redirect(_) => HttpError::new(StatusCode::TEMPORARY_REDIRECT, reason),
        PlayError::Overloaded
        | PlayError::TooManySessions { .. }
        | PlayError::ShuttingDown
        | PlayError::ClusterUnavailable(_) => {
            HttpError::new(StatusCode::SERVICE_UNAVAILABLE, reason).retry_after(retry_after)
        }
    }
}

/// The SSE extension's subscription: the body is a JSON array of event types; we answer
/// with the event stream's URL, which carries the choice in its query.
async fn subscribe_events(
    State(server): State<WhepServer>,
    Path((stream, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (key, id) = live_session(&server, &headers, &stream, &id)?;
        let body = axum::body::to_bytes(body, 4096).await.map_err(|_| {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 4096 bytes")
        })?;
        let wanted: Vec<String> = if body.is_empty() {
            SSE_EVENTS.iter().map(|e| e.to_string()).collect()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                HttpError::bad_request(format!("expected a JSON array of event types: {e}"))
            })?
        };
        let events: Vec<&str> = SSE_EVENTS
            .iter()
            .copied()
            .filter(|e| wanted.iter().any(|w| w == e))
            .collect();
        let location = format!("{}/sse?events={}", session_path(&key, id), events.join(","));
        let mut response = StatusCode::CREATED.into_response();
        response
            .headers_mut()
            .insert(header::LOCATION, ascii_header(&location));
        Ok(response)
    };
    respond(result.await)
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    events: Option<String>,
}

async fn event_stream(
    State(server): State<WhepServer>,
    Path((stream, id)): Path<(String, String)>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let result = (|| {
        let (key, id) = session_url(&server, &headers, &stream, &id)?;
        let entry = server
            .session(&key, id)
            .ok_or_else(no_such_session::<WhepServer>)?;
        let wanted = query.events.unwrap_or_else(|| SSE_EVENTS.join(","));
        let wanted: Vec<String> = wanted.split(',').map(str::to_owned).collect();
        let events = entry.output.events();
        let ended = entry.cancel.clone();
        Ok(Sse::new(sse_events(events, ended, wanted))
            .keep_alive(KeepAlive::default())
            .into_response())
    })();
    respond(result)
}

/// The output's events as SSE, until the stream closes or the session ends.
fn sse_events(
    events: crate::OutputEvents,
    ended: tokio_util::sync::CancellationToken,
    wanted: Vec<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (events, ended, wanted),
        |(mut events, ended, wanted)| async move {
            loop {
                let event = tokio::select! {
                    event = events.next() => event?,
                    _ = ended.cancelled() => return None,
                };
                let (name, data) = match event {
                    OutputEvent::Active { .. } => ("active", "{}".to_owned()),
                    OutputEvent::Inactive => ("inactive", "{}".to_owned()),
                    OutputEvent::ViewerCount(n) => {
                        ("viewercount", format!("{{\"viewercount\":{n}}}"))
                    }
                    OutputEvent::Closed => ("inactive", "{}".to_owned()),
                };
                if wanted.iter().any(|w| w == name) {
                    let sse = Event::default().event(name).data(data);
                    return Some((Ok(sse), (events, ended, wanted)));
                }
            }
        },
    )
}

fn stream_key(stream: &str) -> Result<StreamKey, HttpError> {
    StreamKey::parse(stream).map_err(|e| HttpError::bad_request(e.to_string()))
}

fn session_path(key: &StreamKey, id: ResourceId) -> String {
    format!("/live/{key}/whep/{id}")
}
