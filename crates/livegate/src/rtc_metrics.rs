//! Prometheus view of the WebRTC servers: their counters are read at scrape time, so the
//! event loops never touch a metric on the packet path.

use livegate_rtc::{RtcServer, ServerStats};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The WebRTC servers of the process, by role (`whip`, `whep`).
#[derive(Clone)]
pub struct RtcMetrics {
    servers: Vec<(&'static str, RtcServer)>,
    sessions: IntGaugeVec,
    sessions_created: IntCounterVec,
    datagrams: IntCounterVec,
    events_dropped: IntCounterVec,
    frames_dropped: IntCounterVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

impl RtcMetrics {
    pub fn register(
        registry: &Registry,
        servers: Vec<(&'static str, RtcServer)>,
    ) -> prometheus::Result<RtcMetrics> {
        let metrics = RtcMetrics {
            servers,
            sessions: IntGaugeVec::new(
                Opts::new("livegate_rtc_sessions", "Peer connections currently open."),
                &["role"],
            )?,
            sessions_created: counter(
                "livegate_rtc_sessions_created_total",
                "Peer connections accepted.",
                &["role"],
            )?,
            datagrams: counter(
                "livegate_rtc_datagrams_total",
                "UDP datagrams on the role's port: in, out, and unroutable (matched no session).",
                &["role", "direction"],
            )?,
            events_dropped: counter(
                "livegate_rtc_events_dropped_total",
                "Session events dropped because their owner did not keep up.",
                &["role"],
            )?,
            frames_dropped: counter(
                "livegate_rtc_frames_dropped_total",
                "Frames refused because the event loop's queue was full.",
                &["role"],
            )?,
        };
        registry.register(Box::new(metrics.sessions.clone()))?;
        registry.register(Box::new(metrics.sessions_created.clone()))?;
        registry.register(Box::new(metrics.datagrams.clone()))?;
        registry.register(Box::new(metrics.events_dropped.clone()))?;
        registry.register(Box::new(metrics.frames_dropped.clone()))?;
        Ok(metrics)
    }

    /// Copies the servers' counters into the metrics; call before rendering.
    pub fn refresh(&self) {
        for (role, server) in &self.servers {
            let stats: ServerStats = server.stats();
            self.sessions
                .with_label_values(&[role])
                .set(stats.sessions_active as i64);
            let set = |vec: &IntCounterVec, labels: &[&str], value: u64| {
                let counter = vec.with_label_values(labels);
                counter.inc_by(value.saturating_sub(counter.get()));
            };
            set(&self.sessions_created, &[role], stats.sessions_created);
            set(&self.datagrams, &[role, "in"], stats.datagrams_in);
            set(&self.datagrams, &[role, "out"], stats.datagrams_out);
            set(
                &self.datagrams,
                &[role, "unroutable"],
                stats.datagrams_unroutable,
            );
            set(&self.events_dropped, &[role], stats.events_dropped);
            set(&self.frames_dropped, &[role], stats.frames_dropped);
        }
    }

    pub fn servers(&self) -> &[(&'static str, RtcServer)] {
        &self.servers
    }
}
