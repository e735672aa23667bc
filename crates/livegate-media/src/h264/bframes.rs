//! Noticing B-frames: pictures decoded before they are shown, which an MPEG-TS stream reveals
//! as a DTS different from the PTS (ISO/IEC 13818-1 §2.4.3.7). WebRTC carries no decoding
//! timestamps and browsers decode H.264 for real-time use without reordering delay, so
//! B-frames show up as stutter. The gateway cannot fix that without re-encoding; it says so
//! once and counts, so an operator can tell the publisher to encode without them.
//!
//! Detection only: nothing here reorders or drops frames.

use crate::access_unit::Pts90k;

/// Watches the timestamps of one video track for reordered pictures.
///
/// The warning is logged at most once per detector (one detector per stream), inside the
/// caller's span, which should name the stream. The count is a plain number for the metrics
/// layer to read or to mirror by adding one whenever [`observe`](Self::observe) returns
/// `true`.
///
/// ```
/// use livegate_media::h264::BFrameDetector;
/// use livegate_media::Pts90k;
///
/// let mut detector = BFrameDetector::new();
/// // I P B B: the P picture is decoded (DTS) before it is shown (PTS).
/// assert!(detector.observe(Pts90k::new(9_000), Some(Pts90k::new(3_000))));
/// assert!(detector.has_b_frames());
/// ```
#[derive(Debug, Default, Clone)]
pub struct BFrameDetector {
    reordered_access_units: u64,
}

impl BFrameDetector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one video access unit; returns whether it is reordered (it has a DTS and the
    /// DTS differs from its PTS). Muxers omit the DTS when it equals the PTS
    /// (ISO/IEC 13818-1 §2.4.3.7, `PTS_DTS_flags` = '10'), so `None` means not reordered.
    pub fn observe(&mut self, pts: Pts90k, dts: Option<Pts90k>) -> bool {
        let reordered = dts.is_some_and(|dts| dts != pts);
        if reordered {
            if self.reordered_access_units == 0 {
                tracing::warn!(
                    pts_90k = pts.ticks(),
                    dts_90k = dts.map(Pts90k::ticks),
                    "H.264 stream has B-frames (PTS != DTS); WebRTC players may stutter. \
                     Encode without B-frames (x264: -bf 0, OBS: bframes=0)"
                );
            }
            self.reordered_access_units += 1;
        }
        reordered
    }

    /// Whether any access unit so far was reordered.
    pub fn has_b_frames(&self) -> bool {
        self.reordered_access_units > 0
    }

    /// Number of access units seen with PTS ≠ DTS.
    pub fn reordered_access_units(&self) -> u64 {
        self.reordered_access_units
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::*;
    use crate::h264::fixtures::video_access_units;

    fn detect(name: &str) -> (BFrameDetector, usize) {
        let aus = video_access_units(name);
        let mut detector = BFrameDetector::new();
        for au in &aus {
            detector.observe(au.pts, au.dts);
        }
        (detector, aus.len())
    }

    #[test]
    fn fixtures_with_and_without_b_frames() {
        for name in ["h264-baseline-opus.ts", "h264-high-opus.ts", "pts-wrap.ts"] {
            let (detector, _) = detect(name);
            assert!(!detector.has_b_frames(), "{name}");
            assert_eq!(detector.reordered_access_units(), 0, "{name}");
        }
        let (detector, total) = detect("h264-bframes-opus.ts");
        assert!(detector.has_b_frames());
        // ffmpeg shifts every DTS back by the reorder delay (ffprobe: first picture pts=132000
        // dts=126000), so no access unit of this fixture has PTS = DTS.
        assert_eq!(detector.reordered_access_units(), total as u64);
    }

    #[test]
    fn equal_or_missing_dts_is_not_reordering() {
        let mut detector = BFrameDetector::new();
        assert!(!detector.observe(Pts90k::new(3_000), None));
        assert!(!detector.observe(Pts90k::new(6_000), Some(Pts90k::new(6_000))));
        assert!(!detector.has_b_frames());
        assert!(detector.observe(Pts90k::new(12_000), Some(Pts90k::new(9_000))));
        assert!(detector.observe(Pts90k::new(9_000), Some(Pts90k::new(12_000))));
        assert!(!detector.observe(Pts90k::new(15_000), None));
        assert_eq!(detector.reordered_access_units(), 2);
    }

    /// Counts WARN events.
    struct WarnCounter(Arc<AtomicUsize>);

    impl Subscriber for WarnCounter {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn warns_once_per_stream() {
        let warnings = Arc::new(AtomicUsize::new(0));
        let aus = video_access_units("h264-bframes-opus.ts");
        tracing::subscriber::with_default(WarnCounter(warnings.clone()), || {
            let mut detector = BFrameDetector::new();
            for au in &aus {
                detector.observe(au.pts, au.dts);
            }
            assert!(detector.reordered_access_units() > 1);
        });
        assert_eq!(warnings.load(Ordering::Relaxed), 1);
    }
}
