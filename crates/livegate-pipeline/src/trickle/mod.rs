//! The `trickle` pipelines: a stream's input cut into segments and published on a trickle
//! channel, its output read back from another, with go-livepeer's trickle protocol
//! (`livegate_trickle`), so livepeer-compatible workers (ai-runner style) serve our streams.
//!
//! - `trickle:<url>`: a remote trickle server. Input goes to `<url>/{stream}`, output comes
//!   from `<url>/{stream}-out`.
//! - `trickle`: the gateway hosts the channels itself (`/ai/trickle/{stream}` and
//!   `/ai/trickle/{stream}-out` on its HTTP port): a worker pulls the input and pushes its
//!   output there; we use the same channels in-process.
//!
//! Input segments start at an IDR, last at least `LIVE_AI_MIN_SEG_DUR`, and each begins with
//! its own PAT and PMT ([`Segmenter`]), so a worker can start on any of them.
//!
//! # Supervision contract
//!
//! | event | what the supervisor does |
//! |---|---|
//! | start, and every restart | a fresh output [`RingBuffer`] becomes the stream's next output generation; the output channel is read from its next segment (`-1`) |
//! | input chunk | cut into segments and published as it arrives (a segment is streamed while it is cut) |
//! | output chunk | written to the output ring in whole 188-byte packets |
//! | the worker closes the output channel, or reading it fails for good, while the input flows | a crash: restart after a [`Backoff`] delay |
//! | no output for [`Supervision::out_timeout`] while input flows | stuck: the output is re-subscribed as a restart |
//! | a restart beyond the budget | the stream fails (closed, reason logged and on the status board) |
//! | input closes | the input channel is closed (the worker sees the end), output is read until the worker closes its channel or [`TrickleOptions::eof_grace`] passes |
//! | stream closes, or another worker installs the output | both channels are closed and the supervisor ends |
//!
//! A publish error on one segment (a POST refused or cut) loses that segment and the next
//! one goes on; the publisher's retries are the trickle client's business.

mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use livegate_media::registry::{OutputSlot, Stream};
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader, DEFAULT_CAPACITY_BYTES};
use livegate_media::ts::segment::{SegmentEvent, Segmenter, DEFAULT_MIN_SEGMENT_DURATION};
use livegate_trickle::TrickleSubscriber;
use livegate_trickle::{SubscriberConfig, TrickleError, TricklePublisher, TrickleServer};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::exec::{Backoff, BackoffState};
use crate::job::WorkerJob;
use crate::supervise::latency::VideoPtsScanner;
use crate::supervise::metrics::PipelineMetrics;
use crate::supervise::monitor::SharedProbe;
use crate::supervise::oversight::{stream_left, Oversight, RestartReason};
use crate::supervise::status::StatusBoard;
use crate::Supervision;
use transport::{InputChannel, InputSegment, OutputChannel};

const TS_PACKET_BYTES: usize = 188;
/// Where the gateway nests its hosted trickle channels, as go-livepeer does.
pub const HOSTED_PATH: &str = "/ai/trickle";

/// Where a trickle worker's channels are. `Debug` and `Display` mask credentials in the URL.
#[derive(Clone, PartialEq, Eq)]
pub enum TrickleSpec {
    /// Channels on a remote trickle server under this base URL.
    Remote { base_url: String },
    /// Channels hosted by this gateway under [`HOSTED_PATH`].
    Hosted,
}

/// A `trickle:` URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrickleSpecError {
    #[error("trickle: expected an http:// or https:// base URL with a host; got {0:?}")]
    NotHttp(String),
}

impl TrickleSpec {
    /// `None` (plain `trickle`): hosted channels; `Some(url)`: a remote server.
    pub fn parse(url: Option<&str>) -> Result<TrickleSpec, TrickleSpecError> {
        let Some(url) = url else {
            return Ok(TrickleSpec::Hosted);
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(TrickleSpec::Remote {
                base_url: url.trim_end_matches('/').to_owned(),
            }),
            _ => Err(TrickleSpecError::NotHttp(url.to_owned())),
        }
    }
}

