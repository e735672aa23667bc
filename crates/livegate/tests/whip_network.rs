//! Media through a lossy, reordering, duplicating, delaying network: a UDP relay on
//! 127.0.0.2 sits between a peer and the gateway (the gateway advertises 127.0.0.2 as its 1:1
//! NAT address, so the peer sends there) and, one way, drops, swaps, duplicates and delays RTP
//! packets, and delays everything else by a constant one-way latency. A publisher's losses are repaired
//! with NACKs or skipped; a viewer's are repaired from the gateway's retransmission buffer;
//! either way the stream keeps playing.

mod whip_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use whip_common::*;

/// Every this many RTP packets from the publisher, one is dropped...
const DROP_EVERY: u64 = 40;
/// ...and, offset from the drops, one is held back and sent after the next (reordering)...
const SWAP_EVERY: u64 = 23;
/// ...one is sent twice...
const DUPLICATE_EVERY: u64 = 31;
/// ...and one is late by [`JITTER`] on top of [`LATENCY`], overtaken by a few after it.
const DELAY_EVERY: u64 = 17;
/// One-way delay of every datagram in the impaired direction.
const LATENCY: Duration = Duration::from_millis(15);
const JITTER: Duration = Duration::from_millis(50);

/// Counts what the relay did to the publisher's RTP.
#[derive(Default)]
struct Impaired {
    dropped: AtomicU64,
    swapped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
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
    /// What to forward for `datagram`, in order, each after its delay: nothing, it, it
    /// twice, or it and a held one.
    fn pass(&mut self, datagram: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        if !is_rtp(datagram) {
            return vec![(LATENCY, datagram.to_vec())];
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
        let delay = if self.rtp.is_multiple_of(DELAY_EVERY) {
            self.impaired.delayed.fetch_add(1, Ordering::Relaxed);
            LATENCY + JITTER
        } else {
            LATENCY
        };
        let mut out = vec![(delay, datagram.to_vec())];
        if self.rtp.is_multiple_of(DUPLICATE_EVERY) {
            self.impaired.duplicated.fetch_add(1, Ordering::Relaxed);
            out.push((delay, datagram.to_vec()));
        }
        if let Some(late) = self.held.take() {
            self.impaired.swapped.fetch_add(1, Ordering::Relaxed);
            out.push((LATENCY, late));
        }
        out
    }
}

/// One direction of the relay: datagrams leave `socket` for their destination at their due
/// time, in the order they were given among those due at the same time (so a constant latency
/// reorders nothing; only the jitter does).
struct DelayLine {
    queue: tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, SocketAddr, Vec<u8>)>,
}

impl DelayLine {
    fn new(socket: Arc<UdpSocket>) -> DelayLine {
        let (queue, mut incoming) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, SocketAddr, Vec<u8>)>();
        tokio::spawn(async move {
            // (due, arrival number) orders ties by arrival.
            let mut pending = std::collections::BTreeMap::new();
            let mut arrivals = 0u64;
            loop {
                let next_due = pending.keys().next().map(|(due, _)| *due);
                tokio::select! {
                    item = incoming.recv() => match item {
                        Some((due, to, datagram)) => {
                            arrivals += 1;
                            pending.insert((due, arrivals), (to, datagram));
                        }
                        None => return,
                    },
                    () = async {
                        match next_due {
                            Some(due) => tokio::time::sleep_until(due).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        let (_, (to, datagram)) = pending.pop_first().expect("a due datagram");
                        let _ = socket.send_to(&datagram, to).await;
                    }
                }
            }
        });
        DelayLine { queue }
    }

    fn send(&self, to: SocketAddr, delay: Duration, datagram: Vec<u8>) {
        let _ = self
            .queue
            .send((tokio::time::Instant::now() + delay, to, datagram));
    }
}

/// Relays between one client (whoever writes to `public` first) and `gateway`, impairing the
/// RTP of one direction. Runs until the test ends.
async fn relay(public: UdpSocket, gateway: SocketAddr, impaired: Arc<Impaired>, way: Impair) {
    let public = Arc::new(public);
    let inner = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (to_gateway, to_client) = (
        DelayLine::new(inner.clone()),
        DelayLine::new(public.clone()),
    );
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
                    vec![(Duration::ZERO, from_client[..n].to_vec())]
                };
                for (delay, datagram) in datagrams {
                    to_gateway.send(gateway, delay, datagram);
                }
            }
            Ok((n, _)) = inner.recv_from(&mut from_gateway) => {
                let Some(client) = client else { continue };
                let datagrams = if way == Impair::ToClient {
                    impairer.pass(&from_gateway[..n])
                } else {
                    vec![(Duration::ZERO, from_gateway[..n].to_vec())]
                };
                for (delay, datagram) in datagrams {
                    to_client.send(client, delay, datagram);
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
    let duplicated = impaired.duplicated.load(Ordering::Relaxed);
    let delayed = impaired.delayed.load(Ordering::Relaxed);
    assert!(
        dropped >= 5 && swapped >= 5 && duplicated >= 5 && delayed >= 5,
        "{dropped} dropped, {swapped} swapped, {duplicated} duplicated, {delayed} delayed"
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
    // The loss is published on the ingest's metrics tick, the request once the damaged
    // picture is found (rate-limited to one per 500 ms): the second may trail the first.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let keyframe_requests = loop {
        let requests = metric(&base, "livegate_whip_keyframe_requests_total")
            .await
            .unwrap_or(0.0);
        if lost == 0.0 || requests > 0.0 {
            break requests;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{lost} packets given up without a keyframe request"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

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
    let duplicated = impaired.duplicated.load(Ordering::Relaxed);
    let delayed = impaired.delayed.load(Ordering::Relaxed);
    assert!(
        dropped >= 5 && duplicated >= 5 && delayed >= 5,
        "{dropped} dropped, {duplicated} duplicated, {delayed} delayed"
    );
    // The viewer's NACKs reached the gateway, whose buffer answered them (RFC 4585).
    let nacks = metric(
        &base,
        "livegate_rtc_rtcp_feedback_total{direction=\"in\",kind=\"nack\",role=\"whep\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(nacks > 0.0, "no NACK from the viewer for {dropped} drops");
    let resent = metric(
        &base,
        "livegate_rtc_rtp_retransmitted_packets_total{role=\"whep\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(resent > 0.0, "nothing sent again for {nacks} NACKs");
    let stats = viewer.stats();
    // Most frames arrived whole despite one packet in 40 dropped, one in 17 late by 50 ms and
    // one in 31 twice. This client has no jitter buffer: a frame whose retransmission comes
    // after the next frame started counts as incomplete here (a browser would wait for it);
    // without the delay the share is above 0.9.
    let complete = stats.video.complete_frames as f64 / stats.video.frames as f64;
    assert!(complete > 0.8, "{:?}", stats.video);
    // The GOP cache starts the viewer on a keyframe; a packet of it may be the one dropped or
    // held back, so this client (which logs frames as their first packet arrives) may log a
    // frame or two before it.
    assert!(
        stats
            .video
            .frame_log
            .iter()
            .take(3)
            .any(|f| f.is_keyframe()),
        "{:?}",
        &stats.video.frame_log[..3]
    );
    relay.abort();
    viewer.close().await;
    assert!(gateway.shutdown(std::time::Duration::from_secs(5)).await);
}
