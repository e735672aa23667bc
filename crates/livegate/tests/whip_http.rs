//! The WHIP endpoint's refusals (RFC 9725 §4.2, §4.5 and the gateway's own limits), each
//! with its status and one-line reason, with real offers from the `livegate_bench::whip`
//! publisher where one is needed and raw requests where the request itself is the fault.

mod whip_common;

use std::sync::Arc;
use std::time::Duration;

use livegate_bench::whip::{WhipClient, WhipClientError, WhipOptions};
use whip_common::*;

const FIXTURE: &str = "h264-baseline-opus.ts";

/// The status and reason of a publish the gateway refused.
async fn refused(url: &str, options: &WhipOptions) -> (u16, String, Option<Duration>) {
    match WhipClient::new().publish(url, options).await {
        Ok(publisher) => panic!("published at {}", publisher.resource().location()),
        Err(e @ WhipClientError::Status { .. }) => {
            let retry_after = e.retry_after();
            let WhipClientError::Status { status, reason, .. } = e else {
                unreachable!()
            };
            (status, reason, retry_after)
        }
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_a_usable_offer_are_refused_with_a_reason() {
    let (gateway, base) = gateway(&[]).await;
    let endpoint = format!("{base}/live/cam/whip");

    let (status, reason) =
        status_and_reason(post(&endpoint, "application/sdp", "hello").await).await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.starts_with("malformed SDP"), "{reason}");
    let (status, reason) = status_and_reason(post(&endpoint, "text/plain", "v=0\r\n").await).await;
    assert_eq!(status, 415, "{reason}");
    assert!(reason.contains("application/sdp"), "{reason}");
    let (status, reason) =
        status_and_reason(post(&endpoint, "application/sdp", vec![b'v'; 70_000]).await).await;
    assert_eq!(status, 413, "{reason}");

    let audio_only = WhipOptions {
        video: false,
        ..WhipOptions::default()
    };
    let (status, reason, _) = refused(&endpoint, &audio_only).await;
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("no H.264 video"), "{reason}");

    let vp8_only = WhipOptions {
        offer_transform: Some(Arc::new(|offer: String| {
            offer
                .replace("H264/90000", "VP8/90000")
                .lines()
                .filter(|l| !l.starts_with("a=fmtp:96"))
                .map(|l| format!("{l}\r\n"))
                .collect()
        })),
        ..WhipOptions::default()
    };
    let (status, reason, _) = refused(&endpoint, &vp8_only).await;
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("no H.264 video"), "{reason}");

    assert_eq!(
        metric(
            &base,
            "livegate_whip_sessions_failed_total{reason=\"unprocessable\"}"
        )
        .await,
        Some(2.0)
    );
    // None of it left a stream behind.
    assert!(gateway.registry.is_empty());
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_key_is_refused_and_the_stream_limit_answers_503() {
    let (gateway, base) = gateway(&["--max-streams", "1"]).await;
    let options = publish_options(FIXTURE).await;
    let first = publish(&base, "cam", &options).await;

    let (status, reason, _) = refused(&format!("{base}/live/cam/whip"), &options).await;
    assert_eq!(
        (status, reason.as_str()),
        (409, "stream cam already has a live publisher")
    );
    let (status, reason, retry_after) = refused(&format!("{base}/live/other/whip"), &options).await;
    assert_eq!(
        (status, reason.as_str()),
        (503, "the gateway already carries 1 streams")
    );
    assert_eq!(retry_after, Some(Duration::from_secs(5)));
    // The first publisher is untouched by either.
    assert_eq!(first.closed_reason(), None);
    first.wait_video_frames_sent(5, DEADLINE).await.unwrap();

    // Once it is gone the key publishes again: within the republish grace (10 s) that is a
    // republish of the same stream, neither a conflict nor a second stream.
    assert_eq!(first.delete().await.unwrap(), 200);
    let again = publish(&base, "cam", &options).await;
    assert_eq!(again.delete().await.unwrap(), 200);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_request() {
    let (gateway, base) = gateway(&["--whip-token", "s3cret"]).await;
    let endpoint = format!("{base}/live/cam/whip");
    let (status, _, _) = refused(&endpoint, &WhipOptions::default()).await;
    assert_eq!(status, 401);
    let wrong = WhipOptions {
        bearer_token: Some("guess".into()),
        ..WhipOptions::default()
    };
    assert_eq!(refused(&endpoint, &wrong).await.0, 401);

    let options = WhipOptions {
        bearer_token: Some("s3cret".into()),
        ..publish_options(FIXTURE).await
    };
    let publisher = publish(&base, "cam", &options).await;
    let unauthorized = reqwest::Client::new()
        .delete(publisher.resource().url())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert!(unauthorized.headers().contains_key("www-authenticate"));
    assert_eq!(publisher.closed_reason(), None);
    // The publisher's own DELETE carries the token.
    assert_eq!(publisher.delete().await.unwrap(), 200);
    publisher.wait_closed(DEADLINE).await.unwrap();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn unknown_sessions_wrong_methods_and_options() {
    let (gateway, base) = gateway(&["--ice-servers", "stun:stun.example.org:3478"]).await;
    let endpoint = format!("{base}/live/cam/whip");
    let client = reqwest::Client::new();

    let delete = client
        .delete(format!("{endpoint}/{}", "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    assert_eq!(delete.text().await.unwrap().trim(), "no such WHIP session");
    let patch = client
        .patch(format!("{endpoint}/not-an-id"))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=ice-ufrag:x\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);

    assert_get_and_options(
        &endpoint,
        "<stun:stun.example.org:3478>; rel=\"ice-server\"",
    )
    .await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