impl fmt::Debug for TrickleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrickleSpec::Remote { base_url } => f
                .debug_struct("Remote")
                .field("base_url", &crate::upstream::redact_userinfo(base_url))
                .finish(),
            TrickleSpec::Hosted => f.write_str("Hosted"),
        }
    }
}

impl fmt::Display for TrickleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrickleSpec::Remote { base_url } => {
                write!(f, "trickle:{}", crate::upstream::redact_userinfo(base_url))
            }
            TrickleSpec::Hosted => f.write_str("trickle"),
        }
    }
}

/// The input channel of `stream`.
pub fn input_channel(stream: &str) -> String {
    stream.to_owned()
}

/// The output channel of `stream`.
pub fn output_channel(stream: &str) -> String {
    format!("{stream}-out")
}

/// How a trickle worker runs.
#[derive(Debug, Clone)]
pub struct TrickleOptions {
    /// Shortest input segment (`LIVE_AI_MIN_SEG_DUR`).
    pub min_segment: Duration,
    /// The server hosting the channels of [`TrickleSpec::Hosted`].
    pub server: Option<TrickleServer>,
    pub supervision: Supervision,
    pub backoff: Backoff,
    /// How long output is still read once the input ended.
    pub eof_grace: Duration,
    /// A remote output segment silent for this long is given up (the subscriber moves on).
    pub stall_timeout: Duration,
    pub output_capacity_bytes: usize,
    pub status: StatusBoard,
    pub metrics: Option<PipelineMetrics>,
}

impl Default for TrickleOptions {
    fn default() -> TrickleOptions {
        TrickleOptions {
            min_segment: DEFAULT_MIN_SEGMENT_DURATION,
            server: None,
            supervision: Supervision::default(),
            backoff: Backoff::default(),
            eof_grace: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(5),
            output_capacity_bytes: DEFAULT_CAPACITY_BYTES,
            status: StatusBoard::default(),
            metrics: None,
        }
    }
}

/// A trickle worker that could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrickleAttachError {
    /// Plain `trickle` in a gateway that hosts no trickle server.
    #[error("pipeline trickle: the gateway hosts no trickle channels")]
    NoServer,
    /// The hosted server refused the stream's channels (e.g. too many channels).
    #[error("pipeline trickle: {0}")]
    Channel(#[from] livegate_trickle::Refusal),
    /// The remote URL cannot take the stream's channel names.
    #[error("pipeline trickle: {0}")]
    Client(#[from] TrickleError),
}

/// What a running trickle supervisor reports, for tests and status pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrickleStatus {
    /// Output subscriptions started (the first and every restart).
    pub starts: u64,
    /// Input segments started.
    pub input_segments: u64,
    /// Output segments read.
    pub output_segments: u64,
    /// Restarts because no output came while input flowed.
    pub watchdog_restarts: u64,
    /// Why the worker was given up.
    pub failure: Option<String>,
    /// The supervisor has ended.
    pub finished: bool,
}

/// A running trickle supervisor; dropping it leaves it running.
#[derive(Debug)]
pub struct TrickleWorker {
    status: watch::Receiver<TrickleStatus>,
}

impl TrickleWorker {
    pub fn status(&self) -> watch::Receiver<TrickleStatus> {
        self.status.clone()
    }
}

