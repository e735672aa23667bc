//! The seam through which a gateway of a fleet plays a stream published on another one. A
//! standalone gateway has no [`RemoteStreams`] (`WhepConfig::remote` is `None`) and nothing
//! here runs; `livegate-cluster` implements it.
//!
//! Contract, as [`crate::WhepServer`] uses it: every POST asks [`RemoteStreams::attach`]
//! before waiting for the stream's output. The answer is one of
//!
//! - [`Attachment::Local`]: wait for the stream in the local registry as a standalone gateway
//!   does (it is published here, or nowhere yet);
//! - [`Attachment::Pulled`]: the implementation made (or shares) a local stream fed from the
//!   origin; the [`RemoteLease`] is held by the viewer's session, and when the last lease of
//!   a stream drops the implementation stops feeding it;
//! - [`Attachment::Redirect`]: answer 307 to the given WHEP URL instead (draft-ietf-wish-whep
//!   allows redirects on the endpoint).

use std::future::Future;
use std::pin::Pin;

use livegate_media::StreamKey;
use tokio::time::Instant;

/// Where a viewer's stream comes from.
pub enum Attachment {
    Local,
    Pulled(RemoteLease),
    Redirect(String),
}

/// Keeps a remote stream's local copy alive while held; see the module docs.
pub struct RemoteLease(#[allow(dead_code)] Box<dyn Send + Sync>);

impl RemoteLease {
    pub fn new(inner: impl Send + Sync + 'static) -> RemoteLease {
        RemoteLease(Box::new(inner))
    }
}

/// The fleet could not be asked where the stream is (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster registry is unavailable: {0}")]
pub struct RemoteUnavailable(pub String);

/// What [`RemoteStreams::attach`] returns (a boxed future, so the trait stays object-safe).
pub type AttachFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Attachment, RemoteUnavailable>> + Send + 'a>>;

/// Finds streams published on other gateways.
pub trait RemoteStreams: Send + Sync + std::fmt::Debug + 'static {
    /// Where `stream` plays from; may wait (for a publisher to appear anywhere) until
    /// `deadline`, then answers [`Attachment::Local`].
    fn attach<'a>(&'a self, stream: &'a StreamKey, deadline: Instant) -> AttachFuture<'a>;
}
