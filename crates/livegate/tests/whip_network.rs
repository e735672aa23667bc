//! A publisher's media through a lossy, reordering network: a UDP relay on 127.0.0.2 sits
//! between the publisher and the gateway (the gateway advertises 127.0.0.2 as its 1:1 NAT
//! address, so the publisher sends there) and drops and swaps RTP packets on the way in.
//! The gateway must repair with NACKs what it can and skip what it cannot, and the stream
//! must keep playing.

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

/// Relays between one client (whoever writes to `public` first) and `gateway`, impairing the
/// client's RTP. Runs until the test ends.
async fn relay(public: UdpSocket, gateway: SocketAddr, impaired: Arc<Impaired>) {
    let inner = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client = None::<SocketAddr>;
    let mut held = None::<Vec<u8>>;
    let mut rtp = 0u64;
    let (mut from_client, mut from_gateway) = (vec![0u8; 2048], vec![0u8; 2048]);
    loop {
        tokio::select! {
            Ok((n, from)) = public.recv_from(&mut from_client) => {
                client = Some(from);
                let datagram = &from_client[..n];
                if !is_rtp(datagram) {
                    let _ = inner.send_to(datagram, gateway).await;
                    continue;
                }
                rtp += 1;
                if rtp.is_multiple_of(DROP_EVERY) {
                    impaired.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if rtp.is_multiple_of(SWAP_EVERY) && held.is_none() {
                    held = Some(datagram.to_vec());
                    continue;
                }
                let _ = inner.send_to(datagram, gateway).await;
                if let Some(late) = held.take() {
                    impaired.swapped.fetch_add(1, Ordering::Relaxed);
                    let _ = inner.send_to(&late, gateway).await;
                }
            }
            Ok((n, _)) = inner.recv_from(&mut from_gateway) => {
                if let Some(client) = client {
                    let _ = public.send_to(&from_gateway[..n], client).await;
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
    let relay = tokio::spawn(relay(public, whip, impaired.clone()));

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
