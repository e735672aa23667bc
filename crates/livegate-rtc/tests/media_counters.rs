//! The server's media counters and the per-session snapshot against real, independent peers:
//! what we send and what a viewer asks of us, what a publisher sends and what we ask of it,
//! and loss on a publisher's uplink.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::{lossy_relay, redirect, stats_until, Lose, TestPeer, DEADLINE};
use livegate_rtc::{
    Accepted, Codec, RtcConfig, RtcServer, RtpFrame, SendSpec, SessionEvent, SessionRole,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

async fn server(shards: usize) -> RtcServer {
    let mut config = RtcConfig::new("127.0.0.1:0".parse().unwrap());
    config.shards = shards;
    RtcServer::bind(config).await.unwrap()
}

fn send_video() -> SessionRole {
    SessionRole::Send(SendSpec {
        stream_id: "test".into(),
        tracks: vec![Codec::H264],
        h264_profile_level_id: None,
    })
}

const PAYLOAD: &[u8] = &[0x7C, 0x85, 0x88, 0x80, 0x40, 0x00, 0x00, 0x00];

/// A frame of `packets` payloads of [`PAYLOAD`].
fn frame(timestamp: u32, packets: usize) -> RtpFrame {
    RtpFrame {
        timestamp,
        payloads: (0..packets).map(|_| Bytes::from_static(PAYLOAD)).collect(),
    }
}

/// An H.264 access unit (Annex B) of about `len` bytes: several RTP packets, the last with
/// the marker bit.
fn access_unit(len: usize) -> Bytes {
    let mut unit = vec![0, 0, 0, 1, 0x65];
    unit.extend(std::iter::repeat_n(0xAB, len));
    Bytes::from(unit)
}

async fn connect(
    server: &RtcServer,
    mut peer: TestPeer,
    role: SessionRole,
) -> (TestPeer, Accepted) {
    let accepted = server
        .accept(peer.offer(true).await.unwrap(), role)
        .await
        .unwrap();
    peer.apply_answer(accepted.answer.clone()).await.unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();
    (peer, accepted)
}

/// Waits for `n` keyframe requests on a session's events.
async fn keyframe_requests(accepted: &mut Accepted, n: usize) {
    let mut seen = 0;
    while seen < n {
        match tokio::time::timeout(DEADLINE, accepted.events.recv()).await {
            Ok(Some(SessionEvent::KeyframeRequested { codec })) => {
                assert_eq!(codec, Codec::H264);
                seen += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("{seen} of {n} keyframe requests: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_we_send_and_a_viewers_feedback_are_counted() {
    // Two shards and two viewers: round robin puts one on each, so the counters and the
    // snapshot are sums over shards.
    let server = server(2).await;
    let mut viewers = Vec::new();
    for _ in 0..2 {
        viewers.push(connect(&server, TestPeer::viewer().await.unwrap(), send_video()).await);
    }
    const FRAMES: u32 = 30;
    const PACKETS: usize = 3;
    for i in 0..FRAMES {
        for (_, accepted) in &viewers {
            accepted
                .handle
                .send_frame(0, frame(i * 3_000, PACKETS))
                .unwrap();
        }
    }
    let sent = u64::from(FRAMES) * PACKETS as u64;
    for (peer, accepted) in &viewers {
        peer.received(sent).await.unwrap();
        // A round trip through the session's shard: its sends are done and counted.
        accepted.handle.stats().await.unwrap();
    }
    let stats = server.stats();
    assert!(stats.rtp_packets_sent >= 2 * sent, "{stats:?}");
    // SRTP: the 12-byte header (plus any extensions), the payload and a 10-byte tag.
    let smallest = (12 + PAYLOAD.len() as u64 + 10) * stats.rtp_packets_sent;
    assert!(stats.rtp_bytes_sent >= smallest, "{stats:?}");
    assert_eq!(stats.video_frames_sent, 2 * u64::from(FRAMES));
    assert_eq!(stats.rtp_packets_received, 0, "viewers send no RTP");
    assert!(
        stats.datagrams_out > stats.rtp_packets_sent,
        "RTCP, STUN and DTLS too"
    );

    // Feedback from the first viewer: a NACK, a FIR, then a PLI. They travel one path in
    // order, so once the PLI's keyframe request is out, the NACK has been handled too.
    let (peer, accepted) = &mut viewers[0];
    let track = peer
        .observed
        .tracks
        .subscribe()
        .wait_for(|t| !t.is_empty())
        .await
        .unwrap()[0]
        .clone();
    let media_ssrc = track.ssrcs().await[0];
    track
        .write_rtcp(vec![Box::new(TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc,
            nacks: vec![NackPair {
                packet_id: 7,
                lost_packets: 0,
            }],
        })])
        .await
        .unwrap();
    track
        .write_rtcp(vec![Box::new(FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: vec![FirEntry {
                ssrc: media_ssrc,
                sequence_number: 1,
            }],
        })])
        .await
        .unwrap();
    track
        .write_rtcp(vec![Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc,
        })])
        .await
        .unwrap();
    keyframe_requests(accepted, 2).await;
    let stats = server.stats();
    assert_eq!(
        (
            stats.nacks_received,
            stats.firs_received,
            stats.plis_received
        ),
        (1, 1, 1),
        "{stats:?}"
    );
    let session = accepted.handle.stats().await.unwrap();
    assert_eq!(session.nacks_received, 1, "{session:?}");
    assert_eq!(session.keyframe_requests_received, 2, "{session:?}");
    assert!(
        session.frames_per_second.is_some(),
        "a video track: {session:?}"
    );

    let snapshot = server.sessions_snapshot().await;
    assert_eq!(snapshot.len(), 2, "{snapshot:?}");
    for session in &snapshot {
        assert!(session.packets_sent >= sent, "{session:?}");
        assert_eq!(session.packets_received, 0, "{session:?}");
    }
    assert_eq!(
        snapshot.iter().map(|s| s.nacks_received).sum::<u64>(),
        1,
        "{snapshot:?}"
    );
    assert_eq!(server.stats().snapshot_shards_skipped, 0);

    server.shutdown().await;
    assert!(server.sessions_snapshot().await.is_empty());
    assert_eq!(
        server.stats().snapshot_shards_skipped,
        0,
        "a stopped shard is not late"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_frames_and_our_keyframe_request_are_counted() {
    let server = server(1).await;
    let (peer, mut accepted) = connect(
        &server,
        TestPeer::publisher().await.unwrap(),
        SessionRole::Receive,
    )
    .await;
    const FRAMES: u64 = 45;
    // 30 frames per second, each in several packets.
    let sender = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(33));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..FRAMES {
            ticker.tick().await;
            peer.send_h264(access_unit(2_500)).await.unwrap();
        }
        peer
    });

    let (mut frames, mut packets, mut payload_bytes) = (0, 0, 0);
    let mut sender_reports = 0;
    let mut first = None;
    while frames < FRAMES {
        match tokio::time::timeout(DEADLINE, accepted.events.recv()).await {
            Ok(Some(SessionEvent::Rtp { codec, packet })) => {
                assert_eq!(codec, Codec::H264);
                packets += 1;
                payload_bytes += packet.payload.len() as u64;
                if packet.header.marker {
                    frames += 1;
                    if frames == 1 {
                        // The frame rate is measured from here to the last frame.
                        first = Some(accepted.handle.stats().await.unwrap());
                    }
                }
            }
            Ok(Some(SessionEvent::SenderReport { codec, .. })) => {
                assert_eq!(codec, Codec::H264);
                sender_reports += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("{frames} frames: {other:?}"),
        }
    }
    let _peer = sender.await.unwrap();
    // The publisher's sender reports (about one a second) reach the owner, named by the
    // track they describe: WHIP's lip sync needs them.
    while sender_reports == 0 {
        match tokio::time::timeout(DEADLINE, accepted.events.recv()).await {
            Ok(Some(SessionEvent::SenderReport {
                codec, ntp_time, ..
            })) => {
                assert_eq!(codec, Codec::H264);
                assert!(
                    ntp_time >> 32 > 3_900_000_000,
                    "NTP seconds since 1900: {ntp_time}"
                );
                sender_reports += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("no sender report: {other:?}"),
        }
    }
    assert_eq!(
        first.unwrap().frames_per_second,
        Some(0.0),
        "no interval yet"
    );
    let session = accepted.handle.stats().await.unwrap();
    // 44 frames 33 ms apart; the bounds leave room for a loaded machine.
    let fps = session.frames_per_second.expect("video was seen");
    assert!((10.0..=60.0).contains(&fps), "{session:?}");

    let stats = server.stats();
    assert_eq!(stats.video_frames_received, FRAMES, "{stats:?}");
    assert!(packets > FRAMES, "several packets a frame: {packets}");
    assert!(stats.rtp_packets_received >= packets, "{stats:?} {packets}");
    assert!(
        stats.rtp_bytes_received >= payload_bytes + packets * (12 + 10),
        "{stats:?} {payload_bytes}"
    );
    assert_eq!(stats.rtp_packets_sent, 0, "we send a publisher no RTP");

    accepted.handle.request_keyframe().unwrap();
    // Commands are handled in order: once this answers, the PLI is written.
    let session = accepted.handle.stats().await.unwrap();
    assert_eq!(server.stats().plis_sent, 1);
    assert_eq!(session.plis_sent, 1, "rtc counted it too: {session:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_on_a_publishers_uplink_is_counted_and_nacked() {
    let server = server(1).await;
    let (relay, dropped) = lossy_relay(server.local_addr(), Lose::FromPeer).await;
    let mut peer = TestPeer::publisher().await.unwrap();
    let mut accepted = server
        .accept(peer.offer(true).await.unwrap(), SessionRole::Receive)
        .await
        .unwrap();
    peer.apply_answer(redirect(&accepted.answer, relay))
        .await
        .unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();
    let handle = accepted.handle.clone();
    let events = tokio::spawn(async move {
        // The owner keeps reading, as the WHIP layer would.
        while accepted.events.recv().await.is_some() {}
    });
    for _ in 0..60 {
        peer.send_h264(access_unit(2_500)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dropped.load(Ordering::Relaxed) >= 10, "{dropped:?}");

    // Our NACKs go out on rtc's timer and our receiver reports once a second; neither is
    // announced, so poll.
    let session = stats_until(&handle, |s| s.packets_lost > 0 && s.nacks_sent > 0).await;
    let stats = server.stats();
    assert!(
        stats.nacks_sent >= session.nacks_sent,
        "{stats:?} {session:?}"
    );
    assert!(
        stats.received_packets_lost >= session.packets_lost as u64,
        "{stats:?} {session:?}"
    );
    assert!(
        stats.received_packets_lost <= dropped.load(Ordering::Relaxed),
        "no more lost than dropped: {stats:?}"
    );
    assert!((0.0..=1.0).contains(&session.fraction_lost), "{session:?}");
    assert_eq!(stats.sent_packets_lost, 0, "we sent the publisher no RTP");
    events.abort();
}
