//! How a publish ends and what its stream's viewers see: DELETE, a publisher that vanishes,
//! a replacement, and a republish within the grace. Real publishers
//! (`livegate_bench::whip`) and viewers (`livegate_bench::whep`) on 127.0.0.1.

mod whip_common;

use std::time::{Duration, Instant};

use livegate_bench::whep::FrameRecord;
use livegate_media::StreamKey;
use whip_common::*;

const FIXTURE: &str = "h264-baseline-opus.ts";
const BY_GATEWAY: &str = "closed by the gateway (DTLS close_notify)";

fn assert_increasing(frames: &[FrameRecord], clock_hz: u32, what: &str) {
    for pair in frames.windows(2) {
        let step = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        // Forward and less than ten seconds: a jump back would be a huge unsigned step.
        assert!(
            step > 0 && step < clock_hz * 10,
            "{what}: RTP timestamp went from {} to {}",
            pair[0].rtp_timestamp,
            pair[1].rtp_timestamp
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_grace_ends_the_stream_and_its_viewers() {
    let (gateway, base) = gateway(&["--republish-grace", "0s"]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();

    assert_eq!(publisher.delete().await.unwrap(), 200);
    assert_eq!(publisher.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    assert_eq!(viewer.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    wait_for_metric(&base, "livegate_whip_publishers_active", 0.0, DEADLINE).await;
    assert_eq!(
        metric(
            &base,
            "livegate_whip_sessions_ended_total{reason=\"stopped\"}"
        )
        .await,
        Some(1.0)
    );
    assert!(gateway
        .registry
        .get(&StreamKey::parse("cam").unwrap())
        .is_none_or(|stream| stream.is_closed()));
    // The resource is gone.
    assert_eq!(publisher.delete().await.unwrap(), 404);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_vanishes_is_dropped_when_ice_fails() {
    // A media timeout far beyond ICE's, so only ICE can notice.
    let (gateway, base) =
        gateway(&["--republish-grace", "0s", "--whip-media-timeout", "60s"]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();

    let vanished_at = Instant::now();
    publisher.close().await;
    // livegate-rtc: 5 s to disconnected, 5 s more to failed.
    viewer.wait_closed(Duration::from_secs(30)).await.unwrap();
    let detected_after = vanished_at.elapsed();
    assert_eq!(
        metric(
            &base,
            "livegate_whip_sessions_ended_total{reason=\"failed\"}"
        )
        .await,
        Some(1.0),
        "ended by ICE failure, after {detected_after:?}"
    );
    assert!(
        detected_after >= Duration::from_secs(4),
        "nothing told the gateway, so it cannot know at once: {detected_after:?}"
    );
    assert!(
        detected_after < Duration::from_secs(20),
        "{detected_after:?}"
    );
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_closes_dtls_is_gone_at_once() {
    // Media and ICE timeouts far away: only the close_notify can tell.
    let (gateway, base) =
        gateway(&["--republish-grace", "0s", "--whip-media-timeout", "60s"]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();

    let closed_at = Instant::now();
    publisher.disconnect().await;
    assert_eq!(viewer.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    let detected_after = closed_at.elapsed();
    assert_eq!(
        metric(
            &base,
            "livegate_whip_sessions_ended_total{reason=\"remote\"}"
        )
        .await,
        Some(1.0)
    );
    // ICE would take 5 s to call it disconnected; the close_notify takes a round trip.
    assert!(
        detected_after < Duration::from_secs(2),
        "the publisher's close took {detected_after:?} to notice"
    );
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_mode_hands_the_stream_to_the_new_publisher() {
    let (gateway, base) = gateway(&["--whip-on-conflict", "replace"]).await;
    let options = publish_options(FIXTURE).await;
    let first = publish(&base, "cam", &options).await;
    first.wait_video_frames_sent(5, DEADLINE).await.unwrap();
    let second = publish(&base, "cam", &options).await;
    assert_eq!(first.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    assert_eq!(second.closed_reason(), None);
    wait_for_metric(&base, "livegate_whip_publishers_active", 1.0, DEADLINE).await;

    // The stream plays from the new publisher.
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();
    assert!(viewer.stats().video.frame_log[0].is_keyframe());
    assert_eq!(second.delete().await.unwrap(), 200);
    assert_eq!(
        first.delete().await.unwrap(),
        404,
        "the old session is gone"
    );
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_within_the_grace_continues_the_viewers_session() {
    let (gateway, base) = gateway(&["--republish-grace", "10s"]).await;
    let options = publish_options(FIXTURE).await;
    let first = publish(&base, "cam", &options).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();

    assert_eq!(first.delete().await.unwrap(), 200);
    assert_eq!(first.wait_closed(DEADLINE).await.unwrap(), BY_GATEWAY);
    let before = viewer.stats().video.frames;

    let second = publish(&base, "cam", &options).await;
    viewer
        .wait_video_frames(before + 45, DEADLINE)
        .await
        .unwrap();
    assert_eq!(viewer.closed_reason(), None, "the viewer rode out the gap");
    let stats = viewer.stats();
    let log = &stats.video.frame_log;
    assert!(
        log[before as usize].is_keyframe(),
        "the new publisher's first frame is a keyframe: {:?}",
        &log[before as usize..before as usize + 2]
    );
    assert_increasing(log, 90_000, "video across the republish");
    assert_increasing(&stats.audio.frame_log, 48_000, "audio across the republish");
    assert_eq!(second.delete().await.unwrap(), 200);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
