//! Prometheus metrics of WHIP ingest.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::IngestStats;

/// The WHIP metrics, registered once on the gateway's registry. Cheap to clone.
#[derive(Clone)]
pub struct WhipMetrics {
    pub(crate) publishers_active: IntGauge,
    pub(crate) sessions_created: IntCounter,
    pub(crate) sessions_failed: IntCounterVec,
    pub(crate) sessions_ended: IntCounterVec,
    pub(crate) time_to_first_keyframe: Histogram,
    /// Per kind (`video`, `audio`).
    pub(crate) packets: IntCounterVec,
    pub(crate) bytes: IntCounterVec,
    pub(crate) frames: IntCounterVec,
    pub(crate) packets_lost: IntCounterVec,
    pub(crate) keyframe_requests: IntCounter,
}

impl WhipMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<WhipMetrics> {
        let by_kind = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["kind"]);
        let metrics = WhipMetrics {
            publishers_active: IntGauge::new(
                "livegate_whip_publishers_active",
                "WHIP publishers answered and not yet gone",
            )?,
            sessions_created: IntCounter::new(
                "livegate_whip_sessions_created_total",
                "WHIP sessions answered with 201",
            )?,
            sessions_failed: IntCounterVec::new(
                Opts::new(
                    "livegate_whip_sessions_failed_total",
                    "WHIP requests refused, by reason",
                ),
                &["reason"],
            )?,
            sessions_ended: IntCounterVec::new(
                Opts::new(
                    "livegate_whip_sessions_ended_total",
                    "WHIP sessions ended, by reason",
                ),
                &["reason"],
            )?,
            time_to_first_keyframe: Histogram::with_opts(
                HistogramOpts::new(
                    "livegate_whip_time_to_first_keyframe_seconds",
                    "From the WHIP POST to the first keyframe written to the stream's input",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            )?,
            packets: by_kind(
                "livegate_whip_rtp_packets_total",
                "RTP packets received from publishers",
            )?,
            bytes: by_kind(
                "livegate_whip_rtp_payload_bytes_total",
                "RTP payload bytes received from publishers",
            )?,
            frames: by_kind(
                "livegate_whip_frames_total",
                "Access units written to streams' inputs",
            )?,
            packets_lost: by_kind(
                "livegate_whip_rtp_packets_lost_total",
                "RTP packets given up as lost after the reorder window",
            )?,
            keyframe_requests: IntCounter::new(
                "livegate_whip_keyframe_requests_total",
                "PLI sent to publishers",
            )?,
        };
        registry.register(Box::new(metrics.publishers_active.clone()))?;
        registry.register(Box::new(metrics.sessions_created.clone()))?;
        registry.register(Box::new(metrics.sessions_failed.clone()))?;
        registry.register(Box::new(metrics.sessions_ended.clone()))?;
        registry.register(Box::new(metrics.time_to_first_keyframe.clone()))?;
        registry.register(Box::new(metrics.packets.clone()))?;
        registry.register(Box::new(metrics.bytes.clone()))?;
        registry.register(Box::new(metrics.frames.clone()))?;
        registry.register(Box::new(metrics.packets_lost.clone()))?;
        registry.register(Box::new(metrics.keyframe_requests.clone()))?;
        Ok(metrics)
    }

    /// Metrics on a registry of their own, for tests and embedding.
    pub fn unregistered() -> WhipMetrics {
        WhipMetrics::register(&Registry::new()).expect("fresh registry")
    }

    /// Adds what an ingest counted since `last` (counters only grow).
    pub(crate) fn add(&self, now: &IngestStats, last: &IngestStats) {
        for (kind, n, l) in [
            ("video", &now.video, &last.video),
            ("audio", &now.audio, &last.audio),
        ] {
            self.packets
                .with_label_values(&[kind])
                .inc_by(n.packets.saturating_sub(l.packets));
            self.bytes
                .with_label_values(&[kind])
                .inc_by(n.bytes.saturating_sub(l.bytes));
            self.frames
                .with_label_values(&[kind])
                .inc_by(n.frames.saturating_sub(l.frames));
            self.packets_lost
                .with_label_values(&[kind])
                .inc_by(n.packets_lost.saturating_sub(l.packets_lost));
        }
    }
}
