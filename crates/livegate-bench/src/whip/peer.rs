//! The publisher's peer connection on the `rtc` sans-I/O core, driven by its own event loop:
//! one task and one UDP socket per publisher, and the pacing of its media.
//!
//! Built the way the WHEP viewer is (see `crate::whep`'s peer module for why not the async
//! `webrtc` crate): the loop pumps the core's events after every datagram, so the SRTP keys
//! are installed the moment DTLS completes.
//!
//! The loop's contract with `rtc` (`sansio::Protocol`):
//!
//! | input | call | then |
//! |---|---|---|
//! | a datagram | `handle_read` | `poll_event`, `poll_read` until empty (state, RTCP) |
//! | the deadline of `poll_timeout` | `handle_timeout` | the same |
//! | an access unit's decoding time (once connected) | `RTCRtpSender::write_rtp` per payload | |
//! | [`PublisherHandle::close`] or the handle dropped | `close` | `poll_write` (DTLS close_notify), exit |
//! | [`PublisherHandle::vanish`] | nothing | exit: the socket is dropped unannounced |
//! | every turn | `poll_write` until empty | send each to its peer address |
//!
//! Media starts at the first `connected` state, from the file's first unit; each unit goes
//! out when the clock reaches its decoding time since then, a late one (a stalled runtime)
//! at once. It ends by itself when the connection fails or closes, or when the gateway's
//! DTLS close_notify arrives; [`Observed::ended`] says which.
//!
//! Concurrency: the loop alone owns the peer connection. It locks [`Observed::sent`] once
//! per access unit for a few additions; readers lock it as briefly for a snapshot, or await
//! the watches, which only move forward.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use livegate_media::time::{RtpClock, Ticks90k};
use livegate_media::Codec;
use livegate_upstream::datagram;
use livegate_upstream::offer::{OfferSpec, OfferingPeer};
use parking_lot::Mutex;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};
use rtc::sansio::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::pacer::{duration_of_90k, ticks_90k_of, Pacer};
use super::payload::ObsH264Payloads;
use super::{MediaFile, OfferShape, SentVideoTap, WhipOptions};
use crate::error::PeerError;
use crate::lifecycle::{Lifecycle, GATEWAY_CLOSE_NOTIFY};

/// `profile-level-id` offered when the file's SPS cannot be read: constrained baseline 3.1.
const DEFAULT_PROFILE_LEVEL_ID: &str = "42e01f";
/// Receive buffer chunk: datagrams are split off it, so one allocation serves dozens.
const RECV_CHUNK: usize = 16 * 1024;
/// Room kept free for the next datagram.
const MAX_DATAGRAM: usize = 2048;
/// Sleep when neither the core nor the media has a deadline.
const IDLE: Duration = Duration::from_secs(1);
/// Stream id (`a=msid`) both tracks share, so a player would lip-sync them.
const STREAM_ID: &str = "livegate-bench";

/// What the publisher sent so far; see [`crate::whip::WhipPublisher::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentStats {
    pub video_packets: u64,
    /// RTP payload bytes of video (headers excluded): the media bitrate's numerator.
    pub video_payload_bytes: u64,
    /// H.264 access units sent.
    pub video_frames: u64,
    /// IDR access units sent.
    pub keyframes: u64,
    pub audio_packets: u64,
    pub audio_payload_bytes: u64,
    /// PLI and FIR received from the gateway (RFC 4585 §6.3.1, RFC 5104 §4.3.1).
    pub keyframe_requests: u64,
    /// Generic NACKs received (RFC 4585 §6.2.1); rtc's responder resends what they list.
    pub nacks: u64,
    /// Passes over the file completed.
    pub passes: u64,
}

/// Everything the loop reports to the publisher.
pub(crate) struct Observed {
    pub(crate) sent: Mutex<SentStats>,
    /// Video frames sent (or, without video, audio packets): what waits count.
    pub(crate) progress: watch::Sender<u64>,
    /// Whether every pass asked for has been sent.
    pub(crate) media_finished: watch::Sender<bool>,
    pub(crate) lifecycle: Lifecycle,
}

impl Observed {
    pub(crate) fn new() -> Arc<Observed> {
        Arc::new(Observed {
            sent: Mutex::new(SentStats::default()),
            progress: watch::Sender::new(0),
            media_finished: watch::Sender::new(false),
            lifecycle: Lifecycle::new(),
        })
    }
}

