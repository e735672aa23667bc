//! One publisher's session task: feeds the publisher's RTP to its [`Ingest`], asks the
//! publisher for keyframes when the ingest wants one, and hands the stream back to the server
//! when the publisher goes.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use livegate_media::registry::OutputSlot;
use livegate_media::ring::RingBuffer;
use livegate_rtc::{CloseReason, SessionEvent, SessionState};
use livegate_wish::ResourceId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::data_channel::DataChannelRelay;
use crate::server::{Inner, PublisherEntry};
use crate::{Ingest, IngestError, IngestStats};

pub(crate) struct PublishTask {
    pub(crate) server: Arc<Inner>,
    pub(crate) id: ResourceId,
    pub(crate) entry: Arc<PublisherEntry>,
    pub(crate) events: mpsc::Receiver<SessionEvent>,
    pub(crate) ingest: Ingest,
    /// The buffer the ingest writes; closed when the publisher goes.
    pub(crate) input: Arc<RingBuffer>,
    /// The stream's output slot: a new generation is a pipeline worker (re)started, which
    /// needs a keyframe to begin with.
    pub(crate) output: watch::Receiver<OutputSlot>,
    /// Moves when the stream's worker needs a keyframe.
    pub(crate) keyframes: watch::Receiver<u64>,
    /// The publisher's data channel to and from its worker.
    pub(crate) data: DataChannelRelay,
    pub(crate) posted_at: Instant,
}

/// Why a publish ended, for the log and `livegate_whip_sessions_ended_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublishEnd {
    Transport(CloseReason),
    /// DELETE, replacement or shutdown.
    Stopped,
    /// Connected, but no media for the configured timeout.
    MediaTimeout,
    /// The stream's input buffer was closed under us.
    InputClosed,
}

impl PublishEnd {
    fn as_str(self) -> &'static str {
        match self {
            PublishEnd::Transport(reason) => reason.as_str(),
            PublishEnd::Stopped => "stopped",
            PublishEnd::MediaTimeout => "media_timeout",
            PublishEnd::InputClosed => "input_closed",
        }
    }
}

/// How often the ingest's counters are added to the Prometheus metrics.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn run(task: PublishTask) {
    let PublishTask {
        server,
        id,
        entry,
        mut events,
        mut ingest,
        input,
        mut output,
        mut keyframes,
        mut data,
        posted_at,
    } = task;
    let handle = &entry.handle;
    let metrics = &server.metrics;
    let mut state = handle.state();
    let mut last_media = Instant::now();
    let mut reported = IngestStats::default();
    let mut keyframe_observed = false;
    let mut metrics_tick = tokio::time::interval(METRICS_INTERVAL);
    let cancelled = entry.cancel.cancelled();
    tokio::pin!(cancelled);
    let mut output_open = true;
    // The generation installed when the session started is not a restart.
    output.borrow_and_update();

    let ended = loop {
        let wake = ingest
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
        let result = tokio::select! {
            biased;
            _ = &mut cancelled => break PublishEnd::Stopped,
            changed = state.changed() => {
                if changed.is_err() {
                    break PublishEnd::Transport(CloseReason::Failed);
                }
                if let SessionState::Closed(reason) = &*state.borrow() {
                    break PublishEnd::Transport(*reason);
                }
                Ok(())
            }
            event = events.recv() => match event {
                Some(SessionEvent::Rtp { codec, packet }) => {
                    last_media = Instant::now();
                    ingest.push_rtp(codec, &packet, StdInstant::now())
                }
                Some(SessionEvent::SenderReport { codec, ntp_time, rtp_time }) => {
                    ingest.on_sender_report(codec, ntp_time, rtp_time);
                    Ok(())
                }
                Some(SessionEvent::DataChannelOpen { .. }) => {
                    data.publisher_opened();
                    Ok(())
                }
                Some(SessionEvent::DataChannelMessage { data: message, .. }) => {
                    data.publisher_sent(message);
                    Ok(())
                }
                Some(_) => Ok(()),
                // The transport dropped its side of the queue: the session is gone.
                None => break match &*state.borrow() {
                    SessionState::Closed(reason) => PublishEnd::Transport(*reason),
                    _ => PublishEnd::Transport(CloseReason::Failed),
                },
            },
            message = data.next_from_worker() => {
                data.deliver_to_publisher(handle, message);
                Ok(())
            }
            _ = tokio::time::sleep_until(wake) => ingest.handle_timeout(StdInstant::now()),
            _ = tokio::time::sleep_until(last_media + server.config.media_timeout) => {
                break PublishEnd::MediaTimeout;
            }
            Ok(()) = keyframes.changed() => {
                // The worker's own consumer (an upstream's decoder) lost its reference.
                ingest.request_keyframe(StdInstant::now());
                Ok(())
            }
            changed = output.changed(), if output_open => {
                if changed.is_err() || output.borrow().closed {
                    output_open = false;
                } else {
                    // A worker (re)started on the live input: without a keyframe it would
                    // wait for the publisher's next one, up to a GOP away.
                    ingest.request_keyframe(StdInstant::now());
                }
                Ok(())
            }
            _ = metrics_tick.tick() => {
                let stats = ingest.stats();
                metrics.add(&stats, &reported);
                reported = stats;
                Ok(())
            }
        };
        if let Err(e) = result {
            match e {
                IngestError::OutputClosed => break PublishEnd::InputClosed,
                other => tracing::warn!(error = %other, "ingest refused media"),
            }
        }
        if ingest.want_keyframe(StdInstant::now()) {
            metrics.keyframe_requests.inc();
            let _ = handle.request_keyframe();
        }
        if !keyframe_observed {
            if let Some(at) = ingest.stats().first_keyframe_at {
                keyframe_observed = true;
                let since_post = at.saturating_duration_since(posted_at.into_std());
                metrics
                    .time_to_first_keyframe
                    .observe(since_post.as_secs_f64());
            }
        }
    };

    // What the reorder buffers still hold goes out before the buffer closes.
    let _ = ingest.finish(StdInstant::now());
    input.close();
    if !matches!(ended, PublishEnd::Transport(_)) {
        handle.close().await;
    }
    let stats = ingest.stats();
    metrics.add(&stats, &reported);
    metrics.publishers_active.dec();
    metrics
        .sessions_ended
        .with_label_values(&[ended.as_str()])
        .inc();
    server.release(&entry.stream, id);
    tracing::info!(
        reason = ended.as_str(),
        video_frames = stats.video.frames,
        audio_frames = stats.audio.frames,
        packets_lost = stats.video.packets_lost + stats.audio.packets_lost,
        keyframe_requests = stats.keyframe_requests,
        lasted_s = posted_at.elapsed().as_secs(),
        "WHIP session ended"
    );
}
