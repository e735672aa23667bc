//! Prometheus metrics of the pipeline workers. Labels are bounded: the pipeline kind and a
//! fixed set of reasons, never a stream key.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The workers' metrics, registered once per gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    /// Per frame: input buffer to output buffer, where timestamps allow matching.
    latency: HistogramVec,
    /// Worker restarts by pipeline and reason (`crash`, `stuck`).
    pub restarts: IntCounterVec,
    /// Streams failed because their worker used up its restart budget.
    pub failures: IntCounterVec,
}

impl PipelineMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<PipelineMetrics> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "livegate_pipeline_latency_seconds",
                "Time a video frame spends between the stream's input buffer and its output \
                 buffer, matched by PTS (workers that rewrite timestamps are not measured)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                0.75, 1.0, 2.0, 5.0,
            ]),
            &["pipeline"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "livegate_pipeline_restarts_total",
                "Pipeline worker restarts, by reason (crash: it exited or its connection \
                 failed; stuck: no output while input flowed)",
            ),
            &["pipeline", "reason"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "livegate_pipeline_failures_total",
                "Streams ended because their worker needed more restarts than allowed",
            ),
            &["pipeline"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(PipelineMetrics {
            latency,
            restarts,
            failures,
        })
    }

    /// The latency histogram of one pipeline kind.
    pub fn latency(&self, pipeline: &str) -> Histogram {
        self.latency.with_label_values(&[pipeline])
    }
}
