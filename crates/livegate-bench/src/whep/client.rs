//! Making a session: offer, POST, answer (draft-ietf-wish-whep §4.1, RFC 9725 §4.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::peer::{Observed, Peer};
use super::session::{SessionParts, WhepSession};
use super::{http, sdp, WhepClientError, WhepOptions};

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
        let endpoint = Url::parse(url).map_err(|e| WhepClientError::Url(format!("{url}: {e}")))?;
        if endpoint.scheme() != "http" {
            return Err(WhepClientError::Url(format!(
                "{url}: only http:// is supported (built without TLS)"
            )));
        }
        let bind = bind_addr(&endpoint, options).await?;
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
            return Err(WhepClientError::Status {
                status: status.as_u16(),
                reason: http::reason_line(&answer_sdp),
                retry_after: header(RETRY_AFTER),
            });
        }
        let location = header(LOCATION)
            .ok_or_else(|| WhepClientError::Protocol("no Location header".to_owned()))?;
        let resource_url =
            http::resolve_location(&endpoint, &location).map_err(WhepClientError::Protocol)?;
        if !answer_sdp.starts_with("v=0") {
            return Err(WhepClientError::Protocol(format!(
                "the body is not an SDP answer: {}",
                http::reason_line(&answer_sdp)
            )));
        }

        let (applied, removed_candidates) = if options.loopback_only {
            sdp::loopback_candidates_only(&answer_sdp)
        } else {
            (answer_sdp.clone(), 0)
        };
        peer.apply_answer(applied)?;
        let (observed, messages) = Observed::new(options.frame_log_limit);
        let handle = peer.spawn(observed.clone(), options.video_tap.clone());

        let parts = SessionParts {
            location,
            resource_url,
            etag: header(ETAG),
            link_headers: headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            sends_video: sdp::answer_sends(&answer_sdp, "video"),
            offer_sdp,
            answer_sdp,
            removed_candidates,
            posted_at,
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

/// The viewer's socket address. It must be a concrete IP, because it is also the host
/// candidate: loopback (of the URL's family) when `loopback_only`, otherwise the address
/// this host would use to reach the URL's host (a connected UDP socket sends nothing).
async fn bind_addr(endpoint: &Url, options: &WhepOptions) -> Result<SocketAddr, WhepClientError> {
    if let Some(bind) = options.udp_bind {
        return Ok(bind);
    }
    let host = endpoint
        .host_str()
        .ok_or_else(|| WhepClientError::Url(format!("{endpoint}: no host")))?;
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
            .map_err(|e| WhepClientError::Url(format!("{endpoint}: {e}")))?
            .next()
            .ok_or_else(|| WhepClientError::Url(format!("{endpoint}: no address")))?,
    };
    let unspecified: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .and_then(|socket| socket.connect(target).map(|()| socket))
        .and_then(|socket| socket.local_addr())
        .map_err(|e| WhepClientError::Url(format!("{endpoint}: no route: {e}")))?;
    Ok(SocketAddr::new(probe.ip(), 0))
}