/// A track the publisher sends.
struct OutTrack {
    codec: Codec,
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// As negotiated.
    payload_type: u8,
    next_sequence: u16,
    /// Random base (RFC 3550 §5.1); 90 kHz or 48 kHz from presentation time.
    clock: RtpClock,
}

/// A peer connection being negotiated: built, bound, not yet running.
///
/// livegate-upstream's offering peer, the one the `whip:` worker publishes upstream with:
/// the same socket, interceptors (inbound RTCP delivered, so PLI, FIR and NACK are seen),
/// codecs and payload types, here with sendonly tracks and no data channel.
pub(crate) struct Peer(OfferingPeer);

impl Peer {
    /// Binds the publisher's socket on `bind` (a concrete IP: it is also the host candidate)
    /// and builds the connection with its sendonly tracks, in the order `options.shape` says.
    pub(crate) async fn bind(bind: SocketAddr, options: &WhipOptions) -> Result<Peer, PeerError> {
        let order: &[Codec] = match options.shape {
            OfferShape::Standard => &[Codec::H264, Codec::Opus],
            OfferShape::Obs => &[Codec::Opus, Codec::H264],
        };
        let wanted = |codec: &&Codec| match codec {
            Codec::H264 => options.video,
            Codec::Opus => options.audio,
        };
        let spec = OfferSpec {
            bind,
            tracks: order.iter().filter(wanted).copied().collect(),
            direction: RTCRtpTransceiverDirection::Sendonly,
            h264_profile_level_id: options
                .media
                .as_deref()
                .and_then(MediaFile::profile_level_id)
                .unwrap_or(DEFAULT_PROFILE_LEVEL_ID)
                .to_owned(),
            data_channel: None,
            // actpass, as OBS and browsers offer (RFC 8842 §5.3).
            dtls_passive: false,
            ice_check_interval: options.ice_check_interval,
            stream_id: STREAM_ID.to_owned(),
        };
        Ok(Peer(OfferingPeer::bind(&spec).await?))
    }

    /// The sendonly offer, applied locally.
    pub(crate) fn offer(&mut self) -> Result<String, PeerError> {
        Ok(self.0.offer()?)
    }

    /// Applies the answer and reads each track's negotiated payload type.
    pub(crate) fn apply_answer(&mut self, sdp: String) -> Result<(), PeerError> {
        Ok(self.0.apply_answer(sdp)?)
    }

    /// Starts the loop; it runs until the connection ends or the handle is closed, vanishes
    /// or is dropped.
    pub(crate) fn spawn(
        self,
        observed: Arc<Observed>,
        media: Option<Arc<MediaFile>>,
        passes: Option<u64>,
        sent_video_tap: Option<Arc<dyn SentVideoTap>>,
    ) -> PublisherHandle {
        let (commands, received) = mpsc::channel(4);
        let pacer = media.map(|file| Pacer::new(file, passes));
        if pacer.as_ref().is_none_or(Pacer::finished) {
            observed.media_finished.send_replace(true);
        }
        let OfferingPeer {
            pc,
            socket,
            local_addr,
            tracks,
            ..
        } = self.0;
        let tracks = tracks
            .into_iter()
            .map(|track| OutTrack {
                codec: track.codec,
                sender: track.sender,
                ssrc: track.ssrc,
                payload_type: track.payload_type,
                next_sequence: rand::random(),
                clock: RtpClock::new(track.codec.rtp_clock_rate()),
            })
            .collect();
        let driver = Driver {
            pc,
            socket,
            local_addr,
            observed,
            tracks,
            pacer,
            media_started_at: None,
            h264: ObsH264Payloads::default(),
            payloads: Vec::new(),
            sent_video_tap,
            written_video: Vec::new(),
            recv_buf: BytesMut::with_capacity(RECV_CHUNK),
        };
        tokio::spawn(driver.run(received));
        PublisherHandle { commands }
    }
}

/// What the publisher's handle asks of its loop.
enum Command {
    /// DTLS close_notify, then exit.
    Close(oneshot::Sender<()>),
    /// Exit without a word: the socket is dropped, the gateway hears nothing more.
    Vanish(oneshot::Sender<()>),
    /// Stop sending media; the connection stays up.
    StopMedia(oneshot::Sender<()>),
}

