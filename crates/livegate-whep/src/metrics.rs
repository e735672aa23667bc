//! Prometheus metrics of WHEP playback.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The WHEP metrics, registered once on the gateway's registry. Cheap to clone.
#[derive(Clone)]
pub struct WhepMetrics {
    pub(crate) sessions_active: IntGauge,
    pub(crate) sessions_created: IntCounter,
    /// Requests that did not become a session, by reason.
    pub(crate) sessions_failed: IntCounterVec,
    /// Sessions that ended, by reason.
    pub(crate) sessions_ended: IntCounterVec,
    pub(crate) pending_requests: IntGauge,
    pub(crate) time_to_first_frame: Histogram,
    pub(crate) rtp_payload_bytes: IntCounter,
    pub(crate) rtp_packets: IntCounter,
    pub(crate) frames_dropped: IntCounter,
    pub(crate) keyframe_requests: IntCounter,
    pub(crate) viewers: IntGaugeVec,
}

impl WhepMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<WhepMetrics> {
        let metrics = WhepMetrics {
            sessions_active: IntGauge::new(
                "livegate_whep_sessions_active",
                "WHEP sessions answered and not yet ended",
            )?,
            sessions_created: IntCounter::new(
                "livegate_whep_sessions_created_total",
                "WHEP sessions answered with 201",
            )?,
            sessions_failed: IntCounterVec::new(
                Opts::new(
                    "livegate_whep_sessions_failed_total",
                    "WHEP requests refused, by reason",
                ),
                &["reason"],
            )?,
            sessions_ended: IntCounterVec::new(
                Opts::new(
                    "livegate_whep_sessions_ended_total",
                    "WHEP sessions ended, by reason",
                ),
                &["reason"],
            )?,
            pending_requests: IntGauge::new(
                "livegate_whep_pending_requests",
                "WHEP requests waiting for their stream's output",
            )?,
            time_to_first_frame: Histogram::with_opts(
                HistogramOpts::new(
                    "livegate_whep_time_to_first_frame_seconds",
                    "From the WHEP POST to the first keyframe handed to the viewer's transport",
                )
                .buckets(vec![
                    0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            )?,
            rtp_payload_bytes: IntCounter::new(
                "livegate_whep_rtp_payload_bytes_total",
                "RTP payload bytes handed to WHEP sessions' transports",
            )?,
            rtp_packets: IntCounter::new(
                "livegate_whep_rtp_packets_total",
                "RTP packets handed to WHEP sessions' transports",
            )?,
            frames_dropped: IntCounter::new(
                "livegate_whep_frames_dropped_total",
                "Frames not sent because a session's event loop was saturated",
            )?,
            keyframe_requests: IntCounter::new(
                "livegate_whep_keyframe_requests_total",
                "PLI/FIR received from viewers (the output cannot be asked for a keyframe)",
            )?,
            viewers: IntGaugeVec::new(
                Opts::new("livegate_whep_viewers", "WHEP sessions per stream"),
                &["stream"],
            )?,
        };
        registry.register(Box::new(metrics.sessions_active.clone()))?;
        registry.register(Box::new(metrics.sessions_created.clone()))?;
        registry.register(Box::new(metrics.sessions_failed.clone()))?;
        registry.register(Box::new(metrics.sessions_ended.clone()))?;
        registry.register(Box::new(metrics.pending_requests.clone()))?;
        registry.register(Box::new(metrics.time_to_first_frame.clone()))?;
        registry.register(Box::new(metrics.rtp_payload_bytes.clone()))?;
        registry.register(Box::new(metrics.rtp_packets.clone()))?;
        registry.register(Box::new(metrics.frames_dropped.clone()))?;
        registry.register(Box::new(metrics.keyframe_requests.clone()))?;
        registry.register(Box::new(metrics.viewers.clone()))?;
        Ok(metrics)
    }

    /// Metrics on a registry of their own, for tests and embedding.
    pub fn unregistered() -> WhepMetrics {
        WhepMetrics::register(&Registry::new()).expect("fresh registry")
    }

    /// Called under the server's session-table lock, so the gauge follows the table.
    pub(crate) fn set_viewers(&self, stream: &str, viewers: usize) {
        if viewers == 0 {
            // A label per stream key ever played would grow without bound.
            let _ = self.viewers.remove_label_values(&[stream]);
        } else {
            self.viewers
                .with_label_values(&[stream])
                .set(viewers as i64);
        }
    }
}
