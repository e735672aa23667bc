//! The `whip:<url>` pipeline worker: each stream is published to an upstream realtime AI
//! service as a WHIP client (RFC 9725), and the processed media that service sends back on
//! the *same* peer connection becomes the stream's output; data-channel messages are relayed
//! both ways between the publisher and the upstream.
//!
//! ```text
//! input RingBuffer ─▶ InputFeed (demux, hold) ─▶ MediaSender (packetize, RTP clocks) ─┐
//!                                                                                     ├─ rtc peer connection ⇄ upstream
//! output RingBuffer ◀── MediaReceiver (livegate_whip::Ingest) ◀── RTP ───────────────┘
//! publisher data channel ⇄ DataRelay ⇄ upstream data channel
//! ```
//!
//! [`WhipUpstream`] is the [`UpstreamConnector`] the binary hands to the WHIP server. Its
//! [`attach`](UpstreamConnector::attach) returns at once and spawns one supervisor per
//! stream (`supervisor`), which makes one connection at a time (`peer`: one task, one UDP
//! socket, one `rtc` peer connection driven sans-I/O), each a new output generation.
//!
//! # The event loops
//!
//! | loop | owns | contract |
//! |---|---|---|
//! | supervisor | the input reader and hold queue, the data relay, the restart budget | `supervisor` module docs |
//! | connection | the peer connection, its socket, the output ring's writer | `peer` module docs |
//!
//! # Start-up
//!
//! Each attempt logs (`upstream start-up`, fields `phase` and `elapsed_ms` since the attempt
//! began) and records in [`UpstreamStatus::phases`]: `offer_built`, `post_answered`,
//! `ice_connected`, `dtls_connected`, `first_media_sent`, `first_media_received`. While it
//! connects the input is held from its newest keyframe (see `send`), so the publisher's
//! first seconds are not lost and nothing stale is sent.
//!
//! # What goes upstream
//!
//! The offer: H.264 (packetization-mode=1, `profile-level-id` from
//! [`UpstreamOptions::h264_profile_level_id`]) and Opus, both `sendrecv`, and a data channel
//! labelled [`UpstreamOptions::data_channel_label`]; one host candidate, complete (no
//! trickle). POSTed as `application/sdp` to [`UpstreamSpec::url_for`] the stream, with the
//! stream's pipeline parameters as `?params=<JSON>` (see `whip_http`) and
//! [`UpstreamOptions::bearer_token`] if set; the `Location` of the 201 is DELETEd when the
//! connection ends.
//!
//! # Keyframes
//!
//! Only the publisher makes keyframes. A PLI or FIR from the upstream is counted in
//! [`UpstreamStatus::upstream_keyframe_requests`] and passed on with
//! [`Stream::request_keyframe`](livegate_media::registry::Stream::request_keyframe), which the
//! publisher's WHIP session turns into a rate-limited PLI; the session also asks at each new
//! output generation, which covers every (re)connection.

mod data_channel;
pub mod datagram;
mod error;
pub mod offer;
mod peer;
mod receive;
mod send;
mod status;
mod supervisor;
mod whip_http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livegate_pipeline::exec::Backoff;
use livegate_pipeline::supervise::status::StatusBoard;
use livegate_pipeline::upstream::{UpstreamConnector, UpstreamSpec};
use livegate_pipeline::{Supervision, WorkerJob, DATA_CHANNEL_QUEUE};
use livegate_whip::IngestConfig;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use error::UpstreamError;
pub use status::{Phase, StartupPhases, UpstreamStatus};
pub use whip_http::PARAMS_QUERY;

