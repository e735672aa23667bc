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
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::statistics::StatsSelector;
use tokio::sync::{mpsc, watch};

use crate::bitrate::BitrateMeter;
use crate::candidates::HostCandidates;
use crate::config::RtcConfig;
use crate::ice_tcp::TcpLinks;
use crate::offer::Offer;
use crate::peer::{self, OutTrack};
use crate::reception::{self, RemoteReception};
use crate::router::{PeerAddr, Router};
use crate::sdpfrag::{self, SdpFrag};
use crate::server::{ice_ufrag, new_etag, Command, Counters, SessionHandle};
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
    connected: bool,
    closing: Option<CloseReason>,
    /// Remote tracks: receiver and SSRC, and which SSRC carries video.
    receivers: Vec<(RTCRtpReceiverId, u32)>,
    video_ssrc: Option<u32>,
    data_channels: HashMap<RTCDataChannelId, String>,
    dropped_events: u64,
    keyframe_requests: u64,
    bitrate_in: BitrateMeter,
    bitrate_out: BitrateMeter,
}

impl Session {
    fn emit(&mut self, event: SessionEvent, counters: &Counters) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            counters.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

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
    counters: Arc<Counters>,
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
            counters,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.flush_outbox().await;
            let deadline = self
                .timers
                .first()
                .map(|(at, _)| *at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { done }) => {
                        self.close_all(CloseReason::Shutdown);
                        self.flush_outbox().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.handle_command(command),
                    None => {
                        self.close_all(CloseReason::Shutdown);
                        self.flush_outbox().await;
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.handle_timeouts(Instant::now()),
            }
        }
    }

    async fn flush_outbox(&mut self) {
        while let Some((peer, local, datagram)) = self.outbox.pop_front() {
            if peer.protocol == TransportProtocol::TCP {
                let counter = if self.links.send(peer.addr, datagram) {
                    &self.counters.datagrams_out
                } else {
                    &self.counters.tcp_packets_dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let source = self.candidates.source_ip(local);
            match self.socket.send(peer.addr, source, &datagram).await {
                Ok(()) => {
                    self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(peer = %peer.addr, error = %e, "UDP send failed"),
            }
        }
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
            Command::Accept { offer, role, reply } => {
                let result = self.accept(&offer, role);
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
                if let Some(s) = self.sessions.get_mut(&session) {
                    let open: Vec<RTCDataChannelId> = s.data_channels.keys().copied().collect();
                    for channel in open {
                        if let Some(mut dc) = s.pc.data_channel(channel) {
                            if let Err(e) = dc.send_text(Instant::now(), text.clone()) {
                                tracing::debug!(%session, error = %e, "data channel send failed");
                            }
                        }
                    }
                }
                self.pump(session);
            }
            Command::Stats { session, reply } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    let _ = reply.send(session_stats(s));
                }
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

    fn accept(&mut self, offer_sdp: &str, role: SessionRole) -> Result<Accepted, AcceptError> {
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
                connected: false,
                closing: None,
                receivers: Vec::new(),
                video_ssrc: None,
                data_channels: HashMap::new(),
                dropped_events: 0,
                keyframe_requests: 0,
                bitrate_in: BitrateMeter::default(),
                bitrate_out: BitrateMeter::default(),
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
        let (sender, payload_type, ssrc) = (out.sender, out.payload_type, out.ssrc);
        let mut sequence = out.next_sequence;
        let now = Instant::now();
        let last = frame.payloads.len().saturating_sub(1);
        if let Some(mut rtp_sender) = session.pc.rtp_sender(sender) {
            for (i, payload) in frame.payloads.iter().enumerate() {
                let packet = rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        marker: i == last,
                        payload_type,
                        sequence_number: sequence,
                        timestamp: frame.timestamp,
                        ssrc,
                        ..Default::default()
                    },
                    payload: payload.clone(),
                };
                sequence = sequence.wrapping_add(1);
                if let Err(e) = rtp_sender.write_rtp(now, packet) {
                    tracing::debug!(session = %id, error = %e, "RTP write failed");
                    break;
                }
            }
        }
        if let Some(out) = session.out_tracks.get_mut(track) {
            out.next_sequence = sequence;
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
            if let Err(e) = rtp_receiver.write_rtcp(Instant::now(), vec![Box::new(pli)]) {
                tracing::debug!(session = %id, error = %e, "PLI write failed");
            }
        }
    }

    /// Drains everything a session produced after an input, and reschedules it.
    fn pump(&mut self, id: SessionId) {
        let counters = self.counters.clone();
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
            handle_event(id, session, event, &counters);
        }
        while let Some(TaggedRTCMessage { message, .. }) = session.pc.poll_read() {
            handle_message(session, message, &counters);
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
        let next = session.pc.poll_timeout();
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
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
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

fn handle_message(session: &mut Session, message: RTCMessage, counters: &Counters) {
    match message {
        RTCMessage::RtpPacket(_, packet) => {
            let Some(&codec) = session.in_codecs.get(&packet.header.payload_type) else {
                return;
            };
            if codec == Codec::H264 {
                session.video_ssrc = Some(packet.header.ssrc);
            }
            session.emit(SessionEvent::Rtp { codec, packet }, counters);
        }
        RTCMessage::RtcpPacket(_, packets) => {
            for packet in packets {
                let any = packet.as_any();
                if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                    note_receptions(session, &rr.reports);
                    continue;
                }
                if let Some(sr) = any.downcast_ref::<SenderReport>() {
                    note_receptions(session, &sr.reports);
                    continue;
                }
                let media_ssrc =
                    if let Some(pli) = packet.as_any().downcast_ref::<PictureLossIndication>() {
                        Some(pli.media_ssrc)
                    } else {
                        packet
                            .as_any()
                            .downcast_ref::<FullIntraRequest>()
                            .map(|fir| fir.media_ssrc)
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

/// Keeps the latest reception report about each stream we send.
fn note_receptions(session: &mut Session, reports: &[ReceptionReport]) {
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
            let latest = RemoteReception::from_report(report, now);
            // A report before the peer saw our first SR has no RTT; keep the last one.
            track.reception = RemoteReception {
                rtt_s: latest.rtt_s.or(track.reception.rtt_s),
                ..latest
            };
        }
    }
}

fn session_stats(session: &mut Session) -> SessionStats {
    let report = session.pc.get_stats(Instant::now(), StatsSelector::None);
    let mut stats = SessionStats {
        dropped_events: session.dropped_events,
        keyframe_requests_received: session.keyframe_requests,
        ..SessionStats::default()
    };
    for outbound in report.outbound_rtp_streams() {
        stats.packets_sent += outbound.sent_rtp_stream_stats.packets_sent;
        stats.bytes_sent += outbound.sent_rtp_stream_stats.bytes_sent;
    }
    for inbound in report.inbound_rtp_streams() {
        stats.packets_received += inbound.received_rtp_stream_stats.packets_received;
        stats.bytes_received += inbound.bytes_received;
        stats.packets_lost += inbound.received_rtp_stream_stats.packets_lost;
        stats.jitter_s = stats.jitter_s.max(inbound.received_rtp_stream_stats.jitter);
        stats.nacks_sent += u64::from(inbound.nack_count);
        stats.plis_sent += u64::from(inbound.pli_count);
    }
    // Sending: what the peer reports of our streams (RFC 3550 §6.4.1).
    let mut rtcp_rtt_s: Option<f64> = None;
    for track in &session.out_tracks {
        stats.packets_lost += track.reception.packets_lost;
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
    let now = Instant::now();
    stats.bitrate_in_bps = session.bitrate_in.update(now, stats.bytes_received);
    stats.bitrate_out_bps = session.bitrate_out.update(now, stats.bytes_sent);
    stats
}
