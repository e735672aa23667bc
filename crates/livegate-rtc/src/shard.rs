//! A shard: one event loop that owns a share of a server's peer connections and does their
//! per-packet work (DTLS, SRTP, RTCP, timers). See the crate docs for the loop's contract.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use livegate_media::Codec;
use parking_lot::RwLock;
use rtc::data_channel::{RTCDataChannel, RTCDataChannelId};
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{RTCDtlsTransportState, RTCIceCandidateInit};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::statistics::StatsSelector;
use tokio::sync::{mpsc, watch};

use crate::bitrate::{BitrateMeter, LossMeter, RateMeter};
use crate::candidates::HostCandidates;
use crate::config::RtcConfig;
use crate::ice_tcp::TcpLinks;
use crate::offer::Offer;
use crate::peer::{self, OutTrack};
use crate::reception::{self, RemoteReception};
use crate::retransmit::SentPacket;
use crate::router::{PeerAddr, Router};
use crate::sdpfrag::{self, SdpFrag};
use crate::sender_report;
use crate::server::{ice_ufrag, new_etag, Command, Counters, MediaCounters, SessionHandle};
use crate::session_limit::SessionPermit;
use crate::udp::UdpPort;
use crate::{
    AcceptError, Accepted, CloseReason, PatchError, PatchOutcome, RtpFrame, SessionEvent,
    SessionId, SessionRole, SessionState, SessionStats,
};

struct Session {
    pc: RTCPeerConnection,
    /// The remote offer as applied, rewritten on each ICE restart.
    remote_offer: String,
    etag: String,
    out_tracks: Vec<OutTrack>,
    in_codecs: HashMap<u8, Codec>,
    state: watch::Sender<SessionState>,
    events: mpsc::Sender<SessionEvent>,
    deadline: Option<Instant>,
    /// When the tracks we send report next ([`sender_report`]); from the first frame sent.
    next_report: Option<Instant>,
    connected: bool,
    closing: Option<CloseReason>,
    /// Remote tracks: receiver and SSRC, and which SSRC carries video.
    receivers: Vec<(RTCRtpReceiverId, u32)>,
    video_ssrc: Option<u32>,
    /// SSRC of the Opus we receive, to tell its sender reports from the video's.
    audio_ssrc: Option<u32>,
    data_channels: HashMap<RTCDataChannelId, String>,
    dropped_events: u64,
    keyframe_requests: u64,
    nacks_received: u64,
    /// H.264 frames sent or received (one direction per session).
    video_frames: u64,
    bitrate_in: BitrateMeter,
    bitrate_out: BitrateMeter,
    frame_rate: RateMeter,
    loss_in: LossMeter,
    /// Its place under the shared session limit, given back when the session is removed.
    _permit: Option<SessionPermit>,
    /// What rtc counts inside its interceptors and the shard's counters have taken in so far.
    folded: Folded,
}

/// Totals of a session, kept inside rtc, already added to the shard's [`MediaCounters`].
#[derive(Debug, Default)]
struct Folded {
    nacks_sent: u64,
    received_packets_lost: i64,
}

impl Session {
    fn emit(&mut self, event: SessionEvent, counters: &Counters) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            counters.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Most commands handled before the loop sends what they produced: enough to take a frame to
/// every viewer of a busy shard in one wake-up, few enough that the first viewer's packets do
/// not wait long behind the last one's encryption.
const COMMAND_BATCH: usize = 64;
/// When the loop wakes with no session deadline at all.
const IDLE_WAKEUP: Duration = Duration::from_secs(3_600);

/// Most datagrams in one segmented send: a frame's packets to one viewer. The kernel allows
/// 64 (`UDP_MAX_SEGMENTS`); more would only delay the next viewer's first packet.
const MAX_SEGMENTS: usize = 32;
/// Most bytes in one segmented send (one IP datagram's worth, as the kernel requires).
const MAX_SEGMENTED_BYTES: usize = 65_000;

pub(crate) struct Shard {
    /// Shared with the dispatcher and the other shards; shards only send on it.
    socket: Arc<UdpPort>,
    /// The server's ICE-TCP connections, which shards write to like the socket.
    links: Arc<TcpLinks>,
    index: u64,
    count: u64,
    candidates: Arc<HostCandidates>,
    /// The candidate lines every answer carries.
    candidate_inits: Vec<RTCIceCandidateInit>,
    config: RtcConfig,
    commands: mpsc::Receiver<Command>,
    /// For handles created by the loop itself; weak so the loop ends when the last
    /// [`RtcServer`] and handle are gone.
    command_sender: mpsc::WeakSender<Command>,
    sessions: HashMap<SessionId, Session>,
    /// Shared with the dispatcher: written here when a session gains or loses an address
    /// or ufrag, read by the dispatcher for every datagram.
    router: Arc<RwLock<Router>>,
    /// Sessions by next deadline.
    timers: BTreeSet<(Instant, SessionId)>,
    next_id: u64,
    /// Packets to send: to whom, from which local candidate.
    outbox: VecDeque<(PeerAddr, SocketAddr, BytesMut)>,
    /// Reused buffer of a segmented send.
    segments: Vec<u8>,
    counters: Arc<Counters>,
    /// This shard's own; nothing else writes them.
    media: Arc<MediaCounters>,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: u64,
        count: u64,
        socket: Arc<UdpPort>,
        links: Arc<TcpLinks>,
        candidates: Arc<HostCandidates>,
        config: RtcConfig,
        commands: mpsc::Receiver<Command>,
        command_sender: mpsc::WeakSender<Command>,
        router: Arc<RwLock<Router>>,
        counters: Arc<Counters>,
        media: Arc<MediaCounters>,
    ) -> Shard {
        // Built once: the candidates never change while the server runs. A candidate that
        // cannot be written is a bug, not a condition to serve around.
        let candidate_inits = candidates
            .inits()
            .expect("host candidates of literal IPs are well formed");
        Shard {
            socket,
            links,
            index,
            count,
            candidates,
            candidate_inits,
            config,
            commands,
            command_sender,
            sessions: HashMap::new(),
            router,
            timers: BTreeSet::new(),
            next_id: 0,
            outbox: VecDeque::new(),
            segments: Vec::new(),
            counters,
            media,
        }
    }