/// Starts a trickle worker for `job`. Returns at once; ends by itself when the input or the
/// stream closes.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn attach_trickle(
    spec: &TrickleSpec,
    job: WorkerJob,
    options: TrickleOptions,
) -> Result<TrickleWorker, TrickleAttachError> {
    let key = job.stream.key().as_str().to_owned();
    let (input, output) = match spec {
        TrickleSpec::Remote { base_url } => {
            let input_url = format!("{base_url}/{}", input_channel(&key));
            let output_url = format!("{base_url}/{}", output_channel(&key));
            let publisher = TricklePublisher::new(&input_url)?;
            // Checked now so a bad URL fails the attach, not every restart.
            drop(TrickleSubscriber::new(&output_url)?);
            (
                InputChannel::Remote(publisher),
                OutputSource::Remote {
                    url: output_url,
                    stall_timeout: options.stall_timeout,
                },
            )
        }
        TrickleSpec::Hosted => {
            let server = options.server.clone().ok_or(TrickleAttachError::NoServer)?;
            server.create_channel(&input_channel(&key))?;
            server.create_channel(&output_channel(&key))?;
            (
                InputChannel::Hosted(server.local_publisher(&input_channel(&key))),
                OutputSource::Hosted(server),
            )
        }
    };
    let (status_tx, status) = watch::channel(TrickleStatus::default());
    let span = tracing::info_span!("trickle", stream = %key);
    let oversight = span.in_scope(|| {
        Oversight::start(
            "trickle",
            &job.stream,
            &job.input,
            options.supervision,
            &options.status,
            options.metrics.clone(),
        )
    });
    let supervisor = Supervisor {
        key,
        oversight,
        slots: job.stream.subscribe_output(),
        stream: job.stream,
        input: Some(job.input.reader_from_oldest()),
        input_channel: Some(input),
        output_source: output,
        options,
        status: status_tx,
        output: None,
    };
    tokio::spawn(supervisor.run().instrument(span));
    Ok(TrickleWorker { status })
}

/// How output subscriptions are made, once per (re)start.
enum OutputSource {
    Remote {
        url: String,
        stall_timeout: Duration,
    },
    Hosted(TrickleServer),
}

struct Supervisor {
    key: String,
    oversight: Oversight,
    stream: Arc<Stream>,
    slots: watch::Receiver<OutputSlot>,
    /// Taken by the input pump when it starts.
    input: Option<RingReader>,
    /// Taken by the input pump when it starts.
    input_channel: Option<InputChannel>,
    output_source: OutputSource,
    options: TrickleOptions,
    status: watch::Sender<TrickleStatus>,
    output: Option<Arc<RingBuffer>>,
}

/// Why one output subscription stopped being served.
enum Ended {
    /// The worker closed its output channel, or reading it failed for good.
    Lost(String),
    Stuck,
    /// The input ended and the output was drained (or its grace passed).
    InputClosed,
    StreamLeft,
}

impl Supervisor {
    async fn run(mut self) {
        let input_channel = self.input_channel.take().expect("taken once");
        let mut input_pump = Box::pin(pump_input(
            self.input.take().expect("taken once"),
            input_channel,
            Segmenter::new(self.options.min_segment),
            self.oversight.probe.clone(),
            self.status.clone(),
        ));
        let mut input_done = false;
        let mut backoff = BackoffState::new(self.options.backoff);
        loop {
            let started = Instant::now();
            let ended = self.serve_output(&mut input_pump, &mut input_done).await;
            let reason = match ended {
                Ended::Lost(why) => {
                    tracing::warn!(reason = %why, "the worker's output was lost");
                    RestartReason::Crash
                }
                Ended::Stuck => RestartReason::Stuck,
                Ended::InputClosed | Ended::StreamLeft => break,
            };
            if let Err(failure) = self.oversight.restart(reason, &self.stream) {
                self.status.send_modify(|s| s.failure = Some(failure));
                break;
            }
            self.status.send_modify(|s| {
                s.watchdog_restarts += u64::from(reason == RestartReason::Stuck);
            });
            let delay = backoff.delay_after(started.elapsed());
            tracing::warn!(
                delay_ms = delay.as_millis() as u64,
                reason = reason.as_str(),
                "restarting the output"
            );
            let left = tokio::select! {
                () = tokio::time::sleep(delay) => false,
                () = stream_left(&mut self.slots, self.output.as_ref()) => true,
            };
            if left {
                break;
            }
        }
        if !input_done {
            // Dropping the pump drops its channel; close it so the worker sees the end.
            drop(input_pump);
        }
        self.close_channels().await;
        if let Some(output) = &self.output {
            output.close();
        }
        self.oversight.on_end();
        self.status.send_modify(|s| s.finished = true);
        tracing::info!("trickle worker stopped");
    }

