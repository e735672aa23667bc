//! Bitrates from cumulative byte counters.

use std::time::{Duration, Instant};

/// Turns a cumulative byte counter (the sum over every layer and track of a direction) into
/// a bitrate, once per interval.
///
/// The counter is summed by the caller before it gets here, so simulcast layers add up
/// instead of being rated one by one; and a counter that goes backwards (a layer or track
/// replaced, its stats restarting) yields zero for that interval, never a negative rate.
#[derive(Debug, Clone, Default)]
pub struct BitrateMeter {
    last: Option<(Instant, u64)>,
    bits_per_second: u64,
}

impl BitrateMeter {
    /// Shortest interval a new rate is computed over; calls in between keep the last rate so
    /// a burst of stats requests cannot produce noise.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

    /// Records the counter's value at `now` and returns the current rate in bits per second.
    pub fn update(&mut self, now: Instant, total_bytes: u64) -> u64 {
        match self.last {
            None => self.last = Some((now, total_bytes)),
            Some((at, bytes)) => {
                let elapsed = now.saturating_duration_since(at);
                if elapsed >= Self::MIN_INTERVAL {
                    let delta = total_bytes.saturating_sub(bytes);
                    self.bits_per_second = (delta as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
                    self.last = Some((now, total_bytes));
                }
            }
        }
        self.bits_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_interval_and_clamps_a_counter_that_goes_backwards() {
        let t0 = Instant::now();
        let mut meter = BitrateMeter::default();
        assert_eq!(meter.update(t0, 1_000), 0);
        // Too soon: the previous rate stands.
        assert_eq!(meter.update(t0 + Duration::from_millis(100), 5_000), 0);
        assert_eq!(
            meter.update(t0 + Duration::from_secs(1), 251_000),
            2_000_000
        );
        // A replaced layer restarted its counter: zero, not negative, then normal again.
        assert_eq!(meter.update(t0 + Duration::from_secs(2), 10_000), 0);
        assert_eq!(
            meter.update(t0 + Duration::from_secs(3), 135_000),
            1_000_000
        );
    }
}