    pub(crate) async fn run(mut self) {
        // One timer for the loop's life, moved only when the earliest deadline changes: a
        // fresh `sleep_until` per command put an entry in tokio's timer wheel and took it out
        // again for every frame to every viewer.
        let timer = tokio::time::sleep_until((Instant::now() + IDLE_WAKEUP).into());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut fired = false;
        loop {
            self.flush_outbox().await;
            let deadline = self.timers.first().map(|(at, _)| *at);
            if fired || deadline != armed {
                let at = deadline.unwrap_or_else(|| Instant::now() + IDLE_WAKEUP);
                timer.as_mut().reset(at.into());
                (armed, fired) = (deadline, false);
            }
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        self.close_all(CloseReason::Shutdown);
                        self.flush_outbox().await;
                        return;
                    };
                    if let Some(done) = self.handle_commands(command) {
                        self.close_all(CloseReason::Shutdown);
                        self.flush_outbox().await;
                        let _ = done.send(());
                        return;
                    }
                }
                () = &mut timer => {
                    fired = true;
                    self.handle_timeouts(Instant::now());
                }
            }
        }
    }

    /// Handles `first` and whatever else is already queued, up to [`COMMAND_BATCH`], before
    /// the loop flushes: a frame fanned out to many viewers then costs one wake-up and one
    /// flush, not one per viewer. Returns a shutdown's reply channel if one came.
    fn handle_commands(&mut self, first: Command) -> Option<tokio::sync::oneshot::Sender<()>> {
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(command) = next {
            if let Command::Shutdown { done } = command {
                return Some(done);
            }
            self.handle_command(command);
            handled += 1;
            next = (handled < COMMAND_BATCH)
                .then(|| self.commands.try_recv().ok())
                .flatten();
        }
        None
    }

    async fn flush_outbox(&mut self) {
        while let Some((peer, local, datagram)) = self.outbox.pop_front() {
            let rtp_len = is_rtp(&datagram).then_some(datagram.len() as u64);
            if peer.protocol == TransportProtocol::TCP {
                let counter = if self.links.send(peer.addr, datagram) {
                    note_rtp_sent(&self.media, rtp_len);
                    &self.counters.datagrams_out
                } else {
                    &self.counters.tcp_packets_dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let source = self.candidates.source_ip(local);
            let batch = self.gather_segments(peer, local, &datagram);
            let result = if batch > 0 {
                let segment_size = datagram.len();
                let mut contents = std::mem::take(&mut self.segments);
                contents.clear();
                contents.extend_from_slice(&datagram);
                // RTP among the batch, counted once it is sent: (packets, bytes).
                let mut rtp = rtp_len.map_or((0, 0), |len| (1, len));
                for _ in 0..batch {
                    let (_, _, next) = self.outbox.pop_front().expect("gathered");
                    if is_rtp(&next) {
                        rtp = (rtp.0 + 1, rtp.1 + next.len() as u64);
                    }
                    contents.extend_from_slice(&next);
                }
                let result = self
                    .socket
                    .send_segments(peer.addr, source, &contents, Some(segment_size))
                    .await;
                self.segments = contents;
                if result.is_ok() {
                    MediaCounters::add(&self.media.rtp_packets_sent, rtp.0);
                    MediaCounters::add(&self.media.rtp_bytes_sent, rtp.1);
                    self.counters
                        .datagrams_out
                        .fetch_add(batch as u64 + 1, Ordering::Relaxed);
                }
                result
            } else {
                let result = self.socket.send(peer.addr, source, &datagram).await;
                if result.is_ok() {
                    note_rtp_sent(&self.media, rtp_len);
                    self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                }
                result
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer.addr, error = %e, "UDP send failed");
            }
        }
    }

    /// How many of the datagrams queued right behind `first` can leave with it in one
    /// segmented send: same peer and source, the same size as `first` but for the last,
    /// which may be shorter (the kernel cuts at `first`'s size), within the offload's
    /// segment count and 64 KiB.
    fn gather_segments(&self, peer: PeerAddr, local: SocketAddr, first: &[u8]) -> usize {
        let max = self.socket.max_segments().min(MAX_SEGMENTS);
        let size = first.len();
        if max <= 1 || size == 0 {
            return 0;
        }
        let mut n = 0;
        let mut total = size;
        for (next_peer, next_local, next) in self.outbox.iter() {
            if n + 1 >= max
                || *next_peer != peer
                || *next_local != local
                || next.len() > size
                || total + next.len() > MAX_SEGMENTED_BYTES
            {
                break;
            }
            n += 1;
            total += next.len();
            if next.len() < size {
                break;
            }
        }
        n
    }

    fn handle_datagram(
        &mut self,
        id: SessionId,
        datagram: BytesMut,
        peer: PeerAddr,
        local: SocketAddr,
    ) {
        if !self.sessions.contains_key(&id) {
            // Routed just before the session ended.
            self.counters
                .datagrams_unroutable
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bind_addr(peer, id);
        if is_rtp(&datagram) {
            MediaCounters::add(&self.media.rtp_packets_received, 1);
            MediaCounters::add(&self.media.rtp_bytes_received, datagram.len() as u64);
        }
        // RFC 7983 §7: a first byte in 20..=63 is DTLS, where a peer's close_notify would be.
        let dtls = datagram.first().is_some_and(|b| (20..=63).contains(b));
        let now = Instant::now();
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: peer.addr,
                ecn: None,
                transport_protocol: peer.protocol,
            },
            message: datagram,
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            if let Err(e) = session.pc.handle_read(message) {
                tracing::debug!(session = %id, error = %e, "rejected datagram");
            }
            // rtc keeps a peer connection "connected" after the peer's DTLS close_notify (the
            // W3C state rules), so a publisher that closed politely would only be noticed at
            // the media timeout; its DTLS transport says it at once.
            if dtls && session.connected && dtls_closed(&mut session.pc) {
                tracing::debug!(session = %id, "the peer closed DTLS");
                session.closing.get_or_insert(CloseReason::Remote);
            }
        }
        self.pump(id);
    }

    fn bind_addr(&self, peer: PeerAddr, id: SessionId) {
        bind_addr(&self.router, peer, id);
    }

    fn handle_timeouts(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(session) = self.sessions.get_mut(&id) {
                session.deadline = None;
                if let Err(e) = session.pc.handle_timeout(now) {
                    tracing::debug!(session = %id, error = %e, "timeout handling failed");
                }
                if session.next_report.is_some_and(|at| at <= now) {
                    send_reports(session, now);
                    session.next_report = Some(now + sender_report::REPORT_INTERVAL);
                }
            }
            self.pump(id);
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Datagram {
                session,
                peer,
                local,
                data,
            } => self.handle_datagram(session, data, peer, local),
            Command::Accept {
                offer,
                role,
                permit,
                reply,
            } => {
                let result = self.accept(&offer, role, permit);
                let _ = reply.send(result);
            }
            Command::SendFrame {
                session,
                track,
                frame,
            } => {
                self.send_frame(session, track, &frame);
                self.pump(session);
            }
            Command::RequestKeyframe { session } => {
                self.request_keyframe(session);
                self.pump(session);
            }
            Command::SendText { session, text } => {
                self.send_data(session, |dc| dc.send_text(Instant::now(), text.clone()));
                self.pump(session);
            }
            Command::SendBinary { session, data } => {
                self.send_data(session, |dc| {
                    dc.send(Instant::now(), BytesMut::from(data.as_ref()))
                });
                self.pump(session);
            }
            Command::Stats { session, reply } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    let _ = reply.send(session_stats(s, &self.media));
                }
            }
            Command::Snapshot { reply } => {
                let media = &self.media;
                let all = self
                    .sessions
                    .values_mut()
                    .map(|s| session_stats(s, media))
                    .collect();
                let _ = reply.send(all);
            }
            Command::Close { session } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.closing.get_or_insert(CloseReason::Local);
                    let _ = s.pc.close();
                }
                self.pump(session);
            }
            Command::Patch {
                session,
                if_match,
                body,
                reply,
            } => {
                let outcome = self.patch(session, if_match.as_deref(), &body);
                let _ = reply.send(outcome);
                self.pump(session);
            }
            Command::Shutdown { .. } => unreachable!("handled by the loop"),
        }
    }

    /// Writes one message on every open data channel of `session`.
    fn send_data(
        &mut self,
        session: SessionId,
        mut send: impl FnMut(&mut RTCDataChannel<'_>) -> Result<(), rtc::shared::error::Error>,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let open: Vec<RTCDataChannelId> = s.data_channels.keys().copied().collect();
        for channel in open {
            if let Some(mut dc) = s.pc.data_channel(channel) {
                if let Err(e) = send(&mut dc) {
                    tracing::debug!(%session, error = %e, "data channel send failed");
                }
            }
        }
    }

    fn accept(
        &mut self,
        offer_sdp: &str,
        role: SessionRole,
        permit: Option<SessionPermit>,
    ) -> Result<Accepted, AcceptError> {
        let offer = Offer::parse(offer_sdp)?;
        let answerer = peer::answer(
            &self.config,
            &self.candidate_inits,
            offer_sdp,
            &offer,
            &role,
            Instant::now(),
        )?;
        let id = SessionId(self.next_id * self.count + self.index);
        self.next_id += 1;
        let (state, state_rx) = watch::channel(SessionState::Connecting);
        let (events, events_rx) = mpsc::channel(self.config.event_queue);
        let send_tracks = answerer.out_tracks.iter().map(|t| t.codec).collect();
        self.router.write().add_ufrag(answerer.ufrag.clone(), id);
        let etag = new_etag();
        self.sessions.insert(
            id,
            Session {
                pc: answerer.pc,
                remote_offer: offer_sdp.to_owned(),
                etag: etag.clone(),
                out_tracks: answerer.out_tracks,
                in_codecs: answerer.in_codecs,
                state,
                events,
                deadline: None,
                next_report: None,
                connected: false,
                closing: None,
                receivers: Vec::new(),
                video_ssrc: None,
                audio_ssrc: None,
                data_channels: HashMap::new(),
                dropped_events: 0,
                keyframe_requests: 0,
                nacks_received: 0,
                video_frames: 0,
                bitrate_in: BitrateMeter::default(),
                bitrate_out: BitrateMeter::default(),
                frame_rate: RateMeter::default(),
                loss_in: LossMeter::default(),
                folded: Folded::default(),
                _permit: permit,
            },
        );
        self.counters
            .sessions_active
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .sessions_created
            .fetch_add(1, Ordering::Relaxed);
        self.pump(id);
        let commands = self
            .command_sender
            .upgrade()
            .ok_or(AcceptError::ShuttingDown)?;
        tracing::debug!(session = %id, ufrag = %answerer.ufrag, "session accepted");
        Ok(Accepted {
            handle: SessionHandle {
                id,
                commands,
                state: state_rx,
                counters: self.counters.clone(),
            },
            answer: answerer.answer,
            events: events_rx,
            send_tracks,
            ice_ufrag: answerer.ufrag,
            etag,
        })
    }

    fn patch(
        &mut self,
        id: SessionId,
        if_match: Option<&str>,
        body: &str,
    ) -> Result<PatchOutcome, PatchError> {
        let session = self.sessions.get_mut(&id).ok_or(PatchError::SessionGone)?;
        let if_match = if_match.ok_or(PatchError::PreconditionRequired)?;
        let frag = SdpFrag::parse(body)?;
        let wildcard = if_match == "*";
        if !wildcard && if_match != session.etag {
            return Err(PatchError::PreconditionFailed);
        }
        let remote_ufrag = ice_ufrag(&session.remote_offer);
        let restart =
            frag.has_credentials() && frag.ice_ufrag.as_deref() != remote_ufrag.as_deref();
        if wildcard && !restart {
            return Err(PatchError::BadRequest(
                "If-Match: * is for ICE restarts; the fragment carries no new ice-ufrag and ice-pwd",
            ));
        }
        if !restart {
            // Candidates of another ICE generation are stale (RFC 8840 §4.4): ignore them.
            if frag.ice_ufrag.is_some() && frag.ice_ufrag != remote_ufrag {
                return Ok(PatchOutcome::Trickled);
            }
            for (mid, candidate) in &frag.candidates {
                let init = RTCIceCandidateInit {
                    candidate: format!("candidate:{candidate}"),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: Some(0),
                    username_fragment: remote_ufrag.clone(),
                    ..Default::default()
                };
                if let Err(e) = session.pc.add_remote_candidate(init) {
                    // A candidate we cannot use (mDNS name, TCP active) is not an error of
                    // the request; the others still count.
                    tracing::debug!(session = %id, error = %e, "ignoring trickled candidate");
                }
            }
            return Ok(PatchOutcome::Trickled);
        }
        let offer = sdpfrag::restarted_offer(&session.remote_offer, &frag);
        let now = Instant::now();
        let failed = |e: rtc::shared::error::Error| PatchError::RestartFailed(e.to_string());
        let description = RTCSessionDescription::offer(offer.clone()).map_err(failed)?;
        session
            .pc
            .set_remote_description(now, description)
            .map_err(failed)?;
        let answer = session.pc.create_answer(None).map_err(failed)?;
        session
            .pc
            .set_local_description(now, answer)
            .map_err(failed)?;
        let answer = session
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| PatchError::RestartFailed("no local description".into()))?;
        session.remote_offer = offer;
        session.etag = new_etag();
        let etag = session.etag.clone();
        if let Some(ufrag) = ice_ufrag(&answer) {
            // The old ufrag stays routable until the session ends: checks of the old
            // generation may still be in flight.
            self.router.write().add_ufrag(ufrag, id);
        }
        tracing::debug!(session = %id, "ICE restarted");
        Ok(PatchOutcome::Restarted {
            sdpfrag: sdpfrag::answer_fragment(&answer),
            etag,
        })
    }

    fn send_frame(&mut self, id: SessionId, track: usize, frame: &RtpFrame) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if !session.connected {
            return;
        }
        let Some(out) = session.out_tracks.get(track) else {
            return;
        };
        let (sender, payload_type, ssrc, codec) =
            (out.sender, out.payload_type, out.ssrc, out.codec);
        let first_sequence = out.next_sequence;
        let now = Instant::now();
        let last = frame.payloads.len().saturating_sub(1);
        let mut written = 0;
        if let Some(mut rtp_sender) = session.pc.rtp_sender(sender) {
            for (i, payload) in frame.payloads.iter().enumerate() {
                let packet = rtp_packet(
                    payload_type,
                    ssrc,
                    first_sequence.wrapping_add(i as u16),
                    frame.timestamp,
                    i == last,
                    payload.clone(),
                );
                if let Err(e) = rtp_sender.write_rtp(now, packet) {
                    tracing::debug!(session = %id, error = %e, "RTP write failed");
                    break;
                }
                written += 1;
            }
        }
        if written == 0 {
            return;
        }
        let reports = session
            .out_tracks
            .get_mut(track)
            .is_some_and(|out| out.note_sent(frame, first_sequence, written, now));
        if reports {
            session
                .next_report
                .get_or_insert(now + sender_report::REPORT_INTERVAL);
        }
        if codec == Codec::H264 {
            session.video_frames += 1;
            MediaCounters::add(&self.media.video_frames_sent, 1);
        }
    }

    fn request_keyframe(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(ssrc) = session.video_ssrc else {
            return;
        };
        let Some(&(receiver, _)) = session.receivers.iter().find(|(_, s)| *s == ssrc) else {
            return;
        };
        if let Some(mut rtp_receiver) = session.pc.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            match rtp_receiver.write_rtcp(Instant::now(), vec![Box::new(pli)]) {
                Ok(()) => MediaCounters::add(&self.media.plis_sent, 1),
                Err(e) => tracing::debug!(session = %id, error = %e, "PLI write failed"),
            }
        }
    }

    /// Drains everything a session produced after an input, and reschedules it.
    fn pump(&mut self, id: SessionId) {
        let (counters, media) = (&*self.counters, &*self.media);
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        while let Some(out) = session.pc.poll_write() {
            let peer = peer_of(&out.transport);
            bind_addr(&self.router, peer, id);
            self.outbox
                .push_back((peer, out.transport.local_addr, out.message));
        }
        while let Some(event) = session.pc.poll_event() {
            handle_event(id, session, event, counters);
        }
        while let Some(TaggedRTCMessage { message, .. }) = session.pc.poll_read() {
            handle_message(session, message, counters, media);
        }
        // Events may have queued more output (DTLS alerts on close, SCTP acks).
        while let Some(out) = session.pc.poll_write() {
            self.outbox.push_back((
                peer_of(&out.transport),
                out.transport.local_addr,
                out.message,
            ));
        }
        if let Some(reason) = session.closing {
            self.remove(id, reason);
            return;
        }
        let next = match (session.pc.poll_timeout(), session.next_report) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != session.deadline {
            if let Some(old) = session.deadline.take() {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = next {
                self.timers.insert((at, id));
            }
            session.deadline = next;
        }
    }

    fn remove(&mut self, id: SessionId, reason: CloseReason) {
        let Some(mut session) = self.sessions.remove(&id) else {
            return;
        };
        // The last of what rtc counted inside, so the server's counters miss nothing.
        session_stats(&mut session, &self.media);
        if let Some(at) = session.deadline {
            self.timers.remove(&(at, id));
        }
        for peer in self.router.write().remove(id) {
            if peer.protocol == TransportProtocol::TCP {
                self.links.close(peer.addr);
            }
        }
        self.counters
            .sessions_active
            .fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(session = %id, reason = reason.as_str(), "session removed");
        session.state.send_replace(SessionState::Closed(reason));
    }

    fn close_all(&mut self, reason: CloseReason) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.closing = Some(reason);
                let _ = session.pc.close();
            }
            self.pump(id);
        }
    }
}

