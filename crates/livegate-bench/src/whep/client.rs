//! Making a session: offer, POST, answer (draft-ietf-wish-whep §4.1, RFC 9725 §4.2).

use super::peer::{Observed, Peer};
use super::session::WhepSession;
use super::{WhepClientError, WhepOptions};
use crate::error::Side;
use crate::resource::{OfferRequest, Resource};
use crate::{endpoint, sdp};

/// Starts WHEP sessions. Cheap to clone; clones share one HTTP connection pool, so a load
/// run's POSTs reuse kept-alive connections instead of opening hundreds.
#[derive(Clone, Default)]
pub struct WhepClient {
    http: reqwest::Client,
}

impl WhepClient {
    /// A client with its own connection pool.
    pub fn new() -> WhepClient {
        WhepClient::default()
    }

    /// Offers to receive from the WHEP endpoint `url` and applies the answer.
    ///
    /// The offer is complete (our one host candidate and end-of-candidates, no trickle); it
    /// is POSTed as `application/sdp`, and on `201 Created` the answer is applied and the
    /// session returned, still connecting: await [`WhepSession::wait_connected`] or a frame
    /// wait. Any other status is [`WhepClientError::Status`] with the gateway's reason.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), livegate_bench::whep::WhepClientError> {
    /// use std::time::Duration;
    /// use livegate_bench::whep::{WhepClient, WhepOptions};
    /// let session = WhepClient::new()
    ///     .play("http://127.0.0.1:8935/live/cam/whep", &WhepOptions::default())
    ///     .await?;
    /// session.wait_video_frames(30, Duration::from_secs(10)).await?;
    /// assert!(session.stats().video.frame_log[0].is_keyframe());
    /// assert_eq!(session.delete().await?, 200);
    /// # Ok(()) }
    /// ```
    pub async fn play(
        &self,
        url: &str,
        options: &WhepOptions,
    ) -> Result<WhepSession, WhepClientError> {
        let (endpoint, bind) =
            endpoint::resolve(url, options.udp_bind, options.loopback_only, Side::Whep).await?;
        let mut peer = Peer::bind(bind, options.ice_check_interval).await?;
        let offer_sdp = peer.offer(options)?;
        let offer_sdp = if options.strip_candidates {
            sdp::without_candidates(&offer_sdp)
        } else {
            offer_sdp
        };
        let request = OfferRequest {
            transform: options.offer_transform.as_ref(),
            bearer_token: options.bearer_token.as_deref(),
            timeout: options.request_timeout,
        };
        let resource = Resource::create(&self.http, &endpoint, offer_sdp, request).await?;

        let (applied, removed_candidates) =
            sdp::answer_to_apply(resource.answer_sdp(), options.loopback_only);
        peer.apply_answer(applied)?;
        let (observed, messages) = Observed::new(options.frame_log_limit);
        let handle = peer.spawn(observed.clone(), options.video_tap.clone());
        let sends_video = sdp::answer_sends(resource.answer_sdp(), "video");
        Ok(WhepSession::new(
            resource,
            handle,
            observed,
            messages,
            sends_video,
            removed_candidates,
        ))
    }
}
