//! The viewer's peer connection on the async `webrtc` crate, and the tasks that account for
//! what it receives.
//!
//! Concurrency: the `webrtc` driver calls [`ViewerEvents`] on its own task; each remote track
//! gets one receive task that owns the packet loop and locks its [`TrackShared::account`]
//! for a few instructions per packet. Readers ([`crate::whep::WhepSession`]) take the same
//! lock briefly for a snapshot, or await the watches, which only move forward. Nothing on
//! the packet path allocates, logs or reads the clock (except once, for the first frame).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState, Registry,
    SettingEngineBuilder,
};

use super::receive::{PacketView, TrackAccount, TrackKind};

/// H.264 profiles offered, each as its own payload type: constrained baseline 3.1, baseline
/// 3.1, high 3.1 (RFC 6184 §8.1 `profile-level-id`), what browsers offer first.
const H264_PROFILES: [(u8, &str); 3] = [(102, "42e01f"), (104, "42001f"), (106, "640c1f")];
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Text messages kept until read; more are dropped (newest first) rather than grow memory.
const DATA_MESSAGE_BACKLOG: usize = 1024;
/// Label of the data channel the viewer opens.
pub(crate) const DATA_CHANNEL_LABEL: &str = "livegate";

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

/// Everything the peer connection's callbacks and tasks report to the session.
pub(crate) struct Observed {
    pub(crate) video: TrackShared,
    pub(crate) audio: TrackShared,
    pub(crate) state: watch::Sender<RTCPeerConnectionState>,
    /// When the connection state first became `connected`.
    pub(crate) connected_at: Mutex<Option<Instant>>,
    pub(crate) gathered: watch::Sender<bool>,
    /// Set when a data channel closes, which is also how a peer's DTLS close_notify shows
    /// on sessions with a data channel (rtc closes every channel with the transport).
    pub(crate) data_channel_closed: watch::Sender<bool>,
    messages: mpsc::Sender<String>,
}

impl Observed {
    pub(crate) fn new(log_limit: usize) -> (Arc<Observed>, mpsc::Receiver<String>) {
        let (messages, received) = mpsc::channel(DATA_MESSAGE_BACKLOG);
        let observed = Arc::new(Observed {
            video: TrackShared::new(TrackKind::Video, log_limit),
            audio: TrackShared::new(TrackKind::Audio, log_limit),
            state: watch::Sender::new(RTCPeerConnectionState::New),
            connected_at: Mutex::new(None),
            gathered: watch::Sender::new(false),
            data_channel_closed: watch::Sender::new(false),
            messages,
        });
        (observed, received)
    }
}

struct ViewerEvents {
    observed: Arc<Observed>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ViewerEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.observed.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.observed
                .connected_at
                .lock()
                .get_or_insert_with(Instant::now);
        }
        self.observed.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        tokio::spawn(receive_track(track, self.observed.clone()));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // Channels the gateway opens; our own channel is read by the task started with it.
        tokio::spawn(receive_messages(channel, self.observed.clone()));
    }
}

/// The per-track packet loop: the only per-packet code of the client.
async fn receive_track(track: Arc<dyn TrackRemote>, observed: Arc<Observed>) {
    let shared = match track.kind().await {
        RtpCodecKind::Video => &observed.video,
        RtpCodecKind::Audio => &observed.audio,
        _ => return,
    };
    let mut published = 0;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let frames = {
                    let mut account = shared.account.lock();
                    account.on_packet(
                        PacketView {
                            ssrc: packet.header.ssrc,
                            sequence_number: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            marker: packet.header.marker,
                            payload: &packet.payload,
                        },
                        Instant::now,
                    );
                    account.frames()
                };
                // Waiters wake per frame, not per packet.
                if frames != published {
                    published = frames;
                    shared.frames.send_replace(frames);
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

pub(crate) async fn receive_messages(channel: Arc<dyn DataChannel>, observed: Arc<Observed>) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnMessage(message) => {
                let text = String::from_utf8_lossy(&message.data).into_owned();
                // A reader that stopped reading loses the newest messages, not memory.
                let _ = observed.messages.try_send(text);
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    observed.data_channel_closed.send_replace(true);
}

fn h264(payload_type: u8, profile_level_id: &str) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

/// A peer connection with our codecs, the default interceptors (NACK, receiver reports,
/// TWCC feedback: what a browser player sends back) and one UDP socket on `bind`.
pub(crate) async fn build(
    bind: SocketAddr,
    observed: Arc<Observed>,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let mut media_engine = MediaEngine::default();
    for (payload_type, profile) in H264_PROFILES {
        media_engine.register_codec(h264(payload_type, profile), RtpCodecKind::Video)?;
    }
    media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
    // Codecs first: registering feedback patches only codecs already registered.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    // mDNS off: with it, each of hundreds of viewers would open a multicast socket.
    let setting_engine = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine)
        .with_handler(Arc::new(ViewerEvents { observed }))
        .with_udp_addrs(vec![bind])
        .build()
        .await?;
    Ok(Arc::new(pc))
}
