//! [`RtcServer`]: one UDP socket (and, with ICE-TCP, a TCP listener on the same port), a
//! dispatcher task that routes its datagrams, and N shard event loops that own the peer
//! connections.
//!
//! The per-packet work (DTLS, SRTP, RTCP) happens in the shards, which run in parallel on a
//! multi-threaded runtime; the dispatcher only reads datagrams and looks up their session,
//! and shards send on the shared socket directly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::candidates::HostCandidates;
use crate::config::RtcConfig;
use crate::ice_tcp::{self, TcpContext, TcpLinks};
use crate::offer::Offer;
use crate::router::{PeerAddr, Router};
use crate::session_limit::{SessionLimit, SessionPermit};
use crate::shard::Shard;
use crate::stun;
use crate::udp::{RecvBuffers, UdpPort};
use crate::{
    AcceptError, Accepted, CloseReason, PatchError, PatchOutcome, RtpFrame, SendError, SessionId,
    SessionRole, SessionState, SessionStats,
};

/// Largest datagram we read; anything longer is truncated and will fail to parse.
pub(crate) const MAX_DATAGRAM: usize = 2_048;
/// Depth of each shard's command queue (datagrams and handle commands).
const COMMAND_QUEUE: usize = 16 * 1024;
/// How long [`RtcServer::sessions_snapshot`] waits for the shards: a scrape must answer even
/// when a shard is saturated, and a scrape interval is seconds.
const SNAPSHOT_WAIT: Duration = Duration::from_millis(200);

/// Counters of one server, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sessions_active: AtomicU64,
    pub(crate) sessions_created: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagrams_unroutable: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) tcp_connections: AtomicU64,
    pub(crate) tcp_connections_open: AtomicU64,
    pub(crate) tcp_connections_rejected: AtomicU64,
    pub(crate) tcp_connections_timed_out: AtomicU64,
    pub(crate) tcp_packets_dropped: AtomicU64,
    pub(crate) snapshot_shards_skipped: AtomicU64,
}

/// The media counters of one shard, summed over its sessions past and present.
///
/// Concurrency contract: only the owning shard writes them, with a plain load and store (no
/// read-modify-write, so no locked instruction on the packet path), and each shard's sit on
/// cache lines of their own (128-byte aligned: adjacent-line prefetch pairs 64-byte lines) so
/// shards on different cores never contend for one. Readers sum every shard's, relaxed: a
/// scrape may see one counter a packet ahead of another, never a counter going backwards.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct MediaCounters {
    pub(crate) rtp_packets_sent: AtomicU64,
    pub(crate) rtp_bytes_sent: AtomicU64,
    pub(crate) rtp_packets_received: AtomicU64,
    pub(crate) rtp_bytes_received: AtomicU64,
    pub(crate) video_frames_sent: AtomicU64,
    pub(crate) video_frames_received: AtomicU64,
    pub(crate) nacks_received: AtomicU64,
    pub(crate) rtp_packets_retransmitted: AtomicU64,
    pub(crate) plis_received: AtomicU64,
    pub(crate) firs_received: AtomicU64,
    pub(crate) nacks_sent: AtomicU64,
    pub(crate) plis_sent: AtomicU64,
    pub(crate) sent_packets_lost: AtomicU64,
    pub(crate) received_packets_lost: AtomicU64,
}

