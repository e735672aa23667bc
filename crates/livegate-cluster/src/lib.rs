//! Cluster mode: a fleet of livegate gateways behind one load balancer, sharing streams
//! through Redis. One job: the node registry, origin claims, edge pulls and the internal
//! endpoint they pull from. Without `LIVE_AI_REDIS_URL` nothing here is built and a gateway
//! runs alone exactly as before.
//!
//! ```text
//! publisher ──WHIP──▶ node A (origin) ──GET /internal/streams/{key}/output──▶ node B (edge) ──WHEP──▶ viewers
//!                        │  claim livegate:origin:{key}                          │ one pull per edge,
//!                        └──────────────────── Redis ◀──── lookup ───────────────┘ whatever its viewers
//! ```
//!
//! - A WHIP POST makes its node the stream's **origin**: [`OriginClaims`] claims the key in
//!   Redis atomically (Lua) before the key is reserved locally; another node's publisher of
//!   the same key gets 409, or takes it over with `LIVE_AI_WHIP_ON_CONFLICT=replace` (the old
//!   origin sees its claim lost at its next renewal and ends its stream).
//! - A WHEP POST on a node where the stream is not local asks Redis for the origin and makes
//!   the node an **edge**: one HTTP pull of the origin's output (chunked MPEG-TS, bearer
//!   `LIVE_AI_CLUSTER_SECRET`) feeds a local stream that every local viewer of the key
//!   shares; the last viewer's lease stops the pull. With `LIVE_AI_CLUSTER_REDIRECT` the POST
//!   is answered 307 to the origin's WHEP URL instead.
//! - Every node writes a heartbeat with a TTL; a dead node's heartbeat and claims expire.
//!
//! # Redis keys
//!
//! | key | type | holds | TTL | written by |
//! |---|---|---|---|---|
//! | `livegate:node:{node_id}` | string (JSON) | the node's URL, the streams it originates, its edges and their viewers | `LIVE_AI_CLUSTER_TTL`, rewritten every third of it | the node's heartbeat (`SET PX`) |
//! | `livegate:origin:{stream}` | hash | `node` (id), `url` (node URL), `token` (this claim), `idle` (`1` while the publisher is away in its grace) | `LIVE_AI_CLUSTER_TTL`, extended every third of it | Lua: claim (set unless another node holds it live), renew (compare token and extend, or take back an expired key), release (compare token and delete) |
//!
//! No consensus of our own: every decision is one Lua script that Redis runs atomically.
//!
//! # Concurrency contract
//!
//! - The claim and edge tables are `parking_lot` mutexes held for a few instructions, never
//!   across an `.await`; Redis calls and HTTP pulls happen outside them.
//! - One background task per node (the heartbeat) writes the node key and renews every claim;
//!   one task per edge stream pulls it. Nothing waits on Redis while media flows: a pull runs
//!   on plain HTTP between nodes, so a Redis outage stops only new cross-node work (claims,
//!   look-ups: 503), and the heartbeat puts the node and its claims back when Redis returns.
//! - Every Redis call is bounded ([`REDIS_TIMEOUT`]), so a request never hangs on Redis.

mod claims;
mod edge;
mod error;
mod internal;
mod keys;
mod metrics;
mod node;
mod pull;
#[cfg(feature = "testing")]
pub mod testing;
mod ts_packets;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livegate_media::registry::StreamRegistry;
use livegate_media::StreamKey;
use livegate_whep::RemoteStreams;
use livegate_whip::OriginClaims;
use livegate_wish::BearerToken;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

pub use error::ClusterError;
pub use node::{ClusterView, NodeView, OriginView};

use crate::claims::{ClaimSlot, Scripts};
use crate::edge::EdgeEntry;
use crate::metrics::ClusterMetrics;

/// Longest any one Redis call may take before the work that needed it fails with 503.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of cluster mode (`LIVE_AI_REDIS_URL` and the `LIVE_AI_CLUSTER_*` variables).
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// How the other nodes reach this one's HTTP server, e.g. `http://10.0.0.5:8935`.
    pub node_url: String,
    /// The bearer token of the internal endpoint, shared by every node.
    pub secret: String,
    /// Answer a WHEP POST for a stream of another node with 307 to it instead of pulling.
    pub redirect: bool,
    /// Lifetime of a heartbeat and of a claim without renewal: how long a dead node lingers.
    pub ttl: Duration,
    /// How long an edge keeps its viewers while its origin is gone, waiting for the
    /// publisher to come back on any node (`LIVE_AI_REPUBLISH_GRACE`).
    pub republish_grace: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url)
            .field("node_url", &self.node_url)
            .field("redirect", &self.redirect)
            .field("ttl", &self.ttl)
            .field("republish_grace", &self.republish_grace)
            .finish_non_exhaustive()
    }
}

