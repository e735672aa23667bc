//! SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840 §9) as WHIP/WHEP PATCH bodies
//! carry them (RFC 9725 §4.3): ICE credentials, candidates and end-of-candidates.

/// Longest fragment accepted; a real one is a few hundred bytes.
const MAX_FRAGMENT_BYTES: usize = 16 * 1024;
/// Most candidates accepted in one fragment.
const MAX_CANDIDATES: usize = 64;

/// Why a fragment is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpFragError {
    #[error("sdpfrag larger than {MAX_FRAGMENT_BYTES} bytes")]
    TooLarge,
    #[error("sdpfrag has more than {MAX_CANDIDATES} candidates")]
    TooManyCandidates,
    #[error("sdpfrag line {0:?} is not an SDP attribute or media line")]
    BadLine(String),
    #[error("ice-ufrag must be 4 to 256 ICE characters (RFC 8839 §5.4)")]
    BadUfrag,
    #[error("ice-pwd must be 22 to 256 ICE characters (RFC 8839 §5.4)")]
    BadPwd,
}

/// A parsed fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpFrag {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    /// `(mid, candidate attribute value)` in order; the mid is the one of the `a=mid` that
    /// precedes the candidate, if any.
    pub candidates: Vec<(Option<String>, String)>,
    pub end_of_candidates: bool,
}

/// ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4).
fn is_ice_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl SdpFrag {
    pub fn parse(body: &str) -> Result<SdpFrag, SdpFragError> {
        if body.len() > MAX_FRAGMENT_BYTES {
            return Err(SdpFragError::TooLarge);
        }
        let mut frag = SdpFrag::default();
        let mut mid = None;
        for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some((kind, value)) = line.split_once('=') else {
                return Err(SdpFragError::BadLine(line.chars().take(80).collect()));
            };
            match kind {
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    match name {
                        "ice-ufrag" => {
                            if !(4..=256).contains(&arg.len()) || !is_ice_chars(arg) {
                                return Err(SdpFragError::BadUfrag);
                            }
                            frag.ice_ufrag = Some(arg.to_owned());
                        }
                        "ice-pwd" => {
                            if !(22..=256).contains(&arg.len()) || !is_ice_chars(arg) {
                                return Err(SdpFragError::BadPwd);
                            }
                            frag.ice_pwd = Some(arg.to_owned());
                        }
                        "mid" => mid = Some(arg.to_owned()),
                        "candidate" => {
                            if frag.candidates.len() == MAX_CANDIDATES {
                                return Err(SdpFragError::TooManyCandidates);
                            }
                            frag.candidates.push((mid.clone(), arg.to_owned()));
                        }
                        "end-of-candidates" => frag.end_of_candidates = true,
                        // ice-options, group and friends carry nothing we act on.
                        _ => {}
                    }
                }
                "m" => mid = None,
                _ => return Err(SdpFragError::BadLine(line.chars().take(80).collect())),
            }
        }
        Ok(frag)
    }

    /// Whether the fragment asks for an ICE restart: it carries new credentials.
    pub fn has_credentials(&self) -> bool {
        self.ice_ufrag.is_some() && self.ice_pwd.is_some()
    }
}

/// Rewrites an offer for an ICE restart: new credentials, the fragment's candidates in place
/// of the old ones, and a bumped session version (RFC 8829 §5.2.2).
pub(crate) fn restarted_offer(offer: &str, frag: &SdpFrag) -> String {
    let (ufrag, pwd) = (
        frag.ice_ufrag.as_deref().unwrap_or_default(),
        frag.ice_pwd.as_deref().unwrap_or_default(),
    );
    let mut out = String::with_capacity(offer.len() + 256);
    let mut first_section_done = false;
    let mut in_media = false;
    for line in offer.lines() {
        if line.starts_with("a=candidate:") || line.starts_with("a=end-of-candidates") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("o=") {
            // o=<username> <sess-id> <sess-version> ...
            let mut fields: Vec<String> = rest.split(' ').map(str::to_owned).collect();
            if let Some(version) = fields.get_mut(2) {
                *version = version
                    .parse::<u64>()
                    .map_or_else(|_| "1".into(), |v| (v + 1).to_string());
            }
            out.push_str("o=");
            out.push_str(&fields.join(" "));
        } else if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            if line.starts_with("m=") {
                if in_media {
                    first_section_done = true;
                }
                in_media = true;
            }
            out.push_str(line);
        }
        out.push_str("\r\n");
        // With BUNDLE every candidate belongs to the first media section.
        if in_media && !first_section_done && line.starts_with("a=mid:") {
            for (_, candidate) in &frag.candidates {
                out.push_str("a=candidate:");
                out.push_str(candidate);
                out.push_str("\r\n");
            }
        }
    }
    out
}

/// The answer fragment of an ICE restart: our new credentials and candidates.
pub(crate) fn answer_fragment(answer: &str) -> String {
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in answer.lines() {
        let keep = line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=candidate:")
            || line.starts_with("a=end-of-candidates");
        if keep && seen.insert(line.to_owned()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_trickle_fragment_and_a_restart_fragment() {
        let frag = SdpFrag::parse(
            "a=ice-options:trickle ice2\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n",
        )
        .unwrap();
        assert_eq!(frag.candidates.len(), 1);
        assert_eq!(frag.candidates[0].0.as_deref(), Some("0"));
        assert!(frag.end_of_candidates);
        assert!(!frag.has_credentials());

        let restart =
            SdpFrag::parse("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n").unwrap();
        assert!(restart.has_credentials());
    }

    #[test]
    fn refuses_hostile_fragments() {
        assert_eq!(
            SdpFrag::parse("hello"),
            Err(SdpFragError::BadLine("hello".into()))
        );
        assert_eq!(
            SdpFrag::parse("a=ice-ufrag:ab"),
            Err(SdpFragError::BadUfrag)
        );
        assert_eq!(SdpFrag::parse("a=ice-pwd:short"), Err(SdpFragError::BadPwd));
        assert_eq!(
            SdpFrag::parse(&"a=candidate:1 1 udp 1 127.0.0.1 1 typ host\r\n".repeat(65)),
            Err(SdpFragError::TooManyCandidates)
        );
        assert_eq!(
            SdpFrag::parse(&"a".repeat(20_000)),
            Err(SdpFragError::TooLarge)
        );
    }

    #[test]
    fn a_restarted_offer_has_new_credentials_and_only_the_new_candidates() {
        let offer =
            "v=0\r\no=- 42 7 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 X 96\r\na=mid:0\r\n\
                     a=ice-ufrag:old1\r\na=ice-pwd:oldoldoldoldoldoldoldold\r\n\
                     a=candidate:9 1 udp 1 10.0.0.1 9 typ host\r\nm=audio 9 X 111\r\na=mid:1\r\n";
        let frag = SdpFrag {
            ice_ufrag: Some("new1".into()),
            ice_pwd: Some("newnewnewnewnewnewnewnew".into()),
            candidates: vec![(None, "1 1 udp 5 127.0.0.1 7 typ host".into())],
            end_of_candidates: false,
        };
        let restarted = restarted_offer(offer, &frag);
        assert!(restarted.contains("o=- 42 8 IN IP4"));
        assert!(restarted.contains("a=ice-ufrag:new1\r\n"));
        assert!(!restarted.contains("old"));
        assert_eq!(restarted.matches("a=candidate:").count(), 1);
        assert!(restarted.contains("a=mid:0\r\na=candidate:1 1 udp 5 127.0.0.1 7 typ host\r\n"));
    }
}
