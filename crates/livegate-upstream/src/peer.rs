//! One upstream connection's event loop: one task, one UDP socket, one `rtc` peer
//! connection that sends the publisher's media and receives the processed media back.
//!
//! The loop's contract with `rtc` (`sansio::Protocol`) and with the worker's parts:
//!
//! | input | call | then |
//! |---|---|---|
//! | a datagram | `handle_read` | `poll_event`, `poll_read` until empty, *after every datagram*: rtc 0.21 installs the SRTP keys only when events are polled, and media right behind the DTLS Finished would be dropped otherwise |
//! | the deadline of `poll_timeout` | `handle_timeout` | the same |
//! | the ingest's deadline | [`MediaReceiver::handle_timeout`] | a PLI if it wants a keyframe |
//! | input access units, before `connected` | [`InputFeed::hold`] | |
//! | `connected` | the held units, then each unit read: [`MediaSender::packets`] → `RTCRtpSender::write_rtp` | |
//! | RTP from the upstream | [`MediaReceiver::on_rtp`] (the output ring) | a PLI (RFC 4585 §6.3.1) if it wants a keyframe |
//! | a PLI or FIR from the upstream | counted in the status | (only the publisher can answer) |
//! | a publisher message / the channel opening / an upstream message | see [`crate::data_channel`] | |
//! | the stream closes or another output replaces ours | | exit |
//! | every turn | `poll_write` until empty | send each to its peer address |
//!
//! It ends with the input (the publisher left), the stream, a failed or closed connection
//! (the upstream's DTLS close_notify included), no `connected` within the connect timeout,
//! or the media watchdog: nothing received for `out_timeout` while input flows. On the way
//! out the ingest flushes what it holds and the peer connection is closed (close_notify sent);
//! the DELETE is the supervisor's.
//!
//! Concurrency: the loop alone owns the peer connection and the output ring's writer; it
//! publishes phases and counters on the status watch and never waits for anyone else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use livegate_media::registry::{OutputSlot, Stream};
use livegate_media::ring::RingBuffer;
use livegate_media::{AccessUnit, Codec};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::sansio::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::data_channel::DataRelay;
use crate::datagram;
use crate::error::UpstreamError;
use crate::offer::{OfferingPeer, SendTrack};
use crate::receive::MediaReceiver;
use crate::send::{InputFeed, InputRead, MediaSender, OutPacket};
use crate::status::{Phase, PhaseClock, UpstreamStatus};

/// Receive buffer chunk: datagrams are split off it, so one allocation serves dozens.
const RECV_CHUNK: usize = 64 * 1024;
/// Room kept free for the next datagram.
const MAX_DATAGRAM: usize = 2048;
/// Ready datagrams handled per wake-up before timers and other inputs get a turn.
const RECV_BURST: usize = 64;
/// Sleep when nothing has a deadline.
const IDLE: Duration = Duration::from_secs(1);

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum ConnectionEnd {
    /// The input closed: the publisher left. Final.
    InputClosed,
    /// The stream closed, or another worker installed the output. Final.
    StreamClosed,
    /// Worth another attempt.
    Failed(UpstreamError),
    /// Connected and ran, then failed: also worth another attempt; `ran` is how long it
    /// was connected (a long healthy run resets the backoff).
    FailedAfter { error: UpstreamError, ran: Duration },
}

/// What a connection borrows from its worker.
pub(crate) struct Borrowed<'a> {
    pub(crate) stream: &'a str,
    /// The stream itself, to pass the upstream's keyframe requests to the publisher.
    pub(crate) live_stream: &'a Stream,
    pub(crate) attempt: u32,
    pub(crate) phases: &'a PhaseClock,
    pub(crate) status: &'a watch::Sender<UpstreamStatus>,
    pub(crate) feed: &'a mut InputFeed,
    pub(crate) relay: &'a mut DataRelay,
    pub(crate) slot: &'a mut watch::Receiver<OutputSlot>,
    pub(crate) output: &'a Arc<RingBuffer>,
    /// When the attempt must be `connected` by, and how long that was from its start.
    pub(crate) connect_deadline: Instant,
    pub(crate) connect_timeout: Duration,
    pub(crate) out_timeout: Option<Duration>,
}

