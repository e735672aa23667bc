//! The HTTP subscriber: follows a channel segment by segment, from the next one to start.
//!
//! As go-livepeer's `TrickleSubscriber`, it starts at seq `-1`, learns the real seq from
//! `Lp-Trickle-Seq`, and opens the GET for `n + 1` as soon as segment `n` starts (a
//! preconnect), so the next segment's first byte arrives without a request round trip. A 470
//! (fallen out of the window, or too far ahead) makes it jump to `Lp-Trickle-Latest`. A GET
//! that waits longer than [`SubscriberConfig::poll_refresh`] is re-issued, as go-livepeer does
//! every 20 s so that idle connections are not cut by proxies.
//!
//! Concurrency contract: one task drives a subscriber and the [`SubscribedSegment`] it
//! returned. A segment's chunks are not buffered beyond what the connection holds: a slow
//! reader slows only its own GET (the server keeps the segment for it). End of channel
//! (`Lp-Trickle-Closed`, or 404 once the channel is deleted) is `Ok(None)`, and stays so.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::error::{TrickleError, STATUS_SEGMENT_UNAVAILABLE};
use crate::headers::{self, LATEST, SEQ};
use crate::{SeqNo, SEQ_NEXT};

/// Settings of a [`TrickleSubscriber`].
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// The first seq to ask for (`-1`: the next segment to start).
    pub start_seq: SeqNo,
    /// A segment that delivers no byte for this long ends with
    /// [`TrickleError::SegmentStalled`]; the subscriber then goes on with the next one.
    pub stall_timeout: Duration,
    /// A GET still waiting for its segment after this long is re-issued (go-livepeer: 20 s).
    pub poll_refresh: Duration,
    /// Failed attempts in a row (connection errors, 5xx, 470 jumps) before giving up
    /// (go-livepeer's callers: 5).
    pub max_retries: u32,
    /// Pause after the first failure, doubled after each next one up to `retry_backoff_max`.
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        Self {
            start_seq: SEQ_NEXT,
            stall_timeout: Duration::from_secs(10),
            poll_refresh: Duration::from_secs(20),
            max_retries: 5,
            retry_backoff_initial: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(2),
        }
    }
}

type GetOutcome = Result<reqwest::Response, reqwest::Error>;

/// Reads a channel URL such as `http://host/ai/trickle/{channel}` segment by segment. Create
/// and use it inside a tokio runtime: it spawns the preconnected GETs.
#[derive(Debug)]
pub struct TrickleSubscriber {
    client: reqwest::Client,
    url: String,
    config: SubscriberConfig,
    next_seq: SeqNo,
    preconnected: Option<JoinHandle<GetOutcome>>,
    ended: bool,
}

impl TrickleSubscriber {
    /// A subscriber with default settings, starting at the next segment.
    pub fn new(channel_url: &str) -> Result<Self, TrickleError> {
        Self::with_config(channel_url, SubscriberConfig::default())
    }

    pub fn with_config(channel_url: &str, config: SubscriberConfig) -> Result<Self, TrickleError> {
        Ok(Self {
            client: reqwest::Client::builder().build()?,
            url: crate::channel_url(channel_url)?,
            next_seq: config.start_seq,
            config,
            preconnected: None,
            ended: false,
        })
    }

    /// The seq the next [`next_segment`](Self::next_segment) asks for.
    pub fn next_seq(&self) -> SeqNo {
        self.next_seq
    }

