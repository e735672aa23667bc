//! RTP timestamps (RFC 3550 §5.1) and the per-track clock that produces them from 90 kHz
//! output time.
//!
//! This is only the mapping from one continuous time to one RTP clock. Keeping that time
//! continuous across PTS wraps and source changes is [`crate::time::Timeline`]'s job.

use crate::time::Ticks90k;

/// A 32-bit RTP timestamp (RFC 3550 §5.1). It wraps, so order is serial-number order
/// (RFC 1982): compare with [`RtpTimestamp::is_after`] or [`RtpTimestamp::ticks_since`],
/// never with `>` on the raw value.
///
/// ```
/// use livegate_media::time::RtpTimestamp;
/// let late = RtpTimestamp(u32::MAX).wrapping_add(10);
/// assert_eq!(late, RtpTimestamp(9));
/// assert!(late.is_after(RtpTimestamp(u32::MAX)));
/// assert_eq!(late.ticks_since(RtpTimestamp(u32::MAX)), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpTimestamp(pub u32);

impl RtpTimestamp {
    /// `self + ticks` modulo 2^32.
    pub const fn wrapping_add(self, ticks: u32) -> RtpTimestamp {
        RtpTimestamp(self.0.wrapping_add(ticks))
    }

    /// Signed distance `self - earlier` in ticks of the RTP clock. Meaningful while the two
    /// are less than 2^31 ticks apart (RFC 1982 §3.2 leaves exactly 2^31 undefined; this
    /// returns `i32::MIN` for it).
    pub const fn ticks_since(self, earlier: RtpTimestamp) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// Whether `self` comes strictly after `other` in serial-number order.
    pub const fn is_after(self, other: RtpTimestamp) -> bool {
        self.ticks_since(other) > 0
    }
}

/// One outgoing track's RTP clock: maps output time (continuous 90 kHz ticks from a
/// [`crate::time::Timeline`]) to [`RtpTimestamp`]s at the codec's clock rate, from a base
/// that is random unless chosen.
///
/// The timestamp of output time `t` is `base + floor(t * clock_rate_hz / 90000)` modulo
/// 2^32, computed exactly on the 64-bit `t`. For H.264 (90 kHz, RFC 6184 §8.2.1) that is
/// `base + t`. For Opus (48 kHz, RFC 7587 §4.1) it is `base + floor(t * 8 / 15)`: no rounding
/// error accumulates, every Opus frame (a multiple of 2.5 ms = 225 ticks = 120 samples) spans
/// exactly its sample count, and nothing happens at the 2^33 PTS wrap, because `t` does not
/// wrap there. Converting the wrapped 33-bit PTS instead (as go-livepeer's audio path does)
/// jumps back by `2^33 * 8/15 mod 2^32`, about 286 million samples, at every wrap.
///
/// Immutable and `Copy`: create one per track when the track is negotiated and keep it for
/// the life of the RTP stream (the SSRC); a source change must not touch it, only the
/// timeline feeding it.
///
/// ```
/// use livegate_media::{time::{RtpClock, RtpTimestamp, Ticks90k}, Codec};
/// let opus = RtpClock::with_base(Codec::Opus.rtp_clock_rate(), RtpTimestamp(1_000));
/// // 20 ms of output time is 960 samples at 48 kHz.
/// assert_eq!(opus.timestamp(Ticks90k(1_800)), RtpTimestamp(1_960));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpClock {
    clock_rate_hz: u32,
    base: RtpTimestamp,
}

impl RtpClock {
    /// A clock with a random base (RFC 3550 §5.1: the initial value SHOULD be random).
    ///
    /// # Panics
    /// If `clock_rate_hz` is zero.
    pub fn new(clock_rate_hz: u32) -> RtpClock {
        RtpClock::with_base(clock_rate_hz, RtpTimestamp(rand::random()))
    }

    /// A clock with a chosen base: for tests, and for continuing an RTP stream whose base
    /// is already known.
    ///
    /// # Panics
    /// If `clock_rate_hz` is zero.
    pub fn with_base(clock_rate_hz: u32, base: RtpTimestamp) -> RtpClock {
        assert!(clock_rate_hz > 0, "an RTP clock rate is positive");
        RtpClock {
            clock_rate_hz,
            base,
        }
    }

    /// The RTP clock rate, as announced in the SDP `a=rtpmap` line.
    pub fn clock_rate_hz(&self) -> u32 {
        self.clock_rate_hz
    }

    /// The timestamp of output time zero.
    pub fn base(&self) -> RtpTimestamp {
        self.base
    }

