//! The outbound packet path: RTP packets per second, and per CPU-second, through rtc's SRTP
//! protect and the socket send, for N sessions spread over 1 or 2 shards.
//!
//! `cargo bench -p livegate-rtc --bench packet_path`
//!
//! Peers connect for real (the async `webrtc` crate), then vanish without a goodbye, so the
//! measurement holds the server's work only: the sessions stay up (long ICE timeouts) and
//! their packets go to closed loopback ports. Frames are 10 payloads of 1 100 bytes, roughly
//! an H.264 keyframe slice at 2 Mbit/s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestPeer;
use livegate_rtc::{Codec, RtcConfig, RtcServer, RtpFrame, SendSpec, SessionHandle, SessionRole};

const FRAMES: u32 = 300;
const PAYLOADS: usize = 10;
const PAYLOAD_BYTES: usize = 1_100;

/// User + system CPU time of this process, from /proc (10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); after the name they are 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn connected_sessions(server: &RtcServer, n: usize) -> Vec<SessionHandle> {
    let peers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..n {
        let server = server.clone();
        let (handle, peer) = peers
            .spawn(async move {
                let mut peer = TestPeer::viewer().await.unwrap();
                let offer = peer.offer(false).await.unwrap();
                let role = SessionRole::Send(SendSpec {
                    stream_id: "bench".into(),
                    tracks: vec![Codec::H264],
                    h264_profile_level_id: None,
                });
                let accepted = server.accept(offer, role).await.unwrap();
                peer.apply_answer(accepted.answer).await.unwrap();
                peer.connected().await.unwrap();
                (accepted.handle, peer)
            })
            .await
            .unwrap();
        handle.connected().await.unwrap();
        std::mem::forget(peer);
        handles.push(handle);
    }
    peers.shutdown_background();
    handles
}

async fn run(sessions: usize, shards: usize) {
    let mut config = RtcConfig::new("127.0.0.1:0".parse().unwrap());
    config.shards = shards;
    config.disconnected_timeout = Duration::from_secs(120);
    config.failed_timeout = Duration::from_secs(120);
    let server = RtcServer::bind(config).await.unwrap();
    let handles = connected_sessions(&server, sessions).await;
    let payloads: Arc<[Bytes]> = (0..PAYLOADS)
        .map(|_| Bytes::from(vec![0x5Au8; PAYLOAD_BYTES]))
        .collect();
    let out_before = server.stats().datagrams_out;
    let (wall, cpu) = (Instant::now(), cpu_time());
    for frame in 0..FRAMES {
        for handle in &handles {
            let frame = RtpFrame {
                timestamp: frame * 3_000,
                payloads: payloads.clone(),
            };
            while handle.send_frame(0, frame.clone()).is_err() {
                tokio::task::yield_now().await;
            }
        }
    }
    // A stats round trip through each session's shard: every frame queued before it has
    // been protected and sent.
    for handle in &handles {
        handle.stats().await.unwrap();
    }
    let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
    let packets = server.stats().datagrams_out - out_before;
    assert!(packets >= u64::from(FRAMES) * (PAYLOADS * sessions) as u64);
    println!(
        "sessions={sessions:3} shards={shards} packets={packets:7} wall={:6.0} ms  {:8.0} pkt/s  {:8.0} pkt/CPU-s  {:6.0} Mbit/s",
        wall.as_secs_f64() * 1e3,
        packets as f64 / wall.as_secs_f64(),
        packets as f64 / cpu.as_secs_f64().max(0.01),
        packets as f64 * PAYLOAD_BYTES as f64 * 8.0 / wall.as_secs_f64() / 1e6,
    );
    server.shutdown().await;
}

fn main() {
    // `cargo test` runs benches with --bench absent; only measure when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for sessions in [10, 50] {
            for shards in [1, 2] {
                run(sessions, shards).await;
            }
        }
    });
}
