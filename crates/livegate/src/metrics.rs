//! The gateway's Prometheus registry: process metrics plus what each part of the gateway
//! registers. Served as text by `GET /metrics`.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Every metric of one gateway process. Cheap to clone (all handles are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// HTTP responses by route pattern and status code.
    pub http_responses: IntCounterVec,
    /// Streams currently in the registry.
    pub streams: IntGauge,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        // CPU, RSS, open fds and threads of this process: what ops check first when a node
        // misbehaves, and what the soak tests compare before and after churn.
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let build_info = IntGauge::with_opts(
            Opts::new("livegate_build_info", "Build of this gateway; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build_info.set(1);
        registry.register(Box::new(build_info))?;

        let http_responses = IntCounterVec::new(
            Opts::new(
                "livegate_http_responses_total",
                "HTTP responses by route and status code.",
            ),
            &["route", "status"],
        )?;
        registry.register(Box::new(http_responses.clone()))?;

        let streams = IntGauge::new("livegate_streams", "Streams currently known.")?;
        registry.register(Box::new(streams.clone()))?;

        Ok(Metrics {
            registry,
            http_responses,
            streams,
        })
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}
