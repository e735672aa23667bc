//! The HTTP face of [`TrickleServer`]: translates requests into channel and segment calls and
//! back, nothing more.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /{channel}` | 200 if the channel exists (created first with `autocreate`), else 404 |
//! | `POST /{channel}/{seq}` | streams the body into segment `seq` (`-1`: the write head); 200 with `Lp-Trickle-Seq` at its end; 200 + `Lp-Trickle-Closed` if the channel closes first; 404 unknown channel (with `Connection: close`, which wakes up preconnects), 409 segment already written, 413 too large |
//! | `GET /{channel}/{seq}` | long-polls until the segment's first byte (`-1`: the next segment to start, `-2`: the one being written), then 200 streaming it to its end with `Lp-Trickle-Seq` and `Lp-Trickle-Latest`; 470 too old or too far ahead; 200 + `Lp-Trickle-Closed` (empty) past the last segment of a closed channel; 404 unknown channel |
//! | `GET /{channel}/next` | the write head as text and in `Lp-Trickle-Latest` |
//! | `DELETE /{channel}/{seq}` | ends that segment; 400 if the window does not hold it |
//! | `DELETE /{channel}` | closes the channel; 400 if unknown (go-livepeer's status) |
//!
//! A non-integer seq is 400. Like go-livepeer, a GET sends its headers only with the first byte
//! and no keep-alive while it waits (go-livepeer's subscribers re-issue a waiting GET every
//! 20 s instead). go-livepeer also answers a preconnected POST that has sent nothing for 10 s
//! with an interim `100 Continue` as a keep-alive; hyper cannot send interim responses, so a
//! waiting POST here stays silent until its first byte, its segment ends or its channel closes.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;

use super::channel::ReadLookup;
use super::local::LocalSegmentWriter;
use super::segment::{SegmentEnd, SegmentReader};
use super::{ServerEvent, TrickleServer};
use crate::error::Refusal;
use crate::headers::{CLOSED, CLOSED_VALUE, LATEST, RESET, SEQ};
use crate::{SeqNo, SEQ_CURRENT, SEQ_NEXT};

pub(super) fn router(server: TrickleServer) -> Router {
    Router::new()
        .route("/{channel}", post(ensure_channel).delete(delete_channel))
        .route("/{channel}/next", get(next_seq))
        .route(
            "/{channel}/{seq}",
            get(get_segment).post(post_segment).delete(delete_segment),
        )
        .with_state(server)
}

fn parse_seq(text: &str, lowest: SeqNo) -> Result<SeqNo, Refusal> {
    match text.parse::<SeqNo>() {
        Ok(seq) if seq >= lowest => Ok(seq),
        _ => Err(Refusal::InvalidSeq(text.to_string())),
    }
}

fn seq_value(seq: SeqNo) -> HeaderValue {
    HeaderValue::from(seq)
}

fn refusal_response(refusal: &Refusal) -> Response {
    let mut response = (refusal.status(), format!("{refusal}\n")).into_response();
    let headers = response.headers_mut();
    match refusal {
        Refusal::SegmentUnavailable { seq, latest } => {
            headers.insert(SEQ, seq_value(*seq));
            headers.insert(LATEST, seq_value(*latest));
        }
        // The body may not have been read: the connection cannot be reused.
        Refusal::SegmentTooLarge { .. }
        | Refusal::SegmentAlreadyWritten { .. }
        | Refusal::SegmentTakenOver { .. } => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

fn closed_response(seq: SeqNo, latest: SeqNo) -> Response {
    let mut response = "channel closed\n".into_response();
    let headers = response.headers_mut();
    headers.insert(SEQ, seq_value(seq));
    headers.insert(LATEST, seq_value(latest));
    headers.insert(CLOSED, HeaderValue::from_static(CLOSED_VALUE));
    response
}

async fn ensure_channel(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
) -> Response {
    match server.channel_for_publish(&channel) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(refusal) => refusal_response(&refusal),
    }
}

async fn delete_channel(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
) -> Response {
    match server.close_channel(&channel) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => refusal_response(&Refusal::DeleteUnknownChannel),
    }
}

async fn next_seq(State(server): State<TrickleServer>, Path(channel): Path<String>) -> Response {
    let Some(channel) = server.channel(&channel) else {
        return refusal_response(&Refusal::ChannelNotFound);
    };
    let latest = channel.latest();
    let mut response = latest.to_string().into_response();
    response.headers_mut().insert(LATEST, seq_value(latest));
    if channel.is_closed() {
        response
            .headers_mut()
            .insert(CLOSED, HeaderValue::from_static(CLOSED_VALUE));
    }
    response
}

async fn delete_segment(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let Some(channel) = server.channel(&channel) else {
        return refusal_response(&Refusal::ChannelNotFound);
    };
    match parse_seq(&seq, 0).and_then(|seq| channel.drop_segment(seq)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => refusal_response(&refusal),
    }
}

