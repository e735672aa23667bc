//! The viewer's peer connection on the `rtc` sans-I/O core, driven by its own event loop:
//! one task and one UDP socket per viewer, and the accounting of what it receives.
//!
//! Why not the async `webrtc` crate: its driver (0.21.1) feeds a burst of up to 64 ready
//! datagrams to the core before it pumps events, and the core installs its SRTP keys only
//! when events are pumped. livegate answers as DTLS server (`a=setup:passive`) and sends the
//! GOP cache right behind its Finished, so that burst was dropped ("remote_srtp_context is
//! not set yet"): 41 of 48 viewers started on a P-frame, which a browser never does. This
//! loop pumps after every datagram.
//!
//! The loop's contract with `rtc` (`sansio::Protocol`):
//!
//! | input | call | then |
//! |---|---|---|
//! | a datagram | `handle_read` | `poll_event`, `poll_read` until empty (keys, tracks, RTP) |
//! | the deadline of `poll_timeout` | `handle_timeout` | the same |
//! | [`PeerHandle::request_keyframe`] | `write_rtcp` of a PLI (RFC 4585 §6.3.1) on the video receiver | |
//! | [`PeerHandle`] closed or dropped | `close` | `poll_write` (DTLS close_notify), exit |
//! | every turn | `poll_write` until empty | send each to its peer address |
//!
//! It ends by itself when the connection fails, closes, or the gateway's DTLS close_notify
//! arrives; [`Observed::ended`] says which.
//!
//! Concurrency: the loop alone owns the peer connection. It locks a kind's
//! [`TrackShared::account`] for a few instructions per RTP packet; readers lock it as briefly
//! for a snapshot, or await the watches, which only move forward. The packet path allocates
//! nothing of ours: datagrams are read into 64 KiB chunks split per datagram (the core takes
//! an owned buffer), and the clock is read once per datagram because the core asks for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use livegate_media::Codec;
use livegate_upstream::datagram;
use livegate_upstream::offer::codec_parameters;
use parking_lot::Mutex;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::receive::{PacketView, TrackAccount, TrackKind};
use super::{VideoPacketTap, WhepOptions};
use crate::error::PeerError;
use crate::lifecycle::{Lifecycle, GATEWAY_CLOSE_NOTIFY};

/// H.264 profiles offered, each as its own payload type: constrained baseline 3.1, baseline
/// 3.1, high 3.1 (RFC 6184 §8.1 `profile-level-id`), what browsers offer first. Otherwise
/// the formats are livegate-upstream's (packetization-mode=1; Opus 48000/2 on PT 111).
const H264_PROFILES: [(u8, &str); 3] = [(102, "42e01f"), (104, "42001f"), (106, "640c1f")];
/// Receive buffer of each viewer's socket (the kernel caps it at net.core.rmem_max).
const RECEIVE_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// Text messages kept until read; more are dropped (newest first) rather than grow memory.
const DATA_MESSAGE_BACKLOG: usize = 1024;
/// Label of the data channel the viewer opens.
const DATA_CHANNEL_LABEL: &str = "livegate";
/// Receive buffer chunk: datagrams are split off it, so one allocation serves dozens.
const RECV_CHUNK: usize = 64 * 1024;
/// Room kept free for the next datagram (above any path MTU a WebRTC peer uses).
const MAX_DATAGRAM: usize = 2048;
/// Ready datagrams handled per wake-up before timers and commands get a turn.
const RECV_BURST: usize = 64;
/// Sleep when the core has no deadline (it always has one once ICE runs).
const IDLE: Duration = Duration::from_secs(1);

/// One kind's account and its progress watch (frames for video, packets for audio).
pub(crate) struct TrackShared {
    pub(crate) account: Mutex<TrackAccount>,
    pub(crate) frames: watch::Sender<u64>,
}

impl TrackShared {
    fn new(kind: TrackKind, log_limit: usize) -> TrackShared {
        TrackShared {
            account: Mutex::new(TrackAccount::new(kind, log_limit)),
            frames: watch::Sender::new(0),
        }
    }
}

/// Everything the loop reports to the session.
pub(crate) struct Observed {
    pub(crate) video: TrackShared,
    pub(crate) audio: TrackShared,
    pub(crate) lifecycle: Lifecycle,
    messages: mpsc::Sender<String>,
}

impl Observed {
    pub(crate) fn new(log_limit: usize) -> (Arc<Observed>, mpsc::Receiver<String>) {
        let (messages, received) = mpsc::channel(DATA_MESSAGE_BACKLOG);
        let observed = Arc::new(Observed {
            video: TrackShared::new(TrackKind::Video, log_limit),
            audio: TrackShared::new(TrackKind::Audio, log_limit),
            lifecycle: Lifecycle::new(),
            messages,
        });
        (observed, received)
    }
}

/// A peer connection being negotiated: built, bound, not yet running.
pub(crate) struct Peer {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
}

