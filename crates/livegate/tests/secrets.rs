//! Secrets stay secret (issue 9, "Security"): a gateway started with every token and secret
//! set, logging at debug level, writes none of them in its start-up log.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_startup_log_contains_no_token() {
    let secrets = [
        ("LIVE_AI_WHIP_TOKEN", "whip-s3cret-6f1d"),
        ("LIVE_AI_WHEP_TOKEN", "whep-s3cret-9a2c"),
        ("LIVE_AI_ADMIN_TOKEN", "admin-s3cret-77b0"),
        ("LIVE_AI_UPSTREAM_TOKEN", "upstream-s3cret-d41e"),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livegate"));
    cmd.env_clear()
        .env("LIVE_AI_HTTP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHIP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHEP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_LOG_LEVEL", "debug")
        .env(
            "LIVE_AI_ICE_SERVERS",
            "turn:turnuser:turn-s3cret-0c3a@turn.example.org:3478",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in secrets {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("spawn livegate");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = tokio::time::timeout(DEADLINE, async {
        let mut log = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let listening = line.contains("livegate listening");
            log.push(line);
            if listening {
                return log.join("\n");
            }
        }
        panic!("livegate exited before listening: {}", log.join("\n"));
    })
    .await
    .expect("livegate started in time");
    child.kill().await.unwrap();
    // The log is not empty (so the check below could fail), and names no secret.
    assert!(log.contains("WebRTC server listening"), "{log}");
    for secret in secrets
        .iter()
        .map(|(_, value)| *value)
        .chain(["turn-s3cret-0c3a"])
    {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}