    /// One output generation: subscribe, copy output into a fresh ring, until something ends
    /// it. The input pump is polled here too, so it runs for the worker's whole life.
    async fn serve_output(
        &mut self,
        input_pump: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
        input_done: &mut bool,
    ) -> Ended {
        let channel = match &self.output_source {
            OutputSource::Remote { url, stall_timeout } => {
                let config = SubscriberConfig {
                    stall_timeout: *stall_timeout,
                    ..SubscriberConfig::default()
                };
                match TrickleSubscriber::with_config(url, config) {
                    Ok(subscriber) => OutputChannel::Remote(subscriber),
                    Err(e) => return Ended::Lost(e.to_string()),
                }
            }
            OutputSource::Hosted(server) => {
                // A worker that closed its channel gets a fresh one to publish into.
                if let Err(e) = server.create_channel(&output_channel(&self.key)) {
                    return Ended::Lost(e.to_string());
                }
                OutputChannel::Hosted(server.local_subscriber(&output_channel(&self.key)))
            }
        };
        // Counted once the channel is there, so whoever sees the start finds it.
        let output = RingBuffer::new(self.options.output_capacity_bytes);
        self.stream.set_output(output.clone());
        self.output = Some(output.clone());
        self.status.send_modify(|s| s.starts += 1);
        self.oversight.on_start(None);
        let copy = pump_output(
            channel,
            output.clone(),
            self.oversight.probe.clone(),
            self.status.clone(),
        );
        tokio::pin!(copy);
        self.oversight.stuck.borrow_and_update();
        let eof_grace = self.options.eof_grace;
        loop {
            tokio::select! {
                biased;
                () = stream_left(&mut self.slots, self.output.as_ref()) => return Ended::StreamLeft,
                Ok(()) = self.oversight.stuck.changed(), if !*input_done => return Ended::Stuck,
                () = input_pump.as_mut(), if !*input_done => {
                    // The input ended and its channel is closed: the worker flushes what it
                    // has, then closes its output, or the grace ends it.
                    *input_done = true;
                }
                lost = &mut copy => {
                    if *input_done {
                        return Ended::InputClosed;
                    }
                    return Ended::Lost(lost);
                }
                () = tokio::time::sleep(eof_grace), if *input_done => {
                    tracing::info!("no end of output within the grace after the input ended");
                    return Ended::InputClosed;
                }
            }
        }
    }

    async fn close_channels(&self) {
        match &self.output_source {
            OutputSource::Hosted(server) => {
                // Either may be closed already (by the pump or by the worker).
                let _ = server.close_channel(&input_channel(&self.key));
                let _ = server.close_channel(&output_channel(&self.key));
            }
            OutputSource::Remote { .. } => {
                // The input channel is the one we publish; the pump's close DELETEd it, or
                // dropping the pump left it to the remote server's idle sweep.
            }
        }
    }
}

