//! The livegate gateway process: configuration, HTTP server, metrics and the wiring of the
//! WHIP, pipeline and WHEP parts. `main.rs` is a thin shell around [`Gateway`].

pub mod admin;
pub mod config;
pub mod http;
pub mod metrics;
pub mod rtc_metrics;
mod serve;
mod status;
mod stream_view;
mod streams;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminAccess;
use crate::config::Config;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::rtc_metrics::RtcMetrics;
use livegate_cluster::{Cluster, ClusterConfig};
use livegate_media::registry::StreamRegistry;
use livegate_pipeline::file_source::FileSource;
use livegate_pipeline::supervise::metrics::PipelineMetrics;
use livegate_pipeline::trickle::TrickleSpec;
use livegate_pipeline::{Pipeline, WorkerContext};
use livegate_rtc::{RtcConfig, RtcServer, SessionLimit};
use livegate_trickle::{ServerConfig as TrickleServerConfig, TrickleServer};
use livegate_upstream::{UpstreamOptions, WhipUpstream};
use livegate_whep::{OutputConfig, StreamOutputs, WhepConfig, WhepMetrics, WhepServer};
use livegate_whip::auth::AuthWebhook;
use livegate_whip::{WhipConfig, WhipMetrics, WhipServer};
use livegate_wish::BearerToken;

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    http_task: JoinHandle<std::io::Result<()>>,
    pub metrics: Metrics,
    rtc: RtcMetrics,
    whep: Option<WhepServer>,
    whip: Option<WhipServer>,
    /// The streams of the process; every part finds streams here.
    pub registry: StreamRegistry,
    /// `LIVE_AI_TEST_STREAM` file sources, stopped by the shutdown token.
    test_streams: Vec<JoinHandle<()>>,
    /// Membership of a fleet (`LIVE_AI_REDIS_URL`); `None`: standalone.
    cluster: Option<Cluster>,
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

        let mut servers = Vec::new();
        // One count over both roles' servers (LIVE_AI_MAX_SESSIONS).
        let session_limit =
            (config.max_sessions > 0).then(|| SessionLimit::new(config.max_sessions));
        for (role, variable, addr) in [
            ("whip", "LIVE_AI_WHIP_ADDR", config.whip_addr),
            ("whep", "LIVE_AI_WHEP_ADDR", config.whep_addr),
        ] {
            let Some(bind) = addr.socket_addr() else {
                continue;
            };
            let mut rtc_config = RtcConfig::new(bind);
            rtc_config.advertised_ips = config.nat_ip.0.clone();
            rtc_config.ice_tcp = config.ice_tcp;
            rtc_config.session_limit = session_limit.clone();
            let server = RtcServer::bind(rtc_config)
                .await
                .with_context(|| format!("{variable}: cannot bind UDP {bind}"))?;
            tracing::info!(role, udp = %server.local_addr(), "WebRTC server listening");
            servers.push((role, server));
        }
        let whip_rtc = servers
            .iter()
            .find(|(role, _)| *role == "whip")
            .map(|(_, server)| server.clone());
        let whep_rtc = servers
            .iter()
            .find(|(role, _)| *role == "whep")
            .map(|(_, server)| server.clone());
        let rtc = RtcMetrics::register(&metrics.registry, servers)
            .context("registering WebRTC metrics")?;

        let registry = StreamRegistry::new();
        metrics.watch_streams(registry.clone());
        let cluster = start_cluster(config, &registry, &metrics, http_addr)?;
        let mut workers = WorkerContext {
            supervision: config.supervision(),
            metrics: Some(
                PipelineMetrics::register(&metrics.registry)
                    .context("registering pipeline metrics")?,
            ),
            min_segment: config.min_seg_dur,
            // Channels for workers to pull input from and push output to, only where the
            // pipeline uses them: they accept media from anyone who can reach the port.
            trickle_server: (config.pipeline == Pipeline::Trickle(TrickleSpec::Hosted))
                .then(|| TrickleServer::new(TrickleServerConfig::default())),
            ..WorkerContext::default()
        };
        if let Pipeline::Whip(_) = &config.pipeline {
            let options = UpstreamOptions {
                bearer_token: (!config.upstream_token.is_empty())
                    .then(|| config.upstream_token.clone()),
                ..UpstreamOptions::default()
            };
            let upstream = WhipUpstream::new(options)
                .with_supervision(workers.supervision)
                .with_status_board(workers.status.clone());
            workers.upstream = Some(Arc::new(upstream));
        }
        let test_streams = start_test_streams(config, &registry, &shutdown).await?;

        // One per gateway, shared by WHEP viewers and WHIP publishers that get their stream
        // back (sendrecv), so a stream has one output reader.
        let outputs =
            StreamOutputs::new(OutputConfig::default()).context("WHEP output settings")?;
        let whep = match whep_rtc {
            Some(rtc) => {
                let whep_metrics =
                    WhepMetrics::register(&metrics.registry).context("registering WHEP metrics")?;
                let whep_config = WhepConfig {
                    wait_timeout: config.whep_wait_timeout,
                    max_sessions_per_stream: (config.whep_max_sessions > 0)
                        .then_some(config.whep_max_sessions),
                    max_pending_per_ip: (config.whep_max_pending_per_ip > 0)
                        .then_some(config.whep_max_pending_per_ip),
                    token: (!config.whep_token.is_empty())
                        .then(|| BearerToken::new(config.whep_token.clone())),
                    ice_server_links: ice_server_links(config)?,
                    remote: cluster.as_ref().map(Cluster::remote_streams),
                    ..WhepConfig::default()
                };
                Some(WhepServer::new(
                    whep_config,
                    registry.clone(),
                    outputs.clone(),
                    rtc,
                    whep_metrics,
                ))
            }
            None => None,
        };

        let whip = match whip_rtc {
            Some(rtc) => {
                let whip_metrics =
                    WhipMetrics::register(&metrics.registry).context("registering WHIP metrics")?;
                let whip_config = WhipConfig {
                    max_streams: (config.max_streams > 0).then_some(config.max_streams),
                    on_conflict: config.whip_on_conflict,
                    republish_grace: config.republish_grace,
                    media_timeout: config.whip_media_timeout,
                    token: (!config.whip_token.is_empty())
                        .then(|| BearerToken::new(config.whip_token.clone())),
                    auth_webhook: (!config.auth_webhook_url.is_empty())
                        .then(|| AuthWebhook::new(config.auth_webhook_url.clone())),
                    ice_server_links: ice_server_links(config)?,
                    workers: workers.clone(),
                    echo: config.whip_echo.then(|| outputs.clone()),
                    origin: cluster.as_ref().map(Cluster::origin_claims),
                    ..WhipConfig::default()
                };
                Some(WhipServer::new(
                    whip_config,
                    registry.clone(),
                    config.pipeline.clone(),
                    rtc,
                    whip_metrics,
                ))
            }
            None => None,
        };

        let app = http::router(
            AppState {
                rtc: rtc.clone(),
                metrics: metrics.clone(),
                ready: ready.clone(),
                allow_cors: config.allow_cors,
                registry: registry.clone(),
                workers,
                whep: whep.clone(),
                whip: whip.clone(),
                admin: AdminAccess::from_config(&config.admin_token),
            },
            whep.clone(),
            whip.clone(),
        );
        // The fleet's internal endpoint, outside the public middleware (no CORS).
        let app = match &cluster {
            Some(cluster) => app
                .merge(cluster.router())
                // For the fleet part of `GET /streams`.
                .layer(axum::Extension(cluster.clone())),
            None => app,
        };
        let stop = shutdown.clone();
        let read_timeout = config.http_read_timeout;
        let http_task = tokio::spawn(async move {
            // serve gives every request its ConnectInfo<SocketAddr> (the per-client WHEP cap).
            serve::serve(listener, app, read_timeout, stop).await
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
            rtc,
            whep,
            whip,
            registry,
            test_streams,
            cluster,
        })
    }

    /// The bound UDP address of a WebRTC server role (`whip` or `whep`), if enabled.
    pub fn rtc_addr(&self, role: &str) -> Option<SocketAddr> {
        self.rtc
            .servers()
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, server)| server.local_addr())
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
        if let Some(whep) = &self.whep {
            whep.shutdown();
        }
        if let Some(whip) = &self.whip {
            whip.shutdown();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(cluster) = &self.cluster {
            // Other nodes stop sending viewers here and may take its streams at once.
            let _ = tokio::time::timeout_at(deadline, cluster.shutdown()).await;
        }
        for source in self.test_streams {
            // Each removes its stream as it stops, which ends its viewers' sessions.
            let _ = tokio::time::timeout_at(deadline, source).await;
        }
        // Peer connections get a DTLS close_notify so players notice at once instead of
        // after their ICE timeout.
        for (role, server) in self.rtc.servers() {
            if tokio::time::timeout_at(deadline, server.shutdown())
                .await
                .is_err()
            {
                tracing::warn!(role, "WebRTC server did not close its sessions in time");
            }
        }
        match tokio::time::timeout_at(deadline, self.http_task).await {
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

/// Loads every `LIVE_AI_TEST_STREAM` file (a missing or unreadable file stops start-up) and
/// plays each as its stream's output until shutdown.
async fn start_test_streams(
    config: &Config,
    registry: &StreamRegistry,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for spec in &config.test_stream.0 {
        let source = FileSource::load(spec).await?;
        tracing::info!(stream = %spec.key, path = %spec.path.display(), "playing test stream");
        let registry = registry.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = source.run(registry, shutdown).await {
                tracing::error!(error = %e, "test stream stopped");
            }
        }));
    }
    Ok(tasks)
}

