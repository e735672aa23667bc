//! Reading a remote offer before a peer connection is built: is it SDP at all, what media
//! does it carry, and which of its codecs can we use. Every refusal has a one-line reason the
//! HTTP layer returns as a 400.
//!
//! The offer comes from anyone who can reach the HTTP port, so its shape is bounded (line
//! length, lines, media sections, candidates) on the raw text, without allocating, before
//! `rtc`'s parser builds anything from it; then what the peer connection would trip over
//! later (ICE credentials, fingerprints, DTLS roles, mids, SSRCs) is refused here with a
//! reason the client can act on.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;

use livegate_media::Codec;
use rtc::sdp::description::media::MediaDescription;
use rtc::sdp::description::session::SessionDescription;

/// Most media sections accepted in one offer; browsers send at most a handful.
pub const MAX_MEDIA_SECTIONS: usize = 16;
/// Most codecs accepted per media section.
const MAX_CODECS_PER_SECTION: usize = 64;
/// Longest line accepted. The longest lines of real offers (fingerprints, fmtp, candidates
/// with extensions) are under 300 bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most lines accepted. A browser's offer with audio, video, a data channel and a dozen
/// candidates has about 150.
pub const MAX_LINES: usize = 2048;
/// Most `a=candidate` lines accepted in one offer: a host, server-reflexive and relay
/// candidate per interface and transport is a few dozen at most.
pub const MAX_CANDIDATES: usize = 64;

/// Digest lengths of the hash functions a DTLS fingerprint may use (RFC 8122 §5; MD2 and
/// MD5 are not accepted, RFC 8122 §5 says they must not be used).
const FINGERPRINT_HASHES: [(&str, usize); 5] = [
    ("sha-1", 20),
    ("sha-224", 28),
    ("sha-256", 32),
    ("sha-384", 48),
    ("sha-512", 64),
];

/// Why an offer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("SDP line {line} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: usize },
    #[error("SDP line {line} contains a control character")]
    ControlCharacter { line: usize },
    #[error("offer has {0} lines; at most {MAX_LINES} are accepted")]
    TooManyLines(usize),
    #[error("offer has {0} media sections; at most {MAX_MEDIA_SECTIONS} are accepted")]
    TooManySections(usize),
    #[error("offer has {0} candidates; at most {MAX_CANDIDATES} are accepted")]
    TooManyCandidates(usize),
    #[error("offer has no audio or video media section")]
    NoMedia,
    #[error("offer has no usable codec: {0}")]
    NoUsableCodec(String),
    /// RFC 8839 §5.4.
    #[error("bad ICE credentials: {0}")]
    Ice(String),
    /// RFC 8122 §5.
    #[error("bad DTLS fingerprint: {0}")]
    Fingerprint(String),
    /// RFC 8842 §5.
    #[error("bad DTLS setup: {0}")]
    Setup(String),
    /// RFC 5888 §4 (mids), RFC 9143 §7 (BUNDLE).
    #[error("bad mid or BUNDLE group: {0}")]
    Mid(String),
    /// RFC 8843 §9.1: an SSRC belongs to one media section of a BUNDLE transport.
    #[error("SSRC {0} appears in more than one media section")]
    DuplicateSsrc(u32),
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
    ///
    /// Lines may end in CRLF or LF, mixed: RFC 8866 §5 asks parsers to accept a bare LF.
    pub fn parse(sdp: &str) -> Result<Offer, OfferError> {
        check_shape(sdp)?;
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
        check_transport(&description)?;
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

/// Bounds the offer's size and shape on the raw text: one pass, nothing allocated, so a
/// hostile offer costs at most a scan of its bytes.
fn check_shape(sdp: &str) -> Result<(), OfferError> {
    let (mut lines, mut sections, mut candidates) = (0, 0, 0);
    for (index, line) in sdp.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.len() > MAX_LINE_BYTES {
            return Err(OfferError::LineTooLong { line: index + 1 });
        }
        // RFC 8866 §5 allows no control characters but CR and LF as line ends; a NUL or a
        // stray CR is text that was never SDP (or is meant to confuse a logger).
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(OfferError::ControlCharacter { line: index + 1 });
        }
        lines += usize::from(!line.is_empty());
        sections += usize::from(line.starts_with("m="));
        candidates += usize::from(line.starts_with("a=candidate:"));
    }
    if sections > MAX_MEDIA_SECTIONS {
        return Err(OfferError::TooManySections(sections));
    }
    if candidates > MAX_CANDIDATES {
        return Err(OfferError::TooManyCandidates(candidates));
    }
    if lines > MAX_LINES {
        return Err(OfferError::TooManyLines(lines));
    }
    Ok(())
}

