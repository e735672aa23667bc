//! ICE over TCP, passive side (RFC 6544), on the same port number as the server's UDP
//! socket: the listener, one task per connection that de-frames RFC 4571 packets and routes
//! them like datagrams, and the table of connections the shards write to.
//!
//! A connection is anonymous until a STUN binding request on it names one of our sessions'
//! ufrags; from then on its other packets are routed by its remote address, as a UDP
//! peer's are. Not here: active or simultaneous-open candidates (browsers dial a passive
//! server candidate, we never dial out) and TURN over TCP.
//!
//! # Concurrency contract
//!
//! Shards never wait for a connection: they queue packets with [`TcpLinks::send`], which
//! drops (and the caller counts) when the connection's bounded queue is full. A connection
//! task never waits for a shard: it hands packets over with `try_send`, like the UDP
//! dispatcher. A connection ends when its peer closes it, when it misbehaves (garbage, a
//! first packet that is not a check for one of our sessions, a frame over [`MAX_FRAME`]),
//! when nobody answered it within [`AUTH_TIMEOUT`], when a write stalls for
//! [`WRITE_TIMEOUT`], when its session is removed ([`TcpLinks::close`]) or when the server
//! stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::candidates::HostCandidates;
use crate::router::PeerAddr;
use crate::server::{Routes, MAX_DATAGRAM};
use crate::stun;

/// Largest RFC 4571 frame we accept: the same packets as over UDP, so the same limit.
pub(crate) const MAX_FRAME: usize = MAX_DATAGRAM;
/// A connection on which no session has answered (so no check authenticated) by then is
/// closed: it holds a socket and a task for nothing.
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that has not taken our bytes for this long is gone or hostile.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Packets queued per connection towards the peer: a keyframe burst for one viewer.
const WRITE_QUEUE: usize = 512;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4_096;
/// Bytes written to the socket at a time at most (several frames coalesced).
const WRITE_BATCH: usize = 16 * 1_024;

/// Why a connection's byte stream is not RFC 4571 as we accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLong(usize),
}

/// Splits an RFC 4571 byte stream (2-byte big-endian length, then the packet) into packets.
/// Holds at most one partial frame plus one read chunk.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete packet, sharing the decoder's buffer (no copy).
    pub(crate) fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let Some(header) = self.buffer.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        if self.buffer.len() < 2 + len {
            return Ok(None);
        }
        self.buffer.advance(2);
        Ok(Some(self.buffer.split_to(len)))
    }
}

/// Appends `packet` to `out` with its RFC 4571 length prefix.
fn frame_into(packet: &[u8], out: &mut Vec<u8>) {
    // rtc never produces packets over 64 KiB (they are sized for a UDP path MTU).
    let len = u16::try_from(packet.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&packet[..usize::from(len)]);
}

struct Link {
    id: u64,
    packets: mpsc::Sender<BytesMut>,
}

/// The open ICE-TCP connections of one server, by remote address, for the shards to write
/// to. Locks are held for a map operation only.
#[derive(Default)]
pub(crate) struct TcpLinks {
    links: RwLock<HashMap<SocketAddr, Link>>,
    next_id: AtomicU64,
}

impl TcpLinks {
    /// Queues `packet` for the connection from `peer`. False when there is no such
    /// connection or its queue is full: the packet is dropped, as a full UDP buffer would.
    pub(crate) fn send(&self, peer: SocketAddr, packet: BytesMut) -> bool {
        self.links
            .read()
            .get(&peer)
            .is_some_and(|link| link.packets.try_send(packet).is_ok())
    }

    /// Closes the connection from `peer`, if any (its session is gone).
    pub(crate) fn close(&self, peer: SocketAddr) {
        self.links.write().remove(&peer);
    }

    fn open(&self, peer: SocketAddr) -> (u64, mpsc::Receiver<BytesMut>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (packets, receiver) = mpsc::channel(WRITE_QUEUE);
        // A remote address is unique among live connections to one listening address; a
        // second one (the peer reached two of our IPs from one port) replaces the first.
        self.links.write().insert(peer, Link { id, packets });
        (id, receiver)
    }

    fn forget(&self, peer: SocketAddr, id: u64) {
        let mut links = self.links.write();
        if links.get(&peer).is_some_and(|link| link.id == id) {
            links.remove(&peer);
        }
    }
}

/// Binds the TCP listener on the UDP socket's address (same IP, same port number).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted server must get its port back while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1_024)
}

/// What every connection task shares.
pub(crate) struct TcpContext {
    pub(crate) routes: Arc<Routes>,
    pub(crate) links: Arc<TcpLinks>,
    pub(crate) candidates: Arc<HostCandidates>,
}

