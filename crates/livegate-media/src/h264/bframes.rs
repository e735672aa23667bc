//! B-frames: pictures decoded before they are shown (PTS ≠ DTS). WebRTC's H.264 profile for
//! browsers expects none, so the gateway warns once per stream and counts them.

use crate::access_unit::Pts90k;

/// Watches one video track's (PTS, DTS) pairs.
#[derive(Debug, Default, Clone)]
pub struct BFrameDetector {
    reordered_frames: u64,
    warned: bool,
}

impl BFrameDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one access unit; returns whether it is reordered (PTS ≠ DTS).
    pub fn observe(&mut self, pts: Pts90k, dts: Option<Pts90k>) -> bool {
        let reordered = dts.is_some_and(|dts| dts != pts);
        if reordered {
            self.reordered_frames += 1;
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    "H.264 stream has B-frames (PTS != DTS); WebRTC players may stutter. \
                     Encode without B-frames (x264: -bf 0)"
                );
            }
        }
        reordered
    }

    pub fn has_b_frames(&self) -> bool {
        self.reordered_frames > 0
    }

    /// Access units seen with PTS ≠ DTS, for a metric.
    pub fn reordered_frames(&self) -> u64 {
        self.reordered_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_only_reordered_frames() {
        let mut detector = BFrameDetector::new();
        assert!(!detector.observe(Pts90k::new(3_000), None));
        assert!(!detector.observe(Pts90k::new(6_000), Some(Pts90k::new(6_000))));
        assert!(!detector.has_b_frames());
        assert!(detector.observe(Pts90k::new(12_000), Some(Pts90k::new(9_000))));
        assert!(detector.observe(Pts90k::new(9_000), Some(Pts90k::new(6_000))));
        assert_eq!(detector.reordered_frames(), 2);
        assert!(detector.has_b_frames());
    }
}
