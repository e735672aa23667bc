//! Media through a lossy, reordering network: a UDP relay on 127.0.0.2 sits between a peer
//! and the gateway (the gateway advertises 127.0.0.2 as its 1:1 NAT address, so the peer
//! sends there) and drops and swaps RTP packets one way. A publisher's losses are repaired
//! with NACKs or skipped; a viewer's are repaired from the gateway's retransmission buffer;
//! either way the stream keeps playing.

mod whip_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use whip_common::*;

/// Every this many RTP packets from the publisher, one is dropped...
const DROP_EVERY: u64 = 40;
/// ...and, offset from the drops, one is held back and sent after the next (reordering).
const SWAP_EVERY: u64 = 23;

/// Counts what the relay did to the publisher's RTP.
#[derive(Default)]
struct Impaired {
    dropped: AtomicU64,
    swapped: AtomicU64,
}

/// RTP, not RTCP (RFC 5761 §4: RTCP packet types 192–223 in the second byte), nor STUN or
/// DTLS (RFC 7983 §7: RTP/RTCP first bytes 128–191).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 12 && (128..=191).contains(&datagram[0]) && !(192..=223).contains(&datagram[1])
}

/// Which way the relay impairs RTP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Impair {
    /// The publisher's media, on its way to the gateway.
    ToGateway,
    /// The gateway's media, on its way to a viewer.
    ToClient,
}

/// Drops and swaps RTP as configured; everything else passes untouched.
struct Impairer {
    impaired: Arc<Impaired>,
    held: Option<Vec<u8>>,
    rtp: u64,
}

impl Impairer {
    /// What to forward for `datagram`, in order: nothing, it, or it and a held one.
    fn pass(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        if !is_rtp(datagram) {
            return vec![datagram.to_vec()];
        }
        self.rtp += 1;
        if self.rtp.is_multiple_of(DROP_EVERY) {
            self.impaired.dropped.fetch_add(1, Ordering::Relaxed);
            return vec![];
        }
        if self.rtp.is_multiple_of(SWAP_EVERY) && self.held.is_none() {
            self.held = Some(datagram.to_vec());
            return vec![];
        }
        let mut out = vec![datagram.to_vec()];
        if let Some(late) = self.held.take() {
            self.impaired.swapped.fetch_add(1, Ordering::Relaxed);
            out.push(late);
        }
        out
    }
}

