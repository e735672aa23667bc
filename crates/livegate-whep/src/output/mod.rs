//! A stream's output as its viewers see it: demuxed once, packetized once, fanned out.
//!
//! One [`StreamOutput`] per stream, however many viewers: its reader task follows the
//! stream's current output [`RingBuffer`](livegate_media::ring::RingBuffer) from one worker
//! generation to the next, demuxes it, puts the cached SPS/PPS in front of IDRs that lack
//! them, packetizes every access unit into a [`MediaFrame`], keeps the GOP cache and hands
//! the frames to every [`ViewerFeed`]. [`StreamOutputs`] finds the output of a stream so a
//! second viewer joins the first one's reader.
//!
//! Not here: RTP timestamps (per viewer, [`crate::ViewerClock`]), WebRTC sessions and HTTP.
//!
//! # Life cycle
//!
//! The reader runs while the output has viewers: it starts with the first [`ViewerFeed`],
//! stops when the last one is dropped, and starts again with the next. On start it reads
//! what the output buffer still holds, without sending it to anyone, to fill the GOP cache
//! and learn the tracks; so even the first viewer starts at the last IDR instead of waiting
//! for the next. It ends for good when the stream closes.

mod events;
mod feed;
mod reader;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use livegate_media::h264::SpsInfo;
use livegate_media::registry::Stream;
use livegate_media::{Codec, StreamKey, Track};
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use events::{OutputEvent, OutputEvents};
pub use feed::{FeedStats, ViewerFeed};

use crate::frame::SequencedFrame;
use crate::gop::{GopCache, GopLimits};
use crate::packetize::{
    PacketizeError, DEFAULT_MAX_PAYLOAD_BYTES, MAX_MAX_PAYLOAD_BYTES, MIN_MAX_PAYLOAD_BYTES,
};

#[cfg(doc)]
use crate::frame::MediaFrame;

/// How stream outputs packetize, cache and fan out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputConfig {
    /// Largest RTP payload ([`DEFAULT_MAX_PAYLOAD_BYTES`] by default).
    pub max_payload_bytes: usize,
    /// Bounds of each stream's GOP cache.
    pub gop: GopLimits,
    /// Frames a viewer may fall behind the reader before it loses frames and has to resume
    /// at the next keyframe: 512 by default, about 6 s of 30 fps video with 20 ms audio.
    pub viewer_queue_frames: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            gop: GopLimits::default(),
            viewer_queue_frames: 512,
        }
    }
}

/// Why an [`OutputConfig`] is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Packetize(#[from] PacketizeError),
    /// A viewer queue must hold at least one frame.
    #[error("viewer queue of zero frames")]
    EmptyViewerQueue,
}

impl OutputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_MAX_PAYLOAD_BYTES..=MAX_MAX_PAYLOAD_BYTES).contains(&self.max_payload_bytes) {
            return Err(PacketizeError::MaxPayloadOutOfRange(self.max_payload_bytes).into());
        }
        if self.viewer_queue_frames == 0 {
            return Err(ConfigError::EmptyViewerQueue);
        }
        Ok(())
    }
}

/// What a stream's output carries, for the SDP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTracks {
    /// The tracks of the last PMT read, in PMT order.
    pub tracks: Vec<Track>,
    /// Picture size, profile and level of the H.264 track, from the last SPS seen; its
    /// [`SpsInfo::fmtp`] is the `a=fmtp` line to answer with.
    pub h264: Option<SpsInfo>,
}

impl OutputTracks {
    /// The codecs carried, in PMT order, once each.
    pub fn codecs(&self) -> Vec<Codec> {
        let mut codecs = Vec::new();
        for track in &self.tracks {
            if !codecs.contains(&track.codec) {
                codecs.push(track.codec);
            }
        }
        codecs
    }

    /// The PMT was read and, if it lists H.264, its SPS was seen.
    fn is_complete(&self) -> bool {
        self.h264.is_some() || self.tracks.iter().all(|t| t.codec != Codec::H264)
    }
}

/// Whether the output is producing frames (the `active` / `inactive` events of the WHEP
/// server-sent events extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// No frames: no output buffer yet, or the last one closed (the worker restarted or the
    /// publisher left) and no new generation has produced a frame yet.
    Inactive,
    /// The current generation has produced frames.
    Active,
    /// The stream closed for good.
    Closed,
}

/// The state of one stream output, as [`StreamOutput::watch_status`] publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStatus {
    pub activity: Activity,
    /// Generation of the output buffer read last (0: none yet).
    pub generation: u64,
    /// Tracks once a PMT was read; kept across generations until the next PMT replaces them.
    pub tracks: Option<OutputTracks>,
    /// Live [`ViewerFeed`]s.
    pub viewers: usize,
    /// Reader tasks still running: 1 while there are viewers, 0 once the last left and the
    /// task has finished (briefly 2 when a viewer arrives as the previous task winds down).
    pub reader_tasks: usize,
}

