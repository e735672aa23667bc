//! The Redis key names (the table is in the crate docs).

use livegate_media::StreamKey;

/// Every key of a fleet starts with this, so one Redis may serve other applications too.
pub(crate) const PREFIX: &str = "livegate:";

/// A node's heartbeat.
pub(crate) fn node(node_id: &str) -> String {
    format!("{PREFIX}node:{node_id}")
}

/// Pattern of every node's heartbeat, for `SCAN`.
pub(crate) const NODE_PATTERN: &str = "livegate:node:*";

/// A stream's origin claim.
pub(crate) fn origin(stream: &StreamKey) -> String {
    format!("{PREFIX}origin:{stream}")
}

/// Pattern of every origin claim, for `SCAN`.
pub(crate) const ORIGIN_PATTERN: &str = "livegate:origin:*";