    /// The next segment once its first byte is at the server, `Ok(None)` once the channel is
    /// closed or gone. Connection errors are retried with backoff; after
    /// [`SubscriberConfig::max_retries`] failures in a row the last one is returned.
    pub async fn next_segment(&mut self) -> Result<Option<SubscribedSegment>, TrickleError> {
        let mut failures = 0;
        loop {
            if self.ended {
                return Ok(None);
            }
            let outcome = match self.preconnected.take() {
                // The task is aborted only with its subscriber; a panic in it is retried.
                Some(get) => get
                    .await
                    .map_err(|_| Failure::Retry(TrickleError::PreconnectFailed)),
                None => Ok(long_poll(&self.client, &self.url, self.next_seq, &self.config).await),
            };
            let failure = match outcome {
                Ok(Ok(response)) => match self.on_response(response).await {
                    Ok(segment) => return Ok(segment),
                    Err(failure) => failure,
                },
                Ok(Err(error)) => Failure::Retry(TrickleError::Http(error)),
                Err(failure) => failure,
            };
            let error = match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Retry(error) => error,
            };
            failures += 1;
            if failures > self.config.max_retries {
                return Err(TrickleError::RetriesExhausted {
                    attempts: failures,
                    last: Box::new(error),
                });
            }
            tracing::debug!(url = %self.url, seq = self.next_seq, %error, failures, "trickle GET failed, retrying");
            if !matches!(
                error,
                TrickleError::Status {
                    status: STATUS_SEGMENT_UNAVAILABLE,
                    ..
                }
            ) {
                tokio::time::sleep(self.backoff(failures)).await;
            }
        }
    }

    async fn on_response(
        &mut self,
        response: reqwest::Response,
    ) -> Result<Option<SubscribedSegment>, Failure> {
        if headers::is_closed(response.headers()) {
            self.ended = true;
            return Ok(None);
        }
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            // go-livepeer deletes a closed channel from its map: later GETs get 404, which its
            // callers treat like the end of the stream.
            self.ended = true;
            return Ok(None);
        }
        if status.as_u16() == STATUS_SEGMENT_UNAVAILABLE {
            // go-livepeer's GetLatest: without the header, ask for the write head.
            let latest = headers::seq_header(response.headers(), &LATEST).unwrap_or(SEQ_NEXT);
            tracing::debug!(url = %self.url, from = self.next_seq, to = latest, "trickle subscriber jumps to the latest segment");
            self.next_seq = latest;
            return Err(Failure::Retry(TrickleError::Status {
                status: STATUS_SEGMENT_UNAVAILABLE,
                reason: format!("segment unavailable, jumping to {latest}"),
            }));
        }
        if !status.is_success() {
            let reason = response.text().await.unwrap_or_default();
            let error = TrickleError::Status {
                status: status.as_u16(),
                reason: reason.lines().next().unwrap_or_default().to_string(),
            };
            return Err(if status.is_server_error() {
                Failure::Retry(error)
            } else {
                Failure::Fatal(error)
            });
        }
        let seq = headers::seq_header(response.headers(), &SEQ)
            .unwrap_or(self.next_seq)
            .max(0);
        self.next_seq = seq + 1;
        self.preconnected = Some(tokio::spawn(long_poll_owned(
            self.client.clone(),
            self.url.clone(),
            self.next_seq,
            self.config.clone(),
        )));
        Ok(Some(SubscribedSegment {
            seq,
            stall_timeout: self.config.stall_timeout,
            stall: Box::pin(tokio::time::sleep(self.config.stall_timeout)),
            body: response.bytes_stream().boxed(),
            done: false,
        }))
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        (self.config.retry_backoff_initial * 2u32.pow(doublings)).min(self.config.retry_backoff_max)
    }
}

impl Drop for TrickleSubscriber {
    fn drop(&mut self) {
        if let Some(get) = self.preconnected.take() {
            get.abort();
        }
    }
}

enum Failure {
    Retry(TrickleError),
    Fatal(TrickleError),
}

/// GET `{url}/{seq}` until the server answers, re-issued every `poll_refresh`.
async fn long_poll(
    client: &reqwest::Client,
    url: &str,
    seq: SeqNo,
    config: &SubscriberConfig,
) -> GetOutcome {
    let segment_url = format!("{url}/{seq}");
    loop {
        let request = client.get(&segment_url).send();
        if let Ok(outcome) = tokio::time::timeout(config.poll_refresh, request).await {
            return outcome;
        }
    }
}

async fn long_poll_owned(
    client: reqwest::Client,
    url: String,
    seq: SeqNo,
    config: SubscriberConfig,
) -> GetOutcome {
    long_poll(&client, &url, seq, &config).await
}

/// One segment's bytes as they arrive: a [`Stream`] of chunks that ends with the segment, or
/// with [`TrickleError::SegmentStalled`] when no byte came for the stall timeout.
pub struct SubscribedSegment {
    seq: SeqNo,
    stall_timeout: Duration,
    stall: Pin<Box<Sleep>>,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    done: bool,
}

impl std::fmt::Debug for SubscribedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribedSegment")
            .field("seq", &self.seq)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SubscribedSegment {
    /// The seq served (`Lp-Trickle-Seq`).
    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// The next chunk; `None` at the end of the segment.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, TrickleError>> {
        self.next().await
    }

    /// The whole segment (for tests and small segments; live video should use chunks).
    pub async fn read_to_end(mut self) -> Result<Vec<u8>, TrickleError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }
}

impl Stream for SubscribedSegment {
    type Item = Result<Bytes, TrickleError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.body.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let deadline = Instant::now() + this.stall_timeout;
                this.stall.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.done = true;
                Poll::Ready(Some(Err(TrickleError::Http(error))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    Poll::Ready(Some(Err(TrickleError::SegmentStalled {
                        seq: this.seq,
                        stalled_ms: this.stall_timeout.as_millis() as u64,
                    })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
