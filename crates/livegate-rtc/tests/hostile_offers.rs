//! Malformed and hostile SDP offers (issue 9, "Bad input"): each is refused by
//! `Offer::parse` with a one-line reason, before `rtc` builds anything from it; none panics,
//! and none costs more than a scan of its bytes (the limits are `MAX_*` in `offer.rs`). The
//! same offers sent to a running `RtcServer` are refused there too, and the server answers a
//! good offer afterwards.

use std::time::{Duration, Instant};

use livegate_rtc::{
    AcceptError, Offer, OfferError, RtcConfig, RtcServer, SessionRole, MAX_CANDIDATES, MAX_LINES,
    MAX_LINE_BYTES, MAX_MEDIA_SECTIONS,
};

const FINGERPRINT: &str = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// A publisher's offer as OBS sends it: audio and video, bundled, sendonly.
fn good() -> String {
    format!(
        "v=0\r\no=rtc 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ssrc:1 cname:obs\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:{FINGERPRINT}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=ssrc:2 cname:obs\r\na=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:{FINGERPRINT}\r\n"
    )
}

/// The session part of [`good`] without its BUNDLE group, for offers built section by section.
const SESSION: &str = "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

fn video_section(mid: usize) -> String {
    format!(
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=rtpmap:96 H264/90000\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:{FINGERPRINT}\r\n"
    )
}

/// `good()` with its first occurrence of `from` replaced.
fn edit(from: &str, to: &str) -> String {
    let offer = good();
    assert!(offer.contains(from), "{from:?} is not in the good offer");
    offer.replacen(from, to, 1)
}

/// `good()` with every occurrence of `from` replaced.
fn edit_all(from: &str, to: &str) -> String {
    let offer = good();
    assert!(offer.contains(from), "{from:?} is not in the good offer");
    offer.replace(from, to)
}

/// `good()` with `lines` inserted after the video section's `a=mid:1`.
fn with_lines(line: &str, count: usize) -> String {
    edit("a=mid:1\r\n", &format!("a=mid:1\r\n{}", line.repeat(count)))
}

