//! One viewer's session task: takes frames from the viewer's feed, gives them the viewer's
//! RTP timestamps and hands them to the peer connection, until the viewer or the stream
//! goes away.

use std::sync::Arc;

use livegate_media::Codec;
use livegate_rtc::{CloseReason, SendError, SessionEvent, SessionState};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::server::{Inner, Seat, SessionEntry};
use crate::server_metrics::ServerMetricsMeter;
use crate::{ViewerClock, ViewerFeed};
use livegate_wish::ResourceId;

pub(crate) struct SessionTask {
    pub(crate) server: Arc<Inner>,
    pub(crate) id: ResourceId,
    pub(crate) entry: Arc<SessionEntry>,
    pub(crate) events: mpsc::Receiver<SessionEvent>,
    pub(crate) send_tracks: Vec<Codec>,
    pub(crate) feed: ViewerFeed,
    pub(crate) posted_at: Instant,
    pub(crate) server_metrics: bool,
    /// Released when the task ends, and with it the viewer's place in the stream's limit.
    pub(crate) seat: Seat,
}

/// Why a session ended, for the log and `livegate_whep_sessions_ended_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    Transport(CloseReason),
    /// DELETE or shutdown.
    Stopped,
    /// The stream's output closed for good.
    StreamEnded,
    /// The peer connection never came up.
    NeverConnected,
}

impl SessionEnd {
    fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Transport(reason) => reason.as_str(),
            SessionEnd::Stopped => "stopped",
            SessionEnd::StreamEnded => "stream_ended",
            SessionEnd::NeverConnected => "never_connected",
        }
    }
}

pub(crate) async fn run(task: SessionTask) {
    let SessionTask {
        server,
        id,
        entry,
        mut events,
        send_tracks,
        mut feed,
        posted_at,
        server_metrics,
        seat,
    } = task;
    let handle = &entry.handle;
    let metrics = &server.metrics;

    // Media written before ICE and DTLS are up is dropped by the transport, and the feed
    // takes its GOP snapshot at its first read: so read only once connected, and the
    // viewer starts at the freshest keyframe.
    let connected = tokio::select! {
        connected = handle.connected() => connected,
        _ = entry.cancel.cancelled() => Err(CloseReason::Local),
    };
    let ended = match connected {
        Err(CloseReason::Local) => SessionEnd::Stopped,
        Err(_) => SessionEnd::NeverConnected,
        Ok(()) => {
            let mut clock = ViewerClock::new(&send_tracks);
            let mut state = handle.state();
            let mut meter = server_metrics.then(ServerMetricsMeter::new);
            let mut data_channel_open = false;
            let mut events_open = true;
            let mut first_frame_sent = false;
            let mut ticker = tokio::time::interval(server.config.server_metrics_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Made once: a fresh `cancelled()` future per frame showed up in profiles.
            let cancelled = entry.cancel.cancelled();
            tokio::pin!(cancelled);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut cancelled => break SessionEnd::Stopped,
                    changed = state.changed() => {
                        if changed.is_err() {
                            break SessionEnd::Transport(CloseReason::Failed);
                        }
                        if let SessionState::Closed(reason) = &*state.borrow() {
                            break SessionEnd::Transport(*reason);
                        }
                    }
                    event = events.recv(), if events_open => match event {
                        Some(SessionEvent::KeyframeRequested { .. }) => {
                            metrics.keyframe_requests.inc();
                            // The viewer lost a reference picture. Only the publisher makes
                            // keyframes: its WHIP session asks at most every 500 ms, and one
                            // keyframe serves every viewer, so a lossy viewer recovers at the
                            // next one instead of a GOP later.
                            feed.output().stream().request_keyframe();
                        }
                        Some(SessionEvent::DataChannelOpen { .. }) => data_channel_open = true,
                        Some(_) => {}
                        None => events_open = false,
                    },
                    frame = feed.recv() => {
                        let Some(frame) = frame else { break SessionEnd::StreamEnded };
                        if let Some(meter) = meter.as_mut() {
                            meter.stream_frame(&frame);
                        }
                        let Some((track, rtp)) = clock.map(&frame, Instant::now()) else {
                            continue;
                        };
                        let packets = rtp.payloads.len();
                        match handle.send_frame(track, rtp) {
                            Ok(()) => {
                                metrics.rtp_packets.inc_by(packets as u64);
                                metrics.rtp_payload_bytes.inc_by(frame.payload_bytes() as u64);
                                if let Some(meter) = meter.as_mut() {
                                    meter.session_frame(&frame);
                                }
                                if !first_frame_sent && (frame.keyframe || frame.codec == Codec::Opus && !send_tracks.contains(&Codec::H264)) {
                                    first_frame_sent = true;
                                    let ttff = posted_at.elapsed();
                                    metrics.time_to_first_frame.observe(ttff.as_secs_f64());
                                    tracing::debug!(ttff_ms = ttff.as_millis() as u64, "first frame sent");
                                }
                            }
                            Err(SendError::Saturated) => metrics.frames_dropped.inc(),
                            Err(SendError::Closed) => break SessionEnd::Transport(CloseReason::Failed),
                        }
                    }
                    _ = ticker.tick(), if data_channel_open && meter.is_some() => {
                        if let Some(meter) = meter.as_mut() {
                            let stats = handle.stats().await;
                            let status = entry.output.status();
                            let text = meter.message(entry.stream.as_str(), &status, &feed, stats.as_ref());
                            let _ = handle.send_text(text);
                        }
                    }
                }
            }
        }
    };

    if matches!(ended, SessionEnd::Stopped | SessionEnd::StreamEnded) {
        // A close_notify tells the player at once instead of after its ICE timeout.
        handle.close().await;
    }
    server.remove(id);
    metrics
        .sessions_ended
        .with_label_values(&[ended.as_str()])
        .inc();
    let stats = feed.stats();
    tracing::info!(
        reason = ended.as_str(),
        frames = stats.frames,
        frames_lost = stats.frames_lost,
        lasted_s = posted_at.elapsed().as_secs(),
        "WHEP session ended"
    );
    drop(seat);
}
