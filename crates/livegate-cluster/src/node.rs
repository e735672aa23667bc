//! The node registry: each node's heartbeat, and the fleet as Redis knows it.
//!
//! Every third of the TTL the heartbeat writes `livegate:node:{id}` (`SET PX ttl`) and renews
//! every origin claim; a node that stops (killed, partitioned) disappears within one TTL.
//! After a Redis outage, or a Redis restart that lost everything, the next heartbeat writes
//! the node back and re-creates its claims, so the fleet recovers without a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;

use crate::{bounded, claims, edge, keys, ClusterError, Shared};

/// What a node's heartbeat says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    /// How other nodes reach it.
    pub url: String,
    /// Streams it is the origin of.
    pub origins: Vec<String>,
    /// Streams it pulls as an edge, with their local viewers (waiting requests included).
    pub edges: BTreeMap<String, usize>,
}

/// A stream's origin claim as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginView {
    pub stream: String,
    /// The origin node's id and URL.
    pub node: String,
    pub url: String,
    /// The publisher is away, in its republish grace.
    pub idle: bool,
}

/// The fleet: live nodes and every stream's origin, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub this_node: String,
    pub nodes: Vec<NodeView>,
    pub origins: Vec<OriginView>,
}

/// The heartbeat task: until shutdown, every third of the TTL.
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.config.ttl / 3);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut was_up = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let beat = async {
            beat(&shared).await?;
            claims::renew_all(&shared).await?;
            count_nodes(&shared).await
        };
        let up = match beat.await {
            Ok(nodes) => {
                shared.metrics.nodes.set(nodes as i64);
                true
            }
            Err(e) => {
                if was_up != Some(false) {
                    tracing::warn!(error = %e, "cluster heartbeat failed; serving local streams only until Redis is back");
                }
                false
            }
        };
        if up && was_up == Some(false) {
            tracing::info!("cluster heartbeat reaches Redis again");
        }
        shared.metrics.redis_up.set(up as i64);
        was_up = Some(up);
    }
}

/// Writes this node's key.
async fn beat(shared: &Shared) -> Result<(), ClusterError> {
    let view = NodeView {
        id: shared.node_id.clone(),
        url: shared.config.node_url.clone(),
        origins: claims::held_keys(shared)
            .iter()
            .map(|k| k.to_string())
            .collect(),
        edges: edge::viewers(shared),
    };
    let json = serde_json::to_string(&view).expect("a NodeView serializes");
    let mut redis = shared.redis.clone();
    bounded(
        redis::cmd("SET")
            .arg(keys::node(&shared.node_id))
            .arg(json)
            .arg("PX")
            .arg(shared.config.ttl.as_millis() as u64)
            .query_async::<()>(&mut redis),
    )
    .await
}

/// Deletes this node's key (shutdown).
pub(crate) async fn leave(shared: &Shared) {
    let mut redis = shared.redis.clone();
    let left = bounded(
        redis::cmd("DEL")
            .arg(keys::node(&shared.node_id))
            .query_async::<()>(&mut redis),
    )
    .await;
    if let Err(e) = left {
        tracing::warn!(error = %e, "could not remove this node from the registry; its TTL will");
    }
}

/// Every key matching `pattern` (SCAN, so a large Redis is not blocked).
async fn scan(shared: &Shared, pattern: &str) -> Result<Vec<String>, ClusterError> {
    let mut redis = shared.redis.clone();
    let mut cursor = 0u64;
    let mut found = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = bounded(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(200)
                .query_async(&mut redis),
        )
        .await?;
        found.extend(batch);
        if next == 0 {
            found.sort_unstable();
            found.dedup();
            return Ok(found);
        }
        cursor = next;
    }
}

async fn count_nodes(shared: &Shared) -> Result<usize, ClusterError> {
    Ok(scan(shared, keys::NODE_PATTERN).await?.len())
}

/// Live nodes, from their heartbeats.
async fn nodes(shared: &Shared) -> Result<Vec<NodeView>, ClusterError> {
    let names = scan(shared, keys::NODE_PATTERN).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut redis = shared.redis.clone();
    let values: Vec<Option<String>> =
        bounded(redis::cmd("MGET").arg(&names).query_async(&mut redis)).await?;
    // A key that expired between SCAN and MGET is a node that just died: left out.
    Ok(values
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect())
}

pub(crate) async fn view(shared: &Shared) -> Result<ClusterView, ClusterError> {
    let nodes = nodes(shared).await?;
    let mut origins = Vec::new();
    let mut redis = shared.redis.clone();
    for name in scan(shared, keys::ORIGIN_PATTERN).await? {
        let (node, url, idle): (Option<String>, Option<String>, Option<String>) = bounded(
            redis::cmd("HMGET")
                .arg(&name)
                .arg("node")
                .arg("url")
                .arg("idle")
                .query_async(&mut redis),
        )
        .await?;
        let (Some(node), Some(url)) = (node, url) else {
            continue;
        };
        origins.push(OriginView {
            stream: name
                .strip_prefix("livegate:origin:")
                .unwrap_or(&name)
                .to_owned(),
            node,
            url,
            idle: idle.as_deref() == Some("1"),
        });
    }
    Ok(ClusterView {
        this_node: shared.node_id.clone(),
        nodes,
        origins,
    })
}
