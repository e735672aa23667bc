//! The gateway with `LIVE_AI_PIPELINE=trickle`: it hosts the stream's trickle channels on its
//! own HTTP port, a worker process (`trickle-echo`) pulls the input from
//! `/ai/trickle/{stream}` and pushes its output to `/ai/trickle/{stream}-out`, and a WHEP
//! viewer plays what the worker sent back.

mod whip_common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use whip_common::*;

/// The `trickle-echo` binary of this build, built if this run did not build it
/// (`cargo test -p livegate` alone does not).
fn trickle_echo() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("trickle-echo");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "livegate-trickle", "--bin", "trickle-echo"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .status()
            .unwrap();
        assert!(status.success(), "building trickle-echo");
    }
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_the_gateways_trickle_channels_serves_the_viewer() {
    let (gateway, base) = gateway(&[
        "--pipeline",
        "trickle",
        "--min-seg-dur",
        "500ms",
        "--republish-grace",
        "1s",
    ])
    .await;
    let publisher = publish(&base, "tr", &publish_options("h264-baseline-opus.ts").await).await;
    // The worker is told where the channels are, as an orchestrator tells ai-runner.
    let mut worker = Command::new(trickle_echo())
        .args(["--subscribe", &format!("{base}/ai/trickle/tr")])
        .args(["--publish", &format!("{base}/ai/trickle/tr-out")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let viewer = play(&base, "tr").await;
    viewer
        .wait_video_frames(60, DEADLINE)
        .await
        .expect("frames through the trickle worker");
    assert!(viewer.stats().video.frame_log[0].is_keyframe());

    let status: serde_json::Value = reqwest::get(format!("{base}/live/tr/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["pipeline"], "trickle", "{status}");

    // The publisher leaves: the input channel closes, the worker sees the end and exits.
    publisher.disconnect().await;
    let exit = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("the worker ends with its input")
        .unwrap();
    assert!(exit.success(), "{exit}");
    viewer.close().await;
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