/// What the one transport of the offer's sections needs, refused here with a reason rather
/// than as a negotiation failure deep in the peer connection.
fn check_transport(description: &SessionDescription) -> Result<(), OfferError> {
    let sections = &description.media_descriptions;

    // Mids are unique (RFC 5888 §4) and a BUNDLE group names only mids that exist (RFC
    // 9143 §7.2).
    let mut mids = HashSet::new();
    for m in sections {
        if let Some(mid) = m.attribute("mid").flatten() {
            if !mids.insert(mid) {
                return Err(OfferError::Mid(format!("mid {mid} is used twice")));
            }
        }
    }
    let mut bundled: HashMap<&str, usize> = HashMap::new();
    for (group, value) in description
        .attributes
        .iter()
        .filter(|a| a.key == "group")
        .filter_map(|a| a.value.as_deref())
        .enumerate()
    {
        let mut names = value.split_ascii_whitespace();
        if names.next() != Some("BUNDLE") {
            continue;
        }
        for mid in names {
            if !mids.contains(mid) {
                return Err(OfferError::Mid(format!(
                    "BUNDLE names mid {mid}, which no media section has"
                )));
            }
            bundled.insert(mid, group);
        }
    }
    // Transport attributes may sit in one section of a BUNDLE group only (RFC 8843 §7.1.3):
    // a section passes when it, the session or a section of its group has the attribute.
    let group_of = |m: &MediaDescription| {
        m.attribute("mid")
            .flatten()
            .and_then(|mid| bundled.get(mid).copied())
    };
    let present_somewhere = |key: &str| -> Result<(), String> {
        for (index, m) in sections.iter().enumerate() {
            if attribute_value(description, m, key).is_some() {
                continue;
            }
            let group = group_of(m);
            let shared = group.is_some()
                && sections.iter().any(|other| {
                    group_of(other) == group && attribute_value(description, other, key).is_some()
                });
            if !shared {
                return Err(format!("media section {} has no a={key}", index + 1));
            }
        }
        Ok(())
    };

    present_somewhere("ice-ufrag").map_err(OfferError::Ice)?;
    present_somewhere("ice-pwd").map_err(OfferError::Ice)?;
    for (key, min) in [("ice-ufrag", 4), ("ice-pwd", 22)] {
        for v in sections
            .iter()
            .filter_map(|m| attribute_value(description, m, key))
        {
            // ice-char = ALPHA / DIGIT / "+" / "/", 4 to 256 of them for the ufrag, 22 to 256
            // for the password (RFC 8839 §5.4).
            let ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
            if !(min..=256).contains(&v.len()) || !v.chars().all(ice_char) {
                return Err(OfferError::Ice(format!(
                    "a={key} must be {min} to 256 ICE characters"
                )));
            }
        }
    }

    present_somewhere("fingerprint").map_err(OfferError::Fingerprint)?;
    for v in sections
        .iter()
        .filter_map(|m| attribute_value(description, m, "fingerprint"))
    {
        check_fingerprint(v)?;
    }

    // One transport has one DTLS role: every section must agree, and an offer offers a role
    // the answerer can take (RFC 8842 §5.2: actpass, or active/passive from older clients).
    let mut setup = None;
    for v in sections
        .iter()
        .filter_map(|m| attribute_value(description, m, "setup"))
    {
        if !matches!(v, "actpass" | "active" | "passive") {
            return Err(OfferError::Setup(format!(
                "a=setup:{v} is not actpass, active or passive"
            )));
        }
        match setup {
            Some(first) if first != v => {
                return Err(OfferError::Setup(format!(
                    "media sections ask for both {first} and {v}"
                )))
            }
            _ => setup = Some(v),
        }
    }

    let mut owner: HashMap<u32, usize> = HashMap::new();
    for (index, m) in sections.iter().enumerate() {
        for v in m
            .attributes
            .iter()
            .filter(|a| a.key == "ssrc")
            .filter_map(|a| a.value.as_deref())
        {
            let ssrc = v
                .split(' ')
                .next()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| OfferError::Malformed(format!("a=ssrc:{v} has no SSRC")))?;
            if *owner.entry(ssrc).or_insert(index) != index {
                return Err(OfferError::DuplicateSsrc(ssrc));
            }
        }
    }
    Ok(())
}

/// A section's attribute value, else the session's (RFC 8866 §5: session-level attributes
/// are the default of every media section).
fn attribute_value<'a>(
    description: &'a SessionDescription,
    m: &'a MediaDescription,
    key: &str,
) -> Option<&'a str> {
    let find = |attributes: &'a [rtc::sdp::description::common::Attribute]| {
        attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_deref())
    };
    find(&m.attributes).or_else(|| find(&description.attributes))
}

/// `<hash-func> <hex:hex:...>` with a hash we accept and a digest of its length (RFC 8122
/// §5).
fn check_fingerprint(value: &str) -> Result<(), OfferError> {
    let bad = |reason: String| Err(OfferError::Fingerprint(reason));
    let Some((hash, digest)) = value.split_once(' ') else {
        return bad("expected <hash function> <digest>".into());
    };
    let Some(&(_, length)) = FINGERPRINT_HASHES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(hash))
    else {
        return bad(format!(
            "hash function {hash} is not one of sha-1, sha-224, sha-256, sha-384, sha-512"
        ));
    };
    let octets: Vec<&str> = digest.trim().split(':').collect();
    let hex_pair = |o: &&str| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit());
    if octets.len() != length || !octets.iter().all(hex_pair) {
        return bad(format!(
            "a {hash} digest is {length} colon-separated hex octets"
        ));
    }
    Ok(())
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
