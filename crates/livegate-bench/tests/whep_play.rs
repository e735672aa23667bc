//! The WHEP client against the real gateway, in process on 127.0.0.1, playing the committed
//! fixture `tests/fixtures/h264-baseline-opus.ts` as a test stream: what a player sees
//! (keyframe first, frames and audio flowing), and every end of a session (DELETE, the
//! gateway shutting down, a refused POST).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;
use livegate_bench::whep::{WhepClient, WhepClientError, WhepOptions};

/// Safety net for every wait; the waits themselves await events.
const DEADLINE: Duration = Duration::from_secs(20);

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264-baseline-opus.ts")
        .canonicalize()
        .expect("the committed fixture")
}

/// The gateway with stream `cam` looping the fixture.
async fn gateway(extra: &[&str]) -> (Gateway, String) {
    let test_stream = format!("cam={}", fixture().display());
    let mut args = vec![
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "127.0.0.1:0",
        "--whep-addr",
        "127.0.0.1:0",
        "--test-stream",
        &test_stream,
    ];
    args.extend_from_slice(extra);
    let gateway = Gateway::start(&Config::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", gateway.http_addr());
    (gateway, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_keyframe_first_then_delete_closes_the_session() {
    let (gateway, base) = gateway(&[]).await;
    let session = WhepClient::new()
        .play(&format!("{base}/live/cam/whep"), &WhepOptions::default())
        .await
        .unwrap();
    assert!(
        session.resource().location().starts_with("/live/cam/whep/"),
        "{}",
        session.resource().location()
    );
    assert!(session.resource().url().starts_with(&base));
    assert!(session.resource().etag().is_some());
    assert!(session.resource().answer_sdp().contains("a=candidate:"));

    let connected = session.wait_connected(DEADLINE).await.unwrap();
    session.wait_video_frames(30, DEADLINE).await.unwrap();
    session.wait_audio_packets(50, DEADLINE).await.unwrap();

    let stats = session.stats();
    let first = stats.video.frame_log[0];
    assert!(
        first.is_keyframe(),
        "the first frame is a keyframe: {first:?}"
    );
    assert!(
        first.has_parameter_sets(),
        "SPS and PPS in front of the IDR"
    );
    assert!(first.complete);
    let first_frame_at = stats.first_frame_at.expect("a first frame");
    assert!(
        first_frame_at >= connected,
        "{first_frame_at:?} < {connected:?}"
    );
    assert!(stats.video.frames >= 30 && stats.audio.frames >= 50);
    assert!(stats.video.payload_bytes > 0 && stats.audio.payload_bytes > 0);
    // A baseline stream has no B-frames: RTP timestamps only move forward.
    let log = &stats.video.frame_log;
    assert!(
        log.windows(2)
            .all(|w| (w[1].rtp_timestamp.wrapping_sub(w[0].rtp_timestamp) as i32) > 0),
        "video timestamps out of order"
    );

    assert_eq!(session.delete().await.unwrap(), 200);
    // The gateway ends the peer connection too, and the client notices.
    let why = session.wait_closed(DEADLINE).await.unwrap();
    assert!(why.contains("gateway"), "{why}");
    assert_eq!(session.closed_reason(), Some(why));
    assert_eq!(session.delete().await.unwrap(), 404, "the resource is gone");
    session.close().await;
    gateway.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shutdown_is_observed_as_closed() {
    let (gateway, base) = gateway(&[]).await;
    let session = WhepClient::new()
        .play(&format!("{base}/live/cam/whep"), &WhepOptions::default())
        .await
        .unwrap();
    session.wait_video_frames(1, DEADLINE).await.unwrap();
    assert_eq!(session.closed_reason(), None);
    gateway.shutdown(DEADLINE).await;
    let why = session.wait_closed(DEADLINE).await.unwrap();
    assert!(why.contains("gateway"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_viewer_and_server_metrics_on_its_data_channel() {
    let (gateway, base) = gateway(&[]).await;
    let options = WhepOptions {
        video: false,
        data_channel: true,
        ..WhepOptions::default()
    };
    let session = WhepClient::new()
        .play(&format!("{base}/live/cam/whep?server_metrics=1"), &options)
        .await
        .unwrap();
    assert!(!session.resource().offer_sdp().contains("m=video"));
    session.wait_audio_packets(10, DEADLINE).await.unwrap();
    let stats = session.stats();
    assert_eq!(stats.video.packets, 0);
    assert_eq!(
        stats.first_frame_at, stats.audio.first_frame_at,
        "audio-only: the first frame is the first audio packet"
    );
    let message = session.wait_data_message(DEADLINE).await.unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(metrics["type"], "server_metrics", "{message}");
    assert_eq!(session.delete().await.unwrap(), 200);
    gateway.shutdown(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_output_is_a_status_error_with_retry_after() {
    let (gateway, base) = gateway(&["--whep-wait-timeout", "200ms"]).await;
    let error = WhepClient::new()
        .play(&format!("{base}/live/nobody/whep"), &WhepOptions::default())
        .await
        .err()
        .expect("no output, no session");
    match &error {
        WhepClientError::Status { status, reason, .. } => {
            assert_eq!(*status, 409);
            assert!(reason.contains("nobody"), "{reason}");
        }
        other => panic!("expected a status error, got {other}"),
    }
    assert!(error.retry_after().is_some(), "409 carries Retry-After");
    gateway.shutdown(DEADLINE).await;
}