fn peer_of(transport: &TransportContext) -> PeerAddr {
    PeerAddr {
        addr: transport.peer_addr,
        protocol: transport.transport_protocol,
    }
}

/// Routes `peer` to `id`; the write lock is taken only when that changes anything.
/// Whether the DTLS transport is closed or failed, through whichever handle reaches it: a
/// media receiver, a media sender, or the SCTP transport of a data-channel-only session.
fn dtls_closed(pc: &mut RTCPeerConnection) -> bool {
    let receiver = pc.get_receivers().next();
    let sender = pc.get_senders().next();
    let state = match (receiver, sender) {
        (Some(id), _) => pc
            .rtp_receiver(id)
            .and_then(|receiver| receiver.transport().map(|t| t.state())),
        (None, Some(id)) => pc
            .rtp_sender(id)
            .and_then(|sender| sender.transport().map(|t| t.state())),
        (None, None) => pc.sctp().map(|sctp| sctp.transport().state()),
    };
    matches!(
        state,
        Some(RTCDtlsTransportState::Closed | RTCDtlsTransportState::Failed)
    )
}

fn bind_addr(router: &RwLock<Router>, peer: PeerAddr, id: SessionId) {
    if router.read().by_addr(&peer) != Some(id) {
        router.write().add_addr(peer, id);
    }
}

