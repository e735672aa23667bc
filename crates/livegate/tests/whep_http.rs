//! The WHEP endpoint's HTTP behaviour that needs no media: statuses and reasons, the wait for
//! output and how it ends, and the viewer limit. The gateway runs in-process on 127.0.0.1;
//! requests are real HTTP over loopback.

mod whip_common;

use std::time::Duration;

use livegate_media::StreamKey;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use whip_common::{
    assert_get_and_options, gateway, post, status_and_reason, wait_for_metric, DEADLINE,
};

/// A recvonly offer as a player sends it: audio then video, one H.264 profile.
const OFFER: &str = "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";

#[tokio::test]
async fn refusals_have_a_status_and_a_one_line_reason() {
    let (gateway, base) = gateway(&[
        "--whep-wait-timeout",
        "300ms",
        "--ice-servers",
        "stun:stun.example.org:3478",
    ])
    .await;
    let endpoint = format!("{base}/live/cam/whep");
    let vp8_only = OFFER
        .replace("H264/90000", "VP8/90000")
        .replace("opus/48000/2", "PCMU/8000");

    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            post(&endpoint, "text/plain", OFFER).await,
            415,
            "Content-Type must be application/sdp, not text/plain",
        ),
        (
            post(&endpoint, "application/sdp", vec![b'v'; 70_000]).await,
            413,
            "body larger than 65536 bytes",
        ),
        (
            post(&endpoint, "application/sdp", "hello").await,
            400,
            "malformed SDP",
        ),
        (
            post(&endpoint, "application/sdp", vp8_only).await,
            400,
            "offer has no usable codec: the offer has neither H.264 video nor Opus audio",
        ),
        (
            post(
                &format!("{base}/live/a.b%20c/whep"),
                "application/sdp",
                OFFER,
            )
            .await,
            400,
            "stream key contains",
        ),
        (
            post(
                &format!("{base}/live/video-to-video/cam/whep"),
                "application/sdp",
                OFFER,
            )
            .await,
            404,
            "expected /live/video-to-video/{stream}-out/whep",
        ),
        (
            reqwest::Client::new()
                .delete(format!("{base}/live/cam/whep/{}", "0".repeat(32)))
                .send()
                .await
                .unwrap(),
            404,
            "no such WHEP session",
        ),
        (
            reqwest::Client::new()
                .patch(format!("{base}/live/cam/whep/not-an-id"))
                .header("content-type", "application/trickle-ice-sdpfrag")
                .body("a=ice-ufrag:x\r\n")
                .send()
                .await
                .unwrap(),
            404,
            "no such WHEP session",
        ),
    ];
    for (response, status, reason) in cases {
        let (got_status, got_reason) = status_and_reason(response).await;
        assert_eq!(got_status, status, "{got_reason}");
        assert!(
            got_reason.starts_with(reason),
            "{got_reason:?} should start with {reason:?}"
        );
        assert!(!got_reason.contains('\n'), "{got_reason:?}");
    }

    // Nothing publishes `cam`: the wait ends at its deadline with 409 and Retry-After.
    let started = Instant::now();
    let response = post(&endpoint, "application/sdp; charset=utf-8", OFFER).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        status_and_reason(response).await.1,
        "stream cam has no output yet"
    );

    assert_get_and_options(
        &endpoint,
        "<stun:stun.example.org:3478>; rel=\"ice-server\"",
    )
    .await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_wait_ends_at_once_when_the_stream_closes() {
    let (gateway, base) = gateway(&[]).await;
    let stream = gateway
        .registry
        .create(StreamKey::parse("cam").unwrap())
        .unwrap();
    let request = tokio::spawn(post(
        format!("{base}/live/cam/whep"),
        "application/sdp",
        OFFER,
    ));
    wait_for_metric(&base, "livegate_whep_pending_requests", 1.0, DEADLINE).await;
    let closed_at = Instant::now();
    stream.close();
    let (status, reason) = status_and_reason(request.await.unwrap()).await;
    assert_eq!(
        (status, reason.as_str()),
        (409, "stream cam ended before it produced output")
    );
    // Far below the 30 s wait: the close, not the deadline, ended it.
    assert!(closed_at.elapsed() < Duration::from_secs(5));
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_client_that_goes_away_stops_waiting() {
    let (gateway, base) = gateway(&[]).await;
    let mut socket = tokio::net::TcpStream::connect(gateway.http_addr())
        .await
        .unwrap();
    let request = format!(
        "POST /live/nobody/whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    wait_for_metric(&base, "livegate_whep_pending_requests", 1.0, DEADLINE).await;
    drop(socket);
    // The 30 s deadline is far away: only noticing the closed connection ends the wait.
    wait_for_metric(&base, "livegate_whep_pending_requests", 0.0, DEADLINE).await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn waiting_viewers_count_against_the_stream_limit() {
    let (gateway, base) = gateway(&["--whep-max-sessions", "1"]).await;
    let endpoint = format!("{base}/live/cam/whep");
    let first = tokio::spawn(post(endpoint.clone(), "application/sdp", OFFER));
    wait_for_metric(&base, "livegate_whep_pending_requests", 1.0, DEADLINE).await;
    let response = post(&endpoint, "application/sdp", OFFER).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        status_and_reason(response).await.1,
        "stream cam already has 1 viewers"
    );
    // Another stream has its own limit.
    let other = tokio::spawn(post(
        format!("{base}/live/other/whep"),
        "application/sdp",
        OFFER,
    ));
    wait_for_metric(&base, "livegate_whep_pending_requests", 2.0, DEADLINE).await;
    first.abort();
    other.abort();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let (gateway, base) =
        gateway(&["--whep-token", "s3cret", "--whep-wait-timeout", "100ms"]).await;
    let endpoint = format!("{base}/live/cam/whep");
    let response = post(&endpoint, "application/sdp", OFFER).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", "application/sdp")
        .header("authorization", "Bearer s3cret")
        .body(OFFER)
        .send()
        .await
        .unwrap();
    // Past the token: nothing publishes, so the wait ends with 409.
    assert_eq!(response.status(), 409);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