/// Cluster mode when `LIVE_AI_REDIS_URL` is set: this gateway joins the fleet.
fn start_cluster(
    config: &Config,
    registry: &StreamRegistry,
    metrics: &Metrics,
    http_addr: SocketAddr,
) -> anyhow::Result<Option<Cluster>> {
    if config.redis_url.is_empty() {
        return Ok(None);
    }
    let node_url = if config.node_url.is_empty() {
        anyhow::ensure!(
            !http_addr.ip().is_unspecified(),
            "LIVE_AI_NODE_URL: cluster mode needs the URL other gateways reach this one at \
             (the HTTP address {http_addr} is not one)"
        );
        format!("http://{http_addr}")
    } else {
        config.node_url.clone()
    };
    let cluster_config = ClusterConfig {
        redis_url: config.redis_url.clone(),
        node_url,
        secret: config.cluster_secret.clone(),
        redirect: config.cluster_redirect,
        ttl: config.cluster_ttl,
        republish_grace: config.republish_grace,
    };
    let cluster = Cluster::start(cluster_config, registry.clone(), &metrics.registry)?;
    Ok(Some(cluster))
}

/// One `Link` header value per configured ICE server.
fn ice_server_links(config: &Config) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
    config
        .ice_servers
        .0
        .iter()
        .map(|server| {
            axum::http::HeaderValue::from_str(&server.link_header_value())
                .context("LIVE_AI_ICE_SERVERS: a server does not fit in an HTTP header")
        })
        .collect()
}
