//! Bad HTTP input (issue 9): one table per route family, each row a request and the status
//! and one-line reason it must get. The gateway runs in-process on 127.0.0.1, with stream
//! `cam` looping the committed fixture so session rows have a real session to aim at; the
//! requests are real HTTP.

mod whip_common;

use std::time::Duration;

use livegate_bench::whep::{WhepClient, WhepClientError, WhepOptions};
use livegate_bench::whip::{WhipClient, WhipOptions};
use reqwest::Method;
use tokio::time::Instant;
use whip_common::*;

const FINGERPRINT: &str = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// An offer that parses, in the direction `dir` (`sendonly` for WHIP, `recvonly` for WHEP).
fn offer(dir: &str) -> String {
    format!(
        "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na={dir}\r\na=ssrc:1 cname:t\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:{FINGERPRINT}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na={dir}\r\na=ssrc:2 cname:t\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:{FINGERPRINT}\r\n"
    )
}

/// The gateway with stream `cam` looping the fixture, plus `extra` flags.
async fn cam_gateway(extra: &[&str]) -> (livegate::Gateway, String) {
    let test_stream = format!("cam={}", fixture("h264-baseline-opus.ts").display());
    let mut args = vec!["--test-stream", test_stream.as_str()];
    args.extend_from_slice(extra);
    gateway(&args).await
}

/// One row: method, path, `Content-Type` (if any), extra header, body; the status and the
/// start of the reason expected.
struct Row {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    header: Option<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    reason: String,
}

fn row(name: &'static str, method: Method, path: impl Into<String>) -> Row {
    Row {
        name,
        method,
        path: path.into(),
        content_type: None,
        header: None,
        body: Vec::new(),
        status: 0,
        reason: String::new(),
    }
}

