//! Shutdown under load (issue 9): the real `livegate` binary plays a test stream to
//! [`VIEWERS`] WHEP viewers (the load tool's client), gets SIGTERM, and must close every
//! viewer's session (each sees the gateway's DTLS close_notify) and exit 0 within
//! `LIVE_AI_SHUTDOWN_TIMEOUT`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use livegate_bench::whep::{WhepClient, WhepOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Viewers connected before the SIGTERM.
const VIEWERS: usize = 100;
/// The gateway's drain deadline; the process must be gone by then.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Safety net for start-up and for the viewers to connect.
const DEADLINE: Duration = Duration::from_secs(40);

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/h264-baseline-opus.ts")
        .canonicalize()
        .expect("the committed fixture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_viewers_closes_every_session_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .env_clear()
        .env("LIVE_AI_HTTP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHIP_ADDR", "off")
        .env("LIVE_AI_WHEP_ADDR", "127.0.0.1:0")
        .env(
            "LIVE_AI_TEST_STREAM",
            format!("cam={}", fixture().display()),
        )
        .env(
            "LIVE_AI_SHUTDOWN_TIMEOUT",
            format!("{}s", SHUTDOWN_TIMEOUT.as_secs()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn livegate");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line
                .contains("livegate listening")
                .then(|| {
                    line.split_whitespace()
                        .find_map(|f| f.strip_prefix("http="))
                })
                .flatten()
            {
                return addr.to_owned();
            }
        }
        panic!("livegate exited before listening");
    })
    .await
    .expect("livegate did not start in time");
    let logs = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });

    // One client (one connection pool), 100 peers; each waits until it is connected and has
    // a frame, so every viewer is a live session when the signal comes.
    let client = WhepClient::new();
    let url = format!("http://{addr}/live/cam/whep");
    let started = Instant::now();
    let mut joining = tokio::task::JoinSet::new();
    for _ in 0..VIEWERS {
        let (client, url) = (client.clone(), url.clone());
        joining.spawn(async move {
            let session = client.play(&url, &WhepOptions::default()).await?;
            session.wait_video_frames(1, DEADLINE).await?;
            Ok::<_, livegate_bench::whep::WhepClientError>(session)
        });
    }
    let sessions = tokio::time::timeout(DEADLINE, joining.join_all())
        .await
        .expect("viewers connected in time");
    let sessions: Vec<_> = sessions
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every viewer plays");
    eprintln!("{VIEWERS} viewers playing after {:?}", started.elapsed());
    assert!(sessions.iter().all(|s| s.closed_reason().is_none()));

    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());

    // Every viewer learns from the network that its session is over, within the deadline
    // (they close concurrently; awaiting them in turn only reads each one's outcome).
    let mut reasons = Vec::new();
    for session in &sessions {
        let left = SHUTDOWN_TIMEOUT.saturating_sub(signalled.elapsed());
        reasons.push(
            session
                .wait_closed(left)
                .await
                .expect("a viewer's session was not closed in time"),
        );
    }
    // The gateway's close_notify, or the peer connection's own closed state: never failed
    // (an ICE timeout would mean the gateway just went silent).
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("close_notify") || *r == "closed"),
        "{reasons:?}"
    );

    let exit = tokio::time::timeout(
        SHUTDOWN_TIMEOUT.saturating_sub(signalled.elapsed()) + Duration::from_secs(1),
        child.wait(),
    )
    .await
    .expect("exited within LIVE_AI_SHUTDOWN_TIMEOUT")
    .unwrap();
    eprintln!("closed and exited {:?} after SIGTERM", signalled.elapsed());
    assert!(exit.success(), "{exit:?}");
    let logs = logs.await.unwrap().join("\n");
    assert!(logs.contains("clean=true"), "{logs}");
}
