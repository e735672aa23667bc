//! The checks a WHIP/WHEP offer goes through before any peer connection exists
//! (`livegate_rtc::Offer::parse`) on arbitrary text: an accepted offer has audio or video.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_rtc::{MediaKind, Offer};

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    if let Ok(offer) = Offer::parse(&sdp) {
        assert!(offer
            .media
            .iter()
            .any(|m| matches!(m.kind, MediaKind::Audio | MediaKind::Video)));
        for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Application] {
            let _ = offer.sends_and_receives(kind);
        }
        let _ = offer.has_data_channel();
    }
});
