//! The `whip:<url>` pipeline: the gateway publishes each stream to an upstream realtime AI
//! service as a WHIP client and takes the processed media back on the same peer connection.
//!
//! This crate only names the pipeline and the seam: the worker itself needs WebRTC, the WHIP
//! ingest and the WHEP packetizer, which sit beside or above this crate in the data flow, so
//! it lives in its own crate (`livegate-upstream`) and is handed in by the binary as an
//! [`UpstreamConnector`] in the [`WorkerContext`](crate::WorkerContext).

use std::fmt;
use std::sync::Arc;

use crate::job::WorkerJob;

/// Where the upstream service takes WHIP offers. `Debug` and `Display` mask credentials in
/// the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    url: String,
}

/// A `whip:` URL that cannot be an upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamSpecError {
    /// Not an absolute `http://` or `https://` URL with a host.
    #[error("whip: expected an http:// or https:// URL with a host; got {0:?}")]
    NotHttp(String),
}

impl UpstreamSpec {
    /// Reads the URL after `whip:`.
    ///
    /// ```
    /// use livegate_pipeline::upstream::UpstreamSpec;
    /// let spec = UpstreamSpec::parse("http://127.0.0.1:9000/live/{stream}/whip")?;
    /// assert_eq!(spec.url_for("cam1"), "http://127.0.0.1:9000/live/cam1/whip");
    /// # Ok::<(), livegate_pipeline::upstream::UpstreamSpecError>(())
    /// ```
    pub fn parse(url: &str) -> Result<UpstreamSpec, UpstreamSpecError> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(UpstreamSpec {
                url: url.to_owned(),
            }),
            _ => Err(UpstreamSpecError::NotHttp(url.to_owned())),
        }
    }

    /// The URL as configured, `{stream}` included if it was there.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The WHIP endpoint for `stream`: `{stream}` in the configured URL is replaced by the
    /// key, so one upstream can tell streams apart by path.
    pub fn url_for(&self, stream: &str) -> String {
        self.url.replace("{stream}", stream)
    }
}

impl fmt::Debug for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UpstreamSpec")
            .field(&redact_userinfo(&self.url))
            .finish()
    }
}

impl fmt::Display for UpstreamSpec {
    /// The URL with any `user:password@` masked: what the configuration logs and prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_userinfo(&self.url))
    }
}

/// `url` with the userinfo of its authority (`user:password@`) replaced by `***@`, so a
/// credential written into a pipeline URL never reaches a log.
///
/// ```
/// use livegate_pipeline::upstream::redact_userinfo;
/// assert_eq!(redact_userinfo("https://u:p@ai.example/whip"), "https://***@ai.example/whip");
/// assert_eq!(redact_userinfo("http://127.0.0.1:9/whip?x=a@b"), "http://127.0.0.1:9/whip?x=a@b");
/// ```
pub fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &url[scheme_end + at..]).into(),
        None => url.into(),
    }
}

/// Starts upstream workers. Implemented by `livegate-upstream`.
///
/// Contract: [`attach`](UpstreamConnector::attach) returns at once (the publisher's answer
/// must not wait for the upstream); the worker connects in the background, installs each
/// connection's media as a new output generation of `job.stream`, and ends by itself when
/// `job.input` or the stream closes.
pub trait UpstreamConnector: Send + Sync + fmt::Debug {
    fn attach(&self, spec: &UpstreamSpec, job: WorkerJob);
}

/// Shared, so one connector serves every stream.
pub type SharedUpstreamConnector = Arc<dyn UpstreamConnector>;
