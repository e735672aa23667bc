//! Reading a remote offer before a peer connection is built: is it SDP at all, what media
//! does it carry, and which of its codecs can we use. Every refusal has a one-line reason the
//! HTTP layer returns as a 400.

use std::io::Cursor;

use livegate_media::Codec;
use rtc::sdp::description::session::SessionDescription;

/// Most media sections accepted in one offer; browsers send at most a handful.
const MAX_MEDIA_SECTIONS: usize = 16;
/// Most codecs accepted per media section.
const MAX_CODECS_PER_SECTION: usize = 64;

/// Why an offer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("offer has {0} media sections; at most {MAX_MEDIA_SECTIONS} are accepted")]
    TooManySections(usize),
    #[error("offer has no audio or video media section")]
    NoMedia,
    #[error("offer has no usable codec: {0}")]
    NoUsableCodec(String),
}

/// The kind of a media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    /// Data channels (`m=application`).
    Application,
    Other,
}

/// A codec as the offer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    pub payload_type: u8,
    /// Encoding name as written (`H264`, `opus`, ...).
    pub name: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
    pub rtcp_feedback: Vec<String>,
}

impl OfferedCodec {
    /// The livegate codec this is, if we carry it.
    pub fn codec(&self) -> Option<Codec> {
        match (self.name.to_ascii_lowercase().as_str(), self.clock_rate) {
            ("h264", 90_000) => Some(Codec::H264),
            ("opus", 48_000) => Some(Codec::Opus),
            _ => None,
        }
    }

    /// One `key=value` of the fmtp line.
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }
}

/// Which way the offerer wants a section's media to flow, from its own side (RFC 3264
/// §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attribute(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// One media section of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    pub kind: MediaKind,
    pub mid: Option<String>,
    pub codecs: Vec<OfferedCodec>,
    /// The section's direction attribute, else the session's, else `sendrecv` (RFC 4566
    /// §6, RFC 3264 §5.1).
    pub direction: Direction,
}

/// What an offer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub media: Vec<OfferedMedia>,
}

impl Offer {
    /// Parses and sanity-checks an SDP offer.
    pub fn parse(sdp: &str) -> Result<Offer, OfferError> {
        let description = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
            .map_err(|e| OfferError::Malformed(e.to_string()))?;
        let session_direction = description
            .attributes
            .iter()
            .find_map(|a| Direction::from_attribute(&a.key))
            .unwrap_or(Direction::SendRecv);
        let sections = description.media_descriptions.len();
        if sections > MAX_MEDIA_SECTIONS {
            return Err(OfferError::TooManySections(sections));
        }
        let media: Vec<OfferedMedia> = description
            .media_descriptions
            .iter()
            .map(|m| {
                let kind = match m.media_name.media.as_str() {
                    "audio" => MediaKind::Audio,
                    "video" => MediaKind::Video,
                    "application" => MediaKind::Application,
                    _ => MediaKind::Other,
                };
                let attr = |key: &str, pt: &str| {
                    m.attributes
                        .iter()
                        .filter(|a| a.key == key)
                        .filter_map(|a| a.value.as_deref())
                        .filter_map(|v| v.split_once(' '))
                        .filter(|(p, _)| *p == pt)
                        .map(|(_, rest)| rest.trim().to_owned())
                        .collect::<Vec<_>>()
                };
                let codecs = m
                    .media_name
                    .formats
                    .iter()
                    .take(MAX_CODECS_PER_SECTION)
                    .filter_map(|format| {
                        let payload_type: u8 = format.parse().ok()?;
                        let rtpmap = attr("rtpmap", format).into_iter().next()?;
                        let mut parts = rtpmap.split('/');
                        let name = parts.next()?.to_owned();
                        let clock_rate = parts.next()?.parse().ok()?;
                        let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                        Some(OfferedCodec {
                            payload_type,
                            name,
                            clock_rate,
                            channels,
                            fmtp: attr("fmtp", format).into_iter().next().unwrap_or_default(),
                            rtcp_feedback: attr("rtcp-fb", format),
                        })
                    })
                    .collect();
                OfferedMedia {
                    kind,
                    mid: m.attribute("mid").flatten().map(str::to_owned),
                    codecs,
                    direction: m
                        .attributes
                        .iter()
                        .find_map(|a| Direction::from_attribute(&a.key))
                        .unwrap_or(session_direction),
                }
            })
            .collect();
        if !media
            .iter()
            .any(|m| matches!(m.kind, MediaKind::Audio | MediaKind::Video))
        {
            return Err(OfferError::NoMedia);
        }
        Ok(Offer { media })
    }

    /// The first section of `kind`.
    pub fn section(&self, kind: MediaKind) -> Option<&OfferedMedia> {
        self.media.iter().find(|m| m.kind == kind)
    }

    /// Whether the offer's first section of `kind` both sends and receives: where a publisher
    /// can be answered `sendrecv` and get media back (RFC 3264 §6.1).
    pub fn sends_and_receives(&self, kind: MediaKind) -> bool {
        self.section(kind)
            .is_some_and(|m| m.direction == Direction::SendRecv)
    }

    /// Whether the offer asks for data channels.
    pub fn has_data_channel(&self) -> bool {
        self.section(MediaKind::Application).is_some()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const OBS_OFFER: &str = "v=0\r\no=rtc 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ssrc:1 cname:obs\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=ssrc:2 cname:obs\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";

    #[test]
    fn reads_an_obs_shaped_offer() {
        let offer = Offer::parse(OBS_OFFER).unwrap();
        let audio = offer.section(MediaKind::Audio).unwrap();
        assert_eq!(audio.mid.as_deref(), Some("0"));
        assert_eq!(audio.codecs[0].codec(), Some(Codec::Opus));
        assert_eq!(audio.codecs[0].channels, 2);
        let video = offer.section(MediaKind::Video).unwrap();
        assert_eq!(video.codecs[0].payload_type, 96);
        assert_eq!(video.codecs[0].fmtp_param("packetization-mode"), Some("1"));
        assert_eq!(video.codecs[0].rtcp_feedback, vec!["nack", "nack pli"]);
        assert_eq!(video.direction, Direction::SendOnly);
        assert!(!offer.sends_and_receives(MediaKind::Video));
        assert!(!offer.has_data_channel());
    }

    #[test]
    fn a_section_without_a_direction_takes_the_sessions_then_sendrecv() {
        let sendrecv = OBS_OFFER.replace("a=sendonly\r\n", "");
        let offer = Offer::parse(&sendrecv).unwrap();
        assert!(offer.sends_and_receives(MediaKind::Video));
        assert!(offer.sends_and_receives(MediaKind::Audio));
        let session_level = sendrecv.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        let offer = Offer::parse(&session_level).unwrap();
        assert_eq!(
            offer.section(MediaKind::Video).unwrap().direction,
            Direction::RecvOnly
        );
        let explicit = OBS_OFFER.replace("a=sendonly", "a=sendrecv");
        assert!(Offer::parse(&explicit)
            .unwrap()
            .sends_and_receives(MediaKind::Video));
    }

    #[test]
    fn refuses_what_it_cannot_use_with_a_reason() {
        assert!(matches!(
            Offer::parse("hello"),
            Err(OfferError::Malformed(_))
        ));
        let no_media = "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        assert_eq!(Offer::parse(no_media), Err(OfferError::NoMedia));
        let mut many = no_media.to_owned();
        for _ in 0..20 {
            many.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n");
        }
        assert_eq!(Offer::parse(&many), Err(OfferError::TooManySections(20)));
    }
}
