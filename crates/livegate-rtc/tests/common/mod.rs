//! A real, independent WebRTC peer for tests: the async `webrtc` crate (itself on `rtc`, but
//! with its own sockets, ICE agent and DTLS client), as a viewer or a publisher.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livegate_rtc::{Codec, RtpFrame, SendSpec, SessionRole};
use rtc::ice::network_type::NetworkType;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// The server's side of a viewer's session: H.264 (Constrained Baseline 3.1) only.
pub fn send_video() -> SessionRole {
    SessionRole::Send(SendSpec {
        stream_id: "test".into(),
        tracks: vec![Codec::H264],
        h264_profile_level_id: Some("42e01f".into()),
    })
}

/// A fake frame: one small IDR slice payload is enough for the transport.
pub fn frame(timestamp: u32) -> RtpFrame {
    RtpFrame {
        timestamp,
        payloads: Arc::from(vec![Bytes::from_static(&[0x65, 0x88, 0x80, 0x40, 0x00])]),
    }
}

/// How a test peer reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Udp,
    /// ICE over TCP only (RFC 6544): the peer dials our passive TCP candidate. Its TCP
    /// candidates are on this IP, which must be the one the kernel picks as the source
    /// towards the server (for a server on a local address: that address itself).
    Tcp(std::net::IpAddr),
}

pub fn h264() -> RTCRtpCodecParameters {
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

pub fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// What the client observed.
pub struct Observed {
    /// RTP packets received, as a watch so tests await a count instead of polling.
    pub rtp_packets: watch::Sender<u64>,
    pub rtp_bytes: AtomicU64,
    /// The remote tracks, as they open.
    pub tracks: watch::Sender<Vec<Arc<dyn TrackRemote>>>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            rtp_packets: watch::Sender::new(0),
            rtp_bytes: AtomicU64::new(0),
            tracks: watch::Sender::new(Vec::new()),
        }
    }
}

struct Handler {
    gathered: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    observed: Arc<Observed>,
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
        let observed = self.observed.clone();
        observed.tracks.send_modify(|t| t.push(track.clone()));
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    observed.rtp_packets.send_modify(|n| *n += 1);
                    observed
                        .rtp_bytes
                        .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                }
            }
        });
    }
}

pub struct TestPeer {
    pub pc: Arc<dyn PeerConnection>,
    pub observed: Arc<Observed>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    gathered: mpsc::Receiver<()>,
    pub video: Option<Arc<TrackLocalStaticSample>>,
}

impl TestPeer {
    /// A viewer offering to receive H.264 and Opus.
    pub async fn viewer() -> anyhow::Result<TestPeer> {
        Self::viewer_on(Network::Udp).await
    }