/// How upstream connections are made. `Default` gives the values documented on each field.
/// `Debug` prints the bearer token as `***`.
#[derive(Clone)]
pub struct UpstreamOptions {
    /// The socket address of each connection (also its ICE host candidate, so a concrete
    /// IP; port 0 lets the OS choose). `None` (default): this host's address towards the
    /// upstream.
    pub bind: Option<SocketAddr>,
    /// Bearer token for the upstream's WHIP endpoint (RFC 9725 §4.5); default none.
    pub bearer_token: Option<String>,
    /// Longest wait for the POST's answer (default 10 s).
    pub request_timeout: Duration,
    /// Longest wait for the DELETE (default 2 s): the upstream reaps sessions anyway.
    pub delete_timeout: Duration,
    /// Longest time from an attempt's start to `connected` (default 15 s).
    pub connect_timeout: Duration,
    /// H.264 `profile-level-id` offered (default `42e01f`, constrained baseline 3.1, what
    /// every decoder takes); the publisher's stream is sent as it is whatever it says.
    pub h264_profile_level_id: String,
    /// Offer `a=setup:passive` instead of `actpass` (default `false`); see
    /// [`offer::OfferingPeer::offer`] for the trade.
    pub dtls_passive: bool,
    /// Pace of ICE checks (default 50 ms).
    pub ice_check_interval: Duration,
    /// Label of the data channel offered (default `livegate`).
    pub data_channel_label: String,
    /// Most input held while connecting (default 8 MiB, a few GOPs at high bitrates).
    pub max_held_bytes: usize,
    /// Capacity of each output generation's ring (default 2 MiB, as an input's).
    pub output_capacity_bytes: usize,
    /// Publisher data-channel messages kept while no upstream channel is open (default
    /// [`DATA_CHANNEL_QUEUE`]); beyond, the publisher's own queue fills.
    pub max_pending_data_messages: usize,
    /// Delays between attempts (default 250 ms doubling to 5 s, reset after 30 s up).
    pub backoff: Backoff,
    /// How the upstream's media is turned into MPEG-TS (default as for a publisher).
    pub ingest: IngestConfig,
}

impl std::fmt::Debug for UpstreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured without `..`, so a new field is listed here before it compiles.
        let UpstreamOptions {
            bind,
            bearer_token,
            request_timeout,
            delete_timeout,
            connect_timeout,
            h264_profile_level_id,
            dtls_passive,
            ice_check_interval,
            data_channel_label,
            max_held_bytes,
            output_capacity_bytes,
            max_pending_data_messages,
            backoff,
            ingest,
        } = self;
        f.debug_struct("UpstreamOptions")
            .field("bind", bind)
            .field("bearer_token", &bearer_token.as_ref().map(|_| "***"))
            .field("request_timeout", request_timeout)
            .field("delete_timeout", delete_timeout)
            .field("connect_timeout", connect_timeout)
            .field("h264_profile_level_id", h264_profile_level_id)
            .field("dtls_passive", dtls_passive)
            .field("ice_check_interval", ice_check_interval)
            .field("data_channel_label", data_channel_label)
            .field("max_held_bytes", max_held_bytes)
            .field("output_capacity_bytes", output_capacity_bytes)
            .field("max_pending_data_messages", max_pending_data_messages)
            .field("backoff", backoff)
            .field("ingest", ingest)
            .finish()
    }
}

impl Default for UpstreamOptions {
    fn default() -> UpstreamOptions {
        UpstreamOptions {
            bind: None,
            bearer_token: None,
            request_timeout: Duration::from_secs(10),
            delete_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(15),
            h264_profile_level_id: "42e01f".to_owned(),
            dtls_passive: false,
            ice_check_interval: Duration::from_millis(50),
            data_channel_label: "livegate".to_owned(),
            max_held_bytes: 8 * 1024 * 1024,
            output_capacity_bytes: livegate_media::ring::DEFAULT_CAPACITY_BYTES,
            max_pending_data_messages: DATA_CHANNEL_QUEUE,
            backoff: Backoff {
                initial: Duration::from_millis(250),
                max: Duration::from_secs(5),
                healthy_after: Duration::from_secs(30),
            },
            ingest: IngestConfig::default(),
        }
    }
}

