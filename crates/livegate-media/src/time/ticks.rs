//! Time on the continuous 90 kHz timeline: what an unwrapped PTS or a session's output time
//! is measured in.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Ticks of the 90 kHz MPEG-TS system clock (ISO/IEC 13818-1 §2.4.3.7) on a continuous,
/// signed 64-bit timeline that never wraps in practice (2^63 ticks is over three million
/// years).
///
/// Unlike [`crate::Pts90k`] it has no 33-bit wrap, so plain arithmetic and comparison are
/// meaningful. It is produced by [`crate::time::PtsUnwrapper`] (source time) and
/// [`crate::time::Timeline`] (output time), and consumed by [`crate::time::RtpClock`].
///
/// ```
/// use std::time::Duration;
/// use livegate_media::time::Ticks90k;
/// assert_eq!(Ticks90k::from_duration(Duration::from_millis(20)), Ticks90k(1_800));
/// assert_eq!(Ticks90k(3_000) - Ticks90k(1_000), Ticks90k(2_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks90k(pub i64);

impl Ticks90k {
    /// Ticks per second.
    pub const HZ: i64 = 90_000;

    /// `duration` in ticks, rounded down; saturates at [`i64::MAX`] ticks.
    pub fn from_duration(duration: Duration) -> Ticks90k {
        let ticks = duration.as_nanos() * Self::HZ as u128 / 1_000_000_000;
        Ticks90k(i64::try_from(ticks).unwrap_or(i64::MAX))
    }
}

impl Add for Ticks90k {
    type Output = Ticks90k;

    fn add(self, rhs: Ticks90k) -> Ticks90k {
        Ticks90k(self.0 + rhs.0)
    }
}

impl Sub for Ticks90k {
    type Output = Ticks90k;

    fn sub(self, rhs: Ticks90k) -> Ticks90k {
        Ticks90k(self.0 - rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_duration_rounds_down_and_saturates() {
        // 1/90000 s is 11111.1 ns: one nanosecond short of a tick is still zero ticks.
        assert_eq!(
            Ticks90k::from_duration(Duration::from_nanos(11_111)),
            Ticks90k(0)
        );
        assert_eq!(
            Ticks90k::from_duration(Duration::from_nanos(11_112)),
            Ticks90k(1)
        );
        assert_eq!(
            Ticks90k::from_duration(Duration::from_secs(3)),
            Ticks90k(270_000)
        );
        assert_eq!(Ticks90k::from_duration(Duration::MAX), Ticks90k(i64::MAX));
    }
}