/// Relays between one client (whoever writes to `public` first) and `gateway`, impairing the
/// RTP of one direction. Runs until the test ends.
async fn relay(public: UdpSocket, gateway: SocketAddr, impaired: Arc<Impaired>, way: Impair) {
    let inner = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client = None::<SocketAddr>;
    let mut impairer = Impairer {
        impaired,
        held: None,
        rtp: 0,
    };
    let (mut from_client, mut from_gateway) = (vec![0u8; 2048], vec![0u8; 2048]);
    loop {
        tokio::select! {
            Ok((n, from)) = public.recv_from(&mut from_client) => {
                client = Some(from);
                let datagrams = if way == Impair::ToGateway {
                    impairer.pass(&from_client[..n])
                } else {
                    vec![from_client[..n].to_vec()]
                };
                for datagram in datagrams {
                    let _ = inner.send_to(&datagram, gateway).await;
                }
            }
            Ok((n, _)) = inner.recv_from(&mut from_gateway) => {
                let Some(client) = client else { continue };
                let datagrams = if way == Impair::ToClient {
                    impairer.pass(&from_gateway[..n])
                } else {
                    vec![from_gateway[..n].to_vec()]
                };
                for datagram in datagrams {
                    let _ = public.send_to(&datagram, client).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_reordering_are_repaired_or_skipped_and_the_stream_plays() {
    let (gateway, base) = gateway(&["--nat-ip", "127.0.0.2"]).await;
    let whip = gateway.rtc_addr("whip").unwrap();
    // The relay answers on the advertised address with the gateway's port number.
    let public = UdpSocket::bind(("127.0.0.2", whip.port())).await.unwrap();
    let impaired = Arc::new(Impaired::default());
    let relay = tokio::spawn(relay(public, whip, impaired.clone(), Impair::ToGateway));

    let publisher = publish(
        &base,
        "lossy",
        &publish_options("h264-baseline-opus.ts").await,
    )
    .await;
    let viewer = play(&base, "lossy").await;
    viewer.wait_video_frames(90, DEADLINE).await.unwrap();

    let dropped = impaired.dropped.load(Ordering::Relaxed);
    let swapped = impaired.swapped.load(Ordering::Relaxed);
    assert!(
        dropped >= 5 && swapped >= 5,
        "{dropped} dropped, {swapped} swapped"
    );

    // The gateway saw the holes and asked for the packets again (RFC 4585 generic NACK).
    let nacks_sent = metric(
        &base,
        "livegate_rtc_rtcp_feedback_total{direction=\"out\",kind=\"nack\",role=\"whip\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(nacks_sent > 0.0, "no NACK for {dropped} dropped packets");
    // What was not repaired was skipped: the damaged pictures' successors waited for a
    // keyframe, which was asked for. Either way the viewer's frames are whole and start on
    // a keyframe, and its timeline only moves forward.
    let stats = viewer.stats();
    assert!(stats.video.frame_log[0].is_keyframe());
    assert_eq!(
        stats.video.packets_lost, 0,
        "the gateway sends whole frames"
    );
    let frames = &stats.video.frame_log;
    assert!(frames.windows(2).all(|w| {
        let step = w[1].rtp_timestamp.wrapping_sub(w[0].rtp_timestamp);
        step > 0 && step < 90_000 * 5
    }));
    let lost = metric(
        &base,
        "livegate_whip_rtp_packets_lost_total{kind=\"video\"}",
    )
    .await
    .unwrap_or(0.0);
    let keyframe_requests = metric(&base, "livegate_whip_keyframe_requests_total")
        .await
        .unwrap_or(0.0);
    assert!(
        lost == 0.0 || keyframe_requests > 0.0,
        "{lost} packets given up without a keyframe request"
    );

    eprintln!("impairment: {dropped} dropped, {swapped} swapped; gateway: {nacks_sent} NACKs, {lost} lost, {keyframe_requests} keyframe requests");
    relay.abort();
    publisher.disconnect().await;
    viewer.close().await;
    assert!(gateway.shutdown(std::time::Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_losses_are_retransmitted_and_it_keeps_playing() {
    let (gateway, base) = gateway(&[
        "--nat-ip",
        "127.0.0.2",
        "--test-stream",
        &format!("lossy={}", fixture("h264-baseline-opus.ts").display()),
    ])
    .await;
    let whep = gateway.rtc_addr("whep").unwrap();
    let public = UdpSocket::bind(("127.0.0.2", whep.port())).await.unwrap();
    let impaired = Arc::new(Impaired::default());
    let relay = tokio::spawn(relay(public, whep, impaired.clone(), Impair::ToClient));

    let viewer = play(&base, "lossy").await;
    viewer.wait_video_frames(120, DEADLINE).await.unwrap();
    let dropped = impaired.dropped.load(Ordering::Relaxed);
    assert!(dropped >= 5, "{dropped} dropped");
    // The viewer's NACKs reached the gateway, whose buffer answered them (RFC 4585).
    let nacks = metric(
        &base,
        "livegate_rtc_rtcp_feedback_total{direction=\"in\",kind=\"nack\",role=\"whep\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(nacks > 0.0, "no NACK from the viewer for {dropped} drops");
    let stats = viewer.stats();
    // Nearly every frame arrived whole despite one packet in 40 dropped on the way.
    let complete = stats.video.complete_frames as f64 / stats.video.frames as f64;
    assert!(complete > 0.9, "{:?}", stats.video);
    assert!(stats.video.frame_log[0].is_keyframe());
    relay.abort();
    viewer.close().await;
    assert!(gateway.shutdown(std::time::Duration::from_secs(5)).await);
}
