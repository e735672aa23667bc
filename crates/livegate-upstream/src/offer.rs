//! Building an offering peer connection on the `rtc` core: one UDP socket, our one host
//! candidate, H.264 and Opus transceivers and a data channel, all in one complete offer
//! (no trickle: RFC 9725 §4.2 lets a client send every candidate up front).
//!
//! General on purpose: nothing here knows the stream or the upstream. The load tool's
//! publisher (`livegate-bench`'s `whip::peer`) is an [`OfferingPeer`] with sendonly tracks;
//! its viewer (`whep::peer`) offers recvonly transceivers without tracks and several H.264
//! profiles, as browsers do, and takes only [`codec_parameters`] from here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livegate_media::Codec;
use rtc::data_channel::RTCDataChannelId;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::net::UdpSocket;

use crate::datagram;
use crate::error::UpstreamError;
use livegate_rtc::DeliverRtcp;

/// H.264 payload type offered (what browsers and OBS use for packetization-mode=1).
pub const H264_PAYLOAD_TYPE: u8 = 96;
/// Opus payload type offered.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Send buffer of the socket: a 1080p keyframe leaves as one burst of ~150 packets.
const SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Receive buffer: the upstream's keyframes arrive as the same bursts.
const RECV_BUFFER_BYTES: usize = 2 * 1024 * 1024;

/// What to offer.
#[derive(Debug, Clone)]
pub struct OfferSpec {
    /// Where to bind the socket: a concrete IP, since it is also our host candidate.
    pub bind: SocketAddr,
    /// Tracks to offer, in m-line order, each with this direction.
    pub tracks: Vec<Codec>,
    pub direction: RTCRtpTransceiverDirection,
    /// `profile-level-id` of the H.264 format (RFC 6184 §8.1).
    pub h264_profile_level_id: String,
    /// A data channel with this label, if any.
    pub data_channel: Option<String>,
    /// Offer `a=setup:passive` instead of `actpass` (see [`OfferingPeer::offer`]).
    pub dtls_passive: bool,
    /// Pace of ICE connectivity checks: as the controlling agent we nominate on a check
    /// tick, so this is part of every connection's start-up time.
    pub ice_check_interval: Duration,
    /// `a=msid` stream id shared by the tracks, so a receiver lip-syncs them.
    pub stream_id: String,
}

/// A track we send, as the core knows it.
#[derive(Debug, Clone, Copy)]
pub struct SendTrack {
    pub codec: Codec,
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// Offered payload type until [`OfferingPeer::apply_answer`] reads the negotiated one.
    pub payload_type: u8,
}

/// A peer connection with its socket, offered but not yet answered.
pub struct OfferingPeer {
    pub pc: RTCPeerConnection,
    pub socket: UdpSocket,
    pub local_addr: SocketAddr,
    pub tracks: Vec<SendTrack>,
    /// The data channel offered, if any.
    pub data_channel: Option<RTCDataChannelId>,
    dtls_passive: bool,
}

impl OfferingPeer {
    /// Binds the socket and builds the connection with the default interceptors (NACK
    /// responder and generator, sender and receiver reports, TWCC) and inbound RTCP
    /// delivered to the caller (PLI, FIR, sender reports).
    pub async fn bind(spec: &OfferSpec) -> Result<OfferingPeer, UpstreamError> {
        let socket = UdpSocket::bind(spec.bind).await?;
        let sock = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps both at its rmem/wmem maximum.
        let _ = sock.set_send_buffer_size(SEND_BUFFER_BYTES);
        let _ = sock.set_recv_buffer_size(RECV_BUFFER_BYTES);
        let local_addr = socket.local_addr()?;

        let mut media_engine = MediaEngine::default();
        for &codec in &spec.tracks {
            media_engine.register_codec(
                codec_parameters(codec, &spec.h264_profile_level_id),
                kind_of(codec),
            )?;
        }
        // Codecs first: registering feedback (nack, nack pli, ccm fir) patches only the
        // codecs already registered.
        let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::default());
        let registry = register_default_interceptors(registry, &mut media_engine)?;
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(spec.ice_check_interval), None)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .build(Instant::now())?;

        let mut tracks = Vec::new();
        for &codec in &spec.tracks {
            let ssrc: u32 = rand::random();
            let id = match codec {
                Codec::H264 => "video",
                Codec::Opus => "audio",
            };
            let track = MediaStreamTrack::new(
                spec.stream_id.clone(),
                id.to_owned(),
                id.to_owned(),
                kind_of(codec),
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    active: true,
                    codec: codec_parameters(codec, &spec.h264_profile_level_id).rtp_codec,
                    ..Default::default()
                }],
            );
            let transceiver = pc.add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: spec.direction,
                    streams: vec![spec.stream_id.clone()],
                    send_encodings: vec![],
                }),
            )?;
            tracks.push(SendTrack {
                codec,
                sender: RTCRtpSenderId::from(transceiver),
                ssrc,
                payload_type: payload_type_of(codec),
            });
        }
        let data_channel = match &spec.data_channel {
            Some(label) => Some(pc.create_data_channel(label, None)?.id()),
            None => None,
        };

        datagram::add_host_candidate(&mut pc, local_addr)?;
        Ok(OfferingPeer {
            pc,
            socket,
            local_addr,
            tracks,
            data_channel,
            dtls_passive: spec.dtls_passive,
        })
    }

    /// The offer to POST, applied locally.
    ///
    /// By default it says `a=setup:actpass` (RFC 8842 §5.3), and answerers pick `passive`,
    /// making us the DTLS client. With `dtls_passive` it says `a=setup:passive` so the
    /// upstream is the client instead. The trade, measured against livegate on loopback:
    /// as client we are connected ~60 ms after the POST's answer, as server ~210 ms (the
    /// answerer's rtc DTLS client starts late); but as client, rtc 0.21 installs its SRTP
    /// keys only at the `poll_event` after the server's last flight, and media sent right
    /// behind it can be lost. Losing the first picture costs one PLI (the ingest asks), so
    /// the default keeps to the RFC and the faster start.
    pub fn offer(&mut self) -> Result<String, UpstreamError> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(Instant::now(), offer)?;
        let sdp = self
            .pc
            .local_description()
            .map(|local| local.sdp.clone())
            .ok_or(UpstreamError::NoAnswer)?;
        Ok(if self.dtls_passive {
            sdp.replace("a=setup:actpass", "a=setup:passive")
        } else {
            sdp
        })
    }

    /// Applies the answer and reads each track's negotiated payload type.
    pub fn apply_answer(&mut self, sdp: String) -> Result<(), UpstreamError> {
        self.pc
            .set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp)?)?;
        for track in &mut self.tracks {
            let negotiated = self.pc.rtp_sender(track.sender).and_then(|mut sender| {
                sender
                    .get_parameters()
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|c| c.payload_type)
            });
            if let Some(payload_type) = negotiated {
                track.payload_type = payload_type;
            }
        }
        Ok(())
    }
}

