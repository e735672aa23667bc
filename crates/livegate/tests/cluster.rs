//! Cluster mode as ops run it: three `livegate` processes and one `redis-server` on
//! loopback. Publish on A, play on B and C (one pull per edge), a duplicate publish refused
//! fleet-wide, a Redis restart survived, and A's death ending its edges' viewers.

mod whip_common;

use livegate_bench::whep::WhepClient;
use livegate_bench::whip::WhipClient;
use livegate_cluster::testing::RedisServer;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use whip_common::{metric, publish_options, viewer_options, wait_for_metric, DEADLINE};

const SECRET: &str = "fleet-secret";

/// A recvonly offer as a player sends it (as in whep_http.rs).
const OFFER: &str = "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";

/// One gateway process of the fleet.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    /// Starts `livegate` in cluster mode on ephemeral loopback ports; its node URL is its
    /// bound HTTP address.
    async fn start(redis: &RedisServer, extra: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_livegate"));
        cmd.env_clear()
            .env("LIVE_AI_HTTP_ADDR", "127.0.0.1:0")
            .env("LIVE_AI_WHIP_ADDR", "127.0.0.1:0")
            .env("LIVE_AI_WHEP_ADDR", "127.0.0.1:0")
            .env("LIVE_AI_REDIS_URL", redis.url())
            .env("LIVE_AI_CLUSTER_SECRET", SECRET)
            // Short, so a death is noticed within the test.
            .env("LIVE_AI_CLUSTER_TTL", "3s")
            .env("LIVE_AI_REPUBLISH_GRACE", "1s")
            .env("LIVE_AI_WHEP_WAIT_TIMEOUT", "10s")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn livegate");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("livegate listening") {
                    return line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("http="))
                        .expect("the listening line names the HTTP address")
                        .to_owned();
                }
            }
            panic!("livegate exited before listening");
        })
        .await
        .expect("livegate did not start in time");
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn whip(&self, stream: &str) -> String {
        format!("{}/live/{stream}/whip", self.base)
    }

    fn whep(&self, stream: &str) -> String {
        format!("{}/live/{stream}/whep", self.base)
    }
}

/// The status a WHIP POST of `stream` gets on `node`, and the publisher when it was 201.
async fn try_publish(
    node: &Node,
    stream: &str,
) -> Result<livegate_bench::whip::WhipPublisher, u16> {
    let options = publish_options("h264-baseline-opus.ts").await;
    match WhipClient::new()
        .publish(&node.whip(stream), &options)
        .await
    {
        Ok(publisher) => Ok(publisher),
        Err(e) => Err(e.status().unwrap_or_else(|| panic!("no status: {e}"))),
    }
}

#[tokio::test]
async fn publish_on_a_play_on_b_and_c_survive_a_redis_restart_and_end_with_a() {
    let redis = RedisServer::start().await;
    let redis_port = redis.port();
    let mut a = Node::start(&redis, &[]).await;
    let b = Node::start(&redis, &[]).await;
    let c = Node::start(&redis, &[]).await;
    wait_for_metric(&b.base, "livegate_cluster_nodes", 3.0, DEADLINE).await;

    let publisher = try_publish(&a, "cam").await.expect("publish on A");
    publisher.wait_connected(DEADLINE).await.unwrap();

    // Two viewers on B, one on C: each edge pulls once.
    let mut viewers = Vec::new();
    for node in [&b, &b, &c] {
        let viewer = WhepClient::new()
            .play(&node.whep("cam"), &viewer_options())
            .await
            .unwrap();
        viewer.wait_video_frames(30, DEADLINE).await.unwrap();
        viewers.push(viewer);
    }
    assert!(viewers.iter().all(|v| v.stats().video.keyframes > 0));
    assert_eq!(
        metric(&a.base, "livegate_cluster_origin_pulls_active").await,
        Some(2.0),
        "one pull per edge node, not per viewer"
    );
    assert_eq!(
        metric(&a.base, "livegate_cluster_origin_pulls_total").await,
        Some(2.0)
    );
    for edge in [&b, &c] {
        assert_eq!(
            metric(&edge.base, "livegate_cluster_edge_pulls_active").await,
            Some(1.0)
        );
    }

    // `/streams` on any node shows the fleet: A originates "cam", B pulls it for two viewers
    // (as of B's next heartbeat), C for one.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let list: serde_json::Value = reqwest::get(format!("{}/streams", c.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let fleet = &list["cluster"];
        let origin_of_cam = fleet["origins"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["stream"] == "cam"))
            .map(|o| o["url"].clone());
        let edges = |base: &str| {
            fleet["nodes"]
                .as_array()
                .and_then(|n| n.iter().find(|n| n["url"] == base))
                .map(|n| n["edges"]["cam"].clone())
        };
        if fleet["nodes"].as_array().map(Vec::len) == Some(3)
            && origin_of_cam == Some(a.base.as_str().into())
            && edges(&b.base) == Some(2.into())
            && edges(&c.base) == Some(1.into())
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fleet never showed in /streams: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The key is A's fleet-wide.
    assert_eq!(try_publish(&b, "cam").await.err(), Some(409));

    // Redis goes away: what flows keeps flowing, new cross-node work is refused.
    redis.kill().await;
    for node in [&a, &b, &c] {
        wait_for_metric(&node.base, "livegate_cluster_redis_up", 0.0, DEADLINE).await;
    }
    for viewer in &viewers {
        let frames = viewer.stats().video.frames;
        viewer
            .wait_video_frames(frames + 30, DEADLINE)
            .await
            .unwrap();
    }
    assert_eq!(try_publish(&c, "second").await.err(), Some(503));
    let refused = WhepClient::new()
        .play(&c.whep("elsewhere"), &viewer_options())
        .await
        .err()
        .and_then(|e| e.status());
    assert_eq!(refused, Some(503));

    // Redis comes back empty; heartbeats and claims are written again.
    let redis = RedisServer::start_on(redis_port).await;
    wait_for_metric(&b.base, "livegate_cluster_redis_up", 1.0, DEADLINE).await;
    wait_for_metric(&b.base, "livegate_cluster_nodes", 3.0, DEADLINE).await;
    let second = try_publish(&c, "second").await.expect("publish on C again");
    second.wait_connected(DEADLINE).await.unwrap();
    let on_b = WhepClient::new()
        .play(&b.whep("second"), &viewer_options())
        .await
        .unwrap();
    on_b.wait_video_frames(30, DEADLINE).await.unwrap();
    // A's heartbeat renewed (re-created) its claim of "cam" before reporting Redis up.
    wait_for_metric(&a.base, "livegate_cluster_redis_up", 1.0, DEADLINE).await;
    assert_eq!(try_publish(&b, "cam").await.err(), Some(409));

    // A dies: its edges' viewers end within TTL + grace, and the registry forgets A.
    a.child.kill().await.unwrap();
    for viewer in &viewers {
        let why = viewer.wait_closed(DEADLINE).await.unwrap();
        assert!(
            why.contains("close_notify"),
            "ended cleanly by the edge: {why}"
        );
    }
    wait_for_metric(&b.base, "livegate_cluster_nodes", 2.0, DEADLINE).await;
    assert_eq!(
        metric(
            &b.base,
            "livegate_whep_sessions_ended_total{reason=\"stream_ended\"}"
        )
        .await,
        Some(2.0)
    );
    // The stream C originates is untouched.
    let frames = on_b.stats().video.frames;
    on_b.wait_video_frames(frames + 10, DEADLINE).await.unwrap();
    drop(redis);
}

