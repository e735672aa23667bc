//! Unwrapping 33-bit PTS values (ISO/IEC 13818-1 §2.4.3.7) into a continuous timeline.
//!
//! This only undoes the wrap of one clock. It cannot tell a wrap from a muxer that restarted
//! its clock; a source change is the caller's to announce ([`crate::time::Timeline`]).

use crate::access_unit::{Pts90k, PTS_WRAP};
use crate::time::Ticks90k;

/// Extends 33-bit PTS values to a continuous 64-bit 90 kHz timeline by picking, for each
/// value, the candidate `pts + k * 2^33` nearest to the previous result.
///
/// A step from one value to the next is followed exactly when it lies in `[-2^32, 2^32)`
/// ticks (13.3 hours either way), so B-frame reordering, a wrap, and a value from just
/// before a wrap arriving just after one all land on the right side. A step of 2^32 or more
/// is indistinguishable from the opposite step modulo 2^33 and is taken as that.
///
/// Plain data, no interior state: one unwrapper per clock, owned by whoever reads that
/// clock's timestamps in order. Tracks of one program share a clock (the PCR), so they can
/// share an unwrapper, as [`crate::time::Timeline`] does.
///
/// ```
/// use livegate_media::{time::{PtsUnwrapper, Ticks90k}, Pts90k, PTS_WRAP};
/// let mut unwrapper = PtsUnwrapper::default();
/// let before = unwrapper.unwrap(Pts90k::new(PTS_WRAP - 10));
/// let after = unwrapper.unwrap(Pts90k::new(5));
/// assert_eq!(after - before, Ticks90k(15));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PtsUnwrapper {
    last: Option<Ticks90k>,
}

impl PtsUnwrapper {
    /// The unwrapped value of `pts`. The first value (and the first after [`reset`]) maps to
    /// its own tick count, in `[0, 2^33)`.
    ///
    /// [`reset`]: PtsUnwrapper::reset
    pub fn unwrap(&mut self, pts: Pts90k) -> Ticks90k {
        let raw = pts.ticks() as i64;
        let unwrapped = match self.last {
            None => raw,
            Some(Ticks90k(last)) => {
                let wrap = PTS_WRAP as i64;
                // Signed distance from `last` to `raw` modulo 2^33, centred on zero.
                let delta = (raw - last).rem_euclid(wrap);
                let delta = if delta >= wrap / 2 {
                    delta - wrap
                } else {
                    delta
                };
                last + delta
            }
        };
        self.last = Some(Ticks90k(unwrapped));
        Ticks90k(unwrapped)
    }

    /// Forgets the history, for a new source whose clock is unrelated to the old one.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// The last unwrapped value, if any since creation or [`PtsUnwrapper::reset`].
    pub fn last(&self) -> Option<Ticks90k> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const WRAP: i64 = PTS_WRAP as i64;

    #[test]
    fn follows_small_backward_steps_and_wraps_in_both_directions() {
        let mut u = PtsUnwrapper::default();
        assert_eq!(
            u.unwrap(Pts90k::new(PTS_WRAP - 3_000)),
            Ticks90k(WRAP - 3_000)
        );
        // B-frame style step back.
        assert_eq!(
            u.unwrap(Pts90k::new(PTS_WRAP - 6_000)),
            Ticks90k(WRAP - 6_000)
        );
        // Forward across the wrap.
        assert_eq!(u.unwrap(Pts90k::new(1_000)), Ticks90k(WRAP + 1_000));
        // A late value from before the wrap stays before it.
        assert_eq!(u.unwrap(Pts90k::new(PTS_WRAP - 500)), Ticks90k(WRAP - 500));
        // And back across again.
        assert_eq!(u.unwrap(Pts90k::new(2_000)), Ticks90k(WRAP + 2_000));
        assert_eq!(u.last(), Some(Ticks90k(WRAP + 2_000)));
        u.reset();
        assert_eq!(u.last(), None);
        assert_eq!(u.unwrap(Pts90k::new(42)), Ticks90k(42));
    }

    #[test]
    fn keeps_counting_wraps() {
        // Ten wraps in steps of a quarter wrap: 40 steps, 10 * 2^33 ticks in all.
        let mut u = PtsUnwrapper::default();
        let mut pts = Pts90k::new(7);
        let first = u.unwrap(pts);
        for _ in 0..40 {
            pts = pts.wrapping_add(PTS_WRAP / 4);
            u.unwrap(pts);
        }
        assert_eq!(u.last().map(|last| last - first), Some(Ticks90k(10 * WRAP)));
    }

    #[test]
    fn steps_at_the_edge_of_the_window() {
        let mut u = PtsUnwrapper::default();
        let start = u.unwrap(Pts90k::new(100));
        // 2^32 - 1 forward is followed...
        let ahead = u.unwrap(Pts90k::new(100 + (1 << 32) - 1));
        assert_eq!(ahead - start, Ticks90k((1 << 32) - 1));
        // ...and so is 2^32 back, but 2^32 forward reads as 2^32 back.
        let back = u.unwrap(Pts90k::new(99));
        assert_eq!(ahead - back, Ticks90k(1 << 32));
        let forward = u.unwrap(Pts90k::new(99 + (1 << 32)));
        assert_eq!(forward - back, Ticks90k(-(1 << 32)));
    }

    proptest! {
        /// PTS increasing in steps below 2^32 from any start: unwrapped differences equal the
        /// true differences, however many wraps the sequence crosses.
        #[test]
        fn increasing_steps_are_followed_exactly(
            start in 0u64..PTS_WRAP,
            steps in proptest::collection::vec(0u64..(1 << 32), 1..200),
        ) {
            let mut u = PtsUnwrapper::default();
            let first = u.unwrap(Pts90k::new(start));
            prop_assert_eq!(first, Ticks90k(start as i64));
            let mut truth = start;
            for step in steps {
                truth += step;
                let got = u.unwrap(Pts90k::new(truth));
                prop_assert_eq!(got - first, Ticks90k((truth - start) as i64));
            }
        }

        /// Steps in either direction within `[-2^32, 2^32)` are followed exactly too.
        #[test]
        fn steps_in_both_directions_are_followed_exactly(
            start in 0u64..PTS_WRAP,
            steps in proptest::collection::vec(-(1i64 << 32)..(1i64 << 32), 1..200),
        ) {
            let mut u = PtsUnwrapper::default();
            let first = u.unwrap(Pts90k::new(start));
            let mut truth = start as i64;
            for step in steps {
                truth += step;
                let got = u.unwrap(Pts90k::new(truth.rem_euclid(WRAP) as u64));
                prop_assert_eq!(got - first, Ticks90k(truth - start as i64));
            }
        }
    }
}
