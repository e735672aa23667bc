//! `livegate-bench whip` as the lead runs it for BENCHMARKS.md: a short run of two
//! publishers against the in-process gateway, read back from `--json` and checked against
//! the gateway's own counters; and the refusals that come before any request.

use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;

async fn bench(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_livegate-bench"))
            .args(args)
            .output()
            .expect("run livegate-bench")
    })
    .await
    .unwrap()
}

fn fixture() -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264-baseline-opus.ts")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

async fn metrics(gateway: &Gateway) -> String {
    reqwest::get(format!("http://{}/metrics", gateway.http_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn counter(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_run_publishes_every_stream_and_deletes_them() {
    let config = Config::try_parse_from([
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "127.0.0.1:0",
        "--whep-addr",
        "off",
        "--republish-grace",
        "0s",
    ])
    .unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let url = format!("http://{}/live/load{{n}}/whip", gateway.http_addr());
    let file = fixture();
    let pid = std::process::id().to_string();
    let output = bench(&[
        "whip",
        "--url",
        &url,
        "--streams",
        "2",
        "--file",
        &file,
        "--duration",
        "1.5",
        "--ramp-ms",
        "5",
        "--cpu-of",
        &pid,
        "--json",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["streams_connected"], 2, "{report:#}");
    assert_eq!(report["streams_failed"], 0);
    assert_eq!(report["deletes"][0]["label"], "200");
    assert_eq!(report["deletes"][0]["count"], 2);
    assert_eq!(report["created_ms"]["count"], 2);
    assert!(report["created_ms"]["p99"].as_f64().unwrap() > 0.0);
    // The fixture is ~170 kbit/s of payload at 30 fps.
    let fps = report["video_fps"]["min"].as_f64().unwrap();
    assert!((20.0..=40.0).contains(&fps), "{report:#}");
    let bitrate = report["bitrate_bps"]["min"].as_f64().unwrap();
    assert!((50_000.0..=500_000.0).contains(&bitrate), "{report:#}");
    let publishers = report["publishers"].as_array().unwrap();
    assert_eq!(publishers[1]["url"], url.replace("{n}", "1"));
    // --cpu-of this test process: the gateway runs in it.
    assert_eq!(report["gateway"]["pid"], std::process::id());
    assert!(report["gateway_cpu_percent_per_stream"].as_f64().unwrap() > 0.0);

    // The gateway answered exactly the two publishers and saw them go.
    let text = metrics(&gateway).await;
    assert_eq!(
        counter(&text, "livegate_whip_sessions_created_total"),
        Some(2.0)
    );
    assert_eq!(
        counter(
            &text,
            "livegate_whip_sessions_ended_total{reason=\"stopped\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(gateway.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn several_streams_need_an_index_in_the_url() {
    let file = fixture();
    let output = bench(&[
        "whip",
        "--url",
        "http://127.0.0.1:9/live/cam/whip",
        "--streams",
        "3",
        "--file",
        &file,
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("{n}"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn a_host_that_is_not_loopback_is_refused_before_any_request() {
    // TEST-NET-1 (RFC 5737): nothing answers there, and nothing is sent.
    let file = fixture();
    let output = bench(&[
        "whip",
        "--url",
        "http://192.0.2.1:8935/live/cam/whip",
        "--file",
        &file,
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
