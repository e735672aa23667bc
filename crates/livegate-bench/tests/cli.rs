//! The `livegate-bench` binary as the lead runs it for BENCHMARKS.md: a short `whep` run
//! against the in-process gateway, read back from `--json`, and the refusal of a host that
//! is not loopback.

use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;

async fn bench(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_livegate-bench"))
            .args(args)
            .output()
            .expect("run livegate-bench")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_run_reports_every_viewer_and_deletes_them() {
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264-baseline-opus.ts")
        .canonicalize()
        .unwrap();
    let test_stream = format!("cam={}", fixture.display());
    let config = Config::try_parse_from([
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "127.0.0.1:0",
        "--whep-addr",
        "127.0.0.1:0",
        "--test-stream",
        &test_stream,
    ])
    .unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let url = format!("http://{}/live/cam/whep", gateway.http_addr());

    let output = bench(
        [
            "whep",
            "--url",
            &url,
            "--sessions",
            "3",
            "--duration",
            "1",
            "--ramp-ms",
            "5",
            "--cpu-of",
            &std::process::id().to_string(),
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["sessions_connected"], 3, "{report:#}");
    assert_eq!(report["sessions_failed"], 0);
    assert_eq!(report["deletes"][0]["label"], "200");
    assert_eq!(report["deletes"][0]["count"], 3);
    assert_eq!(report["first_frame_ms"]["count"], 3);
    assert!(
        report["video_fps"]["min"].as_f64().unwrap() > 10.0,
        "{report:#}"
    );
    assert!(report["total_bitrate_bps"].as_f64().unwrap() > 0.0);
    // --cpu-of this test process: the gateway runs in it.
    assert_eq!(report["gateway"]["pid"], std::process::id());
    assert!(report["gateway"]["cpu_percent_of_core"].as_f64().unwrap() > 0.0);
    assert_eq!(report["sessions"].as_array().unwrap().len(), 3);

    // The gateway saw exactly the three viewers the report describes.
    let metrics = reqwest::get(format!("http://{}/metrics", gateway.http_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let created = metrics
        .lines()
        .find(|l| l.starts_with("livegate_whep_sessions_created_total"))
        .and_then(|l| l.rsplit(' ').next())
        .expect("the WHEP sessions counter");
    assert_eq!(created, "3", "{metrics}");
    gateway.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_host_that_is_not_loopback_is_refused_before_any_request() {
    // TEST-NET-1 (RFC 5737): nothing answers there, and nothing is sent.
    let output = bench(
        ["whep", "--url", "http://192.0.2.1:8935/live/cam/whep"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    assert!(output.stdout.is_empty());
}
