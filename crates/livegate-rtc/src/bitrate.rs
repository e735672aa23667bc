//! Rates over an interval from cumulative counters: bitrate, frame rate and the fraction of
//! packets lost. Not here: the counters themselves (the shard and rtc keep those).

use std::time::{Duration, Instant};

/// Shortest interval a new value is computed over; calls in between keep the last value so a
/// burst of stats requests cannot produce noise.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Turns a cumulative byte counter (the sum over every layer and track of a direction) into
/// a bitrate, once per interval.
///
/// The counter is summed by the caller before it gets here, so simulcast layers add up
/// instead of being rated one by one; and a counter that goes backwards (a layer or track
/// replaced, its stats restarting) yields zero for that interval, never a negative rate.
#[derive(Debug, Clone, Default)]
pub struct BitrateMeter {
    bytes: RateMeter,
}

impl BitrateMeter {
    /// Shortest interval a new rate is computed over; calls in between keep the last rate so
    /// a burst of stats requests cannot produce noise.
    pub const MIN_INTERVAL: Duration = MIN_INTERVAL;

    /// Records the counter's value at `now` and returns the current rate in bits per second.
    pub fn update(&mut self, now: Instant, total_bytes: u64) -> u64 {
        (self.bytes.update(now, total_bytes) * 8.0) as u64
    }
}

/// Events per second of a cumulative counter, with [`BitrateMeter`]'s interval and clamping.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    last: Option<(Instant, u64)>,
    per_second: f64,
}

impl RateMeter {
    /// Records the counter's value at `now` and returns the current rate per second.
    pub(crate) fn update(&mut self, now: Instant, total: u64) -> f64 {
        match self.last {
            None => self.last = Some((now, total)),
            Some((at, before)) => {
                let elapsed = now.saturating_duration_since(at);
                if elapsed >= MIN_INTERVAL {
                    let delta = total.saturating_sub(before);
                    self.per_second = delta as f64 / elapsed.as_secs_f64();
                    self.last = Some((now, total));
                }
            }
        }
        self.per_second
    }
}

/// The fraction of packets lost over the last interval, from cumulative received and lost
/// counts: lost / (lost + received) of the increases, as RFC 3550 §6.4.1 defines the
/// fraction lost of a reception report (expected = received + lost).
///
/// Lost counts that go down (duplicates, RFC 3550 §6.4.1) count as no loss for the interval.
#[derive(Debug, Clone, Default)]
pub(crate) struct LossMeter {
    last: Option<(Instant, u64, i64)>,
    fraction: f64,
}

impl LossMeter {
    /// Records the counters' values at `now` and returns the current fraction, 0 to 1.
    pub(crate) fn update(&mut self, now: Instant, received: u64, lost: i64) -> f64 {
        match self.last {
            None => self.last = Some((now, received, lost)),
            Some((at, received_before, lost_before)) => {
                if now.saturating_duration_since(at) >= MIN_INTERVAL {
                    let newly_received = received.saturating_sub(received_before) as f64;
                    let newly_lost = lost.saturating_sub(lost_before).max(0) as f64;
                    let expected = newly_received + newly_lost;
                    self.fraction = if expected > 0.0 {
                        newly_lost / expected
                    } else {
                        0.0
                    };
                    self.last = Some((now, received, lost));
                }
            }
        }
        self.fraction
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

    #[test]
    fn frame_rate_over_half_a_second() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        assert_eq!(meter.update(t0, 7), 0.0);
        assert_eq!(meter.update(t0 + Duration::from_millis(500), 22), 30.0);
        assert_eq!(meter.update(t0 + Duration::from_millis(600), 90), 30.0);
    }

    #[test]
    fn fraction_lost_of_the_interval_never_negative() {
        let t0 = Instant::now();
        let mut meter = LossMeter::default();
        assert_eq!(meter.update(t0, 1_000, 10), 0.0);
        // 95 received and 5 newly lost: 5 of the 100 expected.
        assert_eq!(meter.update(t0 + Duration::from_secs(1), 1_095, 15), 0.05);
        // Duplicates pulled the cumulative loss down: no loss, not a negative fraction.
        assert_eq!(meter.update(t0 + Duration::from_secs(2), 1_195, 12), 0.0);
        assert_eq!(meter.update(t0 + Duration::from_secs(3), 1_195, 12), 0.0);
    }
}