fn handle_event(
    id: SessionId,
    session: &mut Session,
    event: RTCPeerConnectionEvent,
    counters: &Counters,
) {
    match event {
        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
            tracing::debug!(session = %id, %state, "connection state");
            match state {
                RTCPeerConnectionState::Connected => {
                    session.connected = true;
                    session.state.send_replace(SessionState::Connected);
                }
                RTCPeerConnectionState::Failed => {
                    session.closing.get_or_insert(CloseReason::Failed);
                }
                RTCPeerConnectionState::Closed => {
                    session.closing.get_or_insert(CloseReason::Remote);
                }
                _ => {}
            }
        }
        RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
            session.receivers.push((init.receiver_id, init.ssrc));
        }
        RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(channel)) => {
            let label = session
                .pc
                .data_channel(channel)
                .map(|dc| dc.label().to_owned())
                .unwrap_or_default();
            session.data_channels.insert(channel, label.clone());
            session.emit(SessionEvent::DataChannelOpen { label }, counters);
        }
        RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(channel)) => {
            session.data_channels.remove(&channel);
        }
        _ => {}
    }
}

fn handle_message(
    session: &mut Session,
    message: RTCMessage,
    counters: &Counters,
    media: &MediaCounters,
) {
    match message {
        RTCMessage::RtpPacket(_, packet) => {
            let Some(&codec) = session.in_codecs.get(&packet.header.payload_type) else {
                return;
            };
            if codec == Codec::Opus {
                session.audio_ssrc = Some(packet.header.ssrc);
            }
            if codec == Codec::H264 {
                session.video_ssrc = Some(packet.header.ssrc);
                // The marker bit ends an access unit (RFC 6184 §5.1).
                if packet.header.marker {
                    session.video_frames += 1;
                    MediaCounters::add(&media.video_frames_received, 1);
                }
            }
            session.emit(SessionEvent::Rtp { codec, packet }, counters);
        }
        RTCMessage::RtcpPacket(_, packets) => {
            for packet in packets {
                let any = packet.as_any();
                if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                    note_receptions(session, &rr.reports, media);
                    continue;
                }
                if let Some(sr) = any.downcast_ref::<SenderReport>() {
                    note_receptions(session, &sr.reports, media);
                    let codec = if Some(sr.ssrc) == session.video_ssrc {
                        Some(Codec::H264)
                    } else if Some(sr.ssrc) == session.audio_ssrc {
                        Some(Codec::Opus)
                    } else {
                        // Before the stream's first RTP packet: nothing to align yet.
                        None
                    };
                    if let Some(codec) = codec {
                        session.emit(
                            SessionEvent::SenderReport {
                                codec,
                                ntp_time: sr.ntp_time,
                                rtp_time: sr.rtp_time,
                            },
                            counters,
                        );
                    }
                    continue;
                }
                if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                    session.nacks_received += 1;
                    MediaCounters::add(&media.nacks_received, 1);
                    let resent = retransmit(session, nack);
                    MediaCounters::add(&media.rtp_packets_retransmitted, resent);
                    continue;
                }
                let media_ssrc = if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    MediaCounters::add(&media.plis_received, 1);
                    Some(pli.media_ssrc)
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                    MediaCounters::add(&media.firs_received, 1);
                    // The stream is in the FCI entries; the header's media SSRC is 0
                    // (RFC 5104 §4.3.1.2).
                    Some(fir.fir.first().map_or(fir.media_ssrc, |entry| entry.ssrc))
                } else {
                    None
                };
                let Some(media_ssrc) = media_ssrc else {
                    continue;
                };
                let codec = session
                    .out_tracks
                    .iter()
                    .find(|t| t.ssrc == media_ssrc)
                    .map_or(Codec::H264, |t| t.codec);
                session.keyframe_requests += 1;
                session.emit(SessionEvent::KeyframeRequested { codec }, counters);
            }
        }
        RTCMessage::DataChannelMessage(channel, message) => {
            let label = session
                .data_channels
                .get(&channel)
                .cloned()
                .unwrap_or_default();
            session.emit(
                SessionEvent::DataChannelMessage {
                    label,
                    data: Bytes::from(message.data),
                },
                counters,
            );
        }
        _ => {}
    }
}