/// Running workers' statuses by stream key.
pub(crate) type StatusTable = HashMap<String, watch::Receiver<UpstreamStatus>>;

/// Starts `whip:` upstream workers; one per gateway, shared by every stream. Cheap to clone.
///
/// ```no_run
/// use std::sync::Arc;
/// use livegate_pipeline::WorkerContext;
/// use livegate_upstream::{UpstreamOptions, WhipUpstream};
///
/// let upstream = WhipUpstream::new(UpstreamOptions::default());
/// let workers = WorkerContext {
///     upstream: Some(Arc::new(upstream.clone())),
///     ..WorkerContext::default()
/// };
/// // later, for a status page:
/// if let Some(status) = upstream.status("cam1") {
///     println!("connected: {}, reconnects: {}", status.connected, status.reconnects);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct WhipUpstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: Arc<UpstreamOptions>,
    supervision: Mutex<Supervision>,
    board: Mutex<Option<StatusBoard>>,
    http: reqwest::Client,
    /// The latest worker's status per stream key, while it runs.
    streams: Arc<Mutex<StatusTable>>,
}

impl WhipUpstream {
    /// A connector with `options`, supervising with [`Supervision::default`] until
    /// [`WhipUpstream::with_supervision`] says otherwise.
    pub fn new(options: UpstreamOptions) -> WhipUpstream {
        WhipUpstream {
            inner: Arc::new(Inner {
                options: Arc::new(options),
                supervision: Mutex::new(Supervision::default()),
                board: Mutex::new(None),
                http: reqwest::Client::new(),
                streams: Arc::default(),
            }),
        }
    }

    /// The same connector, supervising workers with `supervision` (the gateway's
    /// `LIVE_AI_OUT_TIMEOUT`, `LIVE_AI_MAX_RESTARTS`, `LIVE_AI_RESTART_WINDOW`).
    pub fn with_supervision(self, supervision: Supervision) -> WhipUpstream {
        *self.inner.supervision.lock() = supervision;
        self
    }

    /// The same connector, showing its workers on `board` (the gateway's, behind
    /// `GET /live/{stream}/status`) as pipeline `whip`.
    pub fn with_status_board(self, board: StatusBoard) -> WhipUpstream {
        *self.inner.board.lock() = Some(board);
        self
    }

    /// The status of `stream`'s worker while it runs (a subscriber keeps seeing it after
    /// it ends, `ended` set).
    pub fn status(&self, stream: &str) -> Option<UpstreamStatus> {
        self.subscribe(stream).map(|status| status.borrow().clone())
    }

    /// Every change of `stream`'s running worker's status, to its end.
    pub fn subscribe(&self, stream: &str) -> Option<watch::Receiver<UpstreamStatus>> {
        self.inner.streams.lock().get(stream).cloned()
    }
}

impl UpstreamConnector for WhipUpstream {
    fn attach(&self, spec: &UpstreamSpec, job: WorkerJob) {
        let key = job.stream.key().to_string();
        let (status, watcher) = watch::channel(UpstreamStatus::default());
        self.inner.streams.lock().insert(key.clone(), watcher);
        let worker = supervisor::Worker {
            options: self.inner.options.clone(),
            supervision: *self.inner.supervision.lock(),
            http: self.inner.http.clone(),
            spec: spec.clone(),
            job,
            status,
            board: self.inner.board.lock().clone(),
            table: self.inner.streams.clone(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(worker.run());
            }
            Err(_) => {
                tracing::error!(stream = %key, "the upstream worker needs a tokio runtime; the stream gets no output")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_bearer_token() {
        let options = UpstreamOptions {
            bearer_token: Some("s3cret-up".into()),
            ..UpstreamOptions::default()
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cret-up"), "{debug}");
        assert!(debug.contains(r#"bearer_token: Some("***")"#), "{debug}");
    }
}
