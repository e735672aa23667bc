//! Making a publish: offer, POST, answer (RFC 9725 §4.2).

use super::peer::{Observed, Peer};
use super::publisher::{PublishParts, WhipPublisher};
use super::{OfferShape, WhipClientError, WhipOptions};
use crate::error::Side;
use crate::{endpoint, http, sdp};

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
        let endpoint = endpoint::parse(url, Side::Whip)?;
        let bind = endpoint::bind_addr(
            &endpoint,
            options.udp_bind,
            options.loopback_only,
            Side::Whip,
        )
        .await?;
        let mut peer = Peer::bind(bind, options).await?;
        let offer_sdp = peer.offer()?;
        let offer_sdp = match options.shape {
            OfferShape::Obs => sdp::without_candidates(&offer_sdp),
            OfferShape::Standard => offer_sdp,
        };
        let body = match &options.offer_transform {
            Some(transform) => transform(offer_sdp.clone()),
            None => offer_sdp.clone(),
        };
        let created = http::post_offer(
            &self.http,
            &endpoint,
            body,
            options.bearer_token.as_deref(),
            options.request_timeout,
        )
        .await?;
        let answer_sdp = created.answer_sdp;

        let applied = if options.loopback_only {
            sdp::loopback_candidates_only(&answer_sdp).0
        } else {
            answer_sdp.clone()
        };
        peer.apply_answer(applied)?;
        let observed = Observed::new();
        let handle = peer.spawn(
            observed.clone(),
            options.media.clone(),
            options.passes,
            options.sent_video_tap.clone(),
        );
        let parts = PublishParts {
            location: created.location,
            resource_url: created.resource_url,
            etag: created.etag,
            playback_url: created.playback_url,
            link_headers: created.link_headers,
            offer_sdp,
            answer_sdp,
            posted_at: created.posted_at,
            answered_after: created.answered_after,
        };
        Ok(WhipPublisher::new(
            parts,
            handle,
            observed,
            self.http.clone(),
            options.bearer_token.clone(),
        ))
    }
}
