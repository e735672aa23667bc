//! Building the answering `RTCPeerConnection` for an offer: codecs taken from the offer
//! itself (so every H.264 profile a publisher offers is accepted with its own payload type),
//! our host candidates on the shared port, and tracks for a sending session.

use std::collections::HashMap;
use std::time::Instant;

use livegate_media::Codec;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};

use crate::config::RtcConfig;
use crate::interceptor::DeliverRtcp;
use crate::offer::{MediaKind, Offer, OfferError, OfferedCodec};
use crate::reception::RemoteReception;
use crate::retransmit::{SentPackets, HISTORY_PACKETS};
use crate::sender_report::SenderClock;
use crate::{AcceptError, SendSpec, SessionRole};

/// A track we send on a session.
pub(crate) struct OutTrack {
    pub(crate) codec: Codec,
    pub(crate) sender: RTCRtpSenderId,
    pub(crate) payload_type: u8,
    pub(crate) ssrc: u32,
    pub(crate) next_sequence: u16,
    /// What the peer last reported receiving of it.
    pub(crate) reception: RemoteReception,
    /// What its sender reports say; `None` where rtc's own sender-report interceptor runs
    /// (a session that also receives keeps rtc's default set).
    pub(crate) clock: Option<SenderClock>,
    /// The packets a NACK may ask for again: video of a sending-only session (only video
    /// offers NACK feedback, and elsewhere rtc's NACK responder answers).
    pub(crate) sent: Option<SentPackets>,
}

pub(crate) struct Answerer {
    pub(crate) pc: RTCPeerConnection,
    pub(crate) answer: String,
    pub(crate) ufrag: String,
    pub(crate) out_tracks: Vec<OutTrack>,
    /// Codec of each payload type we receive.
    pub(crate) in_codecs: HashMap<u8, Codec>,
}

fn negotiation(e: impl std::fmt::Display) -> AcceptError {
    AcceptError::Negotiation(e.to_string())
}

fn codec_parameters(offered: &OfferedCodec) -> RTCRtpCodecParameters {
    let (mime, channels) = match offered.codec() {
        Some(Codec::Opus) => (MIME_TYPE_OPUS, offered.channels.max(2)),
        _ => (MIME_TYPE_H264, 0),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: offered.clock_rate,
            channels,
            sdp_fmtp_line: offered.fmtp.clone(),
            rtcp_feedback: vec![],
        },
        payload_type: offered.payload_type,
    }
}

/// The offered H.264 format to send a stream with: the stream's profile if offered, else any
/// non-interleaved format (browsers decode every profile they offer).
fn choose_h264<'a>(
    codecs: &'a [OfferedCodec],
    profile_level_id: Option<&str>,
) -> Option<&'a OfferedCodec> {
    let usable = || {
        codecs.iter().filter(|c| {
            c.codec() == Some(Codec::H264) && c.fmtp_param("packetization-mode") == Some("1")
        })
    };
    // Profile and constraints first (`42e0` is constrained baseline), then the profile
    // alone: a High stream's SPS says `6400` while browsers offer `640c`.
    let offered_prefix = |c: &OfferedCodec, len: usize, wanted: &str| {
        c.fmtp_param("profile-level-id")
            .and_then(|p| p.get(..len))
            .is_some_and(|p| wanted.get(..len).is_some_and(|w| p.eq_ignore_ascii_case(w)))
    };
    profile_level_id
        .and_then(|wanted| {
            usable()
                .find(|c| offered_prefix(c, 4, wanted))
                .or_else(|| usable().find(|c| offered_prefix(c, 2, wanted)))
        })
        .or_else(|| usable().next())
}