/// Accepts connections until the server stops.
pub(crate) async fn listen(
    listener: TcpListener,
    context: Arc<TcpContext>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let counters = &context.routes.counters;
                counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
                counters
                    .tcp_connections_open
                    .fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, peer, context.clone(), stop.clone()));
            }
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Resolves once the server stops (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here, not in the caller's select.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Why a connection ended, for the counters.
enum Ending {
    /// The peer closed it, its session ended, or the server stopped.
    Normal,
    /// Garbage, an oversized frame, or a first packet that was no check for our sessions.
    Rejected,
    /// No session answered within [`AUTH_TIMEOUT`].
    TimedOut,
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    context: Arc<TcpContext>,
    stop: watch::Receiver<bool>,
) {
    // Media over TCP is latency-bound; Nagle would hold back small RTP/RTCP packets.
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok().map(|a| a.ip());
    let local = context.candidates.local_addr(local);
    let (id, packets) = context.links.open(peer);
    // The socket closes when `stream` drops, after the counters below: whoever sees the close
    // sees it counted.
    let ending = run(
        &mut stream,
        PeerAddr::tcp(peer),
        local,
        &context,
        packets,
        stop,
    )
    .await;
    context.links.forget(peer, id);
    let counters = &context.routes.counters;
    counters
        .tcp_connections_open
        .fetch_sub(1, Ordering::Relaxed);
    match ending {
        Ending::Normal => {}
        Ending::Rejected => {
            counters
                .tcp_connections_rejected
                .fetch_add(1, Ordering::Relaxed);
        }
        Ending::TimedOut => {
            counters
                .tcp_connections_timed_out
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(stream);
    tracing::debug!(%peer, "ICE-TCP connection closed");
}

async fn run(
    stream: &mut TcpStream,
    peer: PeerAddr,
    local: SocketAddr,
    context: &TcpContext,
    mut packets: mpsc::Receiver<BytesMut>,
    mut stop: watch::Receiver<bool>,
) -> Ending {
    let (mut reader, mut writer) = stream.split();
    let mut decoder = FrameDecoder::default();
    let mut chunk = [0u8; READ_CHUNK];
    let mut batch = Vec::with_capacity(WRITE_BATCH + 2 + MAX_FRAME);
    // Routed: a check on this connection reached a session; answered: a session wrote to
    // it, which rtc does only for a check whose MESSAGE-INTEGRITY verified.
    let mut routed = false;
    let mut answered = false;
    let auth_deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(auth_deadline);
    loop {
        tokio::select! {
            read = reader.read(&mut chunk) => {
                let n = match read {
                    Ok(0) | Err(_) => return Ending::Normal,
                    Ok(n) => n,
                };
                decoder.extend(&chunk[..n]);
                loop {
                    let packet = match decoder.next_frame() {
                        Ok(Some(packet)) => packet,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(peer = %peer.addr, error = %e, "ICE-TCP frame refused");
                            return Ending::Rejected;
                        }
                    };
                    context.routes.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    if !routed && stun::local_ufrag_of_request(&packet).is_none() {
                        return Ending::Rejected;
                    }
                    let Some(session) = context.routes.session_of(&packet, peer) else {
                        if !routed {
                            return Ending::Rejected;
                        }
                        context.routes.counters.datagrams_unroutable.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    routed = true;
                    if !context.routes.deliver(session, peer, local, packet) {
                        return Ending::Normal;
                    }
                }
            }
            packet = packets.recv() => {
                let Some(packet) = packet else {
                    return Ending::Normal;
                };
                answered = true;
                batch.clear();
                frame_into(&packet, &mut batch);
                while batch.len() < WRITE_BATCH {
                    let Ok(packet) = packets.try_recv() else { break };
                    frame_into(&packet, &mut batch);
                }
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Ending::Normal,
                }
            }
            _ = &mut auth_deadline, if !answered => return Ending::TimedOut,
            _ = stopped(&mut stop) => return Ending::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            frame_into(p, &mut out);
        }
        out
    }

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let stream = framed(&[b"first", b"", &[7u8; 1_500]]);
        for split in 0..stream.len() {
            let mut decoder = FrameDecoder::default();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                decoder.extend(part);
                while let Some(p) = decoder.next_frame().unwrap() {
                    out.push(p.to_vec());
                }
            }
            assert_eq!(out, vec![b"first".to_vec(), vec![], vec![7u8; 1_500]]);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let mut decoder = FrameDecoder::default();
        decoder.extend(&((MAX_FRAME + 1) as u16).to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLong(MAX_FRAME + 1))
        );
    }

    #[test]
    fn a_partial_frame_waits() {
        let mut decoder = FrameDecoder::default();
        decoder.extend(&[0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&[3, 1, 2]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&[3]);
        assert_eq!(decoder.next_frame().unwrap().unwrap().as_ref(), &[1, 2, 3]);
    }
}
