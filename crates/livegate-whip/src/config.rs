//! Settings of the WHIP endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use livegate_pipeline::WorkerContext;
use livegate_whep::StreamOutputs;
use livegate_wish::BearerToken;

use crate::auth::AuthWebhook;
use crate::origin::OriginClaims;
use crate::IngestConfig;

/// What a second publisher of a live stream key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// 409: the first publisher keeps the stream.
    #[default]
    Reject,
    /// The new publisher takes over: the old session is closed and the stream goes on with
    /// the new input, as after a republish.
    Replace,
}

impl std::str::FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(OnConflict::Reject),
            "replace" => Ok(OnConflict::Replace),
            other => Err(format!("expected reject or replace; got {other:?}")),
        }
    }
}

impl std::fmt::Display for OnConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnConflict::Reject => "reject",
            OnConflict::Replace => "replace",
        })
    }
}

/// How the WHIP endpoint admits and serves publishers.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// Streams published at once (`LIVE_AI_MAX_STREAMS`); `None` is unlimited.
    pub max_streams: Option<usize>,
    pub on_conflict: OnConflict,
    /// How long a stream outlives its publisher, waiting for it to come back
    /// (`LIVE_AI_REPUBLISH_GRACE`): WHEP sessions see a freeze, not an end.
    pub republish_grace: Duration,
    /// A connected publisher that sends no media for this long is gone.
    pub media_timeout: Duration,
    /// `Authorization: Bearer` required on every WHIP request when set.
    pub token: Option<BearerToken>,
    /// Asked before each publisher is answered (`LIVE_AI_AUTH_WEBHOOK_URL`).
    pub auth_webhook: Option<AuthWebhook>,
    /// `Link` header values of the ICE servers (RFC 9725 §4.4).
    pub ice_server_links: Vec<HeaderValue>,
    /// `Retry-After` of a 503.
    pub retry_after: Duration,
    /// How publishers' media becomes MPEG-TS.
    pub ingest: IngestConfig,
    /// What the streams' pipeline workers share (supervision, the upstream connector).
    pub workers: WorkerContext,
    /// Where a publisher whose offer is `sendrecv` gets its stream's output from, sent back
    /// on its own peer connection ([`crate::echo`]): the gateway's WHEP outputs, so a stream
    /// has one output reader. `None`: every publisher is answered `recvonly`.
    pub echo: Option<StreamOutputs>,
    /// Makes this gateway a stream's origin in a fleet ([`crate::origin`]), asked before a
    /// key is reserved; `None`: standalone.
    pub origin: Option<Arc<dyn OriginClaims>>,
}

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            max_streams: None,
            on_conflict: OnConflict::Reject,
            republish_grace: Duration::from_secs(10),
            media_timeout: Duration::from_secs(10),
            token: None,
            auth_webhook: None,
            ice_server_links: Vec::new(),
            retry_after: Duration::from_secs(5),
            ingest: IngestConfig::default(),
            workers: WorkerContext::default(),
            echo: None,
            origin: None,
        }
    }
}
