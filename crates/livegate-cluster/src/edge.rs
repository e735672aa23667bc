//! Edges: streams this node plays from another node, one pull per stream whatever the number
//! of local viewers.
//!
//! An edge stream is an ordinary stream of the local [`StreamRegistry`](livegate_media::registry::StreamRegistry)
//! whose output the pull task ([`crate::pull`]) writes, so WHEP serves it exactly like a
//! local one. Each viewer holds an [`EdgeLease`]; the first lease starts the pull, the last
//! one dropped stops it and removes the stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use livegate_media::registry::Stream;
use livegate_media::StreamKey;
use livegate_whep::{AttachFuture, Attachment, RemoteLease, RemoteStreams, RemoteUnavailable};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{bounded, keys, pull, ClusterError, Shared};

/// How often a viewer's request asks Redis again while the stream is published nowhere
/// (it may be published on any node before the request's deadline).
const LOOKUP_INTERVAL: Duration = Duration::from_millis(250);

/// One stream pulled to this node.
pub(crate) struct EdgeEntry {
    /// Tells a lease of this pull from one of an earlier pull of the same key.
    id: u64,
    pub(crate) stream: Arc<Stream>,
    leases: usize,
    /// Stops the pull task.
    pub(crate) cancel: CancellationToken,
}

/// Where a stream's origin is, as its claim says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) node: String,
    pub(crate) url: String,
}

/// [`RemoteStreams`] over Redis and HTTP pulls.
pub(crate) struct Edges(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Edges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edges")
            .field("node", &self.0.node_id)
            .finish()
    }
}

impl RemoteStreams for Edges {
    fn attach<'a>(&'a self, stream: &'a StreamKey, deadline: Instant) -> AttachFuture<'a> {
        Box::pin(attach(&self.0, stream, deadline))
    }
}

async fn attach(
    shared: &Arc<Shared>,
    stream: &StreamKey,
    deadline: Instant,
) -> Result<Attachment, RemoteUnavailable> {
    loop {
        // What this node already has needs no Redis: an outage does not stop it.
        if let Some(lease) = join(shared, stream) {
            return Ok(Attachment::Pulled(RemoteLease::new(lease)));
        }
        if shared.registry.get(stream).is_some_and(|s| !s.is_closed()) {
            return Ok(Attachment::Local);
        }
        match lookup(shared, stream).await {
            Err(e) => return Err(RemoteUnavailable(e.to_string())),
            Ok(Some(origin)) if origin.node == shared.node_id => return Ok(Attachment::Local),
            Ok(Some(origin)) if shared.config.redirect => {
                return Ok(Attachment::Redirect(format!(
                    "{}/live/{stream}/whep",
                    origin.url
                )))
            }
            Ok(Some(origin)) => {
                return Ok(match start(shared, stream, origin) {
                    Some(lease) => Attachment::Pulled(RemoteLease::new(lease)),
                    // A local publisher got the key meanwhile.
                    None => Attachment::Local,
                });
            }
            Ok(None) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            // Published nowhere in time: WHEP's own wait answers 409.
            return Ok(Attachment::Local);
        }
        tokio::time::sleep_until(deadline.min(now + LOOKUP_INTERVAL)).await;
    }
}

/// The origin of `stream` according to Redis, if it is claimed.
pub(crate) async fn lookup(
    shared: &Shared,
    stream: &StreamKey,
) -> Result<Option<Origin>, ClusterError> {
    let mut redis = shared.redis.clone();
    let (node, url): (Option<String>, Option<String>) = bounded(
        redis::cmd("HMGET")
            .arg(keys::origin(stream))
            .arg("node")
            .arg("url")
            .query_async(&mut redis),
    )
    .await?;
    Ok(match (node, url) {
        (Some(node), Some(url)) => Some(Origin { node, url }),
        _ => None,
    })
}

/// A lease of a live edge stream of `key`, if this node pulls it.
fn join(shared: &Arc<Shared>, key: &StreamKey) -> Option<EdgeLease> {
    let mut edges = shared.edges.lock();
    let edge = edges.get_mut(key).filter(|e| !e.stream.is_closed())?;
    edge.leases += 1;
    Some(EdgeLease {
        shared: shared.clone(),
        key: key.clone(),
        id: edge.id,
    })
}

/// Starts pulling `key` from `origin` (or joins a pull another request started meanwhile).
/// `None` when a live local stream of the key exists that is not an edge.
fn start(shared: &Arc<Shared>, key: &StreamKey, origin: Origin) -> Option<EdgeLease> {
    let mut edges = shared.edges.lock();
    if let Some(edge) = edges.get_mut(key).filter(|e| !e.stream.is_closed()) {
        edge.leases += 1;
        return Some(EdgeLease {
            shared: shared.clone(),
            key: key.clone(),
            id: edge.id,
        });
    }
    let stream = shared.registry.create(key.clone()).ok()?;
    let id = shared.next_edge_id();
    let cancel = shared.shutdown.child_token();
    edges.insert(
        key.clone(),
        EdgeEntry {
            id,
            stream: stream.clone(),
            leases: 1,
            cancel: cancel.clone(),
        },
    );
    tracing::info!(stream = %key, origin = %origin.url, "edge: pulling the stream from its origin");
    tokio::spawn(pull::run(
        shared.clone(),
        key.clone(),
        stream,
        origin,
        cancel,
    ));
    Some(EdgeLease {
        shared: shared.clone(),
        key: key.clone(),
        id,
    })
}

/// Stops pulling `key` because it is published on this node now, and hands its local stream
/// (still registered, its viewers still attached) to the new publisher, which continues it:
/// the viewers move to the publisher's output as they would to a restarted worker's.
pub(crate) fn hand_over(shared: &Shared, key: &StreamKey) -> Option<Arc<Stream>> {
    let edge = shared.edges.lock().remove(key)?;
    tracing::info!(stream = %key, viewers = edge.leases, "edge: the stream is published here now; the pull stops and the publisher continues it");
    edge.cancel.cancel();
    Some(edge.stream)
}

/// Whether `key` is a stream this node pulls (and so must not serve as an origin).
pub(crate) fn is_edge(shared: &Shared, key: &StreamKey) -> bool {
    shared.edges.lock().contains_key(key)
}

/// The viewers of each edge stream, for the heartbeat.
pub(crate) fn viewers(shared: &Shared) -> BTreeMap<String, usize> {
    shared
        .edges
        .lock()
        .iter()
        .map(|(key, edge)| (key.to_string(), edge.leases))
        .collect()
}

/// A viewer's hold on an edge stream; the last one dropped stops the pull.
pub(crate) struct EdgeLease {
    shared: Arc<Shared>,
    key: StreamKey,
    id: u64,
}

impl Drop for EdgeLease {
    fn drop(&mut self) {
        let ended = {
            let mut edges = self.shared.edges.lock();
            match edges.get_mut(&self.key) {
                Some(edge) if edge.id == self.id => {
                    edge.leases -= 1;
                    if edge.leases == 0 {
                        edges.remove(&self.key)
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        if let Some(edge) = ended {
            tracing::info!(stream = %self.key, "edge: last viewer left; the pull stops");
            edge.cancel.cancel();
            self.shared.registry.remove(&edge.stream);
        }
    }
}
