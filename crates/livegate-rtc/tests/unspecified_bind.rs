//! A server bound to 0.0.0.0 advertises the host's own addresses, not loopback, and a peer
//! that reaches it on one of them is answered from that address.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{frame, send_video, Network, TestPeer, DEADLINE};
use livegate_rtc::{RtcConfig, RtcServer};

async fn server(ice_tcp: bool) -> RtcServer {
    let mut config = RtcConfig::new("0.0.0.0:0".parse().unwrap());
    config.ice_tcp = ice_tcp;
    config.shards = 2;
    RtcServer::bind(config).await.unwrap()
}

/// (protocol, address) of each component-1 candidate of an SDP.
fn candidates(sdp: &str) -> Vec<(String, SocketAddr)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[1] == "1")
        .map(|f| {
            let ip: IpAddr = f[4].parse().unwrap();
            (f[2].to_owned(), SocketAddr::new(ip, f[5].parse().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unspecified_bind_advertises_this_hosts_addresses() {
    let server = server(false).await;
    let advertised = server.candidate_addrs();
    assert!(!advertised.is_empty());
    for addr in &advertised {
        assert_eq!(addr.port(), server.local_addr().port());
        assert!(addr.is_ipv4() && !addr.ip().is_unspecified(), "{addr}");
        // An address of this host: we can bind to it.
        std::net::UdpSocket::bind((addr.ip(), 0))
            .unwrap_or_else(|e| panic!("{addr} is not ours: {e}"));
    }
    // Loopback only stands in when the host has nothing else; most hosts (CI included)
    // have a real interface, and then loopback must not be offered to remote peers.
    let any_other = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .is_ok_and(|a| !a.ip().is_loopback());
    if any_other {
        assert!(
            advertised.iter().all(|a| !a.ip().is_loopback()),
            "{advertised:?}"
        );
    }

    // A peer on 127.0.0.1 checks our first advertised address (not necessarily 127.0.0.1):
    // the replies must leave from that address or its ICE agent ignores them.
    let mut peer = TestPeer::viewer().await.unwrap();
    let accepted = server
        .accept(peer.offer(true).await.unwrap(), send_video())
        .await
        .unwrap();
    let ours = candidates(&accepted.answer);
    let udp: Vec<SocketAddr> = ours
        .iter()
        .filter(|(p, _)| p == "udp")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(udp, advertised);
    peer.apply_answer(accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    tokio::time::timeout(DEADLINE, accepted.handle.connected())
        .await
        .unwrap()
        .unwrap();
    for i in 0..30u32 {
        accepted.handle.send_frame(0, frame(i * 3_000)).unwrap();
    }
    peer.received(10).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_on_an_unspecified_bind_maps_each_connection_to_its_candidate() {
    let server = server(true).await;
    // Dialling one of our local addresses, the kernel takes that address as the source; the
    // peer's candidates must be on it for its own agent to accept the connection.
    let ip = server.candidate_addrs()[0].ip();
    let mut peer = TestPeer::viewer_on(Network::Tcp(ip)).await.unwrap();
    let accepted = server
        .accept(peer.offer(false).await.unwrap(), send_video())
        .await
        .unwrap();
    let tcp: Vec<SocketAddr> = candidates(&accepted.answer)
        .into_iter()
        .filter(|(p, _)| p == "tcp")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(tcp, server.candidate_addrs());
    peer.apply_answer(accepted.answer.clone()).await.unwrap();
    peer.dial_tcp_candidates(&accepted.answer).await.unwrap();
    peer.connected().await.unwrap();
    for i in 0..30u32 {
        accepted.handle.send_frame(0, frame(i * 3_000)).unwrap();
    }
    peer.received(10).await.unwrap();
    assert_eq!(server.stats().tcp_connections_rejected, 0);
}