/// This gateway's membership of the fleet. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: ClusterConfig,
    pub(crate) node_id: String,
    pub(crate) redis: ConnectionManager,
    pub(crate) scripts: Scripts,
    pub(crate) registry: StreamRegistry,
    pub(crate) http: reqwest::Client,
    pub(crate) secret: BearerToken,
    pub(crate) metrics: ClusterMetrics,
    pub(crate) claims: Mutex<HashMap<StreamKey, ClaimSlot>>,
    pub(crate) edges: Mutex<HashMap<StreamKey, EdgeEntry>>,
    pub(crate) next_edge_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
}

impl Cluster {
    /// Joins the fleet: checks the settings, connects to Redis lazily (a node starts, and
    /// serves its own streams, while Redis is down) and starts the heartbeat.
    pub fn start(
        config: ClusterConfig,
        registry: StreamRegistry,
        metrics: &prometheus::Registry,
    ) -> Result<Cluster, ClusterError> {
        if config.secret.is_empty() {
            return Err(ClusterError::NoSecret);
        }
        let node_url = config.node_url.trim_end_matches('/').to_owned();
        if !(node_url.starts_with("http://") || node_url.starts_with("https://")) {
            return Err(ClusterError::BadNodeUrl(config.node_url.clone()));
        }
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| ClusterError::BadRedisUrl(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| ClusterError::BadRedisUrl(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ClusterError::Http(e.to_string()))?;
        let node_id = format!("{:016x}", rand::random::<u64>());
        let shared = Arc::new(Shared {
            secret: BearerToken::new(config.secret.clone()),
            config: ClusterConfig { node_url, ..config },
            node_id,
            redis,
            scripts: Scripts::new(),
            registry,
            http,
            metrics: ClusterMetrics::register(metrics)?,
            claims: Mutex::new(HashMap::new()),
            edges: Mutex::new(HashMap::new()),
            next_edge_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
        });
        tracing::info!(node = %shared.node_id, url = %shared.config.node_url, "joining the cluster");
        tokio::spawn(node::heartbeat(shared.clone()));
        Ok(Cluster { shared })
    }

    /// This node's id in the registry (random per process: a restarted node is a new node).
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The hook WHIP calls before reserving a key (`WhipConfig::origin`).
    pub fn origin_claims(&self) -> Arc<dyn OriginClaims> {
        Arc::new(claims::Origins(self.shared.clone()))
    }

    /// The hook WHEP calls for a POST's stream (`WhepConfig::remote`).
    pub fn remote_streams(&self) -> Arc<dyn RemoteStreams> {
        Arc::new(edge::Edges(self.shared.clone()))
    }

    /// `GET /internal/streams/{stream}/output`, for the gateway's HTTP server to merge.
    pub fn router(&self) -> axum::Router {
        internal::router(self.shared.clone())
    }

    /// The fleet as Redis knows it: live nodes and the streams' origins.
    pub async fn view(&self) -> Result<ClusterView, ClusterError> {
        node::view(&self.shared).await
    }

    /// Leaves the fleet: stops the heartbeat, stops the edge pulls, and deletes this node's
    /// key and claims so that other nodes need not wait for their TTL. Bounded by
    /// [`REDIS_TIMEOUT`] per call.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let edges: Vec<_> = self.shared.edges.lock().drain().collect();
        for (_, edge) in edges {
            edge.cancel.cancel();
            self.shared.registry.remove(&edge.stream);
        }
        claims::release_all(&self.shared).await;
        node::leave(&self.shared).await;
    }
}

impl Shared {
    pub(crate) fn next_edge_id(&self) -> u64 {
        self.next_edge_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs one Redis call within [`REDIS_TIMEOUT`].
pub(crate) async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ClusterError::Redis(e.to_string())),
        Err(_) => Err(ClusterError::Redis(format!(
            "no answer within {REDIS_TIMEOUT:?}"
        ))),
    }
}
