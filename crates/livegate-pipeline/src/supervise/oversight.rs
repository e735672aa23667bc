//! What a supervisor of a restartable worker (exec, trickle) keeps beside its own loop: the
//! worker's status entry, its latency probe, its monitor's stuck signal, and the restart
//! budget with the metrics and status that go with each restart or the final give-up.

use std::sync::Arc;

use livegate_media::registry::{OutputSlot, Stream};
use livegate_media::ring::RingBuffer;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::latency::LatencyProbe;
use super::metrics::PipelineMetrics;
use super::monitor::{spawn_monitor, SharedProbe};
use super::status::{StatusBoard, StatusEntry, WorkerState};
use super::RestartBudget;
use crate::Supervision;

/// Why a worker is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// It exited, or its connection or output channel was lost.
    Crash,
    /// It wrote nothing while its input flowed (the monitor's watchdog).
    Stuck,
}

impl RestartReason {
    /// Label of `livegate_pipeline_restarts_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Crash => "crash",
            RestartReason::Stuck => "stuck",
        }
    }
}

/// A supervised worker's status, probe, stuck signal and restart budget.
#[derive(Debug)]
pub struct Oversight {
    pipeline: &'static str,
    pub entry: StatusEntry,
    pub probe: SharedProbe,
    /// Moves each time the monitor finds the worker stuck.
    pub stuck: watch::Receiver<u64>,
    budget: RestartBudget,
    metrics: Option<PipelineMetrics>,
}

impl Oversight {
    /// Registers the worker of `stream` on `board` and starts its monitor, which watches
    /// `input` and the stream's output until either closes. Call inside the worker's span,
    /// so the monitor's warnings carry it.
    pub fn start(
        pipeline: &'static str,
        stream: &Arc<Stream>,
        input: &Arc<RingBuffer>,
        supervision: Supervision,
        board: &StatusBoard,
        metrics: Option<PipelineMetrics>,
    ) -> Oversight {
        let entry = board.register(stream.key(), pipeline);
        let probe: SharedProbe = Arc::new(Mutex::new(LatencyProbe::new(
            metrics.as_ref().map(|m| m.latency(pipeline)),
        )));
        let monitor = spawn_monitor(
            stream.clone(),
            input.clone(),
            entry.clone(),
            Some(probe.clone()),
            supervision.out_timeout,
        );
        Oversight {
            pipeline,
            entry,
            probe,
            stuck: monitor.stuck,
            budget: RestartBudget::new(supervision.max_restarts, supervision.restart_window),
            metrics,
        }
    }

    /// A worker (process or connection) starts: counted, shown as starting, and frames in
    /// flight forgotten (they went to the previous one).
    pub fn on_start(&self, pid: Option<u32>) {
        self.entry.update(|s| {
            s.starts += 1;
            s.state = WorkerState::Starting;
            s.pid = pid;
        });
        self.probe.lock().restart();
    }

    /// The worker must start again for `reason`. Within the budget: counted and shown, and
    /// `Ok`. Beyond it the stream fails: it is closed, so that its publisher and viewers are
    /// told instead of watching a frozen picture, and the reason is returned.
    pub fn restart(&mut self, reason: RestartReason, stream: &Stream) -> Result<(), String> {
        if !self.budget.try_restart(Instant::now()) {
            let failure = self.budget.exhausted_reason();
            tracing::error!(pipeline = self.pipeline, reason = %failure, "giving up the worker; the stream fails");
            if let Some(metrics) = &self.metrics {
                metrics.failures.with_label_values(&[self.pipeline]).inc();
            }
            self.entry.update(|s| {
                s.state = WorkerState::Failed;
                s.failure = Some(failure.clone());
            });
            stream.close();
            return Err(failure);
        }
        if let Some(metrics) = &self.metrics {
            metrics
                .restarts
                .with_label_values(&[self.pipeline, reason.as_str()])
                .inc();
        }
        self.entry.update(|s| {
            s.state = WorkerState::Restarting;
            s.restarts += 1;
            s.watchdog_restarts += u64::from(reason == RestartReason::Stuck);
        });
        Ok(())
    }

    /// The supervisor ends: shown as stopped unless it failed.
    pub fn on_end(&self) {
        self.entry.update(|s| {
            s.pid = None;
            if s.state != WorkerState::Failed {
                s.state = WorkerState::Stopped;
            }
        });
    }
}

/// Resolves when the stream closes, or its output is a buffer other than `ours` (another
/// worker attached): either way this worker's output is no longer wanted.
pub async fn stream_left(slots: &mut watch::Receiver<OutputSlot>, ours: Option<&Arc<RingBuffer>>) {
    let left = |slot: &OutputSlot| {
        slot.closed
            || match (ours, &slot.buffer) {
                (Some(ours), Some(current)) => !Arc::ptr_eq(ours, current),
                _ => false,
            }
    };
    // The sender lives in the stream, which every caller holds, so this cannot fail.
    let _ = slots.wait_for(left).await;
}
