//! Prometheus metrics of cluster mode.

use prometheus::{IntCounter, IntGauge, Registry};

#[derive(Clone)]
pub(crate) struct ClusterMetrics {
    /// 1 when the last heartbeat reached Redis.
    pub(crate) redis_up: IntGauge,
    /// Live nodes (this one included) at the last heartbeat.
    pub(crate) nodes: IntGauge,
    /// Streams this node is the origin of.
    pub(crate) origin_claims: IntGauge,
    /// Claims another node took over (or that expired and were taken during an outage).
    pub(crate) claims_lost: IntCounter,
    /// Edges pulling a stream from this node now: one per (edge node, stream).
    pub(crate) origin_pulls_active: IntGauge,
    /// Pulls this node has served.
    pub(crate) origin_pulls: IntCounter,
    /// Streams this node pulls from their origins now.
    pub(crate) edge_pulls_active: IntGauge,
}

impl ClusterMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<ClusterMetrics, prometheus::Error> {
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        Ok(ClusterMetrics {
            redis_up: gauge(
                "livegate_cluster_redis_up",
                "1 when the last heartbeat reached Redis, else 0.",
            )?,
            nodes: gauge(
                "livegate_cluster_nodes",
                "Live nodes of the fleet, this one included, at the last heartbeat.",
            )?,
            origin_claims: gauge(
                "livegate_cluster_origin_claims",
                "Streams this node is the origin of.",
            )?,
            claims_lost: counter(
                "livegate_cluster_claims_lost_total",
                "Origin claims another node took over.",
            )?,
            origin_pulls_active: gauge(
                "livegate_cluster_origin_pulls_active",
                "Edge pulls this node serves now (one per edge node and stream).",
            )?,
            origin_pulls: counter(
                "livegate_cluster_origin_pulls_total",
                "Edge pulls this node has served.",
            )?,
            edge_pulls_active: gauge(
                "livegate_cluster_edge_pulls_active",
                "Streams this node pulls from their origins now.",
            )?,
        })
    }
}
