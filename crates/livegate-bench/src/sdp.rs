//! Line-level SDP edits a client makes around its peer connection: dropping candidates
//! from an offer, keeping only loopback candidates of an answer, and reading which media
//! the answer will send. Not an SDP parser: lines are matched by their RFC 8866 type prefix.

use std::net::IpAddr;

/// The offer without `a=candidate` / `a=end-of-candidates` lines (RFC 8839 §5.1, §5.2).
pub(crate) fn without_candidates(sdp: &str) -> String {
    keep_lines(sdp, |line| {
        !line.starts_with("a=candidate:") && !line.starts_with("a=end-of-candidates")
    })
}

/// The answer with only the candidates whose connection-address is a loopback IP (RFC 8839
/// §5.1 grammar: `candidate:foundation component transport priority address port typ …`),
/// and how many were removed. FQDN and mDNS (`*.local`) addresses are removed too.
pub(crate) fn loopback_candidates_only(sdp: &str) -> (String, usize) {
    let mut removed = 0;
    let kept = keep_lines(sdp, |line| {
        let Some(candidate) = line.strip_prefix("a=candidate:") else {
            return true;
        };
        let loopback = candidate
            .split_ascii_whitespace()
            .nth(4)
            .and_then(|address| address.parse::<IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback());
        removed += usize::from(!loopback);
        loopback
    });
    (kept, removed)
}

/// Whether the answer will send media of `kind` (`video`, `audio`): an `m=` section of that
/// kind with a non-zero port whose direction is `sendonly` or `sendrecv` (the default,
/// RFC 8866 §6.7).
pub(crate) fn answer_sends(sdp: &str, kind: &str) -> bool {
    let mut in_section = false;
    let mut sends = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            if in_section && sends {
                return true;
            }
            let mut fields = media.split_ascii_whitespace();
            in_section = fields.next() == Some(kind) && fields.next() != Some("0");
            sends = true;
        } else if in_section {
            match line.trim_end() {
                "a=recvonly" | "a=inactive" => sends = false,
                _ => {}
            }
        }
    }
    in_section && sends
}

/// The answer to apply: with `loopback_only`, its loopback candidates only (see
/// [`loopback_candidates_only`]); returns it and how many candidates were removed.
pub(crate) fn answer_to_apply(answer: &str, loopback_only: bool) -> (String, usize) {
    if loopback_only {
        loopback_candidates_only(answer)
    } else {
        (answer.to_owned(), 0)
    }
}

fn keep_lines(sdp: &str, mut keep: impl FnMut(&str) -> bool) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if keep(line.trim_end_matches(['\r', '\n'])) {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\n\
        o=- 1 1 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 7291 typ host\r\n\
        a=candidate:2 1 udp 2130706431 203.0.113.7 7291 typ host\r\n\
        a=candidate:3 1 udp 2130706431 ::1 7291 typ host\r\n\
        a=candidate:4 1 udp 2130706431 abc.local 7291 typ host\r\n\
        a=end-of-candidates\r\n\
        a=sendonly\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=inactive\r\n";

    #[test]
    fn answer_keeps_only_loopback_candidates() {
        let (kept, removed) = loopback_candidates_only(ANSWER);
        assert_eq!(removed, 2);
        assert!(kept.contains("127.0.0.1 7291"));
        assert!(kept.contains(" ::1 7291"));
        assert!(!kept.contains("203.0.113.7"));
        assert!(!kept.contains("abc.local"));
        assert!(
            kept.contains("a=end-of-candidates\r\n"),
            "other lines untouched"
        );
        assert_eq!(kept.lines().count(), ANSWER.lines().count() - 2);
    }

    #[test]
    fn offer_without_candidates_keeps_everything_else() {
        let stripped = without_candidates(ANSWER);
        assert!(!stripped.contains("a=candidate"));
        assert!(!stripped.contains("end-of-candidates"));
        assert!(stripped.ends_with("a=inactive\r\n"));
        assert!(stripped.contains("m=audio 9"));
    }

    #[test]
    fn which_kinds_the_answer_sends() {
        assert!(answer_sends(ANSWER, "video"));
        assert!(!answer_sends(ANSWER, "audio"), "inactive");
        let rejected = "m=video 0 UDP/TLS/RTP/SAVPF 102\r\na=sendonly\r\nm=audio 9 X 111\r\n";
        assert!(
            !answer_sends(rejected, "video"),
            "port 0 rejects the section"
        );
        assert!(
            answer_sends(rejected, "audio"),
            "no direction attribute means sendrecv"
        );
        assert!(!answer_sends(rejected, "application"));
    }
}