/// Why [`StreamOutput::wait_for_tracks`] returned without tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TracksError {
    /// No PMT before the deadline.
    #[error("no tracks before the deadline")]
    TimedOut,
    /// The stream closed for good.
    #[error("the stream closed")]
    StreamClosed,
}

/// Counters of all outputs of one [`StreamOutputs`], for metrics; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Frames produced (packetized once, whatever the number of viewers).
    pub frames: u64,
    /// RTP payload bytes of those frames.
    pub payload_bytes: u64,
    /// Access unit bytes of those frames.
    pub access_unit_bytes: u64,
    /// Times a viewer fell so far behind that it lost frames.
    pub viewer_lags: u64,
    /// Frames viewers lost that way.
    pub frames_lost_to_lag: u64,
    /// Video frames viewers skipped while waiting for a keyframe (after a lag, or joining
    /// without a cached GOP).
    pub keyframe_skips: u64,
    /// Video frames the reader did not send because their references were not sent: those
    /// before the first IDR of a buffer (or of what it still held when the reader started),
    /// or after a gap in the output buffer.
    pub frames_before_keyframe: u64,
    /// Times a reader fell behind its output buffer and lost bytes.
    pub input_gaps: u64,
    /// GOPs dropped from the cache for outgrowing [`GopLimits`].
    pub gop_overflows: u64,
    /// H.264 access units with B-frame reordering (PTS ≠ DTS): sent, but players stutter.
    pub b_frame_access_units: u64,
    /// NAL units not sent (delimiters, filler).
    pub dropped_nal_units: u64,
    /// Reader task starts.
    pub reader_starts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    payload_bytes: AtomicU64,
    access_unit_bytes: AtomicU64,
    viewer_lags: AtomicU64,
    frames_lost_to_lag: AtomicU64,
    keyframe_skips: AtomicU64,
    frames_before_keyframe: AtomicU64,
    input_gaps: AtomicU64,
    gop_overflows: AtomicU64,
    b_frame_access_units: AtomicU64,
    dropped_nal_units: AtomicU64,
    reader_starts: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> OutputStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutputStats {
            frames: get(&self.frames),
            payload_bytes: get(&self.payload_bytes),
            access_unit_bytes: get(&self.access_unit_bytes),
            viewer_lags: get(&self.viewer_lags),
            frames_lost_to_lag: get(&self.frames_lost_to_lag),
            keyframe_skips: get(&self.keyframe_skips),
            frames_before_keyframe: get(&self.frames_before_keyframe),
            input_gaps: get(&self.input_gaps),
            gop_overflows: get(&self.gop_overflows),
            b_frame_access_units: get(&self.b_frame_access_units),
            dropped_nal_units: get(&self.dropped_nal_units),
            reader_starts: get(&self.reader_starts),
        }
    }
}

/// What the reader task, the feeds and the handle share.
struct Shared {
    stream: Arc<Stream>,
    config: OutputConfig,
    state: Mutex<State>,
    status: watch::Sender<OutputStatus>,
    /// Woken when the reader has filled the cache after starting, or the stream closed.
    primed: Notify,
    counters: Arc<Counters>,
}

/// Everything the reader and the feeds must see change together.
struct State {
    gop: GopCache,
    /// `None` once the stream closed for good; dropping it (and the reader's clone) ends
    /// every feed after what it has queued.
    sender: Option<broadcast::Sender<SequencedFrame>>,
    /// Sequence number of the next frame.
    next_seq: u64,
    viewers: usize,
    /// The reader task that may publish, if one should be running.
    run: Option<Run>,
    next_run_id: u64,
    /// The current run has read what the buffer held when it started; feeds may join.
    primed: bool,
    closed: bool,
}

struct Run {
    id: u64,
    cancel: CancellationToken,
}

/// The output of one stream, shared by all its viewers.
///
/// # Concurrency contract
///
/// - **One reader task** per output, started by the first [`ViewerFeed`] and cancelled
///   when the last one is dropped (or this handle is). It alone demuxes, packetizes and
///   publishes; it never waits for a viewer.
/// - **Viewers may lag, never block.** Frames go to viewers through a bounded
///   `tokio::sync::broadcast` channel of [`OutputConfig::viewer_queue_frames`]: sending
///   never waits, a viewer that falls further behind loses its oldest frames, is told, and
///   resumes at the next keyframe ([`ViewerFeed::recv`]). Only it is affected.
/// - **Joining is gapless.** A feed's first frames are the GOP cache, then live frames.
///   Every frame gets a sequence number and enters the cache under the state lock *before*
///   it is sent; a feed subscribes to the channel and copies the cache under the same lock,
///   and then drops live frames numbered below the cache's horizon. So nothing between the
///   cache and the live frames is missed or repeated, and the reader never sends while
///   holding the lock (waking a hundred viewers is not "a few instructions").
/// - The state lock (`parking_lot`) is held for a cache push, or for one feed's
///   subscription (a copy of the cache's frame handles); never across an `.await`.
/// - **Closing:** when the stream closes, the reader publishes what the buffer still held,
///   then every feed ends after its queued frames, and the status says
///   [`Activity::Closed`].
pub struct StreamOutput {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOutput")
            .field("stream", self.shared.stream.key())
            .field("status", &*self.shared.status.borrow())
            .finish()
    }
}

