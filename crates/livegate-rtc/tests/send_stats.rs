//! A sending session's statistics come from what the viewer reports: loss and round-trip
//! time from its RTCP receiver reports, keyframe requests from its PLIs. The viewer sits
//! behind a proxy that loses every tenth RTP packet, retransmissions included.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{lossy_relay, redirect, stats_until, Lose, TestPeer, DEADLINE};
use livegate_rtc::{Codec, RtcConfig, RtcServer, RtpFrame, SendSpec, SessionEvent, SessionRole};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_reports_fill_the_sending_sessions_stats() {
    let server = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let (proxy, dropped) = lossy_relay(server.local_addr(), Lose::ToPeer).await;
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
    // The server's counter adds each report's increase; loss only grows here, so it holds
    // at least the figure just read (a later report may have come since) and no more than
    // was dropped.
    let counted = server.stats().sent_packets_lost as i64;
    assert!(
        (stats.packets_lost..=i64::from(FRAMES) / 10 + 1).contains(&counted),
        "{counted} {stats:?}"
    );
    // The viewer NACKed what it missed, and the server sent those packets again from the
    // track's history (with their own sequence numbers, so the relay dropped them again).
    let totals = server.stats();
    assert!(totals.nacks_received > 0, "{totals:?}");
    assert!(totals.rtp_packets_retransmitted > 0, "{totals:?}");

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
    assert_eq!(server.stats().plis_received, 2);
}
