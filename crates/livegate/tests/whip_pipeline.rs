//! The WHIP side of pipeline workers: a worker that (re)starts gets a keyframe from the
//! publisher instead of waiting up to a GOP for the next one.

mod whip_common;

use std::time::Duration;

use tokio::time::Instant;
use whip_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restart_asks_the_publisher_for_a_keyframe() {
    // A worker that dies at once: the exec pipeline restarts it with backoff (250 ms,
    // 500 ms, 1 s, ...), and every start is a new output generation.
    let (gateway, base) = gateway(&["--pipeline", "exec:sh -c 'exit 1'"]).await;
    let publisher = publish(
        &base,
        "restarts",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    publisher
        .wait_video_frames_sent(30, DEADLINE)
        .await
        .unwrap();
    let name = "livegate_whip_keyframe_requests_total";
    let before = metric(&base, name).await.unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = metric(&base, name).await.unwrap_or(0.0);
        if now >= before + 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keyframe requests stayed at {now} (from {before}) while the worker restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(publisher.stats().keyframe_requests >= 2);
    publisher.disconnect().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_keyframe_request_reaches_the_publisher() {
    let (gateway, base) = gateway(&[]).await;
    let publisher = publish(
        &base,
        "asks",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    publisher
        .wait_video_frames_sent(30, DEADLINE)
        .await
        .unwrap();
    let before = publisher.stats().keyframe_requests;
    let stream = gateway
        .registry
        .get(&livegate_media::StreamKey::parse("asks").unwrap())
        .unwrap();
    // What an upstream's PLI turns into (livegate-upstream): the stream asks its publisher.
    stream.request_keyframe();
    wait_keyframe_requests_above(&publisher, before, "the worker asked").await;
    publisher.disconnect().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_pli_reaches_the_publisher() {
    let (gateway, base) = gateway(&[]).await;
    let publisher = publish(
        &base,
        "lossy",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    let viewer = play(&base, "lossy").await;
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();
    let before = publisher.stats().keyframe_requests;
    viewer.request_keyframe().await;
    wait_keyframe_requests_above(&publisher, before, "the viewer sent one").await;
    viewer.close().await;
    publisher.disconnect().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