    /// The RTP timestamp of output time `output`.
    pub fn timestamp(&self, output: Ticks90k) -> RtpTimestamp {
        let hz = Ticks90k::HZ;
        let rate = i64::from(self.clock_rate_hz);
        // floor(t * rate / hz) split at whole seconds, so no product overflows i64 except
        // the first, and that one may wrap: only the value modulo 2^32 is kept.
        let seconds = output.0.div_euclid(hz);
        let rest = output.0.rem_euclid(hz);
        let ticks = seconds.wrapping_mul(rate).wrapping_add(rest * rate / hz);
        // Truncation to 32 bits is reduction modulo 2^32 (two's complement).
        self.base.wrapping_add(ticks as u32)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::access_unit::{Codec, Pts90k, PTS_WRAP};
    use crate::time::PtsUnwrapper;

    /// `floor(t * rate / 90000) mod 2^32`, with no shortcuts.
    fn reference(t: i64, rate: u32) -> u32 {
        (i128::from(t) * i128::from(rate)).div_euclid(90_000) as u32
    }

    #[test]
    fn opus_does_not_jump_at_the_pts_wrap() {
        // 20 ms Opus packets straddling the 33-bit wrap, with a base that makes the RTP
        // value wrap nearby too: every step is exactly 960 samples.
        let clock = RtpClock::with_base(48_000, RtpTimestamp(u32::MAX - 5_000));
        let mut unwrapper = PtsUnwrapper::default();
        let mut previous = None;
        for i in 0..20u64 {
            let pts = Pts90k::new(PTS_WRAP - 10 * 1_800 + i * 1_800);
            let rtp = clock.timestamp(unwrapper.unwrap(pts));
            if let Some(previous) = previous {
                assert_eq!(rtp.ticks_since(previous), 960, "packet {i}");
            }
            previous = Some(rtp);
        }
        // Converting the wrapped value instead jumps back by 2^33 * 8/15 mod 2^32 samples.
        let naive = |pts: u64| (pts * 48_000 / 90_000) as u32;
        let step = naive(0).wrapping_sub(naive(PTS_WRAP - 1_800)) as i32;
        let jump_back = ((PTS_WRAP as u128 * 8 / 15) % (1 << 32)) as i32;
        assert_eq!(step, 960 - jump_back);
        assert!(step < -280_000_000);
    }

    #[test]
    fn video_is_the_output_time_plus_the_base() {
        let clock = RtpClock::with_base(Codec::H264.rtp_clock_rate(), RtpTimestamp(10));
        assert_eq!(clock.timestamp(Ticks90k(0)), RtpTimestamp(10));
        assert_eq!(clock.timestamp(Ticks90k(3_000)), RtpTimestamp(3_010));
        assert_eq!(clock.timestamp(Ticks90k(1 << 32)), RtpTimestamp(10));
        assert_eq!(clock.timestamp(Ticks90k(-11)), RtpTimestamp(u32::MAX));
    }

    #[test]
    fn random_bases_differ() {
        // Four equal draws from 2^32 values happen with probability 2^-96.
        let bases: Vec<_> = (0..4).map(|_| RtpClock::new(48_000).base()).collect();
        assert!(bases.windows(2).any(|pair| pair[0] != pair[1]), "{bases:?}");
    }

    #[test]
    #[should_panic(expected = "positive")]
    fn zero_clock_rate_is_refused() {
        RtpClock::new(0);
    }

    #[test]
    fn serial_number_order() {
        assert!(RtpTimestamp(5).is_after(RtpTimestamp(u32::MAX - 5)));
        assert!(!RtpTimestamp(u32::MAX - 5).is_after(RtpTimestamp(5)));
        assert!(!RtpTimestamp(7).is_after(RtpTimestamp(7)));
        assert_eq!(RtpTimestamp(3).ticks_since(RtpTimestamp(u32::MAX)), 4);
        assert_eq!(RtpTimestamp(u32::MAX).ticks_since(RtpTimestamp(3)), -4);
    }

    fn clock_rate() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(90_000),
            Just(48_000),
            1u32..=200_000,
            any::<u32>().prop_map(|r| r.max(1))
        ]
    }

    proptest! {
        /// PTS → unwrap → RTP is exact against the rational reference at every step, and
        /// monotonic in serial-number order, across the 2^33 PTS wrap and the 2^32 RTP wrap.
        #[test]
        fn exact_and_monotonic_across_wraps(
            rate in prop_oneof![Just(90_000u32), Just(48_000u32)],
            base in any::<u32>(),
            start in (PTS_WRAP - (1 << 24))..PTS_WRAP,
            steps in proptest::collection::vec(0u64..100_000, 1..300),
        ) {
            let clock = RtpClock::with_base(rate, RtpTimestamp(base));
            let mut unwrapper = PtsUnwrapper::default();
            let mut truth = start;
            let mut previous = clock.timestamp(unwrapper.unwrap(Pts90k::new(start)));
            for step in steps {
                truth += step;
                let rtp = clock.timestamp(unwrapper.unwrap(Pts90k::new(truth)));
                let exact = u128::from(truth) * u128::from(rate) / 90_000;
                prop_assert_eq!(rtp, RtpTimestamp(base).wrapping_add(exact as u32));
                prop_assert!(rtp.ticks_since(previous) >= 0);
                previous = rtp;
            }
        }

        /// The conversion is exact for any output time and any clock rate, negative times
        /// and products beyond 64 bits included.
        #[test]
        fn exact_for_any_time_and_rate(t in any::<i64>(), rate in clock_rate(), base in any::<u32>()) {
            let clock = RtpClock::with_base(rate, RtpTimestamp(base));
            prop_assert_eq!(clock.timestamp(Ticks90k(t)), RtpTimestamp(base.wrapping_add(reference(t, rate))));
        }

        /// Any Opus frame (120 samples × n, 225 ticks × n) spans exactly its sample count,
        /// wherever on the timeline it starts.
        #[test]
        fn opus_frames_span_their_sample_count(t in any::<i64>(), frames in 0i64..=48) {
            let clock = RtpClock::with_base(48_000, RtpTimestamp(0));
            let t = t / 2;
            let span = clock.timestamp(Ticks90k(t + 225 * frames)).ticks_since(clock.timestamp(Ticks90k(t)));
            prop_assert_eq!(i64::from(span), 120 * frames);
        }
    }
}
