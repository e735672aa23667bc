//! The WHIP auth webhook: a real HTTP server on 127.0.0.1 plays the auth service, and the
//! gateway asks it before answering a publisher.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;
use parking_lot::Mutex;

/// An OBS-shaped publish offer (audio first, one H.264 format, no candidates).
const OFFER: &str = "v=0\r\no=rtc 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ssrc:1 cname:obs\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=ssrc:2 cname:obs\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack pli\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";

type Asked = Arc<Mutex<Vec<serde_json::Value>>>;

/// The auth service: allows `allowed`, denies `denied` with a reason, and answers `broken`
/// with a pipeline that does not exist.
async fn webhook(State(asked): State<Asked>, Json(request): Json<serde_json::Value>) -> Response {
    asked.lock().push(request.clone());
    match request["stream"].as_str() {
        Some("allowed") => {
            Json(serde_json::json!({"pipeline": "passthrough", "params": {"prompt": "x"}}))
                .into_response()
        }
        Some("broken") => Json(serde_json::json!({"pipeline": "magic"})).into_response(),
        Some("command") => {
            Json(serde_json::json!({"pipeline": "exec:sh -c 'echo owned'"})).into_response()
        }
        _ => (StatusCode::FORBIDDEN, "not on the list\nsecond line").into_response(),
    }
}

async fn start_webhook() -> (String, Asked) {
    let asked = Asked::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/auth", post(webhook))
        .with_state(asked.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

async fn gateway(webhook_url: &str) -> (Gateway, String) {
    let config = Config::try_parse_from([
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "127.0.0.1:0",
        "--whep-addr",
        "off",
        "--auth-webhook-url",
        webhook_url,
    ])
    .unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let base = format!("http://{}", gateway.http_addr());
    (gateway, base)
}

async fn publish(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/sdp")
        .header("user-agent", "OBS-Studio/31.0")
        .body(OFFER)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap().trim_end().to_owned())
}

#[tokio::test]
async fn the_webhook_decides_before_the_answer() {
    let (url, asked) = start_webhook().await;
    let (gateway, base) = gateway(&url).await;

    let (status, reason) = publish(&format!("{base}/live/denied/whip?token=t1")).await;
    assert_eq!(
        (status, reason.as_str()),
        (403, "publishing denied was refused: not on the list")
    );
    // Denied before any media path: no stream was created.
    assert!(gateway.registry.keys().is_empty());

    let (status, answer) = publish(&format!("{base}/live/allowed/whip")).await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.starts_with("v=0"), "{answer}");
    assert_eq!(gateway.registry.keys().len(), 1);

    let (status, reason) = publish(&format!("{base}/live/broken/whip")).await;
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("unknown pipeline \"magic\""), "{reason}");

    // The webhook chooses among the operator's pipelines, never a command line of its own.
    let (status, reason) = publish(&format!("{base}/live/command/whip")).await;
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("it may choose passthrough or the configured passthrough"),
        "{reason}"
    );

    let asked = asked.lock().clone();
    assert_eq!(asked.len(), 4);
    assert_eq!(asked[0]["stream"], "denied");
    assert_eq!(asked[0]["protocol"], "whip");
    assert_eq!(asked[0]["query"], "token=t1");
    assert_eq!(asked[0]["user_agent"], "OBS-Studio/31.0");
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_unreachable_webhook_denies_with_503() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", closed.local_addr().unwrap());
    drop(closed);
    let (gateway, base) = gateway(&url).await;
    let (status, reason) = publish(&format!("{base}/live/cam/whip")).await;
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.starts_with("the auth webhook is unavailable"),
        "{reason}"
    );
    assert!(gateway.registry.keys().is_empty());
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
