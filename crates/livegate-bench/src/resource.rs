//! The session resource a WHIP publish or a WHEP play creates (RFC 9725 §4.2,
//! draft-ietf-wish-whep §4.1): made by POSTing the offer, read from the `201 Created`, ended
//! by a DELETE. A viewer's [`crate::whep::WhepSession`] and a publisher's
//! [`crate::whip::WhipPublisher`] each own one; this is what they have in common, the peer
//! connection being theirs.

use std::time::{Duration, Instant};

use reqwest::Url;

use crate::error::ClientError;
use crate::http::{self, Created};
use crate::whep::OfferTransform;

/// Longest a DELETE may take: a gateway that never answers must not hold a run forever.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an offer's POST is sent with.
pub(crate) struct OfferRequest<'a> {
    /// Rewrites the offer just before it is sent (a test's malformed or odd offers).
    pub(crate) transform: Option<&'a OfferTransform>,
    pub(crate) bearer_token: Option<&'a str>,
    pub(crate) timeout: Duration,
}

/// A session resource, from its `201 Created` on: the headers, the offer and answer, and
/// what its DELETE is sent with. Read it through the session or publisher that owns it.
pub struct Resource {
    created: Created,
    offer_sdp: String,
    http: reqwest::Client,
    bearer_token: Option<String>,
}

impl Resource {
    /// POSTs `offer_sdp` to `endpoint` (as `request.transform` rewrites it) and keeps what
    /// the `201 Created` carried; anything else is an error with the gateway's reason.
    pub(crate) async fn create(
        http: &reqwest::Client,
        endpoint: &Url,
        offer_sdp: String,
        request: OfferRequest<'_>,
    ) -> Result<Resource, ClientError> {
        let body = match request.transform {
            Some(transform) => transform(offer_sdp.clone()),
            None => offer_sdp.clone(),
        };
        let created =
            http::post_offer(http, endpoint, body, request.bearer_token, request.timeout).await?;
        Ok(Resource {
            created,
            offer_sdp,
            http: http.clone(),
            bearer_token: request.bearer_token.map(str::to_owned),
        })
    }

    /// The `Location` header exactly as sent (usually relative,
    /// `/live/{stream}/whep/{id}` or `…/whip/{id}`).
    pub fn location(&self) -> &str {
        &self.created.location
    }

    /// The resource's absolute URL (`Location` resolved against the endpoint).
    pub fn url(&self) -> &str {
        self.created.resource_url.as_str()
    }

    /// The `ETag` header of the 201, if any (RFC 9725 §4.3.1 uses it for ICE restarts).
    pub fn etag(&self) -> Option<&str> {
        self.created.etag.as_deref()
    }

    /// The `Livepeer-Playback-URL` header of a WHIP 201: where the stream plays over WHEP.
    pub fn playback_url(&self) -> Option<&str> {
        self.created.playback_url.as_deref()
    }

    /// Every `Link` header of the 201, each as sent (ICE servers, RFC 9725 §4.4).
    pub fn link_headers(&self) -> &[String] {
        &self.created.link_headers
    }

    /// The SDP offer made (before [`crate::whep::WhepOptions::offer_transform`] or
    /// [`crate::whip::WhipOptions::offer_transform`]; after the candidates an offer without
    /// them dropped).
    pub fn offer_sdp(&self) -> &str {
        &self.offer_sdp
    }

    /// The SDP answer as received (before any loopback-only candidate filtering).
    pub fn answer_sdp(&self) -> &str {
        &self.created.answer_sdp
    }

    /// Taken just before the POST was sent: the origin of every `Duration` its owner reports.
    pub fn posted_at(&self) -> Instant {
        self.created.posted_at
    }

    /// From the POST to the `201 Created` response's headers.
    pub fn answered_after(&self) -> Duration {
        self.created.answered_after
    }

    /// Sends `DELETE` (RFC 9725 §4.2), bounded by [`DELETE_TIMEOUT`], and returns the
    /// status, whatever it is.
    pub(crate) async fn delete(&self) -> Result<u16, ClientError> {
        http::delete_resource(
            &self.http,
            &self.created.resource_url,
            self.bearer_token.as_deref(),
            DELETE_TIMEOUT,
        )
        .await
    }
}
