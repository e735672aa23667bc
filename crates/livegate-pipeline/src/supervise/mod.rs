//! What every supervised worker shares, whatever it runs: the restart budget, the stuck
//! watchdog and status sampling ([`monitor`]), frame latency ([`latency`]) and the
//! per-stream status board ([`status`]).

pub mod latency;
pub mod metrics;
pub mod monitor;
pub mod oversight;
pub mod status;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// At most `max` restarts within any `window`: a worker that keeps dying or sticking is a
/// broken worker, and restarting it forever would only hide that from the operator.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    /// Times of the restarts still inside the window, oldest first.
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(max: u32, window: Duration) -> RestartBudget {
        RestartBudget {
            max,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the budget allows it; `false` means the worker must be
    /// given up.
    pub fn try_restart(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Why the worker was given up, for logs and the status page.
    pub fn exhausted_reason(&self) -> String {
        format!(
            "the worker needed more than {} restarts within {}",
            self.max,
            humanize(self.window)
        )
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_beyond_the_budget_within_the_window_are_refused() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(2, Duration::from_secs(10));
        assert!(budget.try_restart(start));
        assert!(budget.try_restart(start + Duration::from_secs(1)));
        assert!(!budget.try_restart(start + Duration::from_secs(2)));
        // The first restart leaves the window: one more is allowed, then none again.
        assert!(budget.try_restart(start + Duration::from_secs(10)));
        assert!(!budget.try_restart(start + Duration::from_secs(10)));
        assert_eq!(
            budget.exhausted_reason(),
            "the worker needed more than 2 restarts within 10s"
        );
    }

    #[test]
    fn a_zero_budget_refuses_the_first_restart() {
        let mut budget = RestartBudget::new(0, Duration::from_secs(1));
        assert!(!budget.try_restart(Instant::now()));
    }
}
