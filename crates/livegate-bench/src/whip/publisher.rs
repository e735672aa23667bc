//! A running publish: its resource, what it sent, and its end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::peer::{Observed, PublisherHandle, SentStats};
use super::WhipClientError;
use crate::error::Side;
use crate::resource::Resource;

/// One publisher: a peer connection sending a file to a WHIP session, and its resource URL.
///
/// The peer connection runs on its own task (see the `peer` module) until it ends or the
/// publisher is closed or dropped. Methods take `&self`; share it as `Arc<WhipPublisher>` to
/// wait from several tasks. Dropping it closes the peer connection gracefully (DTLS
/// close_notify) without a DELETE; [`WhipPublisher::close`] vanishes without even that.
pub struct WhipPublisher {
    resource: Resource,
    peer: PublisherHandle,
    observed: Arc<Observed>,
}

impl WhipPublisher {
    pub(crate) fn new(
        resource: Resource,
        peer: PublisherHandle,
        observed: Arc<Observed>,
    ) -> WhipPublisher {
        WhipPublisher {
            resource,
            peer,
            observed,
        }
    }

    /// The session resource: `Location`, `ETag`, `Livepeer-Playback-URL` and `Link` headers,
    /// the offer and the answer, the POST's time (the origin of every `Duration` reported)
    /// and how long the 201 took.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// What was sent so far.
    pub fn stats(&self) -> SentStats {
        *self.observed.sent.lock()
    }

    /// Since the POST, when the peer connection first reached `connected`.
    pub fn connected_after(&self) -> Option<Duration> {
        self.observed
            .lifecycle
            .connected_after(self.resource.posted_at())
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

    /// Stops the media, then sends `DELETE` to the session resource (RFC 9725 §4.2; at most
    /// 10 s) and returns the status, whatever it is: what OBS does when its output stops. The local
    /// peer connection stays open, so the gateway's side of the teardown can be observed with
    /// [`WhipPublisher::wait_closed`].
    pub async fn delete(&self) -> Result<u16, WhipClientError> {
        self.peer.stop_media().await;
        self.resource.delete().await
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
