//! Why cluster mode could not start or a Redis call failed.

/// Errors of [`crate::Cluster`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Cluster mode exposes the internal endpoint, which must not be open to anyone.
    #[error(
        "LIVE_AI_CLUSTER_SECRET is empty: cluster mode (LIVE_AI_REDIS_URL) needs a shared secret \
         for the internal endpoint the nodes pull streams from"
    )]
    NoSecret,
    #[error("LIVE_AI_NODE_URL: expected http://host:port that other nodes can reach; got {0:?}")]
    BadNodeUrl(String),
    #[error("LIVE_AI_REDIS_URL: {0}")]
    BadRedisUrl(String),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("registering cluster metrics: {0}")]
    Metrics(String),
    /// Redis refused, is unreachable, or did not answer in time.
    #[error("Redis: {0}")]
    Redis(String),
}

impl From<prometheus::Error> for ClusterError {
    fn from(e: prometheus::Error) -> ClusterError {
        ClusterError::Metrics(e.to_string())
    }
}
