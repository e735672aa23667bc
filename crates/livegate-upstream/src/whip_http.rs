//! The WHIP client's HTTP side (RFC 9725): the offer POSTed, the resource URL remembered,
//! the resource DELETEd at the end.
//!
//! Pipeline parameters go in the query string as `params=<JSON>`, the way go-livepeer's live
//! AI ingest takes them on its WHIP and RTMP URLs: the body must be the bare SDP offer
//! (`application/sdp`, RFC 9725 §4.2), and a header would be lost by proxies that strip
//! unknown ones.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use crate::error::UpstreamError;

/// The query parameter that carries the stream's pipeline parameters (JSON).
pub const PARAMS_QUERY: &str = "params";
/// Longest reason taken from an error body, for the log.
const REASON_CHARS: usize = 200;

/// The endpoint for one stream: `url` with `params` (if any) added to its query string.
pub(crate) fn endpoint(url: &str, params_json: Option<&str>) -> Result<Url, UpstreamError> {
    let mut endpoint = Url::parse(url).map_err(|e| UpstreamError::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(params) = params_json {
        endpoint.query_pairs_mut().append_pair(PARAMS_QUERY, params);
    }
    Ok(endpoint)
}

/// A published session on the upstream: what the DELETE goes to.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamResource {
    /// The `Location` of the 201, resolved against the endpoint; `None` if the upstream sent
    /// none (then there is nothing to DELETE, and closing the peer connection is all).
    pub(crate) url: Option<Url>,
}

/// POSTs the offer and returns the answer and the resource.
pub(crate) async fn post_offer(
    http: &reqwest::Client,
    endpoint: &Url,
    offer_sdp: String,
    bearer_token: Option<&str>,
    timeout: Duration,
) -> Result<(String, UpstreamResource), UpstreamError> {
    let mut request = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/sdp")
        .timeout(timeout)
        .body(offer_sdp);
    if let Some(token) = bearer_token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await?;
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| endpoint.join(location).ok());
    let body = response.text().await?;
    if status != StatusCode::CREATED {
        return Err(UpstreamError::Status {
            status: status.as_u16(),
            reason: body
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(REASON_CHARS)
                .collect(),
        });
    }
    if !body.starts_with("v=0") {
        return Err(UpstreamError::NoAnswer);
    }
    Ok((body, UpstreamResource { url: location }))
}

/// Ends the session on the upstream (RFC 9725 §4.4). Failures are the upstream's problem
/// (its own timeouts reap the session), so they are only returned for the log.
pub(crate) async fn delete(
    http: &reqwest::Client,
    resource: &UpstreamResource,
    bearer_token: Option<&str>,
    timeout: Duration,
) -> Result<Option<u16>, UpstreamError> {
    let Some(url) = &resource.url else {
        return Ok(None);
    };
    let mut request = http.delete(url.clone()).timeout(timeout);
    if let Some(token) = bearer_token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    Ok(Some(request.send().await?.status().as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_ride_in_the_query_string_encoded() {
        let url = endpoint(
            "http://127.0.0.1:9/live/cam/whip?token=a",
            Some(r#"{"prompt":"a cat & a dog"}"#),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("token".to_owned(), "a".to_owned()),
                (
                    PARAMS_QUERY.to_owned(),
                    r#"{"prompt":"a cat & a dog"}"#.to_owned()
                )
            ]
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/whip", None).unwrap().query(),
            None
        );
        assert!(matches!(
            endpoint("http://", None),
            Err(UpstreamError::Url { .. })
        ));
    }
}
