//! The trickle-ICE sdpfrag parser (RFC 8840 §9, WHIP/WHEP PATCH bodies) on arbitrary text:
//! what it accepts stays within its bounds and carries only valid ICE credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_rtc::SdpFrag;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    if let Ok(frag) = SdpFrag::parse(&body) {
        assert!(frag.candidates.len() <= 64);
        let ice_chars = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        if let Some(ufrag) = &frag.ice_ufrag {
            assert!((4..=256).contains(&ufrag.len()) && ice_chars(ufrag));
        }
        if let Some(pwd) = &frag.ice_pwd {
            assert!((22..=256).contains(&pwd.len()) && ice_chars(pwd));
        }
        for (_, candidate) in &frag.candidates {
            assert!(candidate.len() <= body.len());
        }
    }
});
