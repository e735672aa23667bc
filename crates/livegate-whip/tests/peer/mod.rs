//! A real, independent WHIP publisher for tests: the async `webrtc` crate (its own sockets,
//! ICE agent and DTLS), with an H.264 transceiver that is `sendonly` or `sendrecv`, an
//! optional data channel, and what it receives back recorded for the test to await.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

/// Longest any single wait may take on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

const VIDEO_SSRC: u32 = 0x5eed_0001;

fn h264() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 102,
    }
}

struct Handler {
    gathered: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    received: mpsc::UnboundedSender<rtc::rtp::Packet>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    if received.send(packet).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// The publisher. Its offer is complete (candidates gathered), as WHIP wants it.
pub struct Publisher {
    pub pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: mpsc::Receiver<()>,
    video: Arc<TrackLocalStaticSample>,
    /// Every RTP packet the gateway sent back, in arrival order.
    pub received: mpsc::UnboundedReceiver<rtc::rtp::Packet>,
    pub data_channel: Option<Arc<dyn DataChannel>>,
}

impl Publisher {
    /// `direction` of the H.264 transceiver: `Sendonly` as WHIP publishers do, or
    /// `Sendrecv` to get the stream back. `data_channel`: a channel of that label.
    pub async fn new(
        direction: RTCRtpTransceiverDirection,
        data_channel: Option<&str>,
    ) -> Publisher {
        let mut media_engine = webrtc::peer_connection::MediaEngine::default();
        media_engine
            .register_codec(h264(), RtpCodecKind::Video)
            .unwrap();
        let registry = webrtc::peer_connection::register_default_interceptors(
            webrtc::peer_connection::Registry::new(),
            &mut media_engine,
        )
        .unwrap();
        let (gathered_tx, gathered) = mpsc::channel(1);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (received_tx, received) = mpsc::unbounded_channel();
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_handler(Arc::new(Handler {
                    gathered: gathered_tx,
                    state: state_tx,
                    received: received_tx,
                }))
                .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
                .build()
                .await
                .unwrap(),
        );
        let video = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "publisher".into(),
                    "video".into(),
                    "video".into(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(VIDEO_SSRC),
                            ..Default::default()
                        },
                        codec: h264().rtp_codec,
                        ..Default::default()
                    }],
                ),
            )
            .unwrap(),
        );
        pc.add_transceiver_from_track(
            video.clone() as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        let data_channel = match data_channel {
            Some(label) => Some(pc.create_data_channel(label, None).await.unwrap()),
            None => None,
        };
        Publisher {
            pc,
            state,
            gathered,
            video,
            received,
            data_channel,
        }
    }

    /// A complete offer (every candidate gathered).
    pub async fn offer(&mut self) -> String {
        let offer = self.pc.create_offer(None).await.unwrap();
        self.pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(DEADLINE, self.gathered.recv())
            .await
            .expect("ICE gathering completes");
        self.pc.local_description().await.unwrap().sdp
    }

    pub async fn apply_answer(&self, answer: String) {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
            .await
            .unwrap();
    }

    pub async fn connected(&mut self) {
        tokio::time::timeout(
            DEADLINE,
            self.state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected),
        )
        .await
        .expect("the publisher connects in time")
        .unwrap();
    }

    /// Sends one H.264 access unit (Annex B) lasting `duration`.
    pub async fn send_h264(&self, access_unit: Bytes, duration: Duration) {
        let senders = self.pc.get_senders().await;
        let payload_type = senders[0]
            .get_parameters()
            .await
            .unwrap()
            .rtp_parameters
            .codecs[0]
            .payload_type;
        self.video
            .sample_writer(VIDEO_SSRC, payload_type)
            .write_sample(&rtc::media::Sample {
                data: access_unit,
                duration,
                ..rtc::media::Sample::new(Instant::now())
            })
            .await
            .unwrap();
    }

    /// Waits for the data channel to open.
    pub async fn data_channel_open(&self) -> Arc<dyn DataChannel> {
        let channel = self.data_channel.clone().expect("a data channel was made");
        tokio::time::timeout(DEADLINE, async {
            loop {
                match channel.poll().await {
                    Some(DataChannelEvent::OnOpen) => return,
                    Some(_) => {}
                    None => panic!("the data channel closed before it opened"),
                }
            }
        })
        .await
        .expect("the data channel opens in time");
        channel
    }

    /// The next message on the data channel.
    pub async fn next_message(&self) -> Bytes {
        let channel = self.data_channel.as_ref().expect("a data channel was made");
        tokio::time::timeout(DEADLINE, async {
            loop {
                match channel.poll().await {
                    Some(DataChannelEvent::OnMessage(message)) => {
                        return Bytes::from(message.data.to_vec())
                    }
                    Some(_) => {}
                    None => panic!("the data channel closed"),
                }
            }
        })
        .await
        .expect("a message arrives in time")
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// The section of `sdp` for `kind` (`audio`, `video`, `application`), up to the next one.
pub fn media_section<'a>(sdp: &'a str, kind: &str) -> Option<&'a str> {
    let start = sdp.find(&format!("m={kind} "))?;
    let rest = &sdp[start..];
    let end = rest[2..].find("\nm=").map_or(rest.len(), |i| i + 3);
    Some(&rest[..end])
}

/// The direction attribute of a media section.
pub fn direction(section: &str) -> Option<&str> {
    section.lines().map(str::trim).find_map(|line| {
        let attr = line.strip_prefix("a=")?;
        ["sendrecv", "sendonly", "recvonly", "inactive"]
            .contains(&attr)
            .then_some(attr)
    })
}