impl MediaCounters {
    /// Adds `n` to one of these counters. Only the owning shard may call it (see the type).
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    fn sum(shards: &[Arc<MediaCounters>], field: impl Fn(&MediaCounters) -> &AtomicU64) -> u64 {
        shards
            .iter()
            .map(|shard| field(shard).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// A snapshot of a server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub sessions_active: u64,
    pub sessions_created: u64,
    /// Packets received: UDP datagrams and ICE-TCP frames.
    pub datagrams_in: u64,
    /// Packets sent: UDP datagrams and ICE-TCP frames.
    pub datagrams_out: u64,
    /// Packets that matched no session (stray, late or hostile traffic).
    pub datagrams_unroutable: u64,
    /// Datagrams dropped because their shard's queue was full.
    pub datagrams_dropped: u64,
    pub events_dropped: u64,
    /// Frames refused because the event loop's queue was full.
    pub frames_dropped: u64,
    /// ICE-TCP connections accepted.
    pub tcp_connections: u64,
    /// ICE-TCP connections open now.
    pub tcp_connections_open: u64,
    /// ICE-TCP connections closed for garbage: an oversized frame, or a packet other than a
    /// STUN check for one of our sessions before any was.
    pub tcp_connections_rejected: u64,
    /// ICE-TCP connections closed because no session answered them within 10 s.
    pub tcp_connections_timed_out: u64,
    /// Packets for an ICE-TCP peer dropped: its connection was gone or its queue full.
    pub tcp_packets_dropped: u64,
    /// SRTP packets sent (RTP, retransmissions included, not RTCP), as handed to the socket
    /// or ICE-TCP connection.
    pub rtp_packets_sent: u64,
    /// Bytes of those packets: RTP header, payload and SRTP authentication tag; no UDP, IP or
    /// RFC 4571 framing.
    pub rtp_bytes_sent: u64,
    /// SRTP packets received from a session's peer, counted before decryption.
    pub rtp_packets_received: u64,
    /// Bytes of those packets, counted as for [`ServerStats::rtp_bytes_sent`].
    pub rtp_bytes_received: u64,
    /// H.264 frames sent: frames handed to [`SessionHandle::send_frame`] for a video track of
    /// which at least one packet was written.
    pub video_frames_sent: u64,
    /// H.264 frames received: RTP packets with the marker bit (RFC 6184 §5.1: the last packet
    /// of an access unit) on a receiving session's video.
    pub video_frames_received: u64,
    /// Generic NACKs (RFC 4585 §6.2.1) received from peers, in RTCP feedback messages.
    pub nacks_received: u64,
    /// RTP packets sent again because a peer's NACK asked for them (also in
    /// `rtp_packets_sent`).
    pub rtp_packets_retransmitted: u64,
    /// Picture loss indications (RFC 4585 §6.3.1) received from peers.
    pub plis_received: u64,
    /// Full intra requests (RFC 5104 §4.3.1) received from peers.
    pub firs_received: u64,
    /// NACKs sent to publishers. Unlike the others this one is brought up to date when a
    /// session's statistics are read ([`SessionHandle::stats`],
    /// [`RtcServer::sessions_snapshot`]) and when the session ends: rtc generates NACKs inside
    /// its interceptors, where the loop never sees them.
    pub nacks_sent: u64,
    /// PLIs sent to publishers ([`SessionHandle::request_keyframe`]).
    pub plis_sent: u64,
    /// Of the packets we sent, those the peers' RTCP reports say were lost: the sum of every
    /// increase of each stream's cumulative loss (RFC 3550 §6.4.1). A decrease (duplicates
    /// make the field go down) adds nothing, so the counter never goes backwards.
    pub sent_packets_lost: u64,
    /// Of the packets we received, those never received, as our own receiver reports count
    /// them; brought up to date like [`ServerStats::nacks_sent`].
    pub received_packets_lost: u64,
    /// [`RtcServer::sessions_snapshot`] calls that left a shard out because its queue was
    /// full or it did not answer in time.
    pub snapshot_shards_skipped: u64,
}

pub(crate) enum Command {
    /// A datagram (or ICE-TCP frame) routed to this shard's session.
    Datagram {
        session: SessionId,
        peer: PeerAddr,
        /// The local candidate address it arrived on.
        local: SocketAddr,
        data: BytesMut,
    },
    Accept {
        offer: String,
        role: SessionRole,
        /// The session's place under [`RtcConfig::session_limit`], held by the session.
        permit: Option<SessionPermit>,
        reply: oneshot::Sender<Result<Accepted, AcceptError>>,
    },
    SendFrame {
        session: SessionId,
        track: usize,
        frame: RtpFrame,
    },
    RequestKeyframe {
        session: SessionId,
    },
    SendText {
        session: SessionId,
        text: String,
    },
    SendBinary {
        session: SessionId,
        data: Bytes,
    },
    Stats {
        session: SessionId,
        reply: oneshot::Sender<SessionStats>,
    },
    /// The statistics of every session of the shard.
    Snapshot {
        reply: oneshot::Sender<Vec<SessionStats>>,
    },
    Close {
        session: SessionId,
    },
    Patch {
        session: SessionId,
        if_match: Option<String>,
        body: String,
        reply: oneshot::Sender<Result<PatchOutcome, PatchError>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A WebRTC server role (WHIP or WHEP) on one UDP port. Cheap to clone; clones share the
/// socket and the loop. See the crate docs for the loop's contract.
#[derive(Clone)]
pub struct RtcServer {
    shards: Arc<[mpsc::Sender<Command>]>,
    next_shard: Arc<AtomicUsize>,
    local_addr: SocketAddr,
    candidates: Arc<HostCandidates>,
    counters: Arc<Counters>,
    /// One per shard, in shard order.
    media: Arc<[Arc<MediaCounters>]>,
    stop_dispatcher: Arc<watch::Sender<bool>>,
    session_limit: Option<SessionLimit>,
}

/// How many OS-chosen UDP ports to try before giving up on finding one whose TCP twin is free.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// Binds the UDP port and, with ICE-TCP, the TCP port of the same number, so one firewall rule
/// and one advertised port serve both. When the OS picks the port (port 0), its TCP twin may
/// already be taken by an unrelated connection; another UDP port is then tried.
fn bind_ports(config: &RtcConfig) -> std::io::Result<(UdpPort, Option<TcpListener>)> {
    // Ports that failed stay bound until the search ends, so the OS cannot hand them out again.
    let mut rejected = Vec::new();
    loop {
        let socket = UdpPort::bind(config.bind)?;
        if !config.ice_tcp {
            return Ok((socket, None));
        }
        match ice_tcp::bind(socket.local_addr()?) {
            Ok(listener) => return Ok((socket, Some(listener))),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && config.bind.port() == 0
                    && rejected.len() + 1 < EPHEMERAL_BIND_ATTEMPTS =>
            {
                rejected.push(socket);
            }
            Err(e) => return Err(e),
        }
    }
}

impl RtcServer {
    /// Binds the UDP port (and with [`RtcConfig::ice_tcp`] the TCP port of the same number)
    /// and starts the dispatcher and `config.shards` event loops on the current tokio runtime.
    pub async fn bind(config: RtcConfig) -> std::io::Result<RtcServer> {
        let (socket, listener) = bind_ports(&config)?;
        let socket = Arc::new(socket);
        let local_addr = socket.local_addr()?;
        let candidates = Arc::new(HostCandidates::new(&config, local_addr));
        let links = Arc::new(TcpLinks::default());
        let counters = Arc::new(Counters::default());
        let router = Arc::new(RwLock::new(Router::default()));
        let shard_count = config.shards.max(1);
        let mut shards = Vec::with_capacity(shard_count);
        let media: Arc<[Arc<MediaCounters>]> = (0..shard_count)
            .map(|_| Arc::new(MediaCounters::default()))
            .collect();
        for index in 0..shard_count {
            let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
            let shard = Shard::new(
                index as u64,
                shard_count as u64,
                socket.clone(),
                links.clone(),
                candidates.clone(),
                config.clone(),
                receiver,
                commands.downgrade(),
                router.clone(),
                counters.clone(),
                media[index].clone(),
            );
            tokio::spawn(shard.run());
            shards.push(commands);
        }
        let (stop_dispatcher, stop) = watch::channel(false);
        let routes = Arc::new(Routes {
            router,
            shards: shards.iter().map(mpsc::Sender::downgrade).collect(),
            counters: counters.clone(),
        });
        if let Some(listener) = listener {
            let context = Arc::new(TcpContext {
                routes: routes.clone(),
                links,
                candidates: candidates.clone(),
            });
            tokio::spawn(ice_tcp::listen(listener, context, stop.clone()));
        }
        tokio::spawn(dispatch(socket, routes, candidates.clone(), stop));
        Ok(RtcServer {
            shards: shards.into(),
            next_shard: Arc::new(AtomicUsize::new(0)),
            local_addr,
            candidates,
            counters,
            media,
            stop_dispatcher: Arc::new(stop_dispatcher),
            session_limit: config.session_limit,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host candidate addresses every answer carries (UDP, and TCP with ICE-TCP): the
    /// NAT addresses if configured, else the bound address, else (bound to `0.0.0.0` or
    /// `[::]`) the host's usable addresses of that family read at bind time.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        let port = self.local_addr.port();
        self.candidates
            .ips()
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect()
    }

    /// Answers an offer: parses it, builds the peer connection and returns the complete
    /// answer with a handle to the new session.
    pub async fn accept(&self, offer: String, role: SessionRole) -> Result<Accepted, AcceptError> {
        // Parse before queueing, so hostile SDP costs the loop nothing.
        Offer::parse(&offer)?;
        let permit = match &self.session_limit {
            Some(limit) => Some(
                limit
                    .acquire()
                    .ok_or(AcceptError::TooManySessions { limit: limit.max() })?,
            ),
            None => None,
        };
        let (reply, answer) = oneshot::channel();
        // Round robin: sessions spread evenly over the shards' cores.
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[shard]
            .send(Command::Accept {
                offer,
                role,
                permit,
                reply,
            })
            .await
            .map_err(|_| AcceptError::ShuttingDown)?;
        answer.await.map_err(|_| AcceptError::ShuttingDown)?
    }

    /// The server's counters now, summed over its shards.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let media =
            |field: fn(&MediaCounters) -> &AtomicU64| MediaCounters::sum(&self.media, field);
        ServerStats {
            sessions_active: c.sessions_active.load(Ordering::Relaxed),
            sessions_created: c.sessions_created.load(Ordering::Relaxed),
            datagrams_in: c.datagrams_in.load(Ordering::Relaxed),
            datagrams_out: c.datagrams_out.load(Ordering::Relaxed),
            datagrams_unroutable: c.datagrams_unroutable.load(Ordering::Relaxed),
            datagrams_dropped: c.datagrams_dropped.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            tcp_connections: c.tcp_connections.load(Ordering::Relaxed),
            tcp_connections_open: c.tcp_connections_open.load(Ordering::Relaxed),
            tcp_connections_rejected: c.tcp_connections_rejected.load(Ordering::Relaxed),
            tcp_connections_timed_out: c.tcp_connections_timed_out.load(Ordering::Relaxed),
            tcp_packets_dropped: c.tcp_packets_dropped.load(Ordering::Relaxed),
            rtp_packets_sent: media(|m| &m.rtp_packets_sent),
            rtp_bytes_sent: media(|m| &m.rtp_bytes_sent),
            rtp_packets_received: media(|m| &m.rtp_packets_received),
            rtp_bytes_received: media(|m| &m.rtp_bytes_received),
            video_frames_sent: media(|m| &m.video_frames_sent),
            video_frames_received: media(|m| &m.video_frames_received),
            nacks_received: media(|m| &m.nacks_received),
            rtp_packets_retransmitted: media(|m| &m.rtp_packets_retransmitted),
            plis_received: media(|m| &m.plis_received),
            firs_received: media(|m| &m.firs_received),
            nacks_sent: media(|m| &m.nacks_sent),
            plis_sent: media(|m| &m.plis_sent),
            sent_packets_lost: media(|m| &m.sent_packets_lost),
            received_packets_lost: media(|m| &m.received_packets_lost),
            snapshot_shards_skipped: c.snapshot_shards_skipped.load(Ordering::Relaxed),
        }
    }

    /// The statistics of every session, for metrics: one command per shard, all shards asked
    /// at once, each answering with all its sessions'. Waits at most 200 ms; a shard whose
    /// queue is full or that has not answered by then is left out and counted in
    /// [`ServerStats::snapshot_shards_skipped`]. Empty once the server has shut down.
    ///
    /// Each session's statistics cost its shard one `get_stats` (tens of microseconds), paid
    /// on the event loop: call this at scrape intervals, not per packet.
    pub async fn sessions_snapshot(&self) -> Vec<SessionStats> {
        let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
        let mut answers = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (reply, answer) = oneshot::channel();
            match shard.try_send(Command::Snapshot { reply }) {
                Ok(()) => answers.push(answer),
                Err(mpsc::error::TrySendError::Full(_)) => self.skip_shard(),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let mut sessions = Vec::new();
        for answer in answers {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(stats)) => sessions.extend(stats),
                // The shard stopped: shutdown, nothing to count.
                Ok(Err(_)) => {}
                Err(_) => self.skip_shard(),
            }
        }
        sessions
    }

    fn skip_shard(&self) {
        self.counters
            .snapshot_shards_skipped
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Closes every session (their owners see [`CloseReason::Shutdown`]) and stops the loop.
    pub async fn shutdown(&self) {
        for shard in self.shards.iter() {
            let (done, finished) = oneshot::channel();
            if shard.send(Command::Shutdown { done }).await.is_ok() {
                let _ = finished.await;
            }
        }
        self.stop_dispatcher.send_replace(true);
    }
}

/// Which session a packet belongs to, and handing it to that session's shard; shared by
/// the UDP dispatcher and the ICE-TCP connections.
pub(crate) struct Routes {
    pub(crate) router: Arc<RwLock<Router>>,
    pub(crate) shards: Vec<mpsc::WeakSender<Command>>,
    pub(crate) counters: Arc<Counters>,
}

impl Routes {
    /// STUN requests by the ufrag in their USERNAME, everything else by remote address.
    pub(crate) fn session_of(&self, packet: &[u8], peer: PeerAddr) -> Option<SessionId> {
        match stun::local_ufrag_of_request(packet) {
            Some(ufrag) => self.router.read().by_ufrag(&ufrag),
            None => self.router.read().by_addr(&peer),
        }
    }

    /// Queues the packet on the session's shard, dropping it (counted) when the shard is
    /// saturated. False when the shard is gone: the server is shutting down.
    pub(crate) fn deliver(
        &self,
        session: SessionId,
        peer: PeerAddr,
        local: SocketAddr,
        data: BytesMut,
    ) -> bool {
        let Some(shard) = self.shards[session.shard(self.shards.len())].upgrade() else {
            return false;
        };
        let command = Command::Datagram {
            session,
            peer,
            local,
            data,
        };
        if shard.try_send(command).is_err() {
            self.counters
                .datagrams_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

/// Reads the shared socket and hands each datagram to the shard of its session.
async fn dispatch(
    socket: Arc<UdpPort>,
    routes: Arc<Routes>,
    candidates: Arc<HostCandidates>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buffers = RecvBuffers::new(&socket);
    loop {
        tokio::select! {
            received = buffers.recv(&socket) => if let Err(e) = received {
                // ICMP errors surface as receive errors on some platforms; they concern one
                // peer, never the socket.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            },
            _ = stop.wait_for(|stop| *stop) => return,
        }
        for datagram in buffers.datagrams() {
            routes.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
            let peer = PeerAddr::udp(datagram.peer);
            let Some(session) = routes.session_of(datagram.data, peer) else {
                routes
                    .counters
                    .datagrams_unroutable
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let local = candidates.local_addr(datagram.destination);
            if !routes.deliver(session, peer, local, BytesMut::from(datagram.data)) {
                return;
            }
        }
    }
}

/// A strong entity tag (RFC 9110 §8.8.3) that nobody can guess.
pub(crate) fn new_etag() -> String {
    format!("\"{:032x}\"", rand::random::<u128>())
}

/// The ICE ufrag of an offer or answer (the first one; BUNDLE makes them all equal).
pub(crate) fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

/// The owner's side of one session. Cheap to clone.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) id: SessionId,
    /// The command queue of the session's shard.
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) state: watch::Receiver<SessionState>,
    pub(crate) counters: Arc<Counters>,
}

impl SessionHandle {
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The session's state now and every change to it.
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// Waits until the session connects, or returns why it closed first.
    pub async fn connected(&self) -> Result<(), CloseReason> {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                SessionState::Connected => return Ok(()),
                SessionState::Closed(reason) => return Err(*reason),
                SessionState::Connecting => {}
            }
            if state.changed().await.is_err() {
                return Err(CloseReason::Shutdown);
            }
        }
    }

    /// Queues one frame for track `track` (an index into [`Accepted::send_tracks`]). Never
    /// waits: a saturated loop drops the frame.
    pub fn send_frame(&self, track: usize, frame: RtpFrame) -> Result<(), SendError> {
        self.try_command(Command::SendFrame {
            session: self.id,
            track,
            frame,
        })
    }

    /// Asks the publisher for a keyframe (PLI on its video track).
    pub fn request_keyframe(&self) -> Result<(), SendError> {
        self.try_command(Command::RequestKeyframe { session: self.id })
    }

    /// Sends a text message on the session's data channel, if one is open.
    pub fn send_text(&self, text: String) -> Result<(), SendError> {
        self.try_command(Command::SendText {
            session: self.id,
            text,
        })
    }

    /// Sends a binary message on the session's data channel, if one is open.
    pub fn send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.try_command(Command::SendBinary {
            session: self.id,
            data,
        })
    }

    /// The session's statistics, or `None` once it is gone.
    pub async fn stats(&self) -> Option<SessionStats> {
        let (reply, stats) = oneshot::channel();
        self.commands
            .send(Command::Stats {
                session: self.id,
                reply,
            })
            .await
            .ok()?;
        stats.await.ok()
    }

    /// Applies a WHIP/WHEP PATCH (RFC 9725 §4.3): trickled candidates, or an ICE restart
    /// when `If-Match: *` and the fragment carries new credentials.
    pub async fn patch(
        &self,
        if_match: Option<&str>,
        body: &str,
    ) -> Result<PatchOutcome, PatchError> {
        let if_match = if_match.ok_or(PatchError::PreconditionRequired)?;
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Patch {
                session: self.id,
                if_match: Some(if_match.trim().to_owned()),
                body: body.to_owned(),
                reply,
            })
            .await
            .map_err(|_| PatchError::SessionGone)?;
        outcome.await.map_err(|_| PatchError::SessionGone)?
    }

    /// Closes the session. Idempotent.
    pub async fn close(&self) {
        let _ = self
            .commands
            .send(Command::Close { session: self.id })
            .await;
    }

    fn try_command(&self, command: Command) -> Result<(), SendError> {
        if matches!(*self.state.borrow(), SessionState::Closed(_)) {
            return Err(SendError::Closed);
        }
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                SendError::Saturated
            }
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}
