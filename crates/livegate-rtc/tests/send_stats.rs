//! A sending session's statistics come from what the viewer reports: loss and round-trip
//! time from its RTCP receiver reports, keyframe requests from its PLIs. The viewer sits
//! behind a proxy that loses every tenth RTP packet, retransmissions included.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{TestPeer, DEADLINE};
use livegate_rtc::{
    Codec, RtcConfig, RtcServer, RtpFrame, SendSpec, SessionEvent, SessionRole, SessionStats,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::net::UdpSocket;

/// Whether a datagram is RTP (RFC 7983 §7 first byte 128..=191; RFC 5761 §4: RTCP packet
/// types 192..=223 leave 64..=95 in the 7-bit payload-type field) whose sequence number is
/// a multiple of 10.
fn lose(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7F))
        && u16::from_be_bytes([datagram[2], datagram[3]]).is_multiple_of(10)
}

/// A UDP relay between a viewer and the server that drops the RTP packets `lose` picks.
/// Returns the address the viewer should use for the server, and the count of drops.
async fn lossy_proxy(server: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let viewer_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let front = viewer_side.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    tokio::spawn(async move {
        let mut viewer = None;
        let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
        loop {
            tokio::select! {
                Ok((n, from)) = viewer_side.recv_from(&mut up) => {
                    viewer = Some(from);
                    let _ = server_side.send_to(&up[..n], server).await;
                }
                Ok((n, _)) = server_side.recv_from(&mut down) => {
                    if lose(&down[..n]) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(viewer) = viewer {
                        let _ = viewer_side.send_to(&down[..n], viewer).await;
                    }
                }
            }
        }
    });
    (front, dropped)
}

/// The answer with every UDP candidate pointed at `to`.
fn redirect(answer: &str, to: SocketAddr) -> String {
    answer
        .split("\r\n")
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if line.starts_with("a=candidate:") && fields[2] == "udp" {
                let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                fields[4] = to.ip().to_string();
                fields[5] = to.port().to_string();
                fields.join(" ")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Polls the session's statistics until `done` holds (they change with RTCP, which the
/// server does not announce).
async fn stats_until(
    handle: &livegate_rtc::SessionHandle,
    done: impl Fn(&SessionStats) -> bool,
) -> SessionStats {
    let mut last = SessionStats::default();
    let reached = tokio::time::timeout(DEADLINE, async {
        loop {
            last = handle.stats().await.expect("session alive");
            if done(&last) {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    reached.unwrap_or_else(|_| panic!("not reached: {last:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_reports_fill_the_sending_sessions_stats() {
    let server = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let (proxy, dropped) = lossy_proxy(server.local_addr()).await;
    let mut peer = TestPeer::viewer().await.unwrap();
    // No candidates in the offer: the server learns the viewer only as the proxy's address.
    let role = SessionRole::Send(SendSpec {
        stream_id: "test".into(),
        tracks: vec![Codec::H264],
        h264_profile_level_id: None,
    });
    let mut accepted = server
        .accept(peer.offer(true).await.unwrap(), role)
        .await
        .unwrap();
    peer.apply_answer(redirect(&accepted.answer, proxy))
        .await
        .unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();

    const FRAMES: u32 = 200;
    for i in 0..FRAMES {
        let frame = RtpFrame {
            timestamp: i * 3_000,
            payloads: Arc::from(vec![Bytes::from_static(&[0x65, 0x88, 0x80, 0x40])]),
        };
        accepted.handle.send_frame(0, frame).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    peer.received(u64::from(FRAMES) * 8 / 10).await.unwrap();
    let lost_on_the_wire = dropped.load(Ordering::Relaxed);
    assert!(lost_on_the_wire >= 15, "{lost_on_the_wire}");

    // Receiver reports come once a second; the loss they count is what never arrived.
    let stats = stats_until(&accepted.handle, |s| s.packets_lost >= 15 && s.rtt_s > 0.0).await;
    assert!(
        stats.packets_lost <= i64::from(FRAMES) / 10 + 1,
        "more lost than dropped: {stats:?}"
    );
    // On loopback the round trip is well under a second; LSR/DLSR resolution is 15 µs.
    assert!(stats.rtt_s < 0.5, "{stats:?}");

    let track = peer
        .observed
        .tracks
        .subscribe()
        .wait_for(|t| !t.is_empty())
        .await
        .unwrap()[0]
        .clone();
    let media_ssrc = track.ssrcs().await[0];
    for _ in 0..2 {
        track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc,
            })])
            .await
            .unwrap();
    }
    let mut requests = 0;
    while requests < 2 {
        match tokio::time::timeout(DEADLINE, accepted.events.recv()).await {
            Ok(Some(SessionEvent::KeyframeRequested { codec })) => {
                assert_eq!(codec, Codec::H264);
                requests += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("no keyframe request: {other:?}"),
        }
    }
    let stats = accepted.handle.stats().await.unwrap();
    assert_eq!(stats.keyframe_requests_received, 2, "{stats:?}");
}
