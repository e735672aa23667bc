//! The HTTP side of WHIP and WHEP, the same exchange for both (RFC 9725 §4.2,
//! draft-ietf-wish-whep §4.1): POST the offer, read the `201 Created`, DELETE the resource;
//! and the pure text of it: resolving `Location`, reading `Retry-After`, a one-line reason.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};

use crate::error::ClientError;

/// go-livepeer's header naming where a published stream plays.
const PLAYBACK_URL: HeaderName = HeaderName::from_static("livepeer-playback-url");

/// What a `201 Created` to an offer carried, checked: a resource to DELETE and an SDP answer.
pub(crate) struct Created {
    /// `Location` exactly as sent.
    pub(crate) location: String,
    /// `Location` resolved against the endpoint.
    pub(crate) resource_url: Url,
    pub(crate) etag: Option<String>,
    /// go-livepeer's `Livepeer-Playback-URL` (a WHIP answer's).
    pub(crate) playback_url: Option<String>,
    /// Every `Link` header, each as sent.
    pub(crate) link_headers: Vec<String>,
    pub(crate) answer_sdp: String,
    /// Taken just before the request was sent.
    pub(crate) posted_at: Instant,
    /// From the POST to the response's headers.
    pub(crate) answered_after: Duration,
}

/// POSTs `offer` as `application/sdp` to `endpoint`; anything but a `201` with a `Location`
/// and an SDP body is an error carrying the gateway's status and reason.
pub(crate) async fn post_offer(
    http: &reqwest::Client,
    endpoint: &Url,
    offer: String,
    bearer_token: Option<&str>,
    timeout: Duration,
) -> Result<Created, ClientError> {
    let request = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/sdp")
        .timeout(timeout)
        .body(offer);
    let posted_at = Instant::now();
    let response = authorized(request, bearer_token).send().await?;
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
        return Err(ClientError::Status {
            status: status.as_u16(),
            reason: reason_line(&answer_sdp),
            retry_after: header(RETRY_AFTER),
        });
    }
    let location =
        header(LOCATION).ok_or_else(|| ClientError::Protocol("no Location header".to_owned()))?;
    let resource_url = resolve_location(endpoint, &location).map_err(ClientError::Protocol)?;
    if !answer_sdp.starts_with("v=0") {
        return Err(ClientError::Protocol(format!(
            "the body is not an SDP answer: {}",
            reason_line(&answer_sdp)
        )));
    }
    Ok(Created {
        location,
        resource_url,
        etag: header(ETAG),
        playback_url: header(PLAYBACK_URL),
        link_headers: headers
            .get_all(LINK)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect(),
        answer_sdp,
        posted_at,
        answered_after,
    })
}

/// Sends `DELETE` to a resource (RFC 9725 §4.2), bounded by `timeout`, and returns the
/// status, whatever it is.
pub(crate) async fn delete_resource(
    http: &reqwest::Client,
    resource_url: &Url,
    bearer_token: Option<&str>,
    timeout: Duration,
) -> Result<u16, ClientError> {
    let request = http.delete(resource_url.clone()).timeout(timeout);
    let response = authorized(request, bearer_token).send().await?;
    let status = response.status().as_u16();
    // Read the body so the connection goes back to the pool.
    let _ = response.bytes().await;
    Ok(status)
}

/// `Authorization: Bearer …` (RFC 9725 §4.5) when there is a token.
fn authorized(request: RequestBuilder, bearer_token: Option<&str>) -> RequestBuilder {
    match bearer_token {
        Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
}

/// The session resource's absolute URL: `Location` is a URI reference, usually relative
/// (`/live/cam/whep/abc`), resolved against the URL the offer was POSTed to (RFC 9110
/// §10.2.2, RFC 3986 §5).
fn resolve_location(endpoint: &Url, location: &str) -> Result<Url, String> {
    endpoint
        .join(location)
        .map_err(|e| format!("Location {location:?}: {e}"))
}

/// How long `Retry-After` says to wait: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
/// measured from `now`. A date in the past means "now"; anything else unreadable is `None`.
pub fn retry_after_delay(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The gateway answers errors with a one-line reason; keep the first non-empty line, bounded,
/// so a misbehaving server's HTML page does not flood a report.
fn reason_line(body: &str) -> String {
    const MAX_CHARS: usize = 200;
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_location_resolves_against_the_endpoint() {
        let endpoint = Url::parse("http://127.0.0.1:8935/live/cam/whep?server_metrics=1").unwrap();
        assert_eq!(
            resolve_location(&endpoint, "/live/cam/whep/abc123")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8935/live/cam/whep/abc123"
        );
        // A path-relative reference replaces the last segment (RFC 3986 §5.2.3).
        assert_eq!(
            resolve_location(&endpoint, "whep/abc").unwrap().as_str(),
            "http://127.0.0.1:8935/live/cam/whep/abc"
        );
        assert_eq!(
            resolve_location(&endpoint, "http://[::1]:9000/s/1")
                .unwrap()
                .as_str(),
            "http://[::1]:9000/s/1"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after_delay("5", now), Some(Duration::from_secs(5)));
        assert_eq!(retry_after_delay(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after_delay("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_delay("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means retry now"
        );
        assert_eq!(retry_after_delay("-3", now), None);
        assert_eq!(retry_after_delay("soon", now), None);
    }

    #[test]
    fn reason_is_the_first_non_empty_line_bounded() {
        assert_eq!(
            reason_line("\n  stream cam has no output yet \nmore"),
            "stream cam has no output yet"
        );
        assert_eq!(reason_line(""), "");
        let long = "é".repeat(500);
        let reason = reason_line(&long);
        assert_eq!(reason.chars().count(), 201);
        assert!(reason.ends_with('…'));
    }
}