/// Cuts the input into segments and publishes them until the input closes, then closes the
/// input channel.
async fn pump_input(
    mut input: RingReader,
    mut channel: InputChannel,
    mut segmenter: Segmenter,
    probe: SharedProbe,
    status: watch::Sender<TrickleStatus>,
) {
    let mut events = Vec::new();
    let mut scanner = VideoPtsScanner::default();
    let mut segment: Option<InputSegment> = None;
    loop {
        let chunk = match input.read().await {
            ReadOutcome::Chunk(chunk) => chunk,
            ReadOutcome::Lagged { skipped_bytes } => {
                tracing::warn!(
                    skipped_bytes,
                    "trickle input publishing fell behind; input skipped"
                );
                continue;
            }
            ReadOutcome::Closed => break,
        };
        let now = Instant::now();
        scanner.scan(&chunk, |pts| probe.lock().on_input(pts, now));
        segmenter.push(&chunk, &mut events);
        for event in events.drain(..) {
            match event {
                SegmentEvent::Start(start) => {
                    if let Some(done) = segment.take() {
                        finish(done).await;
                    }
                    match channel.next_segment() {
                        Ok(next) => {
                            status.send_modify(|s| s.input_segments += 1);
                            tracing::debug!(
                                index = start.index,
                                pts = start.pts_90k,
                                "input segment"
                            );
                            segment = Some(next);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot open an input segment"),
                    }
                }
                SegmentEvent::Bytes(bytes) => {
                    if let Some(writer) = segment.as_mut() {
                        if let Err(e) = writer.write(bytes).await {
                            tracing::warn!(error = %e, "input segment lost");
                            segment = None;
                        }
                    }
                }
            }
        }
    }
    segmenter.finish(&mut events);
    for event in events.drain(..) {
        if let (SegmentEvent::Bytes(bytes), Some(writer)) = (event, segment.as_mut()) {
            let _ = writer.write(bytes).await;
        }
    }
    if let Some(done) = segment.take() {
        finish(done).await;
    }
    if let Err(e) = channel.close().await {
        tracing::info!(error = %e, "closing the input channel");
    }
}

async fn finish(segment: InputSegment) {
    if let Err(e) = segment.finish().await {
        tracing::warn!(error = %e, "input segment did not finish");
    }
}

/// Copies output segments into `output` in whole TS packets. Returns why it stopped: the
/// worker closed its channel, reading failed for good, or the ring was closed.
async fn pump_output(
    mut channel: OutputChannel,
    output: Arc<RingBuffer>,
    probe: SharedProbe,
    status: watch::Sender<TrickleStatus>,
) -> String {
    let mut scanner = VideoPtsScanner::default();
    let mut carry = BytesMut::new();
    loop {
        let mut segment = match channel.next_segment().await {
            Ok(Some(segment)) => segment,
            Ok(None) => return "the worker closed its output channel".to_owned(),
            Err(e) => return format!("reading the output channel failed: {e}"),
        };
        status.send_modify(|s| s.output_segments += 1);
        while let Some(chunk) = segment.next_chunk().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // A segment cut short (stalled or reset) loses its rest; the next
                    // segment starts clean at its own PAT/PMT.
                    tracing::warn!(error = %e, "output segment cut short");
                    carry.clear();
                    break;
                }
            };
            if let Some(whole) = whole_packets(&mut carry, chunk) {
                let now = Instant::now();
                scanner.scan(&whole, |pts| {
                    probe.lock().on_output(pts, now);
                });
                if output.write(whole).is_err() {
                    return "the output ring closed".to_owned();
                }
            }
        }
    }
}

/// Appends `chunk` to `carry` and returns the whole packets, leaving a partial one behind.
fn whole_packets(carry: &mut BytesMut, chunk: Bytes) -> Option<Bytes> {
    if carry.is_empty() && chunk.len().is_multiple_of(TS_PACKET_BYTES) {
        // The common case: the worker writes whole packets; share its allocation.
        return (!chunk.is_empty()).then_some(chunk);
    }
    carry.extend_from_slice(&chunk);
    let whole = carry.len() - carry.len() % TS_PACKET_BYTES;
    (whole > 0).then(|| carry.split_to(whole).freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        assert_eq!(TrickleSpec::parse(None), Ok(TrickleSpec::Hosted));
        let remote = TrickleSpec::parse(Some("http://127.0.0.1:9/ai/trickle/")).unwrap();
        assert_eq!(
            remote,
            TrickleSpec::Remote {
                base_url: "http://127.0.0.1:9/ai/trickle".into()
            }
        );
        assert_eq!(remote.to_string(), "trickle:http://127.0.0.1:9/ai/trickle");
        assert!(TrickleSpec::parse(Some("ftp://x")).is_err());
        assert!(TrickleSpec::parse(Some("http://")).is_err());
    }

    #[test]
    fn output_is_cut_into_whole_packets_whatever_the_chunking() {
        let mut carry = BytesMut::new();
        let packet = Bytes::from(vec![0x47; TS_PACKET_BYTES * 2]);
        assert_eq!(whole_packets(&mut carry, packet.slice(..100)), None);
        let got = whole_packets(&mut carry, packet.slice(100..300)).unwrap();
        assert_eq!(got.len(), TS_PACKET_BYTES);
        assert_eq!(carry.len(), 300 - TS_PACKET_BYTES);
        let whole = whole_packets(&mut BytesMut::new(), packet.clone()).unwrap();
        assert_eq!(
            whole.as_ptr(),
            packet.as_ptr(),
            "aligned chunks are shared, not copied"
        );
    }
}