impl StreamOutput {
    fn new(stream: Arc<Stream>, config: OutputConfig, counters: Arc<Counters>) -> Arc<Self> {
        let (sender, _) = broadcast::channel(config.viewer_queue_frames);
        Arc::new(StreamOutput {
            shared: Arc::new(Shared {
                stream,
                config,
                state: Mutex::new(State {
                    gop: GopCache::new(config.gop),
                    sender: Some(sender),
                    next_seq: 0,
                    viewers: 0,
                    run: None,
                    next_run_id: 0,
                    primed: false,
                    closed: false,
                }),
                status: watch::Sender::new(OutputStatus {
                    activity: Activity::Inactive,
                    generation: 0,
                    tracks: None,
                    viewers: 0,
                    reader_tasks: 0,
                }),
                primed: Notify::new(),
                counters,
            }),
        })
    }

    /// The stream this is the output of.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.shared.stream
    }

    /// A new viewer: counts it, starts the reader if it is not running, and returns its
    /// feed. The feed takes its snapshot of the GOP cache at its first
    /// [`ViewerFeed::recv`], so frames do not pile up while its peer connection is set up.
    ///
    /// Must be called within a Tokio runtime (it may spawn the reader task).
    pub fn subscribe(self: &Arc<Self>) -> ViewerFeed {
        let start = {
            let mut state = self.shared.state.lock();
            state.viewers += 1;
            let viewers = state.viewers;
            self.shared.status.send_modify(|s| s.viewers = viewers);
            if state.run.is_none() && !state.closed {
                let run = Run {
                    id: state.next_run_id,
                    cancel: CancellationToken::new(),
                };
                state.next_run_id += 1;
                state.primed = false;
                state.gop.clear();
                let start = (run.id, run.cancel.clone());
                state.run = Some(run);
                Some(start)
            } else {
                None
            }
        };
        if let Some((run_id, cancel)) = start {
            Counters::add(&self.shared.counters.reader_starts, 1);
            self.shared.status.send_modify(|s| s.reader_tasks += 1);
            tokio::spawn(reader::run(self.shared.clone(), run_id, cancel));
        }
        ViewerFeed::new(self.clone())
    }

    /// The tracks, once a PMT has been read.
    pub fn tracks(&self) -> Option<OutputTracks> {
        self.shared.status.borrow().tracks.clone()
    }

    /// Waits until the PMT has been read and, if it lists H.264, the SPS has been seen (the
    /// SDP answer needs its profile and level), or until `deadline`. A PMT read without an
    /// SPS by the deadline still returns its tracks, with [`OutputTracks::h264`] `None`.
    ///
    /// Only a running reader reads the PMT: hold a [`ViewerFeed`] while waiting.
    /// Cancel-safe.
    pub async fn wait_for_tracks(&self, deadline: Instant) -> Result<OutputTracks, TracksError> {
        let mut status = self.shared.status.subscribe();
        let ready = |s: &OutputStatus| {
            s.activity == Activity::Closed || s.tracks.as_ref().is_some_and(|t| t.is_complete())
        };
        // A timeout is judged by what is there at the deadline, below.
        let _ = tokio::time::timeout_at(deadline, status.wait_for(ready)).await;
        let status = status.borrow();
        match (&status.tracks, status.activity) {
            (_, Activity::Closed) => Err(TracksError::StreamClosed),
            (Some(tracks), _) => Ok(tracks.clone()),
            (None, _) => Err(TracksError::TimedOut),
        }
    }

    /// The current status.
    pub fn status(&self) -> OutputStatus {
        self.shared.status.borrow().clone()
    }

    /// The status now and every later change (activity, generation, tracks, viewers).
    pub fn watch_status(&self) -> watch::Receiver<OutputStatus> {
        self.shared.status.subscribe()
    }

    /// Activity and viewer-count changes as discrete events, for server-sent events.
    pub fn events(&self) -> OutputEvents {
        OutputEvents::new(self.shared.status.subscribe())
    }

    /// Called by a dropped feed.
    fn viewer_left(&self) {
        let mut state = self.shared.state.lock();
        state.viewers -= 1;
        let viewers = state.viewers;
        self.shared.status.send_modify(|s| s.viewers = viewers);
        if viewers == 0 {
            if let Some(run) = state.run.take() {
                run.cancel.cancel();
            }
            // The next reader refills it from the buffer; meanwhile it is only memory.
            state.gop.clear();
        }
    }
}