/// Most packets one NACK message gets sent again: a viewer cannot make us send more than
/// this per NACK it sends, whatever it asks for.
const MAX_RETRANSMITTED_PER_NACK: usize = 64;

/// An RTP packet of ours, as first sent or sent again.
fn rtp_packet(
    payload_type: u8,
    ssrc: u32,
    sequence_number: u16,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

impl OutTrack {
    /// Notes the first `written` packets of `frame` as sent, numbered from `first_sequence`:
    /// the next sequence number, the NACK history, the sender report's counts. Returns whether
    /// the track writes its own sender reports.
    fn note_sent(
        &mut self,
        frame: &RtpFrame,
        first_sequence: u16,
        written: usize,
        now: Instant,
    ) -> bool {
        let sent = &frame.payloads[..written];
        let last = frame.payloads.len().saturating_sub(1);
        self.next_sequence = first_sequence.wrapping_add(written as u16);
        if let Some(history) = self.sent.as_mut() {
            for (i, payload) in sent.iter().enumerate() {
                history.push(SentPacket {
                    sequence: first_sequence.wrapping_add(i as u16),
                    timestamp: frame.timestamp,
                    marker: i == last,
                    payload: payload.clone(),
                });
            }
        }
        let Some(clock) = self.clock.as_mut() else {
            return false;
        };
        let octets = sent.iter().map(|p| p.len() as u32).sum();
        clock.sent(frame.timestamp, now, written as u32, octets);
        true
    }
}

/// Sends again, unchanged (same SSRC and sequence number: no RTX is negotiated), the packets
/// `nack` asks for that the track still keeps. Returns how many.
fn retransmit(session: &mut Session, nack: &TransportLayerNack) -> u64 {
    let Session { pc, out_tracks, .. } = session;
    let Some(track) = out_tracks.iter().find(|t| t.ssrc == nack.media_ssrc) else {
        return 0;
    };
    let (Some(history), Some(mut rtp_sender)) = (&track.sent, pc.rtp_sender(track.sender)) else {
        return 0;
    };
    let now = Instant::now();
    let wanted = nack.nacks.iter().flat_map(|pair| pair.packet_list());
    let mut resent = 0;
    for sequence in wanted.take(MAX_RETRANSMITTED_PER_NACK) {
        let Some(sent) = history.get(sequence) else {
            continue;
        };
        let packet = rtp_packet(
            track.payload_type,
            track.ssrc,
            sent.sequence,
            sent.timestamp,
            sent.marker,
            sent.payload.clone(),
        );
        if rtp_sender.write_rtp(now, packet).is_ok() {
            resent += 1;
        }
    }
    resent
}

/// One sender report per track that has sent something (RFC 3550 §6.4.1).
fn send_reports(session: &mut Session, now: Instant) {
    let wall = std::time::SystemTime::now();
    let Session { pc, out_tracks, .. } = session;
    for track in out_tracks.iter() {
        let Some(report) = track
            .clock
            .as_ref()
            .and_then(|clock| clock.report(track.ssrc, now, wall))
        else {
            continue;
        };
        if let Some(mut rtp_sender) = pc.rtp_sender(track.sender) {
            if let Err(e) = rtp_sender.write_rtcp(now, vec![Box::new(report)]) {
                tracing::debug!(error = %e, "sender report write failed");
            }
        }
    }
}

/// Keeps the latest reception report about each stream we send, and adds what it newly
/// reports lost to the shard's count.
fn note_receptions(session: &mut Session, reports: &[ReceptionReport], media: &MediaCounters) {
    if reports.is_empty() {
        return;
    }
    let now = reception::now_ntp_mid32();
    for report in reports {
        if let Some(track) = session
            .out_tracks
            .iter_mut()
            .find(|t| t.ssrc == report.ssrc)
        {
            let latest = RemoteReception::from_report(report, now, track.codec.rtp_clock_rate());
            // Cumulative loss goes down with duplicates (RFC 3550 §6.4.1): only increases
            // count, so the server's counter never goes backwards.
            let newly_lost = latest.packets_lost - track.reception.packets_lost;
            MediaCounters::add(&media.sent_packets_lost, newly_lost.max(0) as u64);
            // A report before the peer saw our first SR has no RTT; keep the last one.
            track.reception = RemoteReception {
                rtt_s: latest.rtt_s.or(track.reception.rtt_s),
                ..latest
            };
        }
    }
}

/// A session's statistics now. Also takes into the shard's counters what rtc counted inside
/// since the last call.
fn session_stats(session: &mut Session, media: &MediaCounters) -> SessionStats {
    let now = Instant::now();
    let report = session.pc.get_stats(now, StatsSelector::None);
    let mut stats = SessionStats {
        dropped_events: session.dropped_events,
        keyframe_requests_received: session.keyframe_requests,
        nacks_received: session.nacks_received,
        ..SessionStats::default()
    };
    for outbound in report.outbound_rtp_streams() {
        stats.packets_sent += outbound.sent_rtp_stream_stats.packets_sent;
        stats.bytes_sent += outbound.sent_rtp_stream_stats.bytes_sent;
    }
    let mut received_lost = 0;
    for inbound in report.inbound_rtp_streams() {
        let received = &inbound.received_rtp_stream_stats;
        stats.packets_received += received.packets_received;
        stats.bytes_received += inbound.bytes_received;
        received_lost += received.packets_lost;
        // rtc 0.21 stores the jitter of its receiver reports as is, in timestamp units of the
        // stream's RTP clock (RFC 3550 §6.4.1), though its field says seconds.
        let clock = match received.rtp_stream_stats.kind {
            RtpCodecKind::Video => Codec::H264.rtp_clock_rate(),
            _ => Codec::Opus.rtp_clock_rate(),
        };
        stats.jitter_s = stats.jitter_s.max(received.jitter / f64::from(clock));
        stats.nacks_sent += u64::from(inbound.nack_count);
        stats.plis_sent += u64::from(inbound.pli_count);
    }
    stats.packets_lost = received_lost;
    // Sending: what the peer reports of our streams (RFC 3550 §6.4.1); the worst track.
    let mut rtcp_rtt_s: Option<f64> = None;
    let mut sent_fraction_lost = 0.0f64;
    for track in &session.out_tracks {
        stats.packets_lost += track.reception.packets_lost;
        stats.jitter_s = stats.jitter_s.max(track.reception.jitter_s);
        sent_fraction_lost = sent_fraction_lost.max(track.reception.fraction_lost);
        if let Some(rtt) = track.reception.rtt_s {
            rtcp_rtt_s = Some(rtcp_rtt_s.map_or(rtt, |r| r.max(rtt)));
        }
    }
    // The media path's RTT when the peer reports one, else that of our STUN consent checks.
    stats.rtt_s = match (rtcp_rtt_s, report.candidate_pairs().find(|p| p.nominated)) {
        (Some(rtt), _) => rtt,
        (None, Some(pair)) => pair.current_round_trip_time,
        (None, None) => 0.0,
    };
    let received_fraction_lost = session
        .loss_in
        .update(now, stats.packets_received, received_lost);
    stats.fraction_lost = sent_fraction_lost.max(received_fraction_lost);
    stats.bitrate_in_bps = session.bitrate_in.update(now, stats.bytes_received);
    stats.bitrate_out_bps = session.bitrate_out.update(now, stats.bytes_sent);
    let has_video =
        session.video_ssrc.is_some() || session.out_tracks.iter().any(|t| t.codec == Codec::H264);
    let frame_rate = session.frame_rate.update(now, session.video_frames);
    stats.frames_per_second = has_video.then_some(frame_rate);

    let folded = &mut session.folded;
    // Increases only, like the loss below: a replaced stream restarts rtc's counts.
    MediaCounters::add(
        &media.nacks_sent,
        stats.nacks_sent.saturating_sub(folded.nacks_sent),
    );
    folded.nacks_sent = stats.nacks_sent;
    let newly_lost = received_lost - folded.received_packets_lost;
    MediaCounters::add(&media.received_packets_lost, newly_lost.max(0) as u64);
    folded.received_packets_lost = received_lost;
    stats
}

/// Whether a datagram is SRTP rather than SRTCP, STUN, DTLS or TURN: a first byte of
/// 128..=191 (RFC 7983 §7) and a second byte that is not an RTCP packet type 192..=223 with
/// the marker bit read as part of it (RFC 5761 §4: such payload types 64..=95 are avoided).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7F))
}

fn note_rtp_sent(media: &MediaCounters, rtp_len: Option<u64>) {
    if let Some(len) = rtp_len {
        MediaCounters::add(&media.rtp_packets_sent, 1);
        MediaCounters::add(&media.rtp_bytes_sent, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        for payload_type in [0u8, 96, 111, 127] {
            for marker in [0, 0x80] {
                rtp[1] = payload_type | marker;
                assert!(is_rtp(&rtp), "payload type {payload_type} marker {marker}");
            }
        }
        let mut rtcp = [0u8; 12];
        rtcp[0] = 0x81;
        // SR, RR, SDES, BYE, APP, RTPFB (NACK), PSFB (PLI, FIR), XR.
        for packet_type in [200u8, 201, 202, 203, 204, 205, 206, 207] {
            rtcp[1] = packet_type;
            assert!(!is_rtp(&rtcp), "RTCP {packet_type}");
        }
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4];
        let dtls = [0x16, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(!is_rtp(&stun));
        assert!(!is_rtp(&dtls));
        assert!(!is_rtp(&rtp[..11]), "shorter than an RTP header");
    }
}