/// The offered H.264 format with the level of the stream we send (RFC 6184 §8.1: the answer's
/// `profile-level-id` describes what the answerer sends). Profile and constraint bytes stay
/// the offer's, which is how rtc pairs the answer with the offer.
fn with_stream_level(offered: &OfferedCodec, profile_level_id: Option<&str>) -> OfferedCodec {
    let mut codec = offered.clone();
    let (Some(offered_id), Some(level)) = (
        offered.fmtp_param("profile-level-id"),
        profile_level_id.and_then(|p| p.get(4..6)),
    ) else {
        return codec;
    };
    if let Some(prefix) = offered_id.get(..4) {
        let answered = format!("{prefix}{level}");
        codec.fmtp = offered.fmtp.replace(offered_id, &answered);
    }
    codec
}

/// The offered codecs we will use, per media section kind.
fn chosen_codecs(offer: &Offer, role: &SessionRole) -> Vec<OfferedCodec> {
    let mut chosen = Vec::new();
    for section in &offer.media {
        match (role, section.kind) {
            (SessionRole::Receive | SessionRole::Both(_), MediaKind::Video | MediaKind::Audio) => {
                chosen.extend(
                    section
                        .codecs
                        .iter()
                        .filter(|c| c.codec().is_some())
                        .filter(|c| {
                            c.codec() != Some(Codec::H264)
                                || c.fmtp_param("packetization-mode").is_some()
                        })
                        .cloned(),
                )
            }
            (SessionRole::Send(spec), MediaKind::Video) if spec.tracks.contains(&Codec::H264) => {
                chosen.extend(
                    choose_h264(&section.codecs, spec.h264_profile_level_id.as_deref())
                        .map(|c| with_stream_level(c, spec.h264_profile_level_id.as_deref())),
                )
            }
            (SessionRole::Send(spec), MediaKind::Audio) if spec.tracks.contains(&Codec::Opus) => {
                chosen.extend(
                    section
                        .codecs
                        .iter()
                        .find(|c| c.codec() == Some(Codec::Opus))
                        .cloned(),
                )
            }
            _ => {}
        }
    }
    chosen
}

/// The formats a [`SessionRole::Both`] session sends back with: for each track of `spec`,
/// one offered format of its kind, where the offer's first section of that kind is
/// `sendrecv`. Empty when the offer sends only, which leaves the answer as
/// [`SessionRole::Receive`] makes it.
fn echo_codecs(offer: &Offer, spec: &SendSpec) -> Vec<OfferedCodec> {
    let mut echoed = Vec::new();
    for &codec in &spec.tracks {
        let kind = match codec {
            Codec::H264 => MediaKind::Video,
            Codec::Opus => MediaKind::Audio,
        };
        let Some(section) = offer
            .section(kind)
            .filter(|_| offer.sends_and_receives(kind))
        else {
            continue;
        };
        // The offer's own format, fmtp included: it is also what the publisher sends us,
        // so its level is not rewritten as a sending session's would be.
        let format = match codec {
            Codec::H264 => choose_h264(&section.codecs, spec.h264_profile_level_id.as_deref()),
            Codec::Opus => section
                .codecs
                .iter()
                .find(|c| c.codec() == Some(Codec::Opus)),
        };
        echoed.extend(format.cloned());
    }
    echoed
}

