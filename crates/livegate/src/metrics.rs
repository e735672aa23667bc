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
    /// Tasks alive on the runtime that serves `/metrics`, read at each scrape: a count that
    /// only grows under churn is a leaked task (the soak checks it returns to its idle value).
    runtime_alive_tasks: IntGauge,
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

        let runtime_alive_tasks = IntGauge::new(
            "livegate_runtime_alive_tasks",
            "Tokio tasks alive on the gateway's runtime, read at each scrape.",
        )?;
        registry.register(Box::new(runtime_alive_tasks.clone()))?;

        Ok(Metrics {
            registry,
            http_responses,
            streams,
            runtime_alive_tasks,
        })
    }

    /// The registry in Prometheus text exposition format. Called on the runtime, it first
    /// reads the runtime's alive task count.
    pub fn render(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = runtime.metrics().num_alive_tasks();
            self.runtime_alive_tasks
                .set(i64::try_from(alive).unwrap_or(i64::MAX));
        }
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive_tasks(text: &str) -> i64 {
        text.lines()
            .find_map(|line| line.strip_prefix("livegate_runtime_alive_tasks "))
            .and_then(|value| value.parse().ok())
            .expect("the gauge is rendered")
    }

    #[tokio::test]
    async fn a_scrape_counts_the_tasks_alive_on_the_runtime() {
        let metrics = Metrics::new().unwrap();
        let idle = alive_tasks(&metrics.render());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = stopped.await;
        });
        assert_eq!(alive_tasks(&metrics.render()), idle + 1);
        stop.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(alive_tasks(&metrics.render()), idle);
    }
}
