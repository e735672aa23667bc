//! Settings of the WHEP endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use livegate_wish::BearerToken;

use crate::remote::RemoteStreams;

/// How the WHEP endpoint admits and serves viewers.
#[derive(Debug, Clone)]
pub struct WhepConfig {
    /// How long a POST waits for the stream's output (`LIVE_AI_WHEP_WAIT_TIMEOUT`): a player
    /// may ask before the publisher has even connected.
    pub wait_timeout: Duration,
    /// Viewers per stream, pending requests included (`LIVE_AI_WHEP_MAX_SESSIONS`); `None`
    /// is unlimited.
    pub max_sessions_per_stream: Option<usize>,
    /// Requests waiting for output at once, over all streams. Each holds little, but
    /// unbounded waits are how a flood of POSTs for keys nobody publishes exhausts memory.
    pub max_pending: usize,
    /// Requests waiting for output at once from one client address
    /// (`LIVE_AI_WHEP_MAX_PENDING_PER_IP`), then 429; `None` is unlimited (up to
    /// `max_pending`).
    pub max_pending_per_ip: Option<usize>,
    /// `Retry-After` of a 409 (no output in time) or 503.
    pub retry_after: Duration,
    /// `Authorization: Bearer` required on every WHEP request when set.
    pub token: Option<BearerToken>,
    /// `Link` header values of the ICE servers clients should use (RFC 9725 §4.4).
    pub ice_server_links: Vec<HeaderValue>,
    /// Interval of the opt-in `server_metrics` data-channel messages.
    pub server_metrics_interval: Duration,
    /// Streams published on other gateways of a fleet ([`crate::remote`]); `None`:
    /// standalone, every stream is local.
    pub remote: Option<Arc<dyn RemoteStreams>>,
}

impl Default for WhepConfig {
    fn default() -> Self {
        WhepConfig {
            wait_timeout: Duration::from_secs(30),
            max_sessions_per_stream: None,
            max_pending: 4096,
            max_pending_per_ip: None,
            retry_after: Duration::from_secs(5),
            token: None,
            ice_server_links: Vec::new(),
            server_metrics_interval: Duration::from_secs(1),
            remote: None,
        }
    }
}