impl Drop for StreamOutput {
    fn drop(&mut self) {
        if let Some(run) = self.shared.state.lock().run.take() {
            run.cancel.cancel();
        }
    }
}

/// The outputs of all streams that have viewers, by stream.
///
/// Cheap to clone; clones share the outputs. It holds outputs weakly: an output lives as
/// long as its feeds (or another handle) do, so a stream nobody watches costs nothing here.
#[derive(Clone)]
pub struct StreamOutputs {
    inner: Arc<OutputsInner>,
}

struct OutputsInner {
    config: OutputConfig,
    outputs: Mutex<HashMap<StreamKey, Weak<StreamOutput>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for StreamOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOutputs")
            .field("config", &self.inner.config)
            .field("outputs", &self.len())
            .finish()
    }
}

impl StreamOutputs {
    /// No outputs yet; each will follow `config`.
    pub fn new(config: OutputConfig) -> Result<StreamOutputs, ConfigError> {
        config.validate()?;
        Ok(StreamOutputs {
            inner: Arc::new(OutputsInner {
                config,
                outputs: Mutex::new(HashMap::new()),
                counters: Arc::default(),
            }),
        })
    }

    /// A new viewer of `stream`: joins the stream's output if it has one (the same reader,
    /// cache and frames), or starts one. A stream replaced under the same key (a publisher
    /// that reconnected) gets a new output.
    ///
    /// Must be called within a Tokio runtime.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use livegate_media::{registry::StreamRegistry, ring::RingBuffer, StreamKey};
    /// # use livegate_whep::{OutputConfig, StreamOutputs, TracksError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let registry = StreamRegistry::new();
    /// # let stream = registry.create(StreamKey::parse("cam").unwrap()).unwrap();
    /// # stream.set_output(RingBuffer::new(1 << 20));
    /// let outputs = StreamOutputs::new(OutputConfig::default()).unwrap();
    /// let mut feed = outputs.get_or_start(&stream);
    /// let deadline = tokio::time::Instant::now() + Duration::from_millis(10);
    /// // Nothing was written to the output buffer, so no PMT comes.
    /// let tracks = feed.output().wait_for_tracks(deadline).await;
    /// assert_eq!(tracks, Err(TracksError::TimedOut));
    /// stream.close();
    /// assert!(feed.recv().await.is_none(), "the feed ends with the stream");
    /// # }
    /// ```
    pub fn get_or_start(&self, stream: &Arc<Stream>) -> ViewerFeed {
        let output = {
            let mut outputs = self.inner.outputs.lock();
            match outputs.get(stream.key()).and_then(Weak::upgrade) {
                Some(output) if Arc::ptr_eq(output.stream(), stream) => output,
                _ => {
                    outputs.retain(|_, output| output.strong_count() > 0);
                    let output = StreamOutput::new(
                        stream.clone(),
                        self.inner.config,
                        self.inner.counters.clone(),
                    );
                    outputs.insert(stream.key().clone(), Arc::downgrade(&output));
                    output
                }
            }
        };
        output.subscribe()
    }

    /// The output of the stream `key`, if it has one.
    pub fn get(&self, key: &StreamKey) -> Option<Arc<StreamOutput>> {
        self.inner.outputs.lock().get(key).and_then(Weak::upgrade)
    }

    /// Number of outputs alive.
    pub fn len(&self) -> usize {
        let outputs = self.inner.outputs.lock();
        outputs.values().filter(|o| o.strong_count() > 0).count()
    }

    /// Whether no output is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters summed over every output there has been.
    pub fn stats(&self) -> OutputStats {
        self.inner.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_tasks_and_threads() {
        fn shared<T: Send + Sync>() {}
        fn owned<T: Send>() {}
        shared::<StreamOutput>();
        shared::<StreamOutputs>();
        owned::<ViewerFeed>();
        owned::<OutputEvents>();
    }

    #[test]
    fn unusable_configurations_are_refused() {
        let config = |max_payload_bytes, viewer_queue_frames| OutputConfig {
            max_payload_bytes,
            viewer_queue_frames,
            ..OutputConfig::default()
        };
        assert!(StreamOutputs::new(config(1_200, 1)).is_ok());
        assert_eq!(
            StreamOutputs::new(config(2, 512)).unwrap_err(),
            ConfigError::Packetize(PacketizeError::MaxPayloadOutOfRange(2))
        );
        assert_eq!(
            StreamOutputs::new(config(1_200, 0)).unwrap_err(),
            ConfigError::EmptyViewerQueue
        );
    }
}
