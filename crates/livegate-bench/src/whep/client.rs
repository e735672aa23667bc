//! Making a session: offer, POST, answer (draft-ietf-wish-whep §4.1, RFC 9725 §4.2).

use super::peer::{Observed, Peer};
use super::session::{SessionParts, WhepSession};
use super::{WhepClientError, WhepOptions};
use crate::error::Side;
use crate::{endpoint, http, sdp};

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
        let endpoint = endpoint::parse(url, Side::Whep)?;
        let bind = endpoint::bind_addr(
            &endpoint,
            options.udp_bind,
            options.loopback_only,
            Side::Whep,
        )
        .await?;
        let mut peer = Peer::bind(bind, options.ice_check_interval).await?;
        let offer_sdp = peer.offer(options)?;
        let offer_sdp = if options.strip_candidates {
            sdp::without_candidates(&offer_sdp)
        } else {
            offer_sdp
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

        let (applied, removed_candidates) = if options.loopback_only {
            sdp::loopback_candidates_only(&answer_sdp)
        } else {
            (answer_sdp.clone(), 0)
        };
        peer.apply_answer(applied)?;
        let (observed, messages) = Observed::new(options.frame_log_limit);
        let handle = peer.spawn(observed.clone(), options.video_tap.clone());

        let parts = SessionParts {
            location: created.location,
            resource_url: created.resource_url,
            etag: created.etag,
            link_headers: created.link_headers,
            sends_video: sdp::answer_sends(&answer_sdp, "video"),
            offer_sdp,
            answer_sdp,
            removed_candidates,
            posted_at: created.posted_at,
        };
        Ok(WhepSession::new(
            parts,
            handle,
            observed,
            messages,
            self.http.clone(),
            options.bearer_token.clone(),
        ))
    }
}