/// Builds the peer connection that answers `offer_sdp` and returns it with the answer.
pub(crate) fn answer(
    config: &RtcConfig,
    candidates: &[RTCIceCandidateInit],
    offer_sdp: &str,
    offer: &Offer,
    role: &SessionRole,
    now: Instant,
) -> Result<Answerer, AcceptError> {
    let chosen = chosen_codecs(offer, role);
    if chosen.is_empty() {
        let wanted = match role {
            SessionRole::Receive | SessionRole::Both(_) => {
                "H.264 (with packetization-mode) or Opus".to_owned()
            }
            SessionRole::Send(spec) => format!("{:?}", spec.tracks),
        };
        return Err(OfferError::NoUsableCodec(format!("we need {wanted}")).into());
    }

    let mut media_engine = MediaEngine::default();
    let mut in_codecs = HashMap::new();
    for offered in &chosen {
        let kind = match offered.codec() {
            Some(Codec::H264) => RtpCodecKind::Video,
            _ => RtpCodecKind::Audio,
        };
        media_engine
            .register_codec(codec_parameters(offered), kind)
            .map_err(negotiation)?;
        if let Some(codec) = offered.codec() {
            in_codecs.insert(offered.payload_type, codec);
        }
    }
    // Codecs first: the default interceptors add their RTCP feedback (nack, pli, ccm fir)
    // only to codecs already registered.
    let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::default());
    // The default set serves both directions (NACK generator and responder, sender and
    // receiver reports), which a session that also sends back needs.
    let registry = match role {
        SessionRole::Receive | SessionRole::Both(_) => {
            register_default_interceptors(registry, &mut media_engine).map_err(negotiation)?
        }
        SessionRole::Send(_) => sending_interceptors(registry, &mut media_engine),
    };
    let settings = SettingEngineBuilder::new()
        // Browsers hide host IPs behind .local names; resolving them would send multicast
        // queries from a server. Peer-reflexive candidates learned from their checks suffice.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        // Full ICE as the controlled agent, not ICE-lite (RFC 8445 §2.5): with rtc's lite
        // agent Chromium's median time to first frame was 111–147 ms against 58–83 ms for
        // full ICE (scripts/browser-test.sh 5, debug build, alternating runs on a loaded
        // machine), because the lite agent accepts the
        // nomination only on a pair its own triggered check has confirmed. We still gather
        // nothing and offer only host candidates on the one port.
        .with_answering_dtls_role(answering_dtls_role(offer_sdp))
        .with_ice_timeouts(
            Some(config.disconnected_timeout),
            Some(config.failed_timeout),
            Some(config.keepalive_interval),
        )
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(negotiation)?;

    for candidate in candidates {
        pc.add_local_candidate(candidate.clone())
            .map_err(negotiation)?;
    }
    // All our candidates are known: end of gathering, so the answer is complete.
    pc.add_local_candidate(RTCIceCandidateInit::default())
        .map_err(negotiation)?;

    let description = RTCSessionDescription::offer(offer_sdp.to_owned()).map_err(negotiation)?;
    pc.set_remote_description(now, description)
        .map_err(negotiation)?;

    let mut pending_tracks = Vec::new();
    match role {
        SessionRole::Send(spec) => {
            pending_tracks = add_send_tracks(&mut pc, spec, &chosen)?;
            let used: Vec<RTCRtpSenderId> = pending_tracks.iter().map(|t| t.1).collect();
            deactivate_unused_transceivers(&mut pc, &used);
        }
        // rtc's addTrack takes the transceiver the remote `sendrecv` section made (the
        // first of its kind, which `echo_codecs` checked) and makes it `sendrecv`; the
        // answer's direction is then `sendrecv` (RFC 3264 §6.1).
        SessionRole::Both(spec) => {
            pending_tracks = add_send_tracks(&mut pc, spec, &echo_codecs(offer, spec))?;
        }
        SessionRole::Receive => {}
    }

    let answer = pc.create_answer(None).map_err(negotiation)?;
    pc.set_local_description(now, answer).map_err(negotiation)?;
    let mut answer = pc
        .local_description()
        .ok_or_else(|| negotiation("no local description after answering"))?
        .sdp;
    // rtc echoes the offer's fmtp for a matched codec; the level we send is the stream's.
    for codec in chosen.iter().filter(|c| c.codec() == Some(Codec::H264)) {
        answer = with_fmtp(&answer, codec);
    }
    if matches!(role, SessionRole::Receive | SessionRole::Both(_)) {
        answer = first_simulcast_layer_only(&answer);
    }
    let ufrag =
        crate::server::ice_ufrag(&answer).ok_or_else(|| negotiation("answer has no ICE ufrag"))?;

    let mut out_tracks = Vec::new();
    // Only a sending session goes without rtc's responder and reports (sending_interceptors).
    let own_feedback = matches!(role, SessionRole::Send(_));
    for (codec, sender, ssrc) in pending_tracks {
        let Some(mut rtp_sender) = pc.rtp_sender(sender) else {
            continue;
        };
        let payload_type = rtp_sender
            .get_parameters()
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| negotiation("a sending track has no negotiated codec"))?;
        out_tracks.push(OutTrack {
            codec,
            sender,
            payload_type,
            ssrc,
            next_sequence: rand::random(),
            reception: RemoteReception::default(),
            clock: own_feedback.then(|| SenderClock::new(codec.rtp_clock_rate())),
            sent: (own_feedback && codec == Codec::H264).then(|| SentPackets::new(HISTORY_PACKETS)),
        });
    }
    Ok(Answerer {
        pc,
        answer,
        ufrag,
        out_tracks,
        in_codecs,
    })
}

