//! The transport against real, independent peers on loopback: many connections on one UDP
//! port, garbage that disturbs nobody, a vanished peer reaped, media both ways.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{frame, send_video, TestPeer, DEADLINE};
use livegate_rtc::{
    CloseReason, Codec, PatchError, PatchOutcome, RtcConfig, RtcServer, SessionEvent, SessionRole,
    SessionState,
};

async fn server() -> RtcServer {
    let mut config = RtcConfig::new("127.0.0.1:0".parse().unwrap());
    config.disconnected_timeout = Duration::from_secs(1);
    config.failed_timeout = Duration::from_secs(1);
    config.keepalive_interval = Duration::from_millis(500);
    RtcServer::bind(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_share_one_port_and_all_get_media() {
    const VIEWERS: usize = 50;
    let server = server().await;
    let port = server.local_addr().port();
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        let mut peer = TestPeer::viewer().await.unwrap();
        // Half trickle-less OBS style (no candidates at all), half with their candidates.
        let strip = viewers.len() % 2 == 0;
        let offer = peer.offer(strip).await.unwrap();
        let accepted = server.accept(offer, send_video()).await.unwrap();
        assert_eq!(accepted.send_tracks, vec![Codec::H264]);
        let candidate_ports: Vec<&str> = accepted
            .answer
            .lines()
            .filter(|l| l.starts_with("a=candidate"))
            .map(|l| l.split_whitespace().nth(5).unwrap())
            .collect();
        assert!(!candidate_ports.is_empty());
        assert!(
            candidate_ports.iter().all(|p| *p == port.to_string()),
            "{candidate_ports:?}"
        );
        peer.apply_answer(accepted.answer).await.unwrap();
        viewers.push((peer, accepted.handle, accepted.events));
    }
    for (peer, handle, _) in &mut viewers {
        peer.connected().await.unwrap();
        tokio::time::timeout(DEADLINE, handle.connected())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(server.stats().sessions_active, VIEWERS as u64);
    for i in 0..30u32 {
        for (_, handle, _) in &viewers {
            handle.send_frame(0, frame(i * 3_000)).unwrap();
        }
    }
    for (peer, _, _) in &viewers {
        peer.received(10).await.unwrap();
    }
    for (peer, handle, _) in &viewers {
        peer.pc.close().await.unwrap();
        handle.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_disturb_nobody() {
    let server = server().await;
    let mut peer = TestPeer::viewer().await.unwrap();
    let offer = peer.offer(false).await.unwrap();
    let accepted = server.accept(offer, send_video()).await.unwrap();
    peer.apply_answer(accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();

    let rogue = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let before = server.stats().datagrams_unroutable;
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xFF; 1500],
        // STUN binding request header with a bogus USERNAME-less body.
        vec![
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
        // Looks like DTLS, and like RTP.
        vec![0x16, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
    ];
    // Fewer than a default socket buffer holds, so the kernel drops none of them.
    for i in 0..100u32 {
        garbage.push(i.to_be_bytes().repeat(50));
    }
    for datagram in &garbage {
        rogue.send_to(datagram, server.local_addr()).await.unwrap();
    }
    for i in 0..30u32 {
        accepted.handle.send_frame(0, frame(i * 3_000)).unwrap();
    }
    peer.received(10).await.unwrap();
    assert_eq!(*accepted.handle.state().borrow(), SessionState::Connected);
    // Every garbage datagram is counted and dropped (UDP on loopback does not lose them, but
    // the empty one may not be delivered at all). The counter is a metric, not an event, so
    // watch it until it gets there.
    let want = before + garbage.len() as u64 - 1;
    tokio::time::timeout(DEADLINE, async {
        while server.stats().datagrams_unroutable < want {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("unroutable: {:?}", server.stats()));
    assert_eq!(*accepted.handle.state().borrow(), SessionState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_reaped_within_the_failed_timeout() {
    let server = server().await;
    // The peer lives on its own runtime so it can vanish without saying goodbye.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server_for_peer = server.clone();
    let (handle, peer) = runtime
        .spawn(async move {
            let mut peer = TestPeer::viewer().await.unwrap();
            let offer = peer.offer(true).await.unwrap();
            let accepted = server_for_peer.accept(offer, send_video()).await.unwrap();
            peer.apply_answer(accepted.answer).await.unwrap();
            peer.connected().await.unwrap();
            (accepted.handle, peer)
        })
        .await
        .unwrap();
    handle.connected().await.unwrap();
    assert_eq!(server.stats().sessions_active, 1);
    std::mem::forget(peer);
    runtime.shutdown_background();

    let start = std::time::Instant::now();
    let mut state = handle.state();
    let closed = tokio::time::timeout(
        Duration::from_secs(15),
        state.wait_for(|s| matches!(s, SessionState::Closed(_))),
    )
    .await
    .expect("reaped")
    .unwrap()
    .clone();
    assert_eq!(closed, SessionState::Closed(CloseReason::Failed));
    // disconnected 1 s + failed 1 s, with slack for consent-check timing on a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.stats().sessions_active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_without_candidates_connects_and_its_video_arrives() {
    let server = server().await;
    let mut peer = TestPeer::publisher().await.unwrap();
    let offer = peer.offer(true).await.unwrap();
    let mut accepted = server.accept(offer, SessionRole::Receive).await.unwrap();
    peer.apply_answer(accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();
    let mut idr = vec![0, 0, 0, 1, 0x65];
    idr.extend(std::iter::repeat_n(0xAB, 3_000));
    peer.send_h264(Bytes::from(idr)).await.unwrap();
    let mut payload_bytes = 0;
    while payload_bytes < 3_000 {
        match tokio::time::timeout(DEADLINE, accepted.events.recv())
            .await
            .unwrap()
        {
            Some(SessionEvent::Rtp { codec, packet }) => {
                assert_eq!(codec, Codec::H264);
                payload_bytes += packet.payload.len();
            }
            Some(_) => {}
            None => panic!("session ended"),
        }
    }
    // Asking the publisher for a keyframe is accepted once video has arrived.
    accepted.handle.request_keyframe().unwrap();
    let stats = accepted.handle.stats().await.unwrap();
    assert!(stats.packets_received >= 3, "{stats:?}");
}

#[tokio::test]
async fn hostile_offers_are_refused_with_a_reason() {
    let server = server().await;
    for (offer, reason) in [
        ("not sdp", "malformed SDP"),
        (
            "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
            "no audio or video",
        ),
    ] {
        let error = server
            .accept(offer.to_owned(), SessionRole::Receive)
            .await
            .err()
            .expect("refused");
        assert!(error.to_string().contains(reason), "{error}");
    }
    assert_eq!(server.stats().sessions_created, 0);
}

/// The ICE lines of an SDP as a trickle-ice-sdpfrag.
fn ice_fragment(sdp: &str) -> String {
    sdp.lines()
        .filter(|l| {
            l.starts_with("a=ice-ufrag:")
                || l.starts_with("a=ice-pwd:")
                || l.starts_with("a=candidate:")
        })
        .map(|l| format!("{l}\r\n"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `answer` with its ICE credentials and candidates replaced by those of `fragment`.
fn apply_fragment(answer: &str, fragment: &str) -> String {
    let find = |prefix: &str| {
        fragment
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap()
            .to_owned()
    };
    let (ufrag, pwd) = (find("a=ice-ufrag:"), find("a=ice-pwd:"));
    let candidates: Vec<&str> = fragment
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    let mut out = String::new();
    let mut added = false;
    for line in answer.lines() {
        if line.starts_with("a=candidate:") {
            if !added {
                for c in &candidates {
                    out.push_str(c);
                    out.push_str("\r\n");
                }
                added = true;
            }
            continue;
        }
        let line = if line.starts_with("a=ice-ufrag:") {
            ufrag.as_str()
        } else if line.starts_with("a=ice-pwd:") {
            pwd.as_str()
        } else {
            line
        };
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_follows_rfc9725_preconditions_and_restarts_ice() {
    let server = server().await;
    let mut peer = TestPeer::viewer().await.unwrap();
    let offer = peer.offer(false).await.unwrap();
    let accepted = server.accept(offer, send_video()).await.unwrap();
    let first_answer = accepted.answer.clone();
    peer.apply_answer(accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    accepted.handle.connected().await.unwrap();
    let handle = accepted.handle;
    let trickle = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";

    assert_eq!(
        handle.patch(None, trickle).await,
        Err(PatchError::PreconditionRequired)
    );
    assert_eq!(
        handle.patch(Some("\"stale\""), trickle).await,
        Err(PatchError::PreconditionFailed)
    );
    assert_eq!(
        handle.patch(Some(&accepted.etag), trickle).await,
        Ok(PatchOutcome::Trickled)
    );
    assert!(matches!(
        handle.patch(Some("*"), trickle).await,
        Err(PatchError::BadRequest(_))
    ));
    assert!(matches!(
        handle.patch(Some(&accepted.etag), "garbage").await,
        Err(PatchError::BadFragment(_))
    ));

    // ICE restart driven by the client, as a browser's restartIce() does.
    for i in 0..10u32 {
        handle.send_frame(0, frame(i * 3_000)).unwrap();
    }
    peer.received(5).await.unwrap();
    peer.pc.restart_ice().await.unwrap();
    let restart_offer = peer.offer(false).await.unwrap();
    let PatchOutcome::Restarted { sdpfrag, etag } = handle
        .patch(Some("*"), &ice_fragment(&restart_offer))
        .await
        .unwrap()
    else {
        panic!("not restarted");
    };
    assert_ne!(etag, accepted.etag);
    assert!(sdpfrag.contains("a=ice-ufrag:"), "{sdpfrag}");
    assert_ne!(ice_fragment(&first_answer), sdpfrag);
    // The old ETag is now stale.
    assert_eq!(
        handle.patch(Some(&accepted.etag), trickle).await,
        Err(PatchError::PreconditionFailed)
    );
    peer.apply_answer(apply_fragment(&first_answer, &sdpfrag))
        .await
        .unwrap();
    let before = peer.packets();
    for i in 10..200u32 {
        handle.send_frame(0, frame(i * 3_000)).unwrap();
        if peer.packets() >= before + 5 {
            break;
        }
        // Media keeps flowing at a frame rate while the new ICE session nominates a pair.
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    peer.received(before + 5).await.unwrap();
    assert_eq!(*handle.state().borrow(), SessionState::Connected);
}