impl Row {
    fn sdp(mut self, body: impl Into<Vec<u8>>) -> Row {
        self.content_type = Some("application/sdp");
        self.body = body.into();
        self
    }
    fn typed(mut self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Row {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Row {
        self.header = Some((name, value.into()));
        self
    }
    fn expect(mut self, status: u16, reason: impl Into<String>) -> Row {
        self.status = status;
        self.reason = reason.into();
        self
    }
}

async fn check(base: &str, rows: Vec<Row>) {
    let client = reqwest::Client::new();
    for row in rows {
        let mut request = client
            .request(row.method.clone(), format!("{base}{}", row.path))
            .timeout(DEADLINE)
            .body(row.body);
        if let Some(content_type) = row.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some((name, value)) = &row.header {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", row.name));
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let reason = response.text().await.unwrap();
        assert_eq!(status, row.status, "{}: {reason}", row.name);
        assert!(
            reason.starts_with(&row.reason),
            "{}: {reason:?} does not start with {:?}",
            row.name,
            row.reason
        );
        assert!(
            reason.trim_end().lines().count() <= 1,
            "{}: {reason:?}",
            row.name
        );
        if matches!(status, 429 | 503) {
            assert!(retry_after, "{}: no Retry-After", row.name);
        }
    }
}

/// Stream keys the gateway refuses, as they appear in a URL path, with the reason.
fn bad_keys() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("key with %2F", "a%2Fb".into(), "stream key contains '/'"),
        // A `..` segment itself is normalised away by URL-parsing clients; it is sent raw in
        // `a_dot_dot_key_sent_raw_is_refused`.
        ("key ..x", "..x".into(), "stream key may not start with '.'"),
        ("key with NUL", "a%00b".into(), "stream key contains '\\0'"),
        ("key of 1 KB", "k".repeat(1024), "stream key is longer than"),
        (
            "key with a space",
            "a%20b".into(),
            "stream key contains ' '",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_endpoint_refuses_bad_input() {
    let (gateway, base) = cam_gateway(&[]).await;
    let mut rows = vec![
        row("text/plain", Method::POST, "/live/pub/whip")
            .typed("text/plain", offer("sendonly"))
            .expect(415, "Content-Type must be application/sdp, not text/plain"),
        row("no content type", Method::POST, "/live/pub/whip")
            .expect(415, "Content-Type must be application/sdp, not none"),
        row("oversized body", Method::POST, "/live/pub/whip")
            .sdp(vec![b'v'; 1 << 20])
            .expect(413, "body larger than 65536 bytes"),
        row("invalid UTF-8", Method::POST, "/live/pub/whip")
            .sdp(vec![b'v', b'=', 0xff, 0xfe])
            .expect(400, "body is not UTF-8"),
        row("empty body", Method::POST, "/live/pub/whip")
            .sdp("")
            .expect(400, "empty body"),
        row("not SDP", Method::POST, "/live/pub/whip")
            .sdp("hello")
            .expect(400, "malformed SDP"),
        row("no fingerprint", Method::POST, "/live/pub/whip")
            .sdp(offer("sendonly").replace(&format!("a=fingerprint:{FINGERPRINT}\r\n"), ""))
            .expect(400, "bad DTLS fingerprint"),
        row("3000 m-lines", Method::POST, "/live/pub/whip")
            .sdp("m=video 9 RTP/AVP 96\r\n".repeat(2000))
            .expect(400, "offer has 2000 media sections"),
        // RFC 9725 §4.2: SDP we understand but cannot take is 422.
        row("no H.264", Method::POST, "/live/pub/whip")
            .sdp(offer("sendonly").replace("H264/90000", "VP8/90000"))
            .expect(422, ""),
        row("GET on the endpoint", Method::GET, "/live/pub/whip").expect(405, ""),
        row("PUT on the endpoint", Method::PUT, "/live/pub/whip").expect(405, ""),
        row(
            "DELETE unknown session",
            Method::DELETE,
            "/live/pub/whip/0123456789abcdef",
        )
        .expect(404, "no such WHIP session"),
        row(
            "PATCH unknown session",
            Method::PATCH,
            "/live/pub/whip/0123456789abcdef",
        )
        .typed("application/trickle-ice-sdpfrag", "a=ice-ufrag:abcd\r\n")
        .header("if-match", "\"x\"")
        .expect(404, "no such WHIP session"),
        row(
            "GET on a session",
            Method::GET,
            "/live/pub/whip/0123456789abcdef",
        )
        .expect(405, ""),
    ];
    // A real publisher (no media needed: the session exists from the 201), for the session
    // rows.
    let publisher = WhipClient::new()
        .publish(&format!("{base}/live/live1/whip"), &WhipOptions::default())
        .await
        .unwrap();
    let resource = publisher.resource().location().to_owned();
    let trickle = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
    rows.extend([
        row(
            "second publisher of a live key",
            Method::POST,
            "/live/live1/whip",
        )
        .sdp(offer("sendonly"))
        .expect(409, "stream live1 already has a live publisher"),
        // RFC 9725 §4.3.1: a PATCH needs If-Match (428) and it must match (412).
        row("PATCH without If-Match", Method::PATCH, resource.clone())
            .typed("application/trickle-ice-sdpfrag", trickle)
            .expect(428, ""),
        row("PATCH with a stale ETag", Method::PATCH, resource.clone())
            .typed("application/trickle-ice-sdpfrag", trickle)
            .header("if-match", "\"stale\"")
            .expect(412, ""),
        row("DELETE", Method::DELETE, resource.clone()).expect(200, ""),
        row("DELETE twice", Method::DELETE, resource.clone()).expect(404, "no such WHIP session"),
    ]);
    for (name, key, reason) in bad_keys() {
        rows.push(
            row(name, Method::POST, format!("/live/{key}/whip"))
                .sdp(offer("sendonly"))
                .expect(400, reason),
        );
    }
    check(&base, rows).await;
    gateway.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_endpoint_and_sessions_refuse_bad_input() {
    let (gateway, base) = cam_gateway(&["--whep-wait-timeout", "300ms"]).await;
    // A real session of `cam`, for the rows that need one.
    let session = play(&base, "cam").await;
    let resource = session.resource().location().to_owned();
    let trickle = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
    let mut rows = vec![
        row("text/plain", Method::POST, "/live/cam/whep")
            .typed("text/plain", offer("recvonly"))
            .expect(415, "Content-Type must be application/sdp, not text/plain"),
        row("no content type", Method::POST, "/live/cam/whep")
            .expect(415, "Content-Type must be application/sdp, not none"),
        row("oversized body", Method::POST, "/live/cam/whep")
            .sdp(vec![b'v'; 1 << 20])
            .expect(413, "body larger than 65536 bytes"),
        row("invalid UTF-8", Method::POST, "/live/cam/whep")
            .sdp(vec![b'v', b'=', 0xff])
            .expect(400, "body is not UTF-8"),
        row("binary junk", Method::POST, "/live/cam/whep")
            .sdp((1u8..128).collect::<Vec<u8>>())
            .expect(400, "SDP line 1 contains a control character"),
        row("5000 candidates", Method::POST, "/live/cam/whep")
            .sdp(offer("recvonly").replace(
                "a=mid:1\r\n",
                &format!(
                    "a=mid:1\r\n{}",
                    "a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n".repeat(5000)
                ),
            ))
            .expect(413, "body larger than 65536 bytes"),
        row("100 candidates", Method::POST, "/live/cam/whep")
            .sdp(offer("recvonly").replace(
                "a=mid:1\r\n",
                &format!(
                    "a=mid:1\r\n{}",
                    "a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n".repeat(100)
                ),
            ))
            .expect(400, "offer has 100 candidates"),
        row("DTLS role conflict", Method::POST, "/live/cam/whep")
            .sdp(
                offer("recvonly")
                    .replacen("a=setup:actpass", "a=setup:active", 1)
                    .replacen("a=setup:actpass", "a=setup:passive", 1),
            )
            .expect(400, "bad DTLS setup"),
        row("no usable codec", Method::POST, "/live/cam/whep")
            .sdp(
                offer("recvonly")
                    .replace("H264/90000", "VP8/90000")
                    .replace("opus/48000/2", "PCMU/8000"),
            )
            .expect(400, "offer has no usable codec"),
        row("never published", Method::POST, "/live/nobody/whep")
            .sdp(offer("recvonly"))
            .expect(409, "stream nobody has no output yet"),
        row("GET on the endpoint", Method::GET, "/live/cam/whep").expect(405, ""),
        row(
            "DELETE unknown session",
            Method::DELETE,
            "/live/cam/whep/0123456789abcdef",
        )
        .expect(404, "no such WHEP session"),
        row(
            "session of another stream",
            Method::DELETE,
            resource.replace("/live/cam/", "/live/other/"),
        )
        .expect(404, "no such WHEP session"),
        row(
            "session id not hex",
            Method::DELETE,
            "/live/cam/whep/..%2F..%2Fetc",
        )
        .expect(404, "no such WHEP session"),
        row("PUT on a session", Method::PUT, resource.clone()).expect(405, ""),
        // RFC 9725 §4.3.1: a PATCH needs If-Match (428) and it must match (412).
        row("PATCH without If-Match", Method::PATCH, resource.clone())
            .typed("application/trickle-ice-sdpfrag", trickle)
            .expect(428, ""),
        row("PATCH with a stale ETag", Method::PATCH, resource.clone())
            .typed("application/trickle-ice-sdpfrag", trickle)
            .header("if-match", "\"stale\"")
            .expect(412, ""),
        row("PATCH wrong type", Method::PATCH, resource.clone())
            .typed("application/sdp", trickle)
            .header("if-match", session.resource().etag().unwrap().to_owned())
            .expect(415, ""),
        row("DELETE", Method::DELETE, resource.clone()).expect(200, ""),
        row("DELETE twice", Method::DELETE, resource.clone()).expect(404, "no such WHEP session"),
        row("PATCH after DELETE", Method::PATCH, resource.clone())
            .typed("application/trickle-ice-sdpfrag", trickle)
            .header("if-match", "\"x\"")
            .expect(404, "no such WHEP session"),
    ];
    for (name, key, reason) in bad_keys() {
        rows.push(
            row(name, Method::POST, format!("/live/{key}/whep"))
                .sdp(offer("recvonly"))
                .expect(400, reason),
        );
    }
    check(&base, rows).await;
    // Nothing bad input did touched the good stream: a new viewer still plays it.
    let again = play(&base, "cam").await;
    again.wait_video_frames(1, DEADLINE).await.unwrap();
    gateway.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_hold_only_so_many_waiting_whep_requests() {
    let (gateway, base) = cam_gateway(&[
        "--whep-max-pending-per-ip",
        "2",
        "--whep-wait-timeout",
        "20s",
    ])
    .await;
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{base}/live/later/whep");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/sdp")
                    .body(offer("recvonly"))
                    .send()
                    .await
            })
        })
        .collect();
    wait_for_metric(&base, "livegate_whep_pending_requests", 2.0, DEADLINE).await;
    check(
        &base,
        vec![
            row("third waiting request", Method::POST, "/live/later/whep")
                .sdp(offer("recvonly"))
                .expect(
                    429,
                    "2 requests from this address are already waiting for output",
                ),
        ],
    )
    .await;
    // Leaving gives the places back, and the same address plays again.
    for request in waiting {
        request.abort();
    }
    wait_for_metric(&base, "livegate_whep_pending_requests", 0.0, DEADLINE).await;
    let session = play(&base, "cam").await;
    session.wait_video_frames(1, DEADLINE).await.unwrap();
    gateway.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_session_limit_counts_whip_and_whep_together() {
    let (gateway, base) = cam_gateway(&["--max-sessions", "1"]).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(1, DEADLINE).await.unwrap();
    match WhepClient::new()
        .play(&format!("{base}/live/cam/whep"), &WhepOptions::default())
        .await
    {
        Err(e @ WhepClientError::Status { .. }) => {
            assert_eq!(e.status(), Some(503), "{e}");
            assert!(e.retry_after().is_some(), "{e}");
            assert!(
                e.to_string().contains("already has 1 WebRTC sessions"),
                "{e}"
            );
        }
        other => panic!("{:?}", other.map(|s| s.resource().location().to_owned())),
    }
    check(
        &base,
        vec![
            row("publisher over the limit", Method::POST, "/live/pub/whip")
                .sdp(offer("sendonly"))
                .expect(503, "the gateway already has 1 WebRTC sessions, its limit"),
        ],
    )
    .await;
    // The viewer's end frees its place.
    assert_eq!(viewer.delete().await.unwrap(), 200);
    let deadline = Instant::now() + DEADLINE;
    let next = loop {
        match WhepClient::new()
            .play(&format!("{base}/live/cam/whep"), &WhepOptions::default())
            .await
        {
            Ok(session) => break session,
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                // The place is given back when the event loop removes the closed session.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    next.wait_video_frames(1, DEADLINE).await.unwrap();
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// `..` as a path segment, as a raw HTTP client (not a URL-normalising one) sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_dot_key_sent_raw_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gateway, _) = cam_gateway(&[]).await;
    for path in ["/live/../whip", "/live/../whep"] {
        let body = offer("sendonly");
        let mut stream = tokio::net::TcpStream::connect(gateway.http_addr())
            .await
            .unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(DEADLINE, stream.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(
            response.ends_with("stream key may not start with '.'\n"),
            "{path}: {response}"
        );
    }
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// Slow-loris: a client that sends half the headers, or the headers and half an SDP body,
/// and stalls is cut off once `LIVE_AI_HTTP_READ_TIMEOUT` has passed, not kept for ever;
/// the gateway serves others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const READ_TIMEOUT: Duration = Duration::from_millis(500);
    let (gateway, base) = cam_gateway(&["--http-read-timeout", "500ms"]).await;

    let started = Instant::now();
    let mut half_headers = tokio::net::TcpStream::connect(gateway.http_addr())
        .await
        .unwrap();
    half_headers
        .write_all(b"POST /live/cam/whep HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .unwrap();
    let mut half_body = tokio::net::TcpStream::connect(gateway.http_addr())
        .await
        .unwrap();
    half_body
        .write_all(b"POST /live/cam/whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n")
        .await
        .unwrap();

    // Others are served while both stall.
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );

    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, half_body.read_to_end(&mut response))
        .await
        .expect("the half body was cut off")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.ends_with("request body not received within 500ms\n"),
        "{response}"
    );

    let mut rest = Vec::new();
    let read = tokio::time::timeout(DEADLINE, half_headers.read_to_end(&mut rest))
        .await
        .expect("the half header was cut off");
    // Closed (EOF, or a reset), with at most hyper's own 408 and nothing of ours.
    assert!(
        read.is_err() || rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{read:?} {rest:?}"
    );
    assert!(
        started.elapsed() >= READ_TIMEOUT,
        "cut off before the timeout"
    );
    assert!(
        started.elapsed() < READ_TIMEOUT * 10,
        "{:?}",
        started.elapsed()
    );
    gateway.shutdown(Duration::from_secs(5)).await;
}
