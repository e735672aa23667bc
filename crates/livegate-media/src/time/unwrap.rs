//! Unwrapping 33-bit PTS values (ISO/IEC 13818-1 §2.4.3.7) into a continuous timeline.

use crate::access_unit::{Pts90k, PTS_WRAP};

/// Extends 33-bit PTS values to a continuous signed 64-bit 90 kHz timeline by picking, for
/// each value, the candidate `pts + k * 2^33` nearest to the previous result. Steps of less
/// than 2^32 ticks (13 hours) in either direction are followed exactly, so B-frame
/// reordering and a timestamp from just before a wrap arriving just after one both land on
/// the right side.
///
/// ```
/// use livegate_media::{time::PtsUnwrapper, Pts90k, PTS_WRAP};
/// let mut unwrapper = PtsUnwrapper::default();
/// assert_eq!(unwrapper.unwrap(Pts90k::new(PTS_WRAP - 10)), (PTS_WRAP - 10) as i64);
/// assert_eq!(unwrapper.unwrap(Pts90k::new(5)), (PTS_WRAP + 5) as i64);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PtsUnwrapper {
    last: Option<i64>,
}

impl PtsUnwrapper {
    /// The unwrapped value of `pts`. The first value maps to itself.
    pub fn unwrap(&mut self, pts: Pts90k) -> i64 {
        let raw = pts.ticks() as i64;
        let unwrapped = match self.last {
            None => raw,
            Some(last) => {
                let wrap = PTS_WRAP as i64;
                // Signed distance from `last` to `raw` modulo 2^33, in [-2^32, 2^32).
                let delta = (raw - last).rem_euclid(wrap);
                let delta = if delta >= wrap / 2 {
                    delta - wrap
                } else {
                    delta
                };
                last + delta
            }
        };
        self.last = Some(unwrapped);
        unwrapped
    }

    /// Forgets the history, for a new source whose clock is unrelated to the old one.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The last unwrapped value.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn follows_small_backward_steps_and_wraps_in_both_directions() {
        let mut u = PtsUnwrapper::default();
        let top = (PTS_WRAP - 3_000) as i64;
        assert_eq!(u.unwrap(Pts90k::new(PTS_WRAP - 3_000)), top);
        // B-frame style step back.
        assert_eq!(u.unwrap(Pts90k::new(PTS_WRAP - 6_000)), top - 3_000);
        // Forward across the wrap.
        assert_eq!(u.unwrap(Pts90k::new(1_000)), PTS_WRAP as i64 + 1_000);
        // A late value from before the wrap stays before it.
        assert_eq!(u.unwrap(Pts90k::new(PTS_WRAP - 500)), PTS_WRAP as i64 - 500);
        u.reset();
        assert_eq!(u.unwrap(Pts90k::new(42)), 42);
    }

    proptest! {
        /// For steps below 2^31 in either direction, unwrapped differences equal the true ones.
        #[test]
        fn unwrapped_differences_equal_true_differences(
            start in 0u64..(1 << 40),
            steps in proptest::collection::vec(-(1i64 << 31)..(1i64 << 31), 1..200),
        ) {
            let mut u = PtsUnwrapper::default();
            let mut truth = start as i64;
            let first = u.unwrap(Pts90k::new(start));
            for step in steps {
                truth += step;
                let got = u.unwrap(Pts90k::new(truth.rem_euclid(1 << 40) as u64));
                prop_assert_eq!(got - first, truth - start as i64);
            }
        }
    }
}
