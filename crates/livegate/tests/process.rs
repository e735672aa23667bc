//! The `livegate` binary as ops run it: configuration from the environment, health and
//! metrics over HTTP, and a clean exit on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Safety net for waits on the child; the events themselves are awaited, not slept for.
const DEADLINE: Duration = Duration::from_secs(20);

fn livegate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livegate"));
    cmd.env_clear()
        .env("LIVE_AI_HTTP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHIP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHEP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts the gateway and returns it with the HTTP address it logged.
async fn start(mut cmd: Command) -> (Child, String, tokio::task::JoinHandle<Vec<String>>) {
    let mut child = cmd.spawn().expect("spawn livegate");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("livegate listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix("http="))
                    .expect("listening line names the HTTP address");
                return addr.to_owned();
            }
        }
        panic!("livegate exited before listening");
    })
    .await
    .expect("livegate did not start in time");
    // Keep draining stderr so the child never blocks on a full pipe; return it for asserts.
    let rest = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    (child, addr, rest)
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn serves_health_and_metrics_then_exits_zero_on_sigterm() {
    let (mut child, addr, logs) = start(livegate()).await;

    assert_eq!(
        get(&format!("http://{addr}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(get(&format!("http://{addr}/readyz")).await.0, 200);
    let (status, metrics) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
    assert!(
        metrics.contains("livegate_build_info{version="),
        "{metrics}"
    );
    // The earlier requests were counted by route and status.
    assert!(
        metrics.contains(r#"livegate_http_responses_total{route="/healthz",status="200"} 1"#),
        "{metrics}"
    );
    assert_eq!(get(&format!("http://{addr}/nope")).await.0, 404);

    sigterm(&child);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exited within the drain deadline")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let logs = logs.await.unwrap().join("\n");
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(logs.contains("clean=true"), "{logs}");
}

#[tokio::test]
async fn json_logs_when_asked() {
    let mut cmd = livegate();
    cmd.env("LIVE_AI_LOG_FORMAT", "json");
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Every line up to the listening one is a JSON object.
    let listening = tokio::time::timeout(DEADLINE, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a log line");
            let parsed: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if parsed["message"] == "livegate listening" {
                return parsed;
            }
        }
    })
    .await
    .unwrap();
    assert!(listening["http"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_value_fails_start_up_naming_the_variable() {
    for (var, value) in [
        ("LIVE_AI_WHEP_ADDR", "localhost:7291"),
        ("LIVE_AI_HTTP_ADDR", "nowhere"),
        ("LIVE_AI_ALLOW_CORS", "maybe"),
        ("LIVE_AI_LOG_FORMAT", "xml"),
        ("LIVE_AI_NAT_IP", "1.2.3.4,not-an-ip"),
        ("LIVE_AI_PIPELINE", "magic"),
    ] {
        let output = livegate()
            .env(var, value)
            .output()
            .await
            .expect("run livegate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

#[tokio::test]
async fn a_taken_udp_port_fails_start_up_naming_the_variable() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let output = livegate()
        .env("LIVE_AI_WHEP_ADDR", taken.local_addr().unwrap().to_string())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("LIVE_AI_WHEP_ADDR: cannot bind UDP"),
        "{stderr}"
    );
}

#[tokio::test]
async fn off_disables_a_webrtc_server() {
    let mut cmd = livegate();
    cmd.env("LIVE_AI_WHIP_ADDR", "off");
    let (mut child, addr, _logs) = start(cmd).await;
    let (_, metrics) = get(&format!("http://{addr}/metrics")).await;
    assert!(
        !metrics.contains(r#"livegate_rtc_sessions{role="whip"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"livegate_rtc_sessions{role="whep"} 0"#),
        "{metrics}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_taken_port_fails_start_up_naming_the_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = livegate()
        .env("LIVE_AI_HTTP_ADDR", taken.local_addr().unwrap().to_string())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("LIVE_AI_HTTP_ADDR: cannot bind"),
        "{stderr}"
    );
}
