//! A pipeline worker killed mid-stream, as an operator or the OOM killer would: the viewer's
//! WHEP session stays up, frames resume from the restarted worker, and the viewer's RTP
//! timestamps only go forward. `GET /live/{stream}/status` tells the story meanwhile.

mod whip_common;

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use whip_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_restarted_under_a_viewer_that_stays_connected() {
    let (gateway, base) = gateway(&["--pipeline", "exec:cat"]).await;
    let publisher = publish(
        &base,
        "killed",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    let viewer = play(&base, "killed").await;
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();

    let before = wait_status(&base, "killed", "a running worker with its pid", |s| {
        s["worker"]["state"] == "running" && s["worker"]["pid"].is_u64()
    })
    .await;
    assert_eq!(before["pipeline"], "exec");
    assert_eq!(before["live"], true);
    assert_eq!(before["viewers"], 1);
    assert_eq!(
        before["worker"]["timestamps"], "kept",
        "cat keeps PTS: {before}"
    );
    assert!(before["worker"]["latency"]["p50_ms"].as_f64().unwrap() < 1000.0);
    assert!(before["worker"]["input"]["bitrate_bps"].as_u64().unwrap() > 0);
    let generation = before["output_generation"].as_u64().unwrap();
    let pid = before["worker"]["pid"].as_u64().unwrap() as libc::pid_t;

    let frames_before = viewer.stats().video.frames;
    // SAFETY: kill(2) reads no memory of ours; the pid is the worker the gateway started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);

    let after = wait_status(&base, "killed", "a restarted worker", |s| {
        s["worker"]["restarts"] == 1
            && s["worker"]["state"] == "running"
            && s["worker"]["pid"].as_u64().is_some_and(|p| p != pid as u64)
    })
    .await;
    assert_eq!(after["output_generation"].as_u64().unwrap(), generation + 1);
    viewer
        .wait_video_frames(frames_before + 60, DEADLINE)
        .await
        .expect("frames resume from the restarted worker");
    assert!(
        viewer.closed_reason().is_none(),
        "the viewer's session survived the restart"
    );

    let log = viewer.stats().video.frame_log;
    let backwards: Vec<_> = log
        .windows(2)
        .filter(|pair| (pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp) as i32) <= 0)
        .collect();
    assert!(
        backwards.is_empty(),
        "RTP timestamps went backwards: {backwards:?}"
    );
    assert!(
        log.iter().filter(|f| f.is_keyframe()).count() >= 2,
        "the restarted worker's output starts at a keyframe"
    );

    viewer.close().await;
    publisher.disconnect().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_latency_reaches_prometheus_and_the_viewers_server_metrics() {
    let (gateway, base) = gateway(&["--pipeline", "exec:cat"]).await;
    let publisher = publish(
        &base,
        "timed",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    let options = livegate_bench::whep::WhepOptions {
        data_channel: true,
        ..viewer_options()
    };
    let viewer = livegate_bench::whep::WhepClient::new()
        .play(
            &format!("{base}/live/timed/whep?server_metrics=1"),
            &options,
        )
        .await
        .unwrap();
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();

    // The monitor publishes the figure about once a second: the first messages may precede it.
    let deadline = Instant::now() + DEADLINE;
    let latency_ms = loop {
        let message = viewer.wait_data_message(DEADLINE).await.unwrap();
        let json: Value = serde_json::from_str(&message).unwrap();
        if let Some(ms) = json["stream"]["pipeline_latency_ms"].as_f64() {
            assert!(json["stream"]["pipeline_latency_p99_ms"].as_f64().unwrap() >= ms);
            break ms;
        }
        assert!(Instant::now() < deadline, "no pipeline latency in {json}");
    };
    assert!(
        (0.0..1000.0).contains(&latency_ms),
        "cat adds {latency_ms} ms?"
    );

    let count = metric(
        &base,
        "livegate_pipeline_latency_seconds_count{pipeline=\"exec\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(count >= 30.0, "frames timed: {count}");

    // The stream and what its rings hold, read at the scrape.
    assert_eq!(metric(&base, "livegate_streams").await, Some(1.0));
    for buffer in ["input", "output"] {
        let bytes = metric(
            &base,
            &format!("livegate_stream_buffer_bytes{{buffer=\"{buffer}\"}}"),
        )
        .await
        .unwrap_or(0.0);
        assert!(bytes > 0.0, "{buffer} ring holds {bytes} bytes");
    }

    viewer.close().await;
    publisher.disconnect().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
