//! RTP timestamps (RFC 3550 §5.1) and the per-track clock that produces them.

use crate::access_unit::Codec;

/// A 32-bit RTP timestamp. Compare with [`RtpTimestamp::is_after`], never with `>`: the
/// value wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpTimestamp(pub u32);

impl RtpTimestamp {
    pub fn wrapping_add(self, ticks: u32) -> RtpTimestamp {
        RtpTimestamp(self.0.wrapping_add(ticks))
    }

    /// Signed distance `self - earlier` in ticks, valid while the two are less than 2^31
    /// ticks apart (serial-number arithmetic, RFC 1982).
    pub fn ticks_since(self, earlier: RtpTimestamp) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// Whether `self` comes strictly after `other` in serial-number order.
    pub fn is_after(self, other: RtpTimestamp) -> bool {
        self.ticks_since(other) > 0
    }
}

/// Turns a track's output time (continuous 90 kHz ticks from a [`crate::time::Timeline`])
/// into RTP timestamps at the codec's clock rate, from a random base.
///
/// The conversion works on the 64-bit output time, never on the wrapped 33-bit PTS, so Opus
/// at 48 kHz is exact (`floor(t * 8 / 15)`), has no drift, and does not jump at the 2^33 PTS
/// wrap, where 2^33 × 48000/90000 is not a multiple of 2^32.
#[derive(Debug, Clone)]
pub struct RtpClock {
    codec: Codec,
    base: u32,
}

impl RtpClock {
    /// A clock with a random base (RFC 3550 §5.1: the initial value SHOULD be random).
    pub fn new(codec: Codec) -> RtpClock {
        RtpClock::with_base(codec, rand::random())
    }

    /// A clock with a chosen base, for tests and for continuing an existing RTP stream.
    pub fn with_base(codec: Codec, base: u32) -> RtpClock {
        RtpClock { codec, base }
    }

    pub fn base(&self) -> u32 {
        self.base
    }

    /// The RTP timestamp of output time `ticks_90k`.
    pub fn rtp(&self, ticks_90k: i64) -> RtpTimestamp {
        let ticks = match self.codec {
            Codec::H264 => ticks_90k,
            // 48000/90000 = 8/15; div_euclid floors for negative times too.
            Codec::Opus => (i128::from(ticks_90k) * 8).div_euclid(15) as i64,
        };
        // Truncating to 32 bits is reduction modulo 2^32 (two's complement).
        RtpTimestamp(self.base.wrapping_add(ticks as u32))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::access_unit::{Pts90k, PTS_WRAP};
    use crate::time::PtsUnwrapper;

    #[test]
    fn opus_does_not_jump_at_the_pts_wrap() {
        // 20 ms Opus packets straddling the 33-bit wrap: every RTP step is exactly 960.
        let clock = RtpClock::with_base(Codec::Opus, 0);
        let mut unwrapper = PtsUnwrapper::default();
        let mut previous = None;
        for i in 0..20u64 {
            let pts = Pts90k::new(PTS_WRAP - 10 * 1_800 + i * 1_800);
            let rtp = clock.rtp(unwrapper.unwrap(pts));
            if let Some(previous) = previous {
                assert_eq!(rtp.ticks_since(previous), 960, "packet {i}");
            }
            previous = Some(rtp);
        }
        // The naive conversion of the wrapped value (go-livepeer's) jumps there.
        let naive = |pts: u64| (pts * 48_000 / 90_000) as u32;
        let before = naive(PTS_WRAP - 1_800);
        let after = naive(0);
        assert_ne!(after.wrapping_sub(before), 960);
    }

    #[test]
    fn serial_number_order() {
        assert!(RtpTimestamp(5).is_after(RtpTimestamp(u32::MAX - 5)));
        assert!(!RtpTimestamp(u32::MAX - 5).is_after(RtpTimestamp(5)));
        assert_eq!(RtpTimestamp(3).ticks_since(RtpTimestamp(u32::MAX)), 4);
    }

    proptest! {
        /// Both clocks are exact against a rational reference and monotonic, across the
        /// 2^33 PTS wrap and the 2^32 RTP wrap.
        #[test]
        fn exact_and_monotonic_across_wraps(
            base in any::<u32>(),
            start in (PTS_WRAP - (1 << 24))..PTS_WRAP,
            steps in proptest::collection::vec(1u64..100_000, 1..300),
        ) {
            for codec in [Codec::H264, Codec::Opus] {
                let clock = RtpClock::with_base(codec, base);
                let mut unwrapper = PtsUnwrapper::default();
                let first = unwrapper.unwrap(Pts90k::new(start));
                let mut truth = start;
                let mut previous = clock.rtp(first);
                for &step in &steps {
                    truth += step;
                    let t = unwrapper.unwrap(Pts90k::new(truth));
                    let rtp = clock.rtp(t);
                    let rate = u128::from(codec.rtp_clock_rate());
                    let exact = (u128::from(truth) * rate / 90_000) as u64;
                    prop_assert_eq!(rtp.0, base.wrapping_add(exact as u32));
                    prop_assert!(rtp.ticks_since(previous) >= 0);
                    previous = rtp;
                }
            }
        }
    }
}
