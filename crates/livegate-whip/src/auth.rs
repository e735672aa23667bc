//! The optional auth webhook: asked before a publisher is answered whether it may publish,
//! and with which pipeline.
//!
//! `POST {LIVE_AI_AUTH_WEBHOOK_URL}` with a JSON body:
//!
//! ```json
//! {"stream": "cam", "protocol": "whip", "query": "a=1", "remote_addr": "203.0.113.7:50000",
//!  "user_agent": "OBS-Studio/31"}
//! ```
//!
//! A 2xx reply allows the publish. Its JSON body, if any, may choose the stream's pipeline
//! (`passthrough` or the configured `LIVE_AI_PIPELINE`, nothing else) and parameters, which
//! an `exec` worker gets as `LIVE_AI_PIPELINE_PARAMS`: `{"pipeline": "passthrough",
//! "params": {...}}`. Any other status denies it:
//! the publisher gets 403 with the reply's first line as the reason, and no media path is
//! opened (go-livepeer answers 201 and closes later; we decide first). A webhook that cannot
//! be reached or does not answer in time denies too, with 503: failing open would let anyone
//! publish while the auth service is down.

use std::net::SocketAddr;
use std::time::Duration;

use livegate_media::StreamKey;
use livegate_pipeline::Pipeline;
use serde::{Deserialize, Serialize};

/// How long the webhook may take to answer.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply body read.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What the webhook is asked.
#[derive(Debug, Clone, Serialize)]
pub struct AuthRequest {
    pub stream: String,
    pub protocol: &'static str,
    /// The raw query string of the WHIP request, empty if none.
    pub query: String,
    pub remote_addr: Option<SocketAddr>,
    pub user_agent: Option<String>,
}

impl AuthRequest {
    pub fn whip(stream: &StreamKey) -> AuthRequest {
        AuthRequest {
            stream: stream.to_string(),
            protocol: "whip",
            query: String::new(),
            remote_addr: None,
            user_agent: None,
        }
    }
}

/// What an allowing webhook decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthDecision {
    /// The pipeline for this stream, instead of `LIVE_AI_PIPELINE`.
    pub pipeline: Option<Pipeline>,
    /// Pipeline parameters, passed on to workers that take them.
    pub params: Option<serde_json::Value>,
}

/// Why a publish was not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The webhook answered with a refusal (403 to the publisher).
    #[error("publishing {stream} was refused: {reason}")]
    Denied { stream: String, reason: String },
    /// The webhook could not be asked (503 to the publisher).
    #[error("the auth webhook is unavailable: {0}")]
    Unavailable(String),
    /// The webhook allowed the publish but its reply makes no sense (503: it is the
    /// webhook's bug, and retrying may meet a fixed one).
    #[error("the auth webhook's reply is unusable: {0}")]
    BadReply(String),
}

#[derive(Debug, Default, Deserialize)]
struct Reply {
    pipeline: Option<String>,
    params: Option<serde_json::Value>,
}

/// A configured webhook. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthWebhook {
    url: String,
    client: reqwest::Client,
}

impl AuthWebhook {
    pub fn new(url: impl Into<String>) -> AuthWebhook {
        AuthWebhook {
            url: url.into(),
            client: reqwest::Client::builder()
                .timeout(AUTH_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Asks whether `request` may publish.
    pub async fn check(&self, request: &AuthRequest) -> Result<AuthDecision, AuthError> {
        let response = self
            .client
            .post(&self.url)
            .json(request)
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let body = &body[..body.len().min(MAX_REPLY_BYTES)];
        if !status.is_success() {
            let text = String::from_utf8_lossy(body);
            let first_line = text.lines().next().unwrap_or("").trim();
            let reason = if first_line.is_empty() {
                format!("auth webhook answered {status}")
            } else {
                first_line.chars().take(200).collect()
            };
            return Err(AuthError::Denied {
                stream: request.stream.clone(),
                reason,
            });
        }
        let reply: Reply = if body.iter().all(u8::is_ascii_whitespace) {
            Reply::default()
        } else {
            serde_json::from_slice(body).map_err(|e| AuthError::BadReply(e.to_string()))?
        };
        let pipeline = reply
            .pipeline
            .map(|name| {
                name.parse::<Pipeline>()
                    .map_err(|e| AuthError::BadReply(e.to_string()))
            })
            .transpose()?;
        Ok(AuthDecision {
            pipeline,
            params: reply.params,
        })
    }
}