/// The codecs an answer says its side will send (RFC 3264 §6: an m-line with port 0 is
/// refused; `sendrecv` or `sendonly` in the answer means the answerer sends).
pub fn answer_sends(answer_sdp: &str) -> Vec<Codec> {
    let mut sends = Vec::new();
    let mut current: Option<(Codec, bool)> = None;
    let flush = |section: Option<(Codec, bool)>, sends: &mut Vec<Codec>| {
        if let Some((codec, true)) = section {
            if !sends.contains(&codec) {
                sends.push(codec);
            }
        }
    };
    for line in answer_sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            flush(current.take(), &mut sends);
            let mut fields = media.split(' ');
            let kind = fields.next();
            let port_open = fields.next().is_some_and(|port| port != "0");
            current = match kind {
                Some("video") if port_open => Some((Codec::H264, false)),
                Some("audio") if port_open => Some((Codec::Opus, false)),
                _ => None,
            };
        } else if matches!(line, "a=sendrecv" | "a=sendonly") {
            if let Some((_, sends)) = current.as_mut() {
                *sends = true;
            }
        }
    }
    flush(current, &mut sends);
    sends
}

fn kind_of(codec: Codec) -> RtpCodecKind {
    match codec {
        Codec::H264 => RtpCodecKind::Video,
        Codec::Opus => RtpCodecKind::Audio,
    }
}

fn payload_type_of(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => H264_PAYLOAD_TYPE,
        Codec::Opus => OPUS_PAYLOAD_TYPE,
    }
}

/// The format offered for `codec`, with its payload type ([`H264_PAYLOAD_TYPE`],
/// [`OPUS_PAYLOAD_TYPE`]); `profile_level_id` is H.264's.
pub fn codec_parameters(codec: Codec, profile_level_id: &str) -> RTCRtpCodecParameters {
    let rtp_codec = match codec {
        Codec::H264 => RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            // RFC 6184 §8.1: mode 1 is what STAP-A and FU-A need; level asymmetry lets the
            // upstream send at another level than ours.
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback: vec![],
        },
        Codec::Opus => RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
    };
    RTCRtpCodecParameters {
        rtp_codec,
        payload_type: payload_type_of(codec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_sends_what_its_open_sendrecv_and_sendonly_lines_say() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n\
                      m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n\
                      m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(answer_sends(answer), [Codec::H264]);
        let recvonly = "m=video 9 X 96\r\na=recvonly\r\nm=audio 9 X 111\r\na=sendonly\r\n";
        assert_eq!(answer_sends(recvonly), [Codec::Opus]);
    }

    #[tokio::test]
    async fn the_offer_is_complete_sendrecv_with_a_data_channel() {
        let spec = OfferSpec {
            bind: "127.0.0.1:0".parse().unwrap(),
            tracks: vec![Codec::H264, Codec::Opus],
            direction: RTCRtpTransceiverDirection::Sendrecv,
            h264_profile_level_id: "42e01f".to_owned(),
            data_channel: Some("upstream".to_owned()),
            dtls_passive: true,
            ice_check_interval: Duration::from_millis(50),
            stream_id: "s".to_owned(),
        };
        let mut peer = OfferingPeer::bind(&spec).await.unwrap();
        let sdp = peer.offer().unwrap();
        for kind in ["video", "audio"] {
            let section = sdp.split("\nm=").find(|m| m.starts_with(kind)).unwrap();
            assert!(section.contains("a=sendrecv"), "{kind}: {sdp}");
        }
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
        assert!(sdp.contains("opus/48000/2"), "{sdp}");
        assert!(sdp.contains("m=application"), "{sdp}");
        assert!(sdp.contains("a=setup:passive") && !sdp.contains("actpass"));
        assert!(sdp.contains(&format!("{} typ host", peer.local_addr.port())));
        assert!(sdp.contains("a=end-of-candidates"), "{sdp}");
    }
}
