//! The gateway's Prometheus registry: process metrics plus what each part of the gateway
//! registers. Served as text by `GET /metrics`.

use std::sync::{Arc, OnceLock};

use livegate_media::registry::StreamRegistry;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Every metric of one gateway process. Cheap to clone (all handles are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// HTTP responses by route pattern and status code.
    pub http_responses: IntCounterVec,
    /// Live streams in the registry, read at each scrape.
    pub streams: IntGauge,
    /// Bytes held by the streams' input and output ring buffers, read at each scrape: every
    /// ring is bounded, and this shows how full they are in sum.
    buffer_bytes: IntGaugeVec,
    /// The streams the two gauges above are read from, once the gateway has them.
    stream_source: Arc<OnceLock<StreamRegistry>>,
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

        let streams = IntGauge::new("livegate_streams", "Live streams, read at each scrape.")?;
        registry.register(Box::new(streams.clone()))?;

        let buffer_bytes = IntGaugeVec::new(
            Opts::new(
                "livegate_stream_buffer_bytes",
                "Bytes held by the streams' ring buffers, by buffer (input, output); each ring is \
                 bounded, so this is the media memory in use.",
            ),
            &["buffer"],
        )?;
        registry.register(Box::new(buffer_bytes.clone()))?;

        let runtime_alive_tasks = IntGauge::new(
            "livegate_runtime_alive_tasks",
            "Tokio tasks alive on the gateway's runtime, read at each scrape.",
        )?;
        registry.register(Box::new(runtime_alive_tasks.clone()))?;

        Ok(Metrics {
            registry,
            http_responses,
            streams,
            buffer_bytes,
            stream_source: Arc::new(OnceLock::new()),
            runtime_alive_tasks,
        })
    }

    /// Where the stream gauges are read from at each scrape. Set once; later calls are
    /// ignored.
    pub fn watch_streams(&self, streams: StreamRegistry) {
        let _ = self.stream_source.set(streams);
    }

    fn read_streams(&self) {
        let Some(registry) = self.stream_source.get() else {
            return;
        };
        let (mut live, mut input, mut output) = (0i64, 0usize, 0usize);
        for stream in registry.snapshot() {
            live += i64::from(!stream.is_closed());
            input += stream.input().stats().fill_bytes;
            // Passthrough's output is its input: counted once.
            if let Some(out) = stream.output().filter(|o| !Arc::ptr_eq(o, stream.input())) {
                output += out.stats().fill_bytes;
            }
        }
        self.streams.set(live);
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.buffer_bytes
            .with_label_values(&["input"])
            .set(as_i64(input));
        self.buffer_bytes
            .with_label_values(&["output"])
            .set(as_i64(output));
    }

    /// The registry in Prometheus text exposition format. Called on the runtime, it first
    /// reads the runtime's alive task count.
    pub fn render(&self) -> String {
        self.read_streams();
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
