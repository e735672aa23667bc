//! The shared UDP socket, with the local address of every datagram: the destination IP of
//! what we receive (`IP_PKTINFO` / `IPV6_RECVPKTINFO`) and the source IP of what we send.
//!
//! Bound to an unspecified address on a host with several addresses, the kernel would pick
//! the source of our replies by route, not by the address the peer wrote to; ICE then
//! fails, because a check's response must come from the address the check was sent to
//! (RFC 8445 §7.2.5.2.1). Reading the destination and sending from it fixes that. The
//! control-message plumbing is quinn-udp's (quinn's QUIC socket layer: Linux, the BSDs,
//! macOS, Windows), which also reads up to a batch of datagrams per system call.
//!
//! Not here: what the addresses mean to ICE (`candidates`), routing (`router`).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::server::MAX_DATAGRAM;

/// Socket buffers we ask for: one port carries every peer of the role, so a burst (a
/// keyframe to a hundred viewers, a flood of checks) must not overflow the kernel's default
/// ~200 KB. The kernel may cap it (net.core.rmem_max); that is logged, not fatal.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Datagrams read per system call at most.
const RECV_BATCH: usize = 8;

/// One received datagram.
pub(crate) struct Datagram<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) peer: SocketAddr,
    /// The IP the peer sent to, where the platform tells.
    pub(crate) destination: Option<IpAddr>,
}

/// The UDP socket of one server. Shared: one task receives, every shard sends.
pub(crate) struct UdpPort {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl UdpPort {
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpPort> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        for (what, result) in [
            ("receive", socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)),
            ("send", socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)),
        ] {
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot enlarge the UDP {what} buffer");
            }
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        let state = UdpSocketState::new((&socket).into())?;
        Ok(UdpPort { socket, state })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram to `peer`, from `source` if given (else the kernel's choice).
    /// Waits only while the socket buffer is full.
    pub(crate) async fn send(
        &self,
        peer: SocketAddr,
        source: Option<IpAddr>,
        data: &[u8],
    ) -> io::Result<()> {
        self.send_segments(peer, source, data, None).await
    }

    /// How many datagrams one [`send_segments`](Self::send_segments) may carry: 1 where the
    /// kernel has no UDP segmentation offload (or it failed once).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `data` to `peer` as datagrams of `segment_size` bytes each (the last may be
    /// shorter) in one system call, with UDP generic segmentation offload (Linux
    /// `UDP_SEGMENT`): the packets of a frame to one viewer cost one `sendmsg`, one route
    /// lookup and one socket buffer instead of one each.
    pub(crate) async fn send_segments(
        &self,
        peer: SocketAddr,
        source: Option<IpAddr>,
        data: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: peer,
            ecn: None,
            contents: data,
            segment_size,
            src_ip: source,
        };
        loop {
            self.socket.writable().await?;
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }
}

/// Receive buffers, reused for every read.
pub(crate) struct RecvBuffers {
    /// `RECV_BATCH` slots, each large enough for what UDP GRO may coalesce into one read.
    buffer: Vec<u8>,
    slot: usize,
    metas: [RecvMeta; RECV_BATCH],
    filled: usize,
}

impl RecvBuffers {
    pub(crate) fn new(port: &UdpPort) -> RecvBuffers {
        // quinn-udp turns on UDP_GRO where it can: the kernel may then hand over up to
        // `gro_segments` datagrams of one peer in one slot, split by `stride`.
        let slot = MAX_DATAGRAM * port.state.gro_segments();
        RecvBuffers {
            buffer: vec![0; slot * RECV_BATCH],
            slot,
            metas: [RecvMeta::default(); RECV_BATCH],
            filled: 0,
        }
    }

    /// Waits for datagrams and reads as many as are ready (up to a batch).
    pub(crate) async fn recv(&mut self, port: &UdpPort) -> io::Result<()> {
        loop {
            port.socket.readable().await?;
            let mut chunks = self.buffer.chunks_mut(self.slot);
            // On the stack: the read path allocates nothing.
            let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            match port.socket.try_io(Interest::READABLE, || {
                port.state
                    .recv((&port.socket).into(), &mut slices, &mut self.metas)
            }) {
                Ok(n) => {
                    self.filled = n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The datagrams of the last read.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        self.metas[..self.filled]
            .iter()
            .zip(self.buffer.chunks(self.slot))
            .flat_map(|(meta, slot)| {
                let stride = meta.stride.max(1);
                slot[..meta.len.min(slot.len())]
                    .chunks(stride)
                    .map(move |data| Datagram {
                        data,
                        peer: meta.addr,
                        destination: meta.dst_ip,
                    })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-loopback IPv4 address of this host, if it has one: the source the kernel
    /// picks towards an outside address (nothing is sent).
    fn host_ipv4() -> Option<IpAddr> {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        probe.connect("192.0.2.1:9").ok()?;
        let ip = probe.local_addr().ok()?.ip();
        (!ip.is_loopback()).then_some(ip)
    }

    async fn receive(port: &UdpPort) -> Vec<(Vec<u8>, SocketAddr, Option<IpAddr>)> {
        let mut buffers = RecvBuffers::new(port);
        buffers.recv(port).await.unwrap();
        buffers
            .datagrams()
            .map(|d| (d.data.to_vec(), d.peer, d.destination))
            .collect()
    }

    #[tokio::test]
    async fn the_destination_of_a_datagram_is_reported_and_replies_leave_from_it() {
        let port = UdpPort::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port_number = port.local_addr().unwrap().port();
        // The peer is on loopback; it writes to another of our addresses where the host has
        // one, as a peer of a multi-homed server does. Towards 127.0.0.1 the kernel would
        // reply from 127.0.0.1, so only a reply sent from the destination proves the point.
        let ours = host_ipv4().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer_addr = peer.local_addr().unwrap();
        peer.send_to(b"ping", (ours, port_number)).await.unwrap();
        assert_eq!(
            receive(&port).await,
            vec![(b"ping".to_vec(), peer_addr, Some(ours))]
        );
        let mut buf = [0u8; 16];
        port.send(peer_addr, Some(ours), b"pong").await.unwrap();
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, SocketAddr::new(ours, port_number));
        // Left to the kernel, the reply towards a loopback peer leaves from loopback.
        port.send(peer_addr, None, b"pong").await.unwrap();
        let (_, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[tokio::test]
    async fn a_burst_is_read_in_batches_and_every_datagram_comes_out() {
        let port = UdpPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sent: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        for datagram in &sent {
            peer.send_to(datagram, port.local_addr().unwrap())
                .await
                .unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            got.extend(receive(&port).await.into_iter().map(|(data, _, _)| data));
        }
        assert_eq!(got, sent);
    }
}
