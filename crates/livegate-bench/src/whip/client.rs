//! Making a publish: offer, POST, answer (RFC 9725 §4.2).

use super::peer::{Observed, Peer};
use super::publisher::WhipPublisher;
use super::{OfferShape, WhipClientError, WhipOptions};
use crate::error::Side;
use crate::resource::{OfferRequest, Resource};
use crate::{endpoint, sdp};

/// Starts WHIP publishes. Cheap to clone; clones share one HTTP connection pool.
#[derive(Clone, Default)]
pub struct WhipClient {
    http: reqwest::Client,
}

impl WhipClient {
    /// A client with its own connection pool.
    pub fn new() -> WhipClient {
        WhipClient::default()
    }

    /// Offers to publish to the WHIP endpoint `url` and applies the answer.
    ///
    /// The offer is sendonly and complete (our one host candidate and end-of-candidates;
    /// none at all with [`OfferShape::Obs`]); it is POSTed as `application/sdp`, and on
    /// `201 Created` the answer is applied and the publisher returned, still connecting. Once
    /// connected it plays [`WhipOptions::media`] in real time. Any other status is
    /// [`WhipClientError::Status`] with the gateway's reason.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use livegate_bench::whip::{MediaFile, WhipClient, WhipOptions};
    /// let options = WhipOptions {
    ///     media: Some(MediaFile::load("tests/fixtures/h264-baseline-opus.ts").await?),
    ///     ..WhipOptions::default()
    /// };
    /// let publisher = WhipClient::new()
    ///     .publish("http://127.0.0.1:8935/live/cam/whip", &options)
    ///     .await?;
    /// publisher.wait_connected(Duration::from_secs(10)).await?;
    /// publisher.wait_video_frames_sent(60, Duration::from_secs(10)).await?;
    /// assert_eq!(publisher.delete().await?, 200);
    /// # Ok(()) }
    /// ```
    pub async fn publish(
        &self,
        url: &str,
        options: &WhipOptions,
    ) -> Result<WhipPublisher, WhipClientError> {
        let (endpoint, bind) =
            endpoint::resolve(url, options.udp_bind, options.loopback_only, Side::Whip).await?;
        let mut peer = Peer::bind(bind, options).await?;
        let offer_sdp = peer.offer()?;
        let offer_sdp = match options.shape {
            OfferShape::Obs => sdp::without_candidates(&offer_sdp),
            OfferShape::Standard => offer_sdp,
        };
        let request = OfferRequest {
            transform: options.offer_transform.as_ref(),
            bearer_token: options.bearer_token.as_deref(),
            timeout: options.request_timeout,
        };
        let resource = Resource::create(&self.http, &endpoint, offer_sdp, request).await?;

        let (applied, _) = sdp::answer_to_apply(resource.answer_sdp(), options.loopback_only);
        peer.apply_answer(applied)?;
        let observed = Observed::new();
        let handle = peer.spawn(
            observed.clone(),
            options.media.clone(),
            options.passes,
            options.sent_video_tap.clone(),
        );
        Ok(WhipPublisher::new(resource, handle, observed))
    }
}
