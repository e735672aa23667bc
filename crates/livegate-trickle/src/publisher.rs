//! The HTTP publisher: segments POSTed one after the other, each body streamed as it is
//! written, the next POST always already open.
//!
//! As go-livepeer's `TricklePublisher`, it preconnects: creating it opens the POST for seq 0,
//! and taking the writer for seq `n` opens the POST for `n + 1`, so when segment `n + 1` begins
//! its request is already at the server and its first byte goes straight to subscribers.
//!
//! Concurrency contract: one task drives a publisher and its current [`SegmentWriter`].
//! [`SegmentWriter::write`] waits only while the connection pushes back (a few chunks are
//! queued); it never waits for subscribers. A writer dropped without
//! [`finish`](SegmentWriter::finish) aborts its POST, and the server ends the segment with what
//! it received. [`TricklePublisher::close`] deletes the channel: subscribers see the end, and
//! the server refuses further POSTs.

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::TrickleError;
use crate::headers;
use crate::SeqNo;

/// Settings of a [`TricklePublisher`].
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `Content-Type` of every POST, served to subscribers (go-livepeer: `video/MP2T`).
    pub content_type: String,
    /// Chunks queued per POST before [`SegmentWriter::write`] waits for the connection.
    pub queued_chunks: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            content_type: "video/MP2T".to_string(),
            queued_chunks: 16,
        }
    }
}

/// Publishes segments 0, 1, 2, … to one channel URL such as
/// `http://host/ai/trickle/{channel}`. Create and use it inside a tokio runtime: it spawns
/// the preconnected POSTs.
#[derive(Debug)]
pub struct TricklePublisher {
    client: reqwest::Client,
    url: String,
    config: PublisherConfig,
    preconnected: Option<SegmentWriter>,
    next_seq: SeqNo,
}

impl TricklePublisher {
    /// A publisher with default settings; opens the POST for seq 0 at once.
    pub fn new(channel_url: &str) -> Result<Self, TrickleError> {
        Self::with_config(channel_url, PublisherConfig::default())
    }

    pub fn with_config(channel_url: &str, config: PublisherConfig) -> Result<Self, TrickleError> {
        let url = crate::channel_url(channel_url)?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(TrickleError::Http)?;
        let mut publisher = Self {
            client,
            url,
            config,
            preconnected: None,
            next_seq: 0,
        };
        publisher.preconnected = Some(publisher.preconnect());
        Ok(publisher)
    }

    /// The writer for the next segment, whose POST is already open; opens the POST for the
    /// one after.
    pub fn next_segment(&mut self) -> SegmentWriter {
        let current = match self.preconnected.take() {
            Some(writer) => writer,
            None => self.preconnect(),
        };
        self.preconnected = Some(self.preconnect());
        current
    }

    /// Deletes the channel (`DELETE {channel}`): subscribers see the end, the preconnected
    /// POST is answered `Lp-Trickle-Closed`.
    pub async fn close(mut self) -> Result<(), TrickleError> {
        let response = self.client.delete(&self.url).send().await?;
        self.preconnected = None;
        check_status(response).await
    }

    fn preconnect(&mut self) -> SegmentWriter {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (body_tx, body_rx) = mpsc::channel::<Bytes>(self.config.queued_chunks.max(1));
        let body = futures_util::stream::unfold(body_rx, |mut body_rx| async move {
            let chunk = body_rx.recv().await?;
            Some((Ok::<_, std::io::Error>(chunk), body_rx))
        });
        let request = self
            .client
            .post(format!("{}/{seq}", self.url))
            .header(CONTENT_TYPE, &self.config.content_type)
            .body(reqwest::Body::wrap_stream(body));
        let post = tokio::spawn(async move { check_status(request.send().await?).await });
        SegmentWriter {
            seq,
            body_tx: Some(body_tx),
            post: Some(post),
        }
    }
}

/// The outcome of a POST or DELETE, from its status and headers.
async fn check_status(response: reqwest::Response) -> Result<(), TrickleError> {
    if headers::is_closed(response.headers()) {
        return Err(TrickleError::ChannelClosed);
    }
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(TrickleError::ChannelNotFound);
    }
    let reason = response.text().await.unwrap_or_default();
    Err(TrickleError::Status {
        status: status.as_u16(),
        reason: reason.lines().next().unwrap_or_default().to_string(),
    })
}

/// Writes one segment's POST body. Dropping it without [`finish`](Self::finish) aborts the
/// POST.
#[derive(Debug)]
pub struct SegmentWriter {
    seq: SeqNo,
    body_tx: Option<mpsc::Sender<Bytes>>,
    post: Option<JoinHandle<Result<(), TrickleError>>>,
}

enum WriteOutcome {
    Queued,
    BodyClosed,
    Answered(Result<(), TrickleError>),
}

impl SegmentWriter {
    /// The seq this writer publishes.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// Sends a chunk; subscribers receive it as soon as the server does. Fails with the
    /// server's answer if it ended the POST (channel closed or deleted, segment too large).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        let (Some(body_tx), Some(post)) = (self.body_tx.as_ref(), self.post.as_mut()) else {
            return Err(TrickleError::PostEnded { seq: self.seq });
        };
        let outcome = tokio::select! {
            biased;
            // The server answered before the body ended: a refusal or the channel closing.
            answer = post => WriteOutcome::Answered(flatten(self.seq, answer)),
            queued = body_tx.send(chunk) => match queued {
                Ok(()) => WriteOutcome::Queued,
                Err(_) => WriteOutcome::BodyClosed,
            },
        };
        match outcome {
            WriteOutcome::Queued => Ok(()),
            WriteOutcome::Answered(answer) => {
                self.post = None;
                self.body_tx = None;
                Err(answer
                    .err()
                    .unwrap_or(TrickleError::PostEnded { seq: self.seq }))
            }
            WriteOutcome::BodyClosed => {
                self.body_tx = None;
                let answer = self.answer().await;
                Err(answer
                    .err()
                    .unwrap_or(TrickleError::PostEnded { seq: self.seq }))
            }
        }
    }

    /// Ends the body and waits for the server's answer.
    pub async fn finish(mut self) -> Result<(), TrickleError> {
        self.body_tx = None;
        self.answer().await
    }

    async fn answer(&mut self) -> Result<(), TrickleError> {
        match self.post.take() {
            Some(post) => flatten(self.seq, post.await),
            None => Err(TrickleError::PostEnded { seq: self.seq }),
        }
    }
}

fn flatten(
    seq: SeqNo,
    joined: Result<Result<(), TrickleError>, tokio::task::JoinError>,
) -> Result<(), TrickleError> {
    // The task only fails by being aborted, which happens when its writer is dropped.
    joined.unwrap_or(Err(TrickleError::PostEnded { seq }))
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        if let Some(post) = self.post.take() {
            // Closing the body would publish a short segment as complete; aborting the
            // request makes the server end it as dropped.
            post.abort();
        }
    }
}
