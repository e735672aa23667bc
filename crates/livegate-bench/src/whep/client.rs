//! Making a session: offer, POST, answer (draft-ietf-wish-whep §4.1, RFC 9725 §4.2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::peer::{self, Observed};
use super::session::{SessionParts, WhepSession};
use super::{http, sdp, WhepClientError, WhepOptions};

/// Candidate gathering on the viewer's own sockets is local work; this bounds a stuck one.
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The offer is complete (gathering finished, candidates included, no trickle); it is
    /// POSTed as `application/sdp`, and on `201 Created` the answer is applied and the
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
        let (observed, messages) = Observed::new(options.frame_log_limit);
        let pc = peer::build(bind_addr(options), observed.clone()).await?;
        match self.negotiate(&pc, &observed, &endpoint, options).await {
            Ok(parts) => Ok(WhepSession::new(
                parts,
                pc,
                observed,
                messages,
                self.http.clone(),
                options.bearer_token.clone(),
            )),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    async fn negotiate(
        &self,
        pc: &Arc<dyn PeerConnection>,
        observed: &Arc<Observed>,
        endpoint: &Url,
        options: &WhepOptions,
    ) -> Result<SessionParts, WhepClientError> {
        let offer_sdp = make_offer(pc, observed, options).await?;
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
        let body = response.text().await?;
        if status != StatusCode::CREATED {
            return Err(WhepClientError::Status {
                status: status.as_u16(),
                reason: http::reason_line(&body),
                retry_after: header(RETRY_AFTER),
            });
        }
        let location = header(LOCATION)
            .ok_or_else(|| WhepClientError::Protocol("no Location header".to_owned()))?;
        let resource_url =
            http::resolve_location(endpoint, &location).map_err(WhepClientError::Protocol)?;
        if !body.starts_with("v=0") {
            return Err(WhepClientError::Protocol(format!(
                "the body is not an SDP answer: {}",
                http::reason_line(&body)
            )));
        }

        let (applied, removed_candidates) = if options.loopback_only {
            sdp::loopback_candidates_only(&body)
        } else {
            (body.clone(), 0)
        };
        pc.set_remote_description(RTCSessionDescription::answer(applied)?)
            .await?;

        Ok(SessionParts {
            location,
            resource_url,
            etag: header(ETAG),
            link_headers: headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            sends_video: sdp::answer_sends(&body, "video"),
            offer_sdp,
            answer_sdp: body,
            removed_candidates,
            posted_at,
        })
    }
}

/// Recvonly transceivers (and the data channel) in the order the options list them, then
/// the offer once gathering is complete, so it carries every candidate.
async fn make_offer(
    pc: &Arc<dyn PeerConnection>,
    observed: &Arc<Observed>,
    options: &WhepOptions,
) -> Result<String, WhepClientError> {
    let kinds = [
        (options.video, RtpCodecKind::Video),
        (options.audio, RtpCodecKind::Audio),
    ];
    for (_, kind) in kinds.into_iter().filter(|(wanted, _)| *wanted) {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await?;
    }
    if options.data_channel {
        let channel = pc
            .create_data_channel(peer::DATA_CHANNEL_LABEL, None)
            .await?;
        tokio::spawn(peer::receive_messages(channel, observed.clone()));
    }
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    let mut gathered = observed.gathered.subscribe();
    tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done))
        .await
        .map_err(|_| WhepClientError::Timeout {
            what: "ICE candidate gathering".to_owned(),
            timeout: GATHER_TIMEOUT,
        })?
        .map_err(|_| WhepClientError::Protocol("peer connection dropped".to_owned()))?;
    let sdp = pc
        .local_description()
        .await
        .ok_or_else(|| WhepClientError::Protocol("no local description".to_owned()))?
        .sdp;
    Ok(if options.strip_candidates {
        sdp::without_candidates(&sdp)
    } else {
        sdp
    })
}

fn bind_addr(options: &WhepOptions) -> SocketAddr {
    options.udp_bind.unwrap_or_else(|| {
        let ip = if options.loopback_only {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        SocketAddr::new(ip, 0)
    })
}