/// Each case: a name, the offer, and the start of the reason it must be refused with.
fn cases() -> Vec<(&'static str, String, String)> {
    let candidate = "a=candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host\r\n";
    let junk: String = (0u8..=255).map(char::from).collect();
    let many_sections = |n: usize| {
        let mut offer = SESSION.to_owned();
        for mid in 0..n {
            offer.push_str(&video_section(mid));
        }
        offer
    };
    let c = |name, offer: String, reason: &str| (name, offer, reason.to_owned());
    vec![
        c("empty", String::new(), "malformed SDP"),
        c("plain text", "hello, gateway".into(), "malformed SDP"),
        c("JSON", r#"{"type":"offer","sdp":"v=0"}"#.into(), "malformed SDP"),
        c("HTML", "<html><body>v=0</body></html>".into(), "malformed SDP"),
        c("binary junk", junk, "SDP line 1 contains a control character"),
        c("NUL in a line", edit("s=-", "s=-\0x"), "SDP line 3 contains a control character"),
        c("bare CR in a line", edit("s=-", "s=a\rb"), "SDP line 3 contains a control character"),
        c("no v= line", edit("v=0\r\n", ""), "malformed SDP"),
        c("bad m= port", edit("m=video 9 ", "m=video nine "), "malformed SDP"),
        c("session only", SESSION.into(), "offer has no audio or video media section"),
        c(
            "data channel only",
            format!("{SESSION}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n"),
            "offer has no audio or video media section",
        ),
        c(
            "one section too many",
            many_sections(MAX_MEDIA_SECTIONS + 1),
            &format!("offer has {} media sections", MAX_MEDIA_SECTIONS + 1),
        ),
        c("3000 m-lines", "m=video 9 RTP/AVP 96\r\n".repeat(3000), "offer has 3000 media sections"),
        c(
            "one candidate too many",
            with_lines(candidate, MAX_CANDIDATES + 1),
            &format!("offer has {} candidates", MAX_CANDIDATES + 1),
        ),
        c("5000 candidates", with_lines(candidate, 5000), "offer has 5000 candidates"),
        c(
            "3000 attribute lines",
            with_lines("a=rtcp-fb:96 nack\r\n", 3000),
            &format!("offer has {} lines; at most {MAX_LINES}", 3000 + good().lines().count()),
        ),
        c(
            "huge fmtp value",
            edit("packetization-mode=1", &"x".repeat(100_000)),
            &format!("SDP line 24 is longer than {MAX_LINE_BYTES} bytes"),
        ),
        c(
            "huge session name",
            edit("s=-", &format!("s={}", "n".repeat(MAX_LINE_BYTES))),
            "SDP line 3 is longer than",
        ),
        c(
            "huge candidate",
            with_lines(&format!("a=candidate:1 1 udp 1 192.0.2.1 5 typ host {}\r\n", "e ".repeat(5000)), 1),
            "SDP line 20 is longer than",
        ),
        c("no fingerprint", edit_all(&format!("a=fingerprint:{FINGERPRINT}\r\n"), ""), "bad DTLS fingerprint: media section 1 has no a=fingerprint"),
        c("MD5 fingerprint", edit("sha-256 ", "md5 "), "bad DTLS fingerprint: hash function md5 is not one of"),
        c("unknown hash", edit("sha-256 ", "sha-257 "), "bad DTLS fingerprint: hash function sha-257"),
        c("short digest", edit("00:11:22:33:", ""), "bad DTLS fingerprint: a sha-256 digest is 32"),
        c("non-hex digest", edit("00:11:", "ZZ:11:"), "bad DTLS fingerprint: a sha-256 digest is 32"),
        c("hash without digest", edit(FINGERPRINT, "sha-256"), "bad DTLS fingerprint: expected <hash function> <digest>"),
        c("no ice-ufrag", edit_all("a=ice-ufrag:abcd\r\n", ""), "bad ICE credentials: media section 1 has no a=ice-ufrag"),
        c("no ice-pwd", edit_all("a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", ""), "bad ICE credentials: media section 1 has no a=ice-pwd"),
        c("short ice-pwd", edit_all("abcdefghijklmnopqrstuvwx", "short"), "bad ICE credentials: a=ice-pwd must be 22 to 256"),
        c("ice-ufrag with a bad character", edit_all("a=ice-ufrag:abcd", "a=ice-ufrag:ab;d"), "bad ICE credentials: a=ice-ufrag must be 4 to 256"),
        c("setup holdconn", edit_all("a=setup:actpass", "a=setup:holdconn"), "bad DTLS setup: a=setup:holdconn is not"),
        c("setup nonsense", edit_all("a=setup:actpass", "a=setup:both"), "bad DTLS setup: a=setup:both is not"),
        c(
            "DTLS role conflict",
            edit("a=setup:actpass", "a=setup:active").replacen("a=setup:actpass", "a=setup:passive", 1),
            "bad DTLS setup: media sections ask for both active and passive",
        ),
        c("duplicate SSRC", edit("a=ssrc:2 ", "a=ssrc:1 "), "SSRC 1 appears in more than one media section"),
        c("SSRC not a number", edit("a=ssrc:2 ", "a=ssrc:two "), "malformed SDP: a=ssrc:two"),
        c("BUNDLE names an absent mid", edit("BUNDLE 0 1", "BUNDLE 0 1 7"), "bad mid or BUNDLE group: BUNDLE names mid 7"),
        c("duplicate mid", edit("a=mid:1", "a=mid:0"), "bad mid or BUNDLE group: mid 0 is used twice"),
    ]
}

#[test]
fn every_hostile_offer_is_refused_with_its_reason() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let good = good();
    Offer::parse(&good).expect("the good offer parses");
    for (name, offer, reason) in cases {
        let started = Instant::now();
        let error = match Offer::parse(&offer) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        let text = error.to_string();
        assert!(
            text.starts_with(&reason),
            "{name}: {text:?} does not start with {reason:?}"
        );
        assert!(
            !text.contains('\n'),
            "{name}: reason is not one line: {text:?}"
        );
        // A scan of at most a few hundred KiB: far below this unless something is quadratic.
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
}

/// RFC 8866 §5: a parser should accept lines ending in a bare LF, and mixing them is still
/// the same offer.
#[test]
fn line_endings_lf_and_mixed_parse_like_crlf() {
    let crlf = Offer::parse(&good()).unwrap();
    let lf = good().replace("\r\n", "\n");
    assert_eq!(Offer::parse(&lf).unwrap(), crlf);
    let mixed: String = good()
        .split_inclusive("\r\n")
        .enumerate()
        .map(|(i, line)| {
            if i % 2 == 0 {
                line.replace("\r\n", "\n")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(Offer::parse(&mixed).unwrap(), crlf);
}

#[test]
fn limits_are_inclusive() {
    let candidate = "a=candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host\r\n";
    assert!(Offer::parse(&with_lines(candidate, MAX_CANDIDATES)).is_ok());
    let mut sections = SESSION.to_owned();
    for mid in 0..MAX_MEDIA_SECTIONS {
        sections.push_str(&video_section(mid));
    }
    assert!(Offer::parse(&sections).is_ok());
    let long = format!("s={}", "n".repeat(MAX_LINE_BYTES - 2));
    assert!(Offer::parse(&edit("s=-", &long)).is_ok());
}

/// Offers that parse but that a receiving peer connection cannot use, and every hostile
/// offer, sent to a running server: each is an error, not a panic, and the server still
/// answers a good offer afterwards.
#[tokio::test]
async fn a_running_server_refuses_them_and_keeps_serving() {
    let server = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let unusable = [
        (
            "unsupported codecs only",
            edit("opus/48000/2", "PCMU/8000").replace("H264/90000", "VP8/90000"),
        ),
        (
            "absurd clock rate",
            edit_all("H264/90000", "H264/99999999999").replace("opus/48000/2", "opus/0/2"),
        ),
        (
            "thousand payload types",
            edit(
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                &format!(
                    "m=video 9 UDP/TLS/RTP/SAVPF {}",
                    "97 ".repeat(1000).trim_end()
                ),
            )
            .replace("opus/48000/2", "PCMU/8000"),
        ),
    ];
    for (name, offer) in unusable {
        match server.accept(offer, SessionRole::Receive).await {
            Err(AcceptError::Offer(OfferError::NoUsableCodec(_))) => {}
            other => panic!("{name}: {:?}", other.map(|a| a.answer)),
        }
    }
    for (name, offer, _) in cases() {
        match server.accept(offer, SessionRole::Receive).await {
            Err(AcceptError::Offer(_)) => {}
            other => panic!("{name}: {:?}", other.map(|a| a.answer)),
        }
    }
    let accepted = server.accept(good(), SessionRole::Receive).await.unwrap();
    assert!(accepted.answer.starts_with("v=0"));
    server.shutdown().await;
}