impl Peer {
    /// Binds the viewer's socket on `bind` (a concrete IP: it is also the host candidate,
    /// and `rtc` accepts packets only on a candidate's address) and builds the connection
    /// with our codecs and the default interceptors (NACK, receiver reports, TWCC feedback:
    /// what a browser player sends back).
    pub(crate) async fn bind(
        bind: SocketAddr,
        ice_check_interval: Duration,
    ) -> Result<Peer, PeerError> {
        let socket = UdpSocket::bind(bind).await?;
        // A 720p keyframe sent to hundreds of viewers at once arrives as a burst; with the
        // default ~200 KiB receive buffer the kernel dropped ~1 % of packets at 100 viewers
        // (UdpRcvbufErrors), which is the tool's loss, not the gateway's.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
        let local_addr = socket.local_addr()?;

        let mut media_engine = MediaEngine::default();
        for (payload_type, profile) in H264_PROFILES {
            let h264 = RTCRtpCodecParameters {
                payload_type,
                ..codec_parameters(Codec::H264, profile)
            };
            media_engine.register_codec(h264, RtpCodecKind::Video)?;
        }
        media_engine.register_codec(codec_parameters(Codec::Opus, ""), RtpCodecKind::Audio)?;
        // Codecs first: registering feedback patches only codecs already registered.
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let settings = SettingEngineBuilder::new()
            // The gateway's candidates are IPs; nothing to resolve, no multicast to send.
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            // The controlling agent nominates on its next check tick, so this pace is part
            // of every measured time to first frame (see WhepOptions::ice_check_interval).
            .with_ice_connection_attempts(Some(ice_check_interval), None)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .build(Instant::now())?;

        datagram::add_host_candidate(&mut pc, local_addr)?;
        Ok(Peer {
            pc,
            socket,
            local_addr,
        })
    }

    /// The recvonly offer (video, audio, data channel as the options ask), applied locally.
    pub(crate) fn offer(&mut self, options: &WhepOptions) -> Result<String, PeerError> {
        let kinds = [
            (options.video, RtpCodecKind::Video),
            (options.audio, RtpCodecKind::Audio),
        ];
        for (_, kind) in kinds.into_iter().filter(|(wanted, _)| *wanted) {
            self.pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )?;
        }
        if options.data_channel {
            self.pc.create_data_channel(DATA_CHANNEL_LABEL, None)?;
        }
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(Instant::now(), offer)?;
        let local = self
            .pc
            .local_description()
            .ok_or(PeerError::NoLocalDescription)?;
        Ok(local.sdp)
    }

    pub(crate) fn apply_answer(&mut self, sdp: String) -> Result<(), PeerError> {
        self.pc
            .set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp)?)?;
        Ok(())
    }

    /// Starts the loop; it runs until the connection ends or the handle is closed or dropped.
    pub(crate) fn spawn(
        self,
        observed: Arc<Observed>,
        video_tap: Option<Arc<dyn VideoPacketTap>>,
    ) -> PeerHandle {
        let (commands, received) = mpsc::channel(1);
        let driver = Driver {
            pc: self.pc,
            socket: self.socket,
            local_addr: self.local_addr,
            observed,
            kinds: Vec::with_capacity(2),
            video_receiver: None,
            published: [0; 2],
            video_tap,
            received_at: Instant::now(),
            recv_buf: BytesMut::with_capacity(RECV_CHUNK),
        };
        tokio::spawn(driver.run(received));
        PeerHandle { commands }
    }
}

/// What the session asks of its loop.
enum Command {
    /// Close, and say so on the sender once done.
    Close(oneshot::Sender<()>),
    /// Send a PLI for the video track.
    RequestKeyframe,
}

/// Closes the loop: explicitly with [`PeerHandle::close`], or by being dropped.
pub(crate) struct PeerHandle {
    commands: mpsc::Sender<Command>,
}

impl PeerHandle {
    /// Closes the peer connection (DTLS close_notify sent) and waits until the loop ended.
    pub(crate) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Asks the gateway for a keyframe, as a decoder that lost a reference would.
    pub(crate) async fn request_keyframe(&self) {
        let _ = self.commands.send(Command::RequestKeyframe).await;
    }
}

struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    observed: Arc<Observed>,
    /// SSRC → kind, from each track's opening (two entries at most).
    kinds: Vec<(u32, TrackKind)>,
    /// The video track's receiver and SSRC, for PLIs.
    video_receiver: Option<(RTCRtpReceiverId, u32)>,
    /// Progress last published on each kind's watch (video, audio).
    published: [u64; 2],
    video_tap: Option<Arc<dyn VideoPacketTap>>,
    /// When the datagram being handled was read: what the tap is told.
    received_at: Instant,
    recv_buf: BytesMut,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let sleep = tokio::time::sleep(IDLE);
        tokio::pin!(sleep);
        let mut closed_by: Option<oneshot::Sender<()>> = None;
        loop {
            self.flush().await;
            if self.observed.lifecycle.ended().is_some() {
                break;
            }
            let now = Instant::now();
            match self.pc.poll_timeout() {
                Some(at) if at <= now => {
                    let _ = self.pc.handle_timeout(now);
                    self.pump();
                    continue;
                }
                Some(at) => sleep.as_mut().reset(at.into()),
                None => sleep.as_mut().reset((now + IDLE).into()),
            }
            if self.recv_buf.capacity() < MAX_DATAGRAM {
                self.recv_buf.reserve(RECV_CHUNK);
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::RequestKeyframe) => {
                        self.send_pli();
                        self.pump();
                    }
                    Some(Command::Close(done)) => {
                        closed_by = Some(done);
                        break;
                    }
                    None => break,
                },
                received = self.socket.recv_buf_from(&mut self.recv_buf) => {
                    if let Ok((_, from)) = received {
                        self.on_datagram(from);
                        self.drain_ready();
                    }
                    // Errors are ICMP echoes of our own sends (port unreachable once the
                    // gateway is gone): ICE's timers decide what they mean.
                }
                () = &mut sleep => {
                    let _ = self.pc.handle_timeout(Instant::now());
                    self.pump();
                }
            }
        }
        let _ = self.pc.close();
        self.pump();
        self.flush().await;
        self.observed.lifecycle.finish("closed by the viewer");
        if let Some(done) = closed_by {
            let _ = done.send(());
        }
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
        self.received_at = Instant::now();
        let message = self.recv_buf.split();
        let dtls = datagram::deliver(
            &mut self.pc,
            self.local_addr,
            from,
            message,
            self.received_at,
        );
        // Before the next datagram (see the module docs).
        self.pump();
        if dtls && self.dtls_closed() {
            self.observed.lifecycle.end(GATEWAY_CLOSE_NOTIFY);
        }
    }

    fn pump(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            self.on_event(event);
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            self.on_message(message);
        }
    }

    async fn flush(&mut self) {
        datagram::flush(&mut self.pc, &self.socket).await;
    }

    fn on_event(&mut self, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                self.observed.lifecycle.on_state(state, Instant::now());
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                let kind = self
                    .pc
                    .rtp_receiver(init.receiver_id)
                    .map(|receiver| receiver.track().kind());
                let kind = match kind {
                    Some(RtpCodecKind::Video) => TrackKind::Video,
                    Some(RtpCodecKind::Audio) => TrackKind::Audio,
                    _ => return,
                };
                self.kinds.retain(|(ssrc, _)| *ssrc != init.ssrc);
                self.kinds.push((init.ssrc, kind));
                if kind == TrackKind::Video {
                    self.video_receiver = Some((init.receiver_id, init.ssrc));
                }
            }
            _ => {}
        }
    }

    fn send_pli(&mut self) {
        let Some((receiver, ssrc)) = self.video_receiver else {
            return;
        };
        if let Some(mut receiver) = self.pc.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            let _ = receiver.write_rtcp(Instant::now(), vec![Box::new(pli)]);
        }
    }

    fn on_message(&mut self, message: RTCMessage) {
        match message {
            RTCMessage::RtpPacket(_, packet) => {
                let ssrc = packet.header.ssrc;
                let Some(&(_, kind)) = self.kinds.iter().find(|(s, _)| *s == ssrc) else {
                    return;
                };
                let (shared, slot) = match kind {
                    TrackKind::Video => (&self.observed.video, 0),
                    TrackKind::Audio => (&self.observed.audio, 1),
                };
                let view = PacketView {
                    ssrc,
                    sequence_number: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    marker: packet.header.marker,
                    payload: &packet.payload,
                };
                let frames = {
                    let mut account = shared.account.lock();
                    account.on_packet(view, Instant::now);
                    account.frames()
                };
                if let (TrackKind::Video, Some(tap)) = (kind, &self.video_tap) {
                    tap.on_video_packet(&view, self.received_at);
                }
                // Waiters wake per frame, not per packet.
                if frames != self.published[slot] {
                    self.published[slot] = frames;
                    shared.frames.send_replace(frames);
                }
            }
            RTCMessage::DataChannelMessage(_, message) => {
                let text = String::from_utf8_lossy(&message.data).into_owned();
                // A reader that stopped reading loses the newest messages, not memory.
                let _ = self.observed.messages.try_send(text);
            }
            _ => {}
        }
    }

    /// The DTLS transport's state, through whichever handle this connection has: a media
    /// receiver, else the SCTP transport of its data channel.
    fn dtls_closed(&mut self) -> bool {
        let receiver = self.pc.get_receivers().next();
        let state = match receiver {
            Some(id) => self
                .pc
                .rtp_receiver(id)
                .and_then(|receiver| receiver.transport().map(|t| t.state())),
            None => self.pc.sctp().map(|sctp| sctp.transport().state()),
        };
        datagram::dtls_closed(state)
    }
}