    /// A viewer that reaches the server over `network` only.
    pub async fn viewer_on(network: Network) -> anyhow::Result<TestPeer> {
        let peer = Self::new(network).await?;
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            peer.pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await?;
        }
        Ok(peer)
    }

    /// A publisher offering to send H.264.
    pub async fn publisher() -> anyhow::Result<TestPeer> {
        let mut peer = Self::new(Network::Udp).await?;
        let track = Arc::new(TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "stream".into(),
                "video".into(),
                "video".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(rand::random::<u32>() | 1),
                        ..Default::default()
                    },
                    codec: h264().rtp_codec,
                    ..Default::default()
                }],
            ),
        )?);
        peer.pc
            .add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    ..Default::default()
                }),
            )
            .await?;
        peer.video = Some(track);
        Ok(peer)
    }

    async fn new(network: Network) -> anyhow::Result<TestPeer> {
        let mut media_engine = webrtc::peer_connection::MediaEngine::default();
        media_engine.register_codec(h264(), RtpCodecKind::Video)?;
        media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
        let registry = webrtc::peer_connection::register_default_interceptors(
            webrtc::peer_connection::Registry::new(),
            &mut media_engine,
        )?;
        let (gathered_tx, gathered) = mpsc::channel(1);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let observed = Arc::new(Observed::default());
        let builder = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                gathered: gathered_tx,
                state: state_tx,
                observed: observed.clone(),
            }));
        let builder = match network {
            Network::Udp => builder.with_udp_addrs(vec!["127.0.0.1:0".to_owned()]),
            // No UDP socket at all, and the ICE agent told to ignore UDP candidates, as a
            // browser behind a firewall that blocks UDP ends up.
            Network::Tcp(ip) => builder
                .with_udp_addrs(Vec::<String>::new())
                .with_tcp_addrs(vec![std::net::SocketAddr::new(ip, 0).to_string()])
                .with_setting_engine(
                    SettingEngineBuilder::new()
                        .with_network_types(vec![NetworkType::Tcp4])
                        .build(),
                ),
        };
        let pc: Arc<dyn PeerConnection> = Arc::new(builder.build().await?);
        Ok(TestPeer {
            pc,
            observed,
            state,
            gathered,
            video: None,
        })
    }

    /// A complete (non-trickle) offer; `strip_candidates` removes every candidate, as OBS
    /// sends it, so the server must learn us as peer-reflexive.
    pub async fn offer(&mut self, strip_candidates: bool) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        tokio::time::timeout(DEADLINE, self.gathered.recv()).await?;
        let sdp = self.pc.local_description().await.unwrap().sdp;
        Ok(if strip_candidates {
            sdp.split("\r\n")
                .filter(|l| !l.starts_with("a=candidate") && !l.starts_with("a=end-of-candidates"))
                .collect::<Vec<_>>()
                .join("\r\n")
        } else {
            sdp
        })
    }

    pub async fn apply_answer(&self, answer: String) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        Ok(())
    }

    /// Hands the answer's passive TCP candidates to the ICE agent as trickled ones. webrtc
    /// 0.21 dials a passive TCP candidate only when it arrives through `add_ice_candidate`
    /// (`PeerConnection::add_ice_candidate` sends `RemoteIceTcpPassiveCandidate`), never
    /// from a remote description, where browsers do.
    pub async fn dial_tcp_candidates(&self, answer: &str) -> anyhow::Result<()> {
        for line in answer.lines() {
            let Some(candidate) = line.strip_prefix("a=") else {
                continue;
            };
            // Component 1 only: with rtcp-mux there is no other, though rtc lists both.
            let component = candidate.split_whitespace().nth(1);
            if candidate.starts_with("candidate:")
                && component == Some("1")
                && candidate.contains("tcptype passive")
            {
                self.pc
                    .add_ice_candidate(RTCIceCandidateInit {
                        candidate: candidate.to_owned(),
                        sdp_mid: Some("0".to_owned()),
                        sdp_mline_index: Some(0),
                        ..Default::default()
                    })
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn connected(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(
            DEADLINE,
            self.state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected),
        )
        .await??;
        Ok(())
    }

    /// Waits until at least `n` RTP packets arrived.
    pub async fn received(&self, n: u64) -> anyhow::Result<()> {
        let mut packets = self.observed.rtp_packets.subscribe();
        tokio::time::timeout(DEADLINE, packets.wait_for(|&count| count >= n))
            .await
            .map_err(|_| {
                anyhow::anyhow!("only {} RTP packets", *self.observed.rtp_packets.borrow())
            })??;
        Ok(())
    }

    pub fn packets(&self) -> u64 {
        *self.observed.rtp_packets.borrow()
    }

    /// Sends one H.264 access unit (Annex B) as a publisher.
    pub async fn send_h264(&self, access_unit: Bytes) -> anyhow::Result<()> {
        let track = self.video.as_ref().expect("a publisher");
        let senders = self.pc.get_senders().await;
        let payload_type = senders[0].get_parameters().await?.rtp_parameters.codecs[0].payload_type;
        let ssrc = track.ssrcs().await[0];
        track
            .sample_writer(ssrc, payload_type)
            .write_sample(&rtc::media::Sample {
                data: access_unit,
                duration: Duration::from_millis(33),
                ..rtc::media::Sample::new(Instant::now())
            })
            .await?;
        Ok(())
    }
}

/// Which way a [`lossy_relay`] loses packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lose {
    /// What the server sends to the test peer (a viewer's downlink).
    ToPeer,
    /// What the test peer sends to the server (a publisher's uplink).
    FromPeer,
}

/// Whether a datagram is RTP (RFC 7983 §7 first byte 128..=191; RFC 5761 §4: RTCP packet
/// types 192..=223 leave 64..=95 in the 7-bit payload-type field) whose sequence number is
/// a multiple of 10. SRTP leaves the header in the clear, so the relay can read it.
pub fn every_tenth_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(64..=95).contains(&(datagram[1] & 0x7F))
        && u16::from_be_bytes([datagram[2], datagram[3]]).is_multiple_of(10)
}

/// A UDP relay between a test peer and the server that drops, one way, the RTP packets
/// [`every_tenth_rtp`] picks, retransmissions included (they keep their sequence number).
/// Returns the address the peer should use for the server, and the count of drops.
pub async fn lossy_relay(server: SocketAddr, lose: Lose) -> (SocketAddr, Arc<AtomicU64>) {
    let peer_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let front = peer_side.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    tokio::spawn(async move {
        let mut peer = None;
        let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
        loop {
            tokio::select! {
                Ok((n, from)) = peer_side.recv_from(&mut up) => {
                    peer = Some(from);
                    if lose == Lose::FromPeer && every_tenth_rtp(&up[..n]) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = server_side.send_to(&up[..n], server).await;
                    }
                }
                Ok((n, _)) = server_side.recv_from(&mut down) => {
                    if lose == Lose::ToPeer && every_tenth_rtp(&down[..n]) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(peer) = peer {
                        let _ = peer_side.send_to(&down[..n], peer).await;
                    }
                }
            }
        }
    });
    (front, dropped)
}

/// The answer with every UDP candidate pointed at `to` (a relay). With an offer that had no
/// candidates, the server learns the peer only as the relay's address.
pub fn redirect(answer: &str, to: SocketAddr) -> String {
    answer
        .split("\r\n")
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if line.starts_with("a=candidate:") && fields[2] == "udp" {
                let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                fields[4] = to.ip().to_string();
                fields[5] = to.port().to_string();
                fields.join(" ")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Polls the session's statistics until `done` holds (they change with RTCP, which the
/// server does not announce).
pub async fn stats_until(
    handle: &livegate_rtc::SessionHandle,
    done: impl Fn(&livegate_rtc::SessionStats) -> bool,
) -> livegate_rtc::SessionStats {
    let mut last = livegate_rtc::SessionStats::default();
    let reached = tokio::time::timeout(DEADLINE, async {
        loop {
            last = handle.stats().await.expect("session alive");
            if done(&last) {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    reached.unwrap_or_else(|_| panic!("not reached: {last:?}"))
}
