//! A running publish: its resource, what it sent, and its end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use tokio::sync::watch;

use super::peer::{Observed, PublisherHandle, SentStats};
use super::WhipClientError;
use crate::error::Side;
use crate::http;

/// What the 201 response and the negotiation produced.
pub(crate) struct PublishParts {
    pub(crate) location: String,
    pub(crate) resource_url: Url,
    pub(crate) etag: Option<String>,
    pub(crate) playback_url: Option<String>,
    pub(crate) link_headers: Vec<String>,
    pub(crate) offer_sdp: String,
    pub(crate) answer_sdp: String,
    pub(crate) posted_at: Instant,
    pub(crate) answered_after: Duration,
}

/// One publisher: a peer connection sending a file to a WHIP session, and its resource URL.
///
/// The peer connection runs on its own task (see the `peer` module) until it ends or the
/// publisher is closed or dropped. Methods take `&self`; share it as `Arc<WhipPublisher>` to
/// wait from several tasks. Dropping it closes the peer connection gracefully (DTLS
/// close_notify) without a DELETE; [`WhipPublisher::close`] vanishes without even that.
pub struct WhipPublisher {
    parts: PublishParts,
    peer: PublisherHandle,
    observed: Arc<Observed>,
    http: reqwest::Client,
    bearer_token: Option<String>,
}

impl WhipPublisher {
    pub(crate) fn new(
        parts: PublishParts,
        peer: PublisherHandle,
        observed: Arc<Observed>,
        http: reqwest::Client,
        bearer_token: Option<String>,
    ) -> WhipPublisher {
        WhipPublisher {
            parts,
            peer,
            observed,
            http,
            bearer_token,
        }
    }

    /// The `Location` header exactly as sent (usually relative, `/live/{stream}/whip/{id}`).
    pub fn location(&self) -> &str {
        &self.parts.location
    }

    /// The session resource's absolute URL (`Location` resolved against the endpoint).
    pub fn resource_url(&self) -> &str {
        self.parts.resource_url.as_str()
    }

    /// The `ETag` header of the 201 (RFC 9725 §4.3.1 uses it for ICE restarts).
    pub fn etag(&self) -> Option<&str> {
        self.parts.etag.as_deref()
    }

    /// The `Livepeer-Playback-URL` header of the 201: where the stream plays over WHEP.
    pub fn playback_url(&self) -> Option<&str> {
        self.parts.playback_url.as_deref()
    }

    /// Every `Link` header of the 201, each as sent (ICE servers, RFC 9725 §4.4).
    pub fn link_headers(&self) -> &[String] {
        &self.parts.link_headers
    }

    /// The SDP answer as received (before any loopback-only candidate filtering).
    pub fn answer_sdp(&self) -> &str {
        &self.parts.answer_sdp
    }

    /// The SDP offer this publisher made (before [`crate::whip::WhipOptions::offer_transform`],
    /// after the candidates an [`crate::whip::OfferShape::Obs`] offer drops).
    pub fn offer_sdp(&self) -> &str {
        &self.parts.offer_sdp
    }

    /// Taken just before the POST was sent: the origin of every `Duration` reported.
    pub fn posted_at(&self) -> Instant {
        self.parts.posted_at
    }

    /// From the POST to the `201 Created` response's headers.
    pub fn answered_after(&self) -> Duration {
        self.parts.answered_after
    }

    /// What was sent so far.
    pub fn stats(&self) -> SentStats {
        *self.observed.sent.lock()
    }

    /// Since the POST, when the peer connection first reached `connected`.
    pub fn connected_after(&self) -> Option<Duration> {
        self.observed
            .lifecycle
            .connected_after(self.parts.posted_at)
    }

    /// Waits until the peer connection is connected (ICE and DTLS up; media starts then);
    /// returns how long that took since the POST.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Duration, WhipClientError> {
        self.observed
            .lifecycle
            .wait_connected(timeout, Side::Whip, |state| {
                format!("the connection (still {state})")
            })
            .await?;
        Ok(self.connected_after().unwrap_or_default())
    }

    /// Waits until at least `n` video frames were sent (audio packets for a publisher
    /// without video).
    pub async fn wait_video_frames_sent(
        &self,
        n: u64,
        timeout: Duration,
    ) -> Result<(), WhipClientError> {
        let what = format!("{n} frames sent");
        self.wait_until(&self.observed.progress, |sent| *sent >= n, what, timeout)
            .await
    }

    /// Waits until every pass of [`crate::whip::WhipOptions::passes`] was sent.
    pub async fn wait_media_finished(&self, timeout: Duration) -> Result<(), WhipClientError> {
        let what = "the last pass over the file to be sent".to_owned();
        self.wait_until(&self.observed.media_finished, |done| *done, what, timeout)
            .await
    }

    async fn wait_until<T>(
        &self,
        watched: &watch::Sender<T>,
        reached: impl FnMut(&T) -> bool,
        what: String,
        timeout: Duration,
    ) -> Result<(), WhipClientError> {
        let waited = self
            .observed
            .lifecycle
            .wait_unless_ended(watched, reached, timeout)
            .await;
        let progress = *self.observed.progress.borrow();
        waited.map_err(|unmet| {
            unmet.into_error(
                Side::Whip,
                format!("{what} ({progress} frames sent)"),
                timeout,
            )
        })
    }

    /// Waits until the publish is over from the network's side: the peer connection failed
    /// or closed, or the gateway's DTLS close_notify arrived (how livegate ends a session it
    /// closes). Returns why, e.g. `"closed by the gateway (DTLS close_notify)"`.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<&'static str, WhipClientError> {
        self.observed
            .lifecycle
            .wait_closed(timeout, Side::Whip)
            .await
    }

    /// Whether the publish is over (see [`WhipPublisher::wait_closed`]), and why.
    pub fn closed_reason(&self) -> Option<&'static str> {
        self.observed.lifecycle.ended()
    }

    /// Stops the media; the connection stays up (a publisher gone quiet).
    pub async fn stop_media(&self) {
        self.peer.stop_media().await;
    }

    /// Stops the media, then sends `DELETE` to the session resource (RFC 9725 §4.2) and
    /// returns the status, whatever it is: what OBS does when its output stops. The local
    /// peer connection stays open, so the gateway's side of the teardown can be observed with
    /// [`WhipPublisher::wait_closed`].
    pub async fn delete(&self) -> Result<u16, WhipClientError> {
        self.peer.stop_media().await;
        // No limit of its own, unlike a viewer's DELETE: a publisher's is bounded only by
        // the caller (the load run's watchdog).
        http::delete_resource(
            &self.http,
            &self.parts.resource_url,
            self.bearer_token.as_deref(),
            None,
        )
        .await
    }

    /// Vanishes: the loop ends and the socket is dropped without DTLS close_notify or any
    /// HTTP request, as a publisher whose machine lost its network. The gateway can only
    /// notice through ICE consent failure or its media timeout.
    pub async fn close(&self) {
        self.peer.vanish().await;
    }

    /// Closes the peer connection politely (DTLS close_notify), without a DELETE.
    pub async fn disconnect(&self) {
        self.peer.close().await;
    }
}
