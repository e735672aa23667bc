//! The socket side of a peer connection that one task drives on one UDP socket: our host
//! candidate in the offer, a received datagram into the `rtc` core, the core's datagrams out,
//! and the DTLS close a datagram may carry. The upstream connection (`peer`) and the load
//! tool's viewers and publishers (`livegate-bench`) all drive their cores this way; each loop
//! keeps its own turn order (what it selects on, how many ready datagrams it drains, when it
//! pumps the core's events).
//!
//! Not here: the event loop itself, or what any event means.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsTransportState, RTCIceCandidate,
    RTCIceCandidateInit,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

/// Adds our one host candidate, the socket's `local_addr`, then the empty candidate that
/// ends gathering: the offer is complete (no trickle; RFC 9725 §4.2 lets a client send every
/// candidate up front).
pub fn add_host_candidate(
    pc: &mut RTCPeerConnection,
    local_addr: SocketAddr,
) -> Result<(), RtcError> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local_addr.ip().to_string(),
            port: local_addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json()?)?;
    pc.add_local_candidate(RTCIceCandidateInit::default())
}

/// Hands the core one datagram received on `local_addr` from `from` at `now`; returns
/// whether it was DTLS (RFC 7983 §7: a first byte in 20..=63), where a close_notify would be.
/// The caller pumps the core's events before the next datagram: that is what installs the
/// SRTP keys the moment DTLS completes.
pub fn deliver(
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
pub async fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket) {
    while let Some(out) = pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
}

/// Whether the DTLS transport under `sender` is closed or failed (without a sender, it is
/// not): after [`deliver`] saw DTLS, how the other side's close_notify shows, since the W3C
/// connection-state rules still count a closed DTLS transport as connected.
pub fn sender_dtls_closed(pc: &mut RTCPeerConnection, sender: Option<RTCRtpSenderId>) -> bool {
    let state = sender
        .and_then(|sender| pc.rtp_sender(sender))
        .and_then(|sender| sender.transport().map(|t| t.state()));
    dtls_closed(state)
}

/// Whether a DTLS transport in `state` (none: not known) is over.
pub fn dtls_closed(state: Option<RTCDtlsTransportState>) -> bool {
    matches!(
        state,
        Some(RTCDtlsTransportState::Closed | RTCDtlsTransportState::Failed)
    )
}
