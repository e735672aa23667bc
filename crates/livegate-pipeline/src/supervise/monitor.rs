//! A worker's monitor: samples the stream's input and output buffers a few times a second,
//! keeps the worker's [`StatusEntry`] and the stream's pipeline latency up to date, and
//! raises the alarm when the worker writes nothing while its input flows
//! (`LIVE_AI_OUT_TIMEOUT`).
//!
//! It only watches and reports: restarting a stuck worker is its supervisor's decision, made
//! when [`MonitorHandle::stuck`] moves. It reads buffer counters, never media, so it costs
//! the same whatever the bitrate.
//!
//! A stuck worker is one whose current output has not grown for the timeout, counted from
//! the later of its last output and the first input after it: a publisher that paused is not
//! a stuck worker, and neither is a worker whose output generation just began.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use livegate_media::registry::{PipelineLatency, Stream};
use livegate_media::ring::RingBuffer;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::latency::{LatencyProbe, LatencySummary, TimestampMode};
use super::status::{FlowStatus, StatusEntry, WorkerState};

/// How often the buffers are sampled: the watchdog's resolution.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Rates are measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A worker's latency probe, shared by its input and output paths and its monitor.
pub type SharedProbe = Arc<Mutex<LatencyProbe>>;

/// What the supervisor keeps of its monitor.
#[derive(Debug)]
pub struct MonitorHandle {
    /// Bumped each time the worker is found stuck.
    pub stuck: watch::Receiver<u64>,
}

/// Starts monitoring `input` and the stream's current output for the worker that owns
/// `entry`, until the stream or `input` closes.
pub fn spawn_monitor(
    stream: Arc<Stream>,
    input: Arc<RingBuffer>,
    entry: StatusEntry,
    probe: Option<SharedProbe>,
    out_timeout: Option<Duration>,
) -> MonitorHandle {
    let (stuck_tx, stuck) = watch::channel(0);
    let monitor = Monitor {
        stream,
        input,
        entry,
        probe,
        out_timeout,
        stuck: stuck_tx,
    };
    tokio::spawn(monitor.run());
    MonitorHandle { stuck }
}

struct Monitor {
    stream: Arc<Stream>,
    input: Arc<RingBuffer>,
    entry: StatusEntry,
    probe: Option<SharedProbe>,
    out_timeout: Option<Duration>,
    stuck: watch::Sender<u64>,
}

/// One sample of the two buffers' byte counters.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    input_bytes: u64,
    output_bytes: u64,
}

impl Monitor {
    async fn run(self) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut output: Option<Arc<RingBuffer>> = None;
        let mut samples: VecDeque<Sample> = VecDeque::new();
        let mut last_input: Option<(u64, Instant)> = None;
        let mut last_output: Option<(u64, Instant)> = None;
        // The stuck clock: since when the worker has owed output.
        let mut owed_since: Option<Instant> = None;
        let mut slots = self.stream.subscribe_output();
        while !self.input.is_closed() {
            tokio::select! {
                _ = tick.tick() => {}
                // The stream's end is final: leave the board at once, not a tick later.
                _ = slots.wait_for(|slot| slot.closed) => break,
            }
            let now = Instant::now();
            let current = self.stream.output();
            let switched = match (&output, &current) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            };
            if switched {
                // A new generation starts its own clock and its own rate window.
                output = current;
                samples.clear();
                last_output = None;
                owed_since = None;
            }
            let input_bytes = self.input.stats().bytes_written;
            let output_bytes = output.as_ref().map_or(0, |o| o.stats().bytes_written);
            let input_grew = last_input.is_none_or(|(bytes, _)| bytes != input_bytes);
            let output_grew = last_output.is_none_or(|(bytes, _)| bytes != output_bytes);
            if input_grew && input_bytes > 0 {
                last_input = Some((input_bytes, now));
            }
            if output_grew && output_bytes > 0 {
                last_output = Some((output_bytes, now));
                owed_since = None;
            } else if input_grew && owed_since.is_none() {
                owed_since = Some(now);
            }
            if let (Some(timeout), Some(since)) = (self.out_timeout, owed_since) {
                if now.saturating_duration_since(since) >= timeout {
                    tracing::warn!(
                        stream = %self.stream.key(),
                        waited_ms = timeout.as_millis() as u64,
                        "the worker wrote no output while its input flowed"
                    );
                    self.stuck.send_modify(|n| *n += 1);
                    owed_since = None;
                }
            }

            samples.push_back(Sample {
                at: now,
                input_bytes,
                output_bytes,
            });
            while samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > RATE_WINDOW)
            {
                samples.pop_front();
            }
            let passthrough = output.as_ref().is_some_and(|o| Arc::ptr_eq(o, &self.input));
            self.report(
                now,
                &samples,
                last_input,
                last_output,
                output.is_some(),
                passthrough,
            );
        }
        self.entry.update(|s| {
            if s.state != WorkerState::Failed {
                s.state = WorkerState::Stopped;
            }
        });
        self.stream.set_pipeline_latency(None);
    }

    fn report(
        &self,
        now: Instant,
        samples: &VecDeque<Sample>,
        last_input: Option<(u64, Instant)>,
        last_output: Option<(u64, Instant)>,
        has_output: bool,
        passthrough: bool,
    ) {
        let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
            return;
        };
        let span = last.at.saturating_duration_since(first.at).as_secs_f64();
        let rate = |from: u64, to: u64| {
            if span > 0.0 {
                ((to.saturating_sub(from)) as f64 * 8.0 / span) as u64
            } else {
                0
            }
        };
        let ago = |at: Option<(u64, Instant)>| {
            at.map(|(_, at)| now.saturating_duration_since(at).as_millis() as u64)
        };
        let (timestamps, latency, pts_in, pts_out) = if passthrough {
            // The output is the input itself: no time is spent in between.
            let zero = LatencySummary {
                p50_ms: 0.0,
                p99_ms: 0.0,
                frames: 0,
            };
            (TimestampMode::Kept, Some(zero), None, None)
        } else if let Some(probe) = &self.probe {
            let probe = probe.lock();
            (
                probe.timestamps(),
                probe.summary(),
                probe.last_input_pts(),
                probe.last_output_pts(),
            )
        } else {
            (TimestampMode::Unknown, None, None, None)
        };
        self.stream
            .set_pipeline_latency(latency.map(|l| PipelineLatency {
                p50: Duration::from_secs_f64(l.p50_ms / 1e3),
                p99: Duration::from_secs_f64(l.p99_ms / 1e3),
                frames: l.frames,
            }));
        self.entry.update(|s| {
            s.input = FlowStatus {
                bitrate_bps: rate(first.input_bytes, last.input_bytes),
                bytes: last.input_bytes,
                last_write_ms_ago: ago(last_input),
                last_video_pts_90k: pts_in,
            };
            s.output = FlowStatus {
                bitrate_bps: rate(first.output_bytes, last.output_bytes),
                bytes: last.output_bytes,
                last_write_ms_ago: ago(last_output),
                last_video_pts_90k: pts_out,
            };
            s.timestamps = timestamps;
            s.latency = latency;
            if s.state == WorkerState::Starting && has_output && last_output.is_some() {
                s.state = WorkerState::Running;
            }
        });
    }
}