fn add_send_tracks(
    pc: &mut RTCPeerConnection,
    spec: &SendSpec,
    chosen: &[OfferedCodec],
) -> Result<Vec<(Codec, RTCRtpSenderId, u32)>, AcceptError> {
    let mut added = Vec::new();
    for &codec in &spec.tracks {
        let Some(offered) = chosen.iter().find(|c| c.codec() == Some(codec)) else {
            continue;
        };
        let (kind, track_id) = match codec {
            Codec::H264 => (RtpCodecKind::Video, "video"),
            Codec::Opus => (RtpCodecKind::Audio, "audio"),
        };
        let ssrc: u32 = rand::random();
        let track = MediaStreamTrack::new(
            spec.stream_id.clone(),
            track_id.to_owned(),
            track_id.to_owned(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec_parameters(offered).rtp_codec,
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).map_err(negotiation)?;
        added.push((codec, sender, ssrc));
    }
    Ok(added)
}

/// Offered media we have no track for is answered inactive rather than left send-capable.
fn deactivate_unused_transceivers(pc: &mut RTCPeerConnection, used: &[RTCRtpSenderId]) {
    let ids: Vec<_> = pc.get_transceivers().collect();
    for id in ids {
        if let Some(mut transceiver) = pc.rtp_transceiver(id) {
            if !transceiver.sender().is_some_and(|s| used.contains(&s)) {
                transceiver.set_direction(RTCRtpTransceiverDirection::Inactive);
            }
        }
    }
}

/// The interceptors of a session that only sends: none of rtc's. Every interceptor sits on
/// every outgoing packet's path, and rtc moves the packet through each: the receive-side ones
/// of the default set (NACK generator, receiver reports, TWCC receiver) had nothing to do here
/// but cost 5–8 % of a viewer's CPU, and the NACK responder and sender reports, done by the
/// shard instead ([`crate::retransmit`], [`crate::sender_report`]), another 8 % and a third of
/// a viewer's memory. What stays is the NACK feedback the answer offers.
fn sending_interceptors(registry: Registry, media_engine: &mut MediaEngine) -> Registry {
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    registry
}

/// A publisher's simulcast (RFC 8853) answered with its first layer only: rtc accepts every
/// offered layer, but a stream's input takes one picture sequence, and several SSRCs of one
/// track would look to the ingest like a source changing at every packet. The first layer
/// is the one OBS and browsers send at full resolution; the publisher drops the others when
/// it reads the answer (RFC 8853 §5.3), which is how OBS is kept from aborting: the offer is
/// accepted, only narrowed.
fn first_simulcast_layer_only(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    // The rids of the current media section that stay, once its a=simulcast line is read.
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let (Some(kept), Some(list)) = (
            sections.last_mut(),
            line.trim_end().strip_prefix("a=simulcast:recv "),
        ) {
            // `a=simulcast:recv 0;1;2` or with alternatives `0,1;2`; `~` marks a paused one.
            let first = list
                .split(';')
                .next()
                .and_then(|stream| stream.split(',').next())
                .map(|rid| rid.trim().trim_start_matches('~'));
            if let Some(first) = first {
                kept.push(first);
            }
        }
    }
    let mut section = None::<usize>;
    let mut index = 0;
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            section = Some(index);
            index += 1;
        }
        let kept = section
            .and_then(|i| sections.get(i))
            .and_then(|k| k.first());
        let trimmed = line.trim_end();
        let ending = &line[trimmed.len()..];
        if let Some(first) = kept {
            if trimmed.starts_with("a=simulcast:recv ") {
                out.push_str(&format!("a=simulcast:recv {first}{ending}"));
                continue;
            }
            if let Some(rid) = trimmed.strip_prefix("a=rid:") {
                if rid.split_whitespace().next() != Some(first) {
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    out
}

/// `sdp` with the `a=fmtp` line of `codec`'s payload type replaced by `codec`'s fmtp.
fn with_fmtp(sdp: &str, codec: &OfferedCodec) -> String {
    let prefix = format!("a=fmtp:{} ", codec.payload_type);
    sdp.split_inclusive('\n')
        .map(|line| {
            if line.starts_with(&prefix) {
                let ending = &line[line.trim_end().len()..];
                format!("{prefix}{}{ending}", codec.fmtp)
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// Our DTLS role (RFC 5763 §5). We prefer `a=setup:passive`: the peer's DTLS client sends
/// its ClientHello as soon as its ICE is writable, whereas as DTLS client ourselves Chromium
/// answered our ClientHello only ~190 ms later, most of a viewer's time to first frame (42 vs
/// 235 ms median in tests/browser/whep-play.mjs). An offer that insists on being passive
/// itself (RFC 8842 wants `actpass`, but some peers do) gets `active`: rtc would answer
/// passive regardless, and two DTLS servers wait for each other forever.
fn answering_dtls_role(offer_sdp: &str) -> RTCDtlsRole {
    let offer_is_passive = offer_sdp
        .lines()
        .any(|line| line.trim_end() == "a=setup:passive");
    if offer_is_passive {
        RTCDtlsRole::Client
    } else {
        RTCDtlsRole::Server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(payload_type: u8, profile_level_id: &str) -> OfferedCodec {
        OfferedCodec {
            payload_type,
            name: "H264".into(),
            clock_rate: 90_000,
            channels: 0,
            fmtp: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback: vec![],
        }
    }

    #[test]
    fn the_stream_profile_picks_the_format_and_its_level_goes_in_the_answer() {
        let offered = [
            h264(102, "42e01f"),
            h264(104, "42001f"),
            h264(106, "640c1f"),
        ];
        let pick = |sps| choose_h264(&offered, sps).map(|c| c.payload_type);
        assert_eq!(
            pick(Some("42e00d")),
            Some(102),
            "exact profile and constraints"
        );
        assert_eq!(pick(Some("42000d")), Some(104));
        assert_eq!(pick(Some("64000d")), Some(106), "High by profile alone");
        assert_eq!(
            pick(Some("4d0028")),
            Some(102),
            "Main not offered: the first"
        );
        assert_eq!(pick(None), Some(102));

        let answered = with_stream_level(&offered[2], Some("64000d"));
        assert_eq!(answered.fmtp_param("profile-level-id"), Some("640c0d"));
        assert_eq!(answered.fmtp_param("packetization-mode"), Some("1"));
        assert_eq!(with_stream_level(&offered[0], None), offered[0]);

        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 106\r\na=fmtp:106 packetization-mode=1;profile-level-id=640c1f\r\na=fmtp:111 minptime=10\r\n";
        assert_eq!(
            with_fmtp(sdp, &answered),
            format!(
                "m=video 9 UDP/TLS/RTP/SAVPF 106\r\na=fmtp:106 {}\r\na=fmtp:111 minptime=10\r\n",
                answered.fmtp
            )
        );
    }

    #[test]
    fn simulcast_is_answered_with_the_first_layer() {
        let answer = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=rid:0 recv\r\na=rid:1 recv\r\na=rid:2 recv\r\na=simulcast:recv 0;1;2\r\n";
        assert_eq!(
            first_simulcast_layer_only(answer),
            "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=rid:0 recv\r\na=simulcast:recv 0\r\n"
        );
        let alternatives =
            "m=video 9 X 96\r\na=rid:h recv\r\na=rid:l recv\r\na=simulcast:recv ~h,l;m\r\n";
        assert_eq!(
            first_simulcast_layer_only(alternatives),
            "m=video 9 X 96\r\na=rid:h recv\r\na=simulcast:recv h\r\n"
        );
        let plain = "m=video 9 X 96\r\na=mid:1\r\n";
        assert_eq!(first_simulcast_layer_only(plain), plain);
    }

    /// The answer without what is random per peer connection (session id, ICE credentials,
    /// certificate fingerprint).
    fn stable_lines(answer: &str) -> Vec<&str> {
        answer
            .lines()
            .filter(|l| {
                !["o=", "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect()
    }

    fn answer_to(offer_sdp: &str, role: &SessionRole) -> Answerer {
        let config = RtcConfig::new("127.0.0.1:9".parse().unwrap());
        let offer = Offer::parse(offer_sdp).unwrap();
        answer(&config, &[], offer_sdp, &offer, role, Instant::now()).unwrap()
    }

    fn echo_both() -> SessionRole {
        SessionRole::Both(SendSpec {
            stream_id: "cam".into(),
            tracks: vec![Codec::H264, Codec::Opus],
            h264_profile_level_id: None,
        })
    }

    #[test]
    fn a_sendonly_offer_gets_the_same_answer_whether_or_not_we_could_send_back() {
        let offer = crate::offer::tests::OBS_OFFER;
        let receive = answer_to(offer, &SessionRole::Receive);
        let both = answer_to(offer, &echo_both());
        assert_eq!(stable_lines(&both.answer), stable_lines(&receive.answer));
        assert!(both.out_tracks.is_empty());
        assert!(receive.answer.contains("a=recvonly"), "{}", receive.answer);
    }

    #[test]
    fn a_sendrecv_offer_is_answered_sendrecv_with_the_offers_formats() {
        let offer = crate::offer::tests::OBS_OFFER.replace("a=sendonly", "a=sendrecv");
        let both = answer_to(&offer, &echo_both());
        let sent: Vec<(Codec, u8)> = both
            .out_tracks
            .iter()
            .map(|t| (t.codec, t.payload_type))
            .collect();
        assert_eq!(sent, [(Codec::H264, 96), (Codec::Opus, 111)]);
        assert_eq!(
            both.answer.matches("a=sendrecv").count(),
            2,
            "{}",
            both.answer
        );
        assert!(both.answer.contains("a=msid:cam "), "{}", both.answer);
        assert_eq!(both.in_codecs.get(&96), Some(&Codec::H264));
        // Receive alone still answers it recvonly.
        let receive = answer_to(&offer, &SessionRole::Receive);
        assert_eq!(
            receive.answer.matches("a=recvonly").count(),
            2,
            "{}",
            receive.answer
        );
    }

    #[test]
    fn an_offer_that_wants_to_be_dtls_server_makes_us_the_client() {
        assert_eq!(
            answering_dtls_role("a=setup:actpass\r\n"),
            RTCDtlsRole::Server
        );
        assert_eq!(
            answering_dtls_role("a=setup:active\r\n"),
            RTCDtlsRole::Server
        );
        assert_eq!(
            answering_dtls_role("a=setup:passive\r\n"),
            RTCDtlsRole::Client
        );
    }
}
