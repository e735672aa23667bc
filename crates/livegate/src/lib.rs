//! The livegate gateway process: configuration, HTTP server, metrics and the wiring of the
//! WHIP, pipeline and WHEP parts. `main.rs` is a thin shell around [`Gateway`].

pub mod config;
pub mod http;
pub mod metrics;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::AppState;
use crate::metrics::Metrics;

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    http_task: JoinHandle<std::io::Result<()>>,
    pub metrics: Metrics,
}

impl Gateway {
    /// Binds every configured socket and starts serving. Returns once the gateway accepts
    /// requests; binding errors are returned, not logged and ignored.
    pub async fn start(config: &Config) -> anyhow::Result<Gateway> {
        let metrics = Metrics::new().context("creating metrics")?;
        let ready = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();

        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("LIVE_AI_HTTP_ADDR: cannot bind {}", config.http_addr))?;
        let http_addr = listener.local_addr()?;

        let app = http::router(AppState {
            metrics: metrics.clone(),
            ready: ready.clone(),
            allow_cors: config.allow_cors,
        });
        let stop = shutdown.clone();
        let http_task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });

        ready.store(true, Ordering::Release);
        tracing::info!(
            http = %http_addr,
            whip = %config.whip_addr,
            whep = %config.whep_addr,
            pipeline = %config.pipeline,
            "livegate listening"
        );
        Ok(Gateway {
            http_addr,
            shutdown,
            ready,
            http_task,
            metrics,
        })
    }

    /// The bound HTTP address (useful when the configured port was 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stops accepting, closes sessions and waits for in-flight requests, for at most
    /// `timeout`. Returns whether everything finished in time.
    pub async fn shutdown(self, timeout: std::time::Duration) -> bool {
        self.ready.store(false, Ordering::Release);
        self.shutdown.cancel();
        match tokio::time::timeout(timeout, self.http_task).await {
            Ok(Ok(Ok(()))) => true,
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "HTTP server failed while draining");
                false
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "HTTP server task panicked");
                false
            }
            Err(_) => {
                tracing::warn!(?timeout, "drain deadline passed; exiting anyway");
                false
            }
        }
    }
}
