//! How long the exec supervisor waits before restarting a worker that ended while its input
//! was still open: exponential, capped, and forgiven after a healthy run.
//!
//! It is only the policy (pure arithmetic, unit-tested exactly); the supervisor does the
//! waiting on the tokio clock.

use std::time::Duration;

/// Restart delays: `initial`, doubling after each crash up to `max`; a worker that ran at
/// least `healthy_after` before it ended starts the sequence again at `initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A run at least this long resets the delay to `initial`.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to 10 s, reset after 30 s of running.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
        }
    }
}

/// Where a worker's restart sequence stands.
#[derive(Debug, Clone)]
pub(crate) struct BackoffState {
    policy: Backoff,
    next: Duration,
}

impl BackoffState {
    pub(crate) fn new(policy: Backoff) -> BackoffState {
        BackoffState {
            policy,
            next: policy.initial,
        }
    }

    /// The delay before restarting a worker that ran for `ran_for` and ended.
    pub(crate) fn delay_after(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.policy.healthy_after {
            self.next = self.policy.initial;
        }
        let delay = self.next.min(self.policy.max);
        self.next = delay.saturating_mul(2).min(self.policy.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn crashes_double_the_delay_up_to_the_cap() {
        let mut state = BackoffState::new(Backoff::default());
        let delays: Vec<u128> = (0..9).map(|_| state.delay_after(MS).as_millis()).collect();
        assert_eq!(
            delays,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn a_healthy_run_starts_the_sequence_again() {
        let policy = Backoff::default();
        let mut state = BackoffState::new(policy);
        for _ in 0..5 {
            state.delay_after(MS);
        }
        let just_short = policy.healthy_after - MS;
        assert_eq!(state.delay_after(just_short), Duration::from_secs(8));
        assert_eq!(state.delay_after(policy.healthy_after), policy.initial);
        assert_eq!(state.delay_after(MS), policy.initial * 2);
    }

    #[test]
    fn an_initial_delay_above_the_cap_is_capped() {
        let mut state = BackoffState::new(Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(5),
            healthy_after: Duration::from_secs(1),
        });
        assert_eq!(state.delay_after(MS), Duration::from_secs(5));
        assert_eq!(state.delay_after(MS), Duration::from_secs(5));
    }
}