#[tokio::test]
async fn redirect_mode_sends_the_viewer_to_the_origin() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis, &[]).await;
    let b = Node::start(&redis, &[("LIVE_AI_CLUSTER_REDIRECT", "true")]).await;
    let publisher = try_publish(&a, "cam").await.expect("publish on A");
    publisher.wait_connected(DEADLINE).await.unwrap();

    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(b.whep("cam"))
        .header("content-type", "application/sdp")
        .body(OFFER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 307);
    assert_eq!(response.headers()["location"], a.whep("cam").as_str());
    // A player that follows it (reqwest does, with the offer) plays from A.
    let viewer = WhepClient::new()
        .play(&b.whep("cam"), &viewer_options())
        .await
        .unwrap();
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();
    assert_eq!(
        metric(&a.base, "livegate_cluster_origin_pulls_total").await,
        Some(0.0),
        "nothing pulled: the viewer plays from A"
    );
    assert_eq!(
        metric(&b.base, "livegate_cluster_edge_pulls_active").await,
        Some(0.0)
    );
}

#[tokio::test]
async fn cluster_mode_without_a_secret_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .env_clear()
        .env("LIVE_AI_HTTP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHIP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_WHEP_ADDR", "127.0.0.1:0")
        .env("LIVE_AI_REDIS_URL", "redis://127.0.0.1:1/")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("LIVE_AI_CLUSTER_SECRET"), "{stderr}");
}

#[tokio::test]
async fn a_publisher_moving_onto_an_edge_keeps_that_edges_viewers() {
    let redis = RedisServer::start().await;
    // A grace long enough for the publisher to get from A to B on a loaded machine.
    let grace = [("LIVE_AI_REPUBLISH_GRACE", "10s")];
    let a = Node::start(&redis, &grace).await;
    let b = Node::start(&redis, &grace).await;
    wait_for_metric(&b.base, "livegate_cluster_nodes", 2.0, DEADLINE).await;

    let on_a = try_publish(&a, "cam").await.expect("publish on A");
    on_a.wait_connected(DEADLINE).await.unwrap();
    let viewer = WhepClient::new()
        .play(&b.whep("cam"), &viewer_options())
        .await
        .unwrap();
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();
    assert_eq!(
        metric(&b.base, "livegate_cluster_edge_pulls_active").await,
        Some(1.0)
    );

    // The publisher leaves A and comes back on B, within the grace.
    assert_eq!(on_a.delete().await.unwrap(), 200);
    let on_b = try_publish(&b, "cam").await.expect("publish on B");
    on_b.wait_connected(DEADLINE).await.unwrap();

    // B's viewer stays connected and gets the new publisher's frames from B itself.
    let frames = viewer.stats().video.frames;
    let keyframes = viewer.stats().video.keyframes;
    viewer
        .wait_video_frames(frames + 60, DEADLINE)
        .await
        .unwrap();
    assert!(
        viewer.stats().video.keyframes > keyframes,
        "it restarted at the new publisher's keyframe"
    );
    assert_eq!(viewer.closed_reason(), None);
    assert_eq!(
        metric(&b.base, "livegate_cluster_edge_pulls_active").await,
        Some(0.0)
    );
    assert_eq!(
        metric(
            &b.base,
            "livegate_whep_sessions_ended_total{reason=\"stream_ended\"}"
        )
        .await,
        None,
        "no viewer session ended on B"
    );
    drop(redis);
}
