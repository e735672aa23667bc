//! The seam through which gateways of a fleet agree on which one publishes a stream: the
//! stream's *origin*. A standalone gateway has no [`OriginClaims`] (`WhipConfig::origin` is
//! `None`) and nothing here runs; `livegate-cluster` implements it over Redis.
//!
//! Contract, as [`crate::WhipServer`] uses it:
//!
//! - [`OriginClaims::claim`] is awaited before the stream key is reserved locally, so a key
//!   taken on another node is refused (409) before any local state changes. This gateway may
//!   claim a key it already holds (a republish, or a local replacement): that must succeed,
//!   and the local table then decides as it does standalone.
//! - The returned [`OriginClaim`] lives in the stream's slot: dropping it (the stream ended)
//!   gives the key back. While the stream waits out its republish grace the claim is marked
//!   idle, so a publisher coming back on another node may take it over.
//! - When another node takes the key ([`OriginClaim::lost`]), this gateway ends its stream at
//!   once: two origins of one key must not coexist.
//! - When this gateway was already playing the stream from the old origin (an edge), the
//!   claim may hand that local stream over ([`OriginClaim::continuing`]): the publisher then
//!   continues it, and its viewers follow to the new publisher's output as they follow a
//!   worker restart, instead of having their sessions ended.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use livegate_media::registry::Stream;
use livegate_media::StreamKey;
use tokio_util::sync::CancellationToken;

/// Why this gateway may not become a stream's origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another node publishes the stream (409).
    #[error("stream {stream} is published on another gateway ({node})")]
    Taken { stream: StreamKey, node: String },
    /// The shared registry cannot be reached, so uniqueness cannot be guaranteed (503).
    #[error("the cluster registry is unavailable: {0}")]
    Unavailable(String),
}

/// What [`OriginClaims::claim`] returns (a boxed future, so the trait stays object-safe).
pub type ClaimFuture<'a> =
    Pin<Box<dyn Future<Output = Result<OriginClaim, ClaimError>> + Send + 'a>>;

/// Makes this gateway the origin of streams, fleet-wide.
pub trait OriginClaims: Send + Sync + std::fmt::Debug + 'static {
    /// Claims `stream` for this gateway. `replace`: take it from another node's live
    /// publisher (`LIVE_AI_WHIP_ON_CONFLICT=replace`) instead of failing with
    /// [`ClaimError::Taken`].
    fn claim<'a>(&'a self, stream: &'a StreamKey, replace: bool) -> ClaimFuture<'a>;
}

/// What the implementation keeps per held claim; dropping it releases the claim.
pub trait ClaimGuard: Send + Sync + 'static {
    /// The stream's publisher left (`true`: another node may take the stream) or came back.
    fn set_idle(&self, idle: bool);
}

/// A held claim: this gateway is the stream's origin until it is dropped or lost.
pub struct OriginClaim {
    guard: Box<dyn ClaimGuard>,
    lost: CancellationToken,
    continues: Option<Arc<Stream>>,
}

impl OriginClaim {
    /// `lost` is cancelled by the implementation when another node took the stream.
    pub fn new(guard: Box<dyn ClaimGuard>, lost: CancellationToken) -> OriginClaim {
        OriginClaim {
            guard,
            lost,
            continues: None,
        }
    }

    /// Hands over `stream`, the registered local stream of the key that this gateway served
    /// until now from another origin, for the new publisher to continue.
    pub fn continuing(mut self, stream: Arc<Stream>) -> OriginClaim {
        self.continues = Some(stream);
        self
    }

    /// The stream handed over with the claim, if any (taken once).
    pub fn take_continued(&mut self) -> Option<Arc<Stream>> {
        self.continues.take()
    }

    pub fn set_idle(&self, idle: bool) {
        self.guard.set_idle(idle);
    }

    /// Cancelled when another node took the stream over.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }
}

impl std::fmt::Debug for OriginClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClaim")
            .field("lost", &self.lost.is_cancelled())
            .field("continues", &self.continues.as_ref().map(|s| s.key()))
            .finish_non_exhaustive()
    }
}