/// One answered connection, ready to run.
pub(crate) struct Connection<'a> {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    tracks: Vec<SendTrack>,
    sender: MediaSender,
    receiver: MediaReceiver,
    data_channel: Option<RTCDataChannelId>,
    data_channel_open: bool,
    connected_at: Option<Instant>,
    first_sent_at: Option<Instant>,
    last_input_at: Option<Instant>,
    ended: Option<ConnectionEnd>,
    recv_buf: BytesMut,
    units: Vec<AccessUnit>,
    packets: Vec<OutPacket>,
    w: Borrowed<'a>,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(
        peer: OfferingPeer,
        receiver: MediaReceiver,
        w: Borrowed<'a>,
    ) -> Connection<'a> {
        Connection {
            sender: MediaSender::new(&peer.tracks),
            pc: peer.pc,
            socket: peer.socket,
            local_addr: peer.local_addr,
            tracks: peer.tracks,
            receiver,
            data_channel: peer.data_channel,
            data_channel_open: false,
            connected_at: None,
            first_sent_at: None,
            last_input_at: None,
            ended: None,
            recv_buf: BytesMut::with_capacity(RECV_CHUNK),
            units: Vec::new(),
            packets: Vec::new(),
            w,
        }
    }

    /// Runs the connection until it ends; see the module docs.
    pub(crate) async fn run(mut self) -> ConnectionEnd {
        let sleep = tokio::time::sleep(IDLE);
        tokio::pin!(sleep);
        if !self.output_is_ours() {
            // Replaced while the offer was out (a newer worker of the stream).
            self.close().await;
            return ConnectionEnd::StreamClosed;
        }
        let end = loop {
            self.flush().await;
            if let Some(end) = self.ended.take() {
                break end;
            }
            let now = Instant::now();
            if self.pc.poll_timeout().is_some_and(|at| at <= now) {
                let _ = self.pc.handle_timeout(now);
                self.pump();
                continue;
            }
            if self.receiver.poll_timeout().is_some_and(|at| at <= now) {
                let result = self.receiver.handle_timeout(now);
                self.on_ingest(result);
                self.ask_for_keyframe(now);
                continue;
            }
            if let Some(end) = self.deadline_passed(now) {
                break end;
            }
            let wake = [
                self.pc.poll_timeout(),
                self.receiver.poll_timeout(),
                self.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + IDLE);
            sleep.as_mut().reset(wake.into());
            if self.recv_buf.capacity() < MAX_DATAGRAM {
                self.recv_buf.reserve(RECV_CHUNK);
            }
            let relay_ready = self.w.relay.wants_publisher_message(self.data_channel_open);
            tokio::select! {
                biased;
                changed = self.w.slot.changed() => {
                    if changed.is_err() || !self.output_is_ours() {
                        break ConnectionEnd::StreamClosed;
                    }
                }
                received = self.socket.recv_buf_from(&mut self.recv_buf) => {
                    if let Ok((_, from)) = received {
                        self.on_datagram(from);
                        self.drain_ready();
                    }
                    // Errors are ICMP echoes of our own sends (port unreachable once the
                    // upstream is gone): ICE's timers decide what they mean.
                }
                read = self.w.feed.read(&mut self.units) => {
                    if read == InputRead::Closed {
                        break ConnectionEnd::InputClosed;
                    }
                    self.on_input();
                }
                message = self.w.relay.next_publisher_message(), if relay_ready => {
                    if let Some(message) = message {
                        self.on_publisher_message(message);
                    }
                }
                () = &mut sleep => {}
            }
        };
        self.close().await;
        end
    }

    /// Whether the stream is open and its output is still this connection's ring.
    fn output_is_ours(&mut self) -> bool {
        let slot = self.w.slot.borrow_and_update();
        !slot.closed
            && slot
                .buffer
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, self.w.output))
    }

    /// The connect timeout and the media watchdog.
    fn deadline_passed(&self, now: Instant) -> Option<ConnectionEnd> {
        if self.connected_at.is_none() && now >= self.w.connect_deadline {
            return Some(ConnectionEnd::Failed(UpstreamError::ConnectTimeout(
                self.w.connect_timeout,
            )));
        }
        let (timeout, due) = self.watchdog()?;
        let input_flows = self
            .last_input_at
            .is_some_and(|at| now.saturating_duration_since(at) < timeout);
        (now >= due && input_flows).then(|| self.failed(UpstreamError::NoMedia(timeout)))
    }

    /// When the watchdog fires if nothing comes back: `out_timeout` after the later of the
    /// first media sent and the last media received.
    fn watchdog(&self) -> Option<(Duration, Instant)> {
        let timeout = self
            .w
            .out_timeout
            .filter(|_| self.receiver.expects_media())?;
        let since = self
            .first_sent_at?
            .max(self.receiver.last_packet_at.unwrap_or(self.first_sent_at?));
        Some((timeout, since + timeout))
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.connected_at.is_none() {
            return Some(self.w.connect_deadline);
        }
        self.watchdog().map(|(_, due)| due)
    }

    fn failed(&self, error: UpstreamError) -> ConnectionEnd {
        match self.connected_at {
            Some(at) => ConnectionEnd::FailedAfter {
                error,
                ran: at.elapsed(),
            },
            None => ConnectionEnd::Failed(error),
        }
    }

    fn end(&mut self, end: ConnectionEnd) {
        self.ended.get_or_insert(end);
    }

    /// Handles datagrams already queued on the socket without another trip through the
    /// select, each pumped on its own.
    fn drain_ready(&mut self) {
        for _ in 0..RECV_BURST {
            if self.recv_buf.capacity() < MAX_DATAGRAM {
                self.recv_buf.reserve(RECV_CHUNK);
            }
            match self.socket.try_recv_buf_from(&mut self.recv_buf) {
                Ok((_, from)) => self.on_datagram(from),
                Err(_) => break,
            }
        }
    }

    fn on_datagram(&mut self, from: SocketAddr) {
        let message = self.recv_buf.split();
        let dtls = datagram::deliver(&mut self.pc, self.local_addr, from, message, Instant::now());
        // Before the next datagram: this installs the SRTP keys the moment DTLS completes.
        self.pump();
        let sender = self.tracks.first().map(|t| t.sender);
        if dtls && self.connected_at.is_some() && datagram::sender_dtls_closed(&mut self.pc, sender)
        {
            // The W3C connection-state rules count a closed DTLS transport as connected,
            // so the upstream's close_notify (its DELETE handler, a restart) shows only here.
            let end = self.failed(UpstreamError::Ended(
                "closed by the upstream (DTLS close_notify)",
            ));
            self.end(end);
        }
    }

    fn pump(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            self.on_event(event);
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            self.on_message(message);
        }
        self.ask_for_keyframe(Instant::now());
    }

    fn reached(&self, phase: Phase) {
        self.w
            .phases
            .reached(phase, self.w.stream, self.w.attempt, self.w.status);
    }

    fn on_event(&mut self, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                RTCIceConnectionState::Connected,
            ) => self.reached(Phase::IceConnected),
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected if self.connected_at.is_none() => {
                    self.connected_at = Some(Instant::now());
                    self.reached(Phase::DtlsConnected);
                    self.w.status.send_modify(|s| s.connected = true);
                    self.send_held();
                }
                RTCPeerConnectionState::Failed => {
                    let end = self.failed(UpstreamError::Ended("failed"));
                    self.end(end);
                }
                RTCPeerConnectionState::Closed => {
                    let end = self.failed(UpstreamError::Ended("closed"));
                    self.end(end);
                }
                _ => {}
            },
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                let kind = self
                    .pc
                    .rtp_receiver(init.receiver_id)
                    .map(|receiver| receiver.track().kind());
                let codec = match kind {
                    Some(RtpCodecKind::Video) => Codec::H264,
                    Some(RtpCodecKind::Audio) => Codec::Opus,
                    _ => return,
                };
                self.receiver.on_track(init.ssrc, codec, init.receiver_id);
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(channel)) => {
                self.data_channel = Some(channel);
                self.data_channel_open = true;
                let pending = self.w.relay.take_pending();
                self.send_upstream(pending.into_iter());
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(channel))
                if self.data_channel == Some(channel) =>
            {
                self.data_channel_open = false;
            }
            _ => {}
        }
    }

    fn on_message(&mut self, message: RTCMessage) {
        match message {
            RTCMessage::RtpPacket(_, packet) => {
                let now = Instant::now();
                let first = self.receiver.first_packet_at.is_none();
                let result = self.receiver.on_rtp(&packet, now);
                if first && self.receiver.first_packet_at.is_some() {
                    self.reached(Phase::FirstMediaReceived);
                }
                self.on_ingest(result);
            }
            RTCMessage::RtcpPacket(_, packets) => {
                let mut keyframe_requests = 0;
                for packet in &packets {
                    let any = packet.as_any();
                    if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                        keyframe_requests += 1;
                    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                        self.receiver
                            .on_sender_report(sr.ssrc, sr.ntp_time, sr.rtp_time);
                    }
                }
                if keyframe_requests > 0 {
                    tracing::debug!(
                        stream = self.w.stream,
                        "the upstream asked for a keyframe; asking the publisher"
                    );
                    self.w.live_stream.request_keyframe();
                    self.w
                        .status
                        .send_modify(|s| s.upstream_keyframe_requests += keyframe_requests);
                }
            }
            RTCMessage::DataChannelMessage(_, message) => {
                self.w.relay.relay_to_publisher(message.data.freeze());
            }
            _ => {}
        }
    }

    /// An ingest error other than a closed output is a bug or a codec we did not offer:
    /// logged. A closed output means the stream closed or moved on.
    fn on_ingest(&mut self, result: Result<(), livegate_whip::IngestError>) {
        match result {
            Ok(()) => {}
            Err(livegate_whip::IngestError::OutputClosed) => {
                self.end(ConnectionEnd::StreamClosed);
            }
            Err(e) => tracing::warn!(stream = self.w.stream, error = %e, "upstream media refused"),
        }
    }

    fn ask_for_keyframe(&mut self, now: Instant) {
        let Some((receiver, ssrc)) = self.receiver.want_keyframe(now) else {
            return;
        };
        if let Some(mut rtp_receiver) = self.pc.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            if let Err(e) = rtp_receiver.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(stream = self.w.stream, error = %e, "PLI write failed");
            }
        }
    }

    /// Access units just read: held until connected, sent after.
    fn on_input(&mut self) {
        if self.units.is_empty() {
            return;
        }
        self.last_input_at = Some(Instant::now());
        let units = std::mem::take(&mut self.units);
        if self.connected_at.is_none() {
            for au in units {
                self.w.feed.hold(au);
            }
            return;
        }
        self.send_units(units.iter());
        self.units = units;
        self.units.clear();
    }

    /// At `connected`: what was held while connecting goes out first.
    fn send_held(&mut self) {
        let held = self.w.feed.take_held();
        if !held.is_empty() {
            tracing::debug!(
                stream = self.w.stream,
                units = held.len(),
                "sending what was held while connecting"
            );
        }
        self.send_units(held.iter());
    }

    fn send_units<'u>(&mut self, units: impl Iterator<Item = &'u AccessUnit>) {
        let has_video = self.w.feed.has_video();
        for au in units {
            self.sender.packets(au, has_video, &mut self.packets);
        }
        if self.packets.is_empty() {
            return;
        }
        let now = Instant::now();
        for OutPacket { sender, packet } in self.packets.drain(..) {
            if let Some(mut rtp_sender) = self.pc.rtp_sender(sender) {
                // A failed write is a packet lost, which NACK or the next keyframe repairs.
                let _ = rtp_sender.write_rtp(now, packet);
            }
        }
        if self.first_sent_at.is_none() {
            self.first_sent_at = Some(now);
            self.reached(Phase::FirstMediaSent);
        }
    }

    fn on_publisher_message(&mut self, message: Bytes) {
        if self.data_channel_open {
            self.send_upstream(std::iter::once(message));
        } else {
            self.w.relay.queue(message);
        }
        let pending = self.w.relay.pending();
        self.w.status.send_if_modified(|s| {
            std::mem::replace(&mut s.data_messages_pending, pending) != pending
        });
    }

    /// Sends `messages` in order on the upstream channel; on the first failure the channel
    /// is closed and the rest (that one included) wait for the next connection.
    fn send_upstream(&mut self, messages: impl DoubleEndedIterator<Item = Bytes>) {
        let mut messages = messages.peekable();
        let now = Instant::now();
        while let Some(message) = messages.peek() {
            let Some(mut channel) = self.data_channel.and_then(|id| self.pc.data_channel(id))
            else {
                break;
            };
            let result = match std::str::from_utf8(message) {
                Ok(text) => channel.send_text(now, text),
                Err(_) => channel.send(now, BytesMut::from(&message[..])),
            };
            match result {
                Ok(()) => {
                    self.w.relay.sent_upstream += 1;
                    messages.next();
                }
                Err(e) => {
                    let _ = channel.close();
                    self.w.relay.upstream_send_failed(&e);
                    self.data_channel_open = false;
                    break;
                }
            }
        }
        let rest: Vec<Bytes> = messages.collect();
        if !rest.is_empty() {
            self.data_channel_open = false;
            self.w.relay.requeue(rest.into_iter());
        }
        let pending = self.w.relay.pending();
        self.w.status.send_if_modified(|s| {
            std::mem::replace(&mut s.data_messages_pending, pending) != pending
        });
    }

    async fn flush(&mut self) {
        datagram::flush(&mut self.pc, &self.socket).await;
    }

    /// Flushes the ingest and closes the peer connection (DTLS close_notify sent).
    async fn close(&mut self) {
        self.receiver.finish(Instant::now());
        let _ = self.pc.close();
        self.pump();
        self.flush().await;
        self.w.status.send_modify(|s| s.connected = false);
    }
}