/// Commands the loop: explicitly, or by being dropped (a graceful close).
pub(crate) struct PublisherHandle {
    commands: mpsc::Sender<Command>,
}

impl PublisherHandle {
    async fn send(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(command(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Closes the peer connection (DTLS close_notify sent) and waits until the loop ended.
    pub(crate) async fn close(&self) {
        self.send(Command::Close).await;
    }

    /// Ends the loop without sending anything and waits until the socket is gone.
    pub(crate) async fn vanish(&self) {
        self.send(Command::Vanish).await;
    }

    /// Stops the media and waits until no more will be sent.
    pub(crate) async fn stop_media(&self) {
        self.send(Command::StopMedia).await;
    }
}

struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    observed: Arc<Observed>,
    tracks: Vec<OutTrack>,
    pacer: Option<Pacer>,
    /// Set at the first `connected`: the origin of every unit's due time.
    media_started_at: Option<Instant>,
    h264: ObsH264Payloads,
    /// Payloads of the access unit being sent, reused.
    payloads: Vec<Bytes>,
    sent_video_tap: Option<Arc<dyn SentVideoTap>>,
    /// Access units written to the core but not yet flushed to the socket, for the tap
    /// (shared with the file, not copied; the vector is reused).
    written_video: Vec<Bytes>,
    recv_buf: BytesMut,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let sleep = tokio::time::sleep(IDLE);
        tokio::pin!(sleep);
        let mut vanished = false;
        let mut replied: Option<oneshot::Sender<()>> = None;
        loop {
            self.flush().await;
            self.tell_sent_video();
            if self.observed.lifecycle.ended().is_some() {
                break;
            }
            let now = Instant::now();
            if self.pc.poll_timeout().is_some_and(|at| at <= now) {
                let _ = self.pc.handle_timeout(now);
                self.pump();
                continue;
            }
            let media_due = self.media_due();
            if media_due.is_some_and(|at| at <= now) {
                self.send_due_media(now);
                continue;
            }
            let wake = [self.pc.poll_timeout(), media_due]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + IDLE);
            sleep.as_mut().reset(wake.into());
            if self.recv_buf.capacity() < MAX_DATAGRAM {
                self.recv_buf.reserve(RECV_CHUNK);
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::StopMedia(done)) => {
                        self.pacer = None;
                        self.observed.media_finished.send_replace(true);
                        let _ = done.send(());
                    }
                    Some(Command::Vanish(done)) => {
                        vanished = true;
                        replied = Some(done);
                        break;
                    }
                    Some(Command::Close(done)) => {
                        replied = Some(done);
                        break;
                    }
                    None => break,
                },
                received = self.socket.recv_buf_from(&mut self.recv_buf) => {
                    if let Ok((_, from)) = received {
                        self.on_datagram(from);
                    }
                    // Errors are ICMP echoes of our own sends (port unreachable once the
                    // gateway is gone): ICE's timers decide what they mean.
                }
                () = &mut sleep => {}
            }
        }
        if vanished {
            self.observed
                .lifecycle
                .finish("vanished (closed without a word)");
        } else {
            let _ = self.pc.close();
            self.pump();
            self.flush().await;
            self.observed.lifecycle.finish("closed by the publisher");
        }
        // The socket goes with the driver, before the caller hears we are done.
        drop(self);
        if let Some(done) = replied {
            let _ = done.send(());
        }
    }

    /// Tells the tap of the access units whose packets the last flush sent: the time is the
    /// one after their last `send`, as a receiver's clock would pair with it.
    fn tell_sent_video(&mut self) {
        let Some(tap) = &self.sent_video_tap else {
            return;
        };
        if self.written_video.is_empty() {
            return;
        }
        let sent_at = Instant::now();
        for access_unit in self.written_video.drain(..) {
            tap.on_video_frame_sent(&access_unit, sent_at);
        }
    }

    /// When the next access unit is due, once media has started.
    fn media_due(&self) -> Option<Instant> {
        let started = self.media_started_at?;
        let due_90k = self.pacer.as_ref()?.next_due_90k()?;
        Some(started + duration_of_90k(due_90k))
    }

    /// Writes every access unit due by `now` (several after a stall: a burst, not a skip).
    fn send_due_media(&mut self, now: Instant) {
        let (Some(started), Some(pacer)) = (self.media_started_at, self.pacer.as_mut()) else {
            return;
        };
        let elapsed_90k = ticks_90k_of(now.saturating_duration_since(started));
        while let Some(due) = pacer.pop_due(elapsed_90k) {
            let Some(track) = self.tracks.iter_mut().find(|t| t.codec == due.unit.codec) else {
                // The file has a kind the offer left out (an audio-less publisher).
                continue;
            };
            match due.unit.codec {
                Codec::H264 => {
                    self.h264.payloads(&due.unit.data, &mut self.payloads);
                    if self.sent_video_tap.is_some() {
                        self.written_video.push(due.unit.data.clone());
                    }
                }
                Codec::Opus => self.payloads.push(due.unit.data.clone()),
            }
            let timestamp = track.clock.timestamp(Ticks90k(due.pts_90k as i64)).0;
            let last = self.payloads.len().saturating_sub(1);
            let (mut packets, mut bytes) = (0, 0);
            if let Some(mut sender) = self.pc.rtp_sender(track.sender) {
                for (i, payload) in self.payloads.drain(..).enumerate() {
                    bytes += payload.len() as u64;
                    let packet = rtc::rtp::Packet {
                        header: rtc::rtp::Header {
                            version: 2,
                            // RFC 6184 §5.1: the marker ends an access unit. RFC 7587 §4.1
                            // leaves it for talkspurts, which a file does not have.
                            marker: track.codec == Codec::H264 && i == last,
                            payload_type: track.payload_type,
                            sequence_number: track.next_sequence,
                            timestamp,
                            ssrc: track.ssrc,
                            ..Default::default()
                        },
                        payload,
                    };
                    track.next_sequence = track.next_sequence.wrapping_add(1);
                    if sender.write_rtp(now, packet).is_ok() {
                        packets += 1;
                    }
                }
            }
            self.payloads.clear();
            let progress = {
                let mut sent = self.observed.sent.lock();
                sent.passes = pacer.passes_done();
                match due.unit.codec {
                    Codec::H264 => {
                        sent.video_packets += packets;
                        sent.video_payload_bytes += bytes;
                        sent.video_frames += 1;
                        sent.keyframes += u64::from(due.unit.keyframe);
                    }
                    Codec::Opus => {
                        sent.audio_packets += packets;
                        sent.audio_payload_bytes += bytes;
                    }
                }
                if self.tracks.iter().any(|t| t.codec == Codec::H264) {
                    sent.video_frames
                } else {
                    sent.audio_packets
                }
            };
            self.observed.progress.send_replace(progress);
        }
        if pacer.finished() {
            self.observed.media_finished.send_replace(true);
        }
    }

    fn on_datagram(&mut self, from: SocketAddr) {
        let message = self.recv_buf.split();
        let dtls = datagram::deliver(&mut self.pc, self.local_addr, from, message, Instant::now());
        // Before the next datagram (see the module docs).
        self.pump();
        let sender = self.tracks.first().map(|t| t.sender);
        if dtls && datagram::sender_dtls_closed(&mut self.pc, sender) {
            self.observed.lifecycle.end(GATEWAY_CLOSE_NOTIFY);
        }
    }

    fn pump(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                self.on_state(state);
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message {
                let (mut keyframe_requests, mut nacks) = (0, 0);
                for packet in &packets {
                    let any = packet.as_any();
                    if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                        keyframe_requests += 1;
                    } else if any.is::<TransportLayerNack>() {
                        nacks += 1;
                    }
                }
                if keyframe_requests + nacks > 0 {
                    let mut sent = self.observed.sent.lock();
                    sent.keyframe_requests += keyframe_requests;
                    sent.nacks += nacks;
                }
            }
        }
    }

    fn on_state(&mut self, state: RTCPeerConnectionState) {
        let now = Instant::now();
        if state == RTCPeerConnectionState::Connected {
            self.media_started_at.get_or_insert(now);
        }
        self.observed.lifecycle.on_state(state, now);
    }

    async fn flush(&mut self) {
        datagram::flush(&mut self.pc, &self.socket).await;
    }
}
