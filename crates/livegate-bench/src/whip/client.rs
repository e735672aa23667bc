//! Making a publish: offer, POST, answer (RFC 9725 §4.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use reqwest::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::peer::{Observed, Peer};
use super::publisher::{PublishParts, WhipPublisher};
use super::{OfferShape, WhipClientError, WhipOptions};
use crate::whep::{http, sdp};

/// go-livepeer's header naming where the published stream plays.
const PLAYBACK_URL: HeaderName = HeaderName::from_static("livepeer-playback-url");

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
        let endpoint = Url::parse(url).map_err(|e| WhipClientError::Url(format!("{url}: {e}")))?;
        if endpoint.scheme() != "http" {
            return Err(WhipClientError::Url(format!(
                "{url}: only http:// is supported (built without TLS)"
            )));
        }
        let bind = bind_addr(&endpoint, options).await?;
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

        let mut request = self
            .http
            .post(endpoint.clone())
            .header(CONTENT_TYPE, "application/sdp")
            .timeout(options.request_timeout)
            .body(body);
        if let Some(token) = &options.bearer_token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let posted_at = Instant::now();
        let response = request.send().await?;
        let answered_after = posted_at.elapsed();

        let status = response.status();
        let headers = response.headers().clone();
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let answer_sdp = response.text().await?;
        if status != StatusCode::CREATED {
            return Err(WhipClientError::Status {
                status: status.as_u16(),
                reason: http::reason_line(&answer_sdp),
                retry_after: header(RETRY_AFTER),
            });
        }
        let location = header(LOCATION)
            .ok_or_else(|| WhipClientError::Protocol("no Location header".to_owned()))?;
        let resource_url =
            http::resolve_location(&endpoint, &location).map_err(WhipClientError::Protocol)?;
        if !answer_sdp.starts_with("v=0") {
            return Err(WhipClientError::Protocol(format!(
                "the body is not an SDP answer: {}",
                http::reason_line(&answer_sdp)
            )));
        }

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
            location,
            resource_url,
            etag: header(ETAG),
            playback_url: header(PLAYBACK_URL),
            link_headers: headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            offer_sdp,
            answer_sdp,
            posted_at,
            answered_after,
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

/// The publisher's socket address, a concrete IP because it is also the host candidate:
/// loopback (of the URL's family) when `loopback_only`, otherwise the address this host would
/// use to reach the URL's host (a connected UDP socket sends nothing).
async fn bind_addr(endpoint: &Url, options: &WhipOptions) -> Result<SocketAddr, WhipClientError> {
    if let Some(bind) = options.udp_bind {
        return Ok(bind);
    }
    let host = endpoint
        .host_str()
        .ok_or_else(|| WhipClientError::Url(format!("{endpoint}: no host")))?;
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if options.loopback_only {
        let ip = match literal {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        return Ok(SocketAddr::new(ip, 0));
    }
    let port = endpoint.port_or_known_default().unwrap_or(80);
    let target = match literal {
        Some(ip) => SocketAddr::new(ip, port),
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| WhipClientError::Url(format!("{endpoint}: {e}")))?
            .next()
            .ok_or_else(|| WhipClientError::Url(format!("{endpoint}: no address")))?,
    };
    let unspecified: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .and_then(|socket| socket.connect(target).map(|()| socket))
        .and_then(|socket| socket.local_addr())
        .map_err(|e| WhipClientError::Url(format!("{endpoint}: no route: {e}")))?;
    Ok(SocketAddr::new(probe.ip(), 0))
}
