//! A cap on peer connections shared by several [`crate::RtcServer`]s: the gateway's WHIP
//! and WHEP servers together hold at most `LIVE_AI_MAX_SESSIONS`, so a flood of offers meets
//! a refusal the client can retry (503 with `Retry-After`) instead of exhausting memory or
//! the event loops.
//!
//! A place is taken before the offer is queued to an event loop and held by the session
//! until the loop removes it; an offer that fails gives its place back at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The shared cap. Cheap to clone; clones share the count.
#[derive(Clone, Debug)]
pub struct SessionLimit {
    inner: Arc<Count>,
}

#[derive(Debug)]
struct Count {
    max: usize,
    active: AtomicUsize,
}

impl SessionLimit {
    /// At most `max` sessions at once over every server given a clone.
    pub fn new(max: usize) -> SessionLimit {
        SessionLimit {
            inner: Arc::new(Count {
                max,
                active: AtomicUsize::new(0),
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Sessions holding a place now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// A place, or `None` at the cap. Never over-admits: the check and the increment are one
    /// atomic step.
    pub(crate) fn acquire(&self) -> Option<SessionPermit> {
        self.inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.max).then_some(n + 1)
            })
            .ok()?;
        Some(SessionPermit {
            count: self.inner.clone(),
        })
    }
}

/// One session's place; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct SessionPermit {
    count: Arc<Count>,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        self.count.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_and_frees_on_drop() {
        let limit = SessionLimit::new(2);
        let a = limit.acquire().unwrap();
        let _b = limit.clone().acquire().unwrap();
        assert!(limit.acquire().is_none());
        assert_eq!(limit.active(), 2);
        drop(a);
        assert_eq!(limit.active(), 1);
        assert!(limit.acquire().is_some());
    }
}