async fn post_segment(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let seq = match parse_seq(&seq, SEQ_NEXT) {
        Ok(seq) => seq,
        Err(refusal) => return refusal_response(&refusal),
    };
    let mut writer = match LocalSegmentWriter::open(&server, &channel, seq) {
        Ok(writer) => writer,
        Err(refusal) => {
            let mut response = refusal_response(&refusal);
            if refusal == Refusal::ChannelNotFound {
                // go-livepeer: closing the connection wakes up the publisher's preconnect.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    writer.channel().set_content_type(content_type);
    if headers.contains_key(RESET) {
        writer.channel().reset_before(writer.seq());
    }

    let mut body = body.into_data_stream();
    loop {
        let chunk = tokio::select! {
            biased;
            end = writer.wait_end() => return ended_post_response(&writer, end),
            chunk = body.next() => chunk,
        };
        match chunk {
            Some(Ok(chunk)) => {
                if let Err(refusal) = writer.write_chunk(chunk) {
                    // Ended by someone else between the wait and the write.
                    if let (Some(end), false) = (
                        writer.ended(),
                        matches!(refusal, Refusal::SegmentTooLarge { .. }),
                    ) {
                        return ended_post_response(&writer, end);
                    }
                    tracing::debug!(seq = writer.seq(), %refusal, "trickle POST refused");
                    return refusal_response(&refusal);
                }
            }
            Some(Err(error)) => {
                // The writer's drop ends the segment as dropped: readers keep what came.
                tracing::debug!(seq = writer.seq(), %error, "trickle POST body failed");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "reading the body failed\n",
                )
                    .into_response();
            }
            None => {
                if let Some(end) = writer.ended() {
                    return ended_post_response(&writer, end);
                }
                let seq = writer.seq();
                tracing::trace!(seq, len_bytes = writer.len_bytes(), "trickle POST done");
                writer.finish();
                let mut response = StatusCode::OK.into_response();
                response.headers_mut().insert(SEQ, seq_value(seq));
                return response;
            }
        }
    }
}

/// The segment was ended by someone else while its POST was open: go-livepeer answers 200
/// with `Lp-Trickle-Seq`, `Lp-Trickle-Closed` if the channel closed, and `Connection: close`
/// because the rest of the body will not be read.
fn ended_post_response(writer: &LocalSegmentWriter, end: SegmentEnd) -> Response {
    if writer.len_bytes() == 0 {
        writer.channel().advance_past(writer.seq());
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(SEQ, seq_value(writer.seq()));
    if end == SegmentEnd::ChannelClosed {
        headers.insert(CLOSED, HeaderValue::from_static(CLOSED_VALUE));
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn get_segment(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let seq = match parse_seq(&seq, SEQ_CURRENT) {
        Ok(seq) => seq,
        Err(refusal) => return refusal_response(&refusal),
    };
    let Some(channel) = server.channel(&channel) else {
        return refusal_response(&Refusal::ChannelNotFound);
    };
    let segment = match channel.segment_for_read(seq) {
        ReadLookup::Found(segment) => segment,
        ReadLookup::Unavailable { seq, latest } => {
            return refusal_response(&Refusal::SegmentUnavailable { seq, latest })
        }
        ReadLookup::Closed { seq, latest } => return closed_response(seq, latest),
    };
    server.emit(ServerEvent::SubscriberConnected {
        channel: channel.name().clone(),
        seq: segment.seq(),
    });
    let mut reader = segment.reader();
    // The long poll: headers go out with the first byte, as in go-livepeer.
    let first = reader.next_chunk().await;
    let seq = reader.seq();
    let latest = channel.latest();
    let Some(first) = first else {
        if reader.end() == Some(SegmentEnd::ChannelClosed) || channel.is_closed() {
            return closed_response(seq, latest);
        }
        // A segment dropped before its first byte: an empty segment, as go-livepeer serves it.
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().insert(SEQ, seq_value(seq));
        response.headers_mut().insert(LATEST, seq_value(latest));
        return response;
    };
    let mut response = Response::new(Body::from_stream(segment_body(first, reader)));
    let headers = response.headers_mut();
    headers.insert(SEQ, seq_value(seq));
    headers.insert(LATEST, seq_value(latest));
    if let Some(value) = channel
        .content_type()
        .and_then(|content_type| HeaderValue::from_str(&content_type).ok())
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    response
}

/// The segment's bytes from `first` on, each chunk sent as soon as it is written.
fn segment_body(
    first: Bytes,
    reader: SegmentReader,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold((Some(first), reader), |(first, mut reader)| async move {
        let chunk = match first {
            Some(chunk) => chunk,
            None => reader.next_chunk().await?,
        };
        Some((Ok(chunk), (None, reader)))
    })
}
