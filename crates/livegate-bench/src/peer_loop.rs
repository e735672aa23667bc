//! The socket side of the viewer's and the publisher's event loops, the same for both: a
//! datagram into the `rtc` core, the core's datagrams out to the socket. Each loop keeps its
//! own turn order (what it selects on, how many ready datagrams it drains) and pumps the
//! core's events itself right after [`deliver`]: that pump, per datagram, is what installs
//! the SRTP keys the moment DTLS completes (see `crate::whep`'s peer module).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

/// Hands the core one datagram received on `local_addr` from `from` at `now`; returns
/// whether it was DTLS (RFC 7983 §7: a first byte in 20..=63), where a close_notify would be.
pub(crate) fn deliver(
    pc: &mut RTCPeerConnection,
    local_addr: SocketAddr,
    from: SocketAddr,
    message: BytesMut,
    now: Instant,
) -> bool {
    let dtls = matches!(message.first(), Some(20..=63));
    let _ = pc.handle_read(TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message,
    });
    dtls
}

/// Sends every datagram the core has queued. A failed send is a lost datagram, which ICE,
/// DTLS and NACK retransmission absorb.
pub(crate) async fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket) {
    while let Some(out) = pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
}

/// Why the loop ends when [`deliver`] saw DTLS and the transport is now closed: the W3C
/// connection-state rules count a closed DTLS transport as connected, so the gateway's
/// close_notify shows only there.
pub(crate) const GATEWAY_CLOSE_NOTIFY: &str = "closed by the gateway (DTLS close_notify)";
