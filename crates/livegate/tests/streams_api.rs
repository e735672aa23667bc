//! The operator API: `GET /streams` and `DELETE /streams/{key}` on a real gateway on
//! 127.0.0.1, with real publishers (`livegate_bench::whip`) and viewers
//! (`livegate_bench::whep`).

mod whip_common;

use std::time::Duration;

use livegate_media::StreamKey;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use whip_common::*;

const FIXTURE: &str = "h264-baseline-opus.ts";
const TOKEN: &str = "operator-secret";
const BY_GATEWAY: &str = "closed by the gateway (DTLS close_notify)";

/// `GET /streams` with `token`, if any: the status and the body.
async fn streams(base: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{base}/streams"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The list's entry for `key`, with the admin token.
async fn entry(base: &str, key: &str) -> Option<Value> {
    let (status, body) = streams(base, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == key)
        .cloned()
}

/// Reads the list until `key`'s entry satisfies `done`.
async fn wait_entry(base: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let current = entry(base, key).await;
        if let Some(entry) = current.as_ref().filter(|e| done(e)) {
            return entry.clone();
        }
        assert!(Instant::now() < deadline, "{key} stayed {current:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn end(base: &str, key: &str, token: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().delete(format!("{base}/streams/{key}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_a_live_stream_and_delete_ends_it_for_its_viewers() {
    // A grace far beyond the deadline: the stream can only end because it was ended.
    let (gateway, base) = gateway(&["--admin-token", TOKEN, "--republish-grace", "60s"]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();

    let cam = wait_entry(&base, "cam", |e| {
        e["viewers"] == 1 && e["worker"]["input"]["bitrate_bps"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(cam["live"], true);
    assert_eq!(cam["publisher"], "live");
    assert_eq!(cam["pipeline"], "passthrough");
    assert_eq!(cam["worker"]["state"], "running", "{cam}");
    // The status route shows the same object.
    let status: Value = reqwest::get(format!("{base}/live/cam/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&status), keys(&cam));

    // The token is needed, and checked.
    let (status, body) = streams(&base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        streams(&base, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(end(&base, "cam", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        end(&base, "cam", Some("wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(end(&base, "nope", Some(TOKEN)).await, StatusCode::NOT_FOUND);
    assert_eq!(viewer.closed_reason(), None, "refused requests end nothing");

    assert_eq!(end(&base, "cam", Some(TOKEN)).await, StatusCode::NO_CONTENT);
    assert_eq!(viewer.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    assert_eq!(publisher.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    assert!(gateway
        .registry
        .get(&StreamKey::parse("cam").unwrap())
        .is_none_or(|stream| stream.is_closed()));
    assert_eq!(entry(&base, "cam").await, None);
    assert_eq!(end(&base, "cam", Some(TOKEN)).await, StatusCode::NOT_FOUND);
    wait_for_metric(&base, "livegate_whip_publishers_active", 0.0, DEADLINE).await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_in_its_grace_is_listed_so_and_can_be_ended() {
    let test_stream = format!("loop={}", fixture(FIXTURE).display());
    let (gateway, base) = gateway(&[
        "--admin-token",
        TOKEN,
        "--republish-grace",
        "60s",
        "--test-stream",
        &test_stream,
    ])
    .await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    wait_entry(&base, "cam", |e| e["publisher"] == "live").await;
    assert_eq!(publisher.delete().await.unwrap(), 200);
    let cam = wait_entry(&base, "cam", |e| e["publisher"] == "grace").await;
    assert_eq!(cam["live"], true);

    // Sorted by key; the test stream has no publisher.
    let (_, body) = streams(&base, Some(TOKEN)).await;
    let list: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<_> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["cam", "loop"]);
    assert_eq!(list["streams"][1]["publisher"], Value::Null);
    assert_eq!(end(&base, "loop", Some(TOKEN)).await, StatusCode::CONFLICT);

    assert_eq!(end(&base, "cam", Some(TOKEN)).await, StatusCode::NO_CONTENT);
    assert_eq!(entry(&base, "cam").await, None);
    assert!(entry(&base, "loop").await.is_some());
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_nothing_can_end_a_stream_and_only_this_machine_lists() {
    let (gateway, base) = gateway(&[]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;

    // Not mounted: the path is unknown, whatever the token.
    for token in [None, Some(TOKEN)] {
        let status = end(&base, "cam", token).await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
            "{status}"
        );
    }
    // This test is on the gateway's machine: the list answers, and shows the stream on.
    let (status, body) = streams(&base, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["streams"][0]["stream"], "cam");
    assert_eq!(list["streams"][0]["publisher"], "live");
    // A request a proxy forwarded is someone else's.
    let forwarded = reqwest::Client::new()
        .get(format!("{base}/streams"))
        .header("x-forwarded-for", "192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), StatusCode::FORBIDDEN);
    assert_eq!(publisher.closed_reason(), None);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
