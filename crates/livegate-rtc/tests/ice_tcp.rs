//! ICE over TCP (RFC 6544, passive) against a real peer that has no UDP at all, and against
//! raw TCP clients that misbehave.

mod common;

use std::time::Duration;

use common::{frame, send_video, Network, TestPeer, DEADLINE};
use livegate_rtc::{RtcConfig, RtcServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(ice_tcp: bool) -> RtcServer {
    let mut config = RtcConfig::new("127.0.0.1:0".parse().unwrap());
    config.ice_tcp = ice_tcp;
    config.shards = 2;
    RtcServer::bind(config).await.unwrap()
}

/// The candidate lines of an SDP, split into fields.
fn candidates(sdp: &str) -> Vec<Vec<String>> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_without_udp_connects_over_tcp_and_receives_media() {
    let server = server(true).await;
    let port = server.local_addr().port().to_string();
    let mut peer = TestPeer::viewer_on(Network::Tcp([127, 0, 0, 1].into()))
        .await
        .unwrap();
    let offer = peer.offer(false).await.unwrap();
    assert!(
        candidates(&offer).iter().all(|c| c[2] == "tcp"),
        "the client offers TCP only: {offer}"
    );
    let accepted = server.accept(offer, send_video()).await.unwrap();
    let ours = candidates(&accepted.answer);
    assert!(
        ours.iter()
            .any(|c| c[2] == "udp" && c[4] == "127.0.0.1" && c[5] == port),
        "{ours:?}"
    );
    assert!(
        ours.iter().any(|c| c[2] == "tcp"
            && c[4] == "127.0.0.1"
            && c[5] == port
            && c.ends_with(&["tcptype".to_owned(), "passive".to_owned()])),
        "{ours:?}"
    );
    peer.apply_answer(accepted.answer.clone()).await.unwrap();
    peer.dial_tcp_candidates(&accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    tokio::time::timeout(DEADLINE, accepted.handle.connected())
        .await
        .unwrap()
        .unwrap();
    for i in 0..30u32 {
        accepted.handle.send_frame(0, frame(i * 3_000)).unwrap();
    }
    peer.received(10).await.unwrap();
    let stats = server.stats();
    assert!(stats.tcp_connections >= 1, "{stats:?}");
    assert_eq!(stats.tcp_connections_rejected, 0, "{stats:?}");

    assert_eq!(stats.tcp_connections_open, 1, "{stats:?}");

    // Removing the session closes its connection. The gauge is a metric, not an event, so
    // watch it until it gets there.
    accepted.handle.close().await;
    tokio::time::timeout(DEADLINE, async {
        while server.stats().tcp_connections_open > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still open: {:?}", server.stats()));
    assert_eq!(server.stats().tcp_connections_timed_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ice_tcp_the_answer_has_no_tcp_candidate_and_no_listener() {
    let server = server(false).await;
    let mut peer = TestPeer::viewer().await.unwrap();
    let offer = peer.offer(false).await.unwrap();
    let accepted = server.accept(offer, send_video()).await.unwrap();
    let ours = candidates(&accepted.answer);
    assert!(!ours.is_empty());
    assert!(ours.iter().all(|c| c[2] == "udp"), "{ours:?}");
    assert!(TcpStream::connect(server.local_addr()).await.is_err());
}

/// A STUN binding request (RFC 8489 §5) whose USERNAME names `ufrag` as ours.
fn binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:peer");
    let padded = username.len().div_ceil(4) * 4;
    let mut out = vec![0x00, 0x01];
    out.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    out.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    out.extend_from_slice(&rand::random::<[u8; 12]>());
    out.extend_from_slice(&[0x00, 0x06]);
    out.extend_from_slice(&(username.len() as u16).to_be_bytes());
    out.extend_from_slice(username.as_bytes());
    out.resize(20 + 4 + padded, 0);
    out
}

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

/// Sends `bytes` and waits for the server to close the connection.
async fn closed_after(server: &RtcServer, bytes: &[u8]) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_garbage_is_closed_and_counted() {
    let server = server(true).await;
    // A session exists, so a check naming its ufrag would be routed.
    let mut peer = TestPeer::viewer().await.unwrap();
    let accepted = server
        .accept(peer.offer(false).await.unwrap(), send_video())
        .await
        .unwrap();

    let cases: Vec<Vec<u8>> = vec![
        // Not RFC 4571 at all: an HTTP request.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A frame longer than any packet we accept.
        vec![0xFF, 0xFF, 0, 0, 0, 0],
        // Well framed, but DTLS before any check.
        framed(&[0x16, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        // A check for a session that does not exist.
        framed(&binding_request("nobody")),
    ];
    for (i, bytes) in cases.iter().enumerate() {
        closed_after(&server, bytes).await;
        assert_eq!(
            server.stats().tcp_connections_rejected,
            i as u64 + 1,
            "case {i}"
        );
    }
    assert_eq!(server.stats().tcp_connections, cases.len() as u64);

    // A check naming the session's ufrag is routed (so not rejected), but it carries no
    // valid MESSAGE-INTEGRITY, so nobody answers: the connection stays silent.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(&framed(&binding_request(&accepted.ice_ufrag)))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf))
            .await
            .is_err(),
        "no answer to an unauthenticated check"
    );
    assert_eq!(server.stats().tcp_connections_rejected, cases.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_tcp_connection_that_never_authenticates_is_dropped_after_10_s() {
    let server = server(true).await;
    let start = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buf = [0u8; 64];
    // Paused time runs ahead whenever everything waits, so this returns as soon as the
    // server's own timer has closed the connection.
    let read = stream.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    assert_eq!(server.stats().tcp_connections_timed_out, 1);
    assert_eq!(server.stats().tcp_connections_rejected, 0);
}

#[tokio::test]
async fn a_configured_port_whose_tcp_twin_is_taken_fails_to_bind() {
    // A fixed port is the operator's choice: the server must not silently move elsewhere.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = RtcConfig::new(taken.local_addr().unwrap());
    config.ice_tcp = true;
    let error = RtcServer::bind(config).await.err().expect("bind must fail");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn an_os_chosen_port_always_gets_its_tcp_twin() {
    // Ephemeral UDP ports often have their TCP twin held by some connection; port 0 must
    // keep looking instead of failing. Many binds make a collision likely on a busy host.
    for _ in 0..64 {
        let server = server(true).await;
        TcpStream::connect(server.local_addr()).await.unwrap();
    }
}
