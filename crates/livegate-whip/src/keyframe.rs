//! When to ask the publisher for a keyframe: the decision, not the asking.
//!
//! The ingest wants a keyframe when it has none to start the stream with, when loss broke
//! the chain of reference pictures, and when the pipeline asks for one. The want lasts until
//! a keyframe goes out. Each request the publisher receives costs it a large picture, and a
//! request that crosses the keyframe it answers asks for another one, so requests are at
//! least a minimum interval apart; a want that outlives the interval is asked again, in case
//! the request (a PLI, RFC 4585 §6.3.1) was lost. Sending the PLI is the caller's
//! (`livegate_rtc::SessionHandle::request_keyframe`).

use std::time::{Duration, Instant};

/// Why a keyframe is wanted, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeReason {
    /// Video has not started: nothing decodable has arrived yet.
    Start,
    /// Loss broke the reference chain, or a keyframe came damaged.
    Loss,
    /// The pipeline asked (a worker (re)started and needs a clean start).
    Pipeline,
}

/// Rate-limited keyframe wants.
#[derive(Debug, Clone)]
pub(crate) struct KeyframeRequests {
    min_interval: Duration,
    /// Why and since when a keyframe is wanted.
    wanted: Option<(KeyframeReason, Instant)>,
    last_request: Option<Instant>,
    requests: u64,
}

impl KeyframeRequests {
    pub fn new(min_interval: Duration) -> Self {
        KeyframeRequests {
            min_interval,
            wanted: None,
            last_request: None,
            requests: 0,
        }
    }

    /// A keyframe is needed; the first reason given since the last keyframe is kept.
    pub fn want(&mut self, reason: KeyframeReason, now: Instant) {
        if self.wanted.is_none() {
            tracing::debug!(?reason, "keyframe wanted");
        }
        self.wanted.get_or_insert((reason, now));
    }

    /// A keyframe went out: nothing is wanted any more.
    pub fn satisfied(&mut self) {
        self.wanted = None;
    }

    /// Whether to send a request now; `true` counts as a request made.
    pub fn poll(&mut self, now: Instant) -> Option<KeyframeReason> {
        let (reason, _) = self.wanted?;
        if self.poll_timeout().is_some_and(|due| due > now) {
            return None;
        }
        self.last_request = Some(now);
        self.requests += 1;
        Some(reason)
    }

    /// When [`poll`](Self::poll) will next say yes, while a keyframe is wanted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (_, since) = self.wanted?;
        Some(match self.last_request {
            Some(last) => (last + self.min_interval).max(since),
            None => since,
        })
    }

    /// Requests decided so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(500);

    #[test]
    fn nothing_is_asked_until_wanted() {
        let mut k = KeyframeRequests::new(INTERVAL);
        assert_eq!(k.poll(Instant::now()), None);
        assert_eq!(k.poll_timeout(), None);
    }

    #[test]
    fn asks_at_once_then_at_most_once_per_interval_until_satisfied() {
        let t0 = Instant::now();
        let mut k = KeyframeRequests::new(INTERVAL);
        k.want(KeyframeReason::Loss, t0);
        k.want(KeyframeReason::Pipeline, t0);
        assert_eq!(k.poll_timeout(), Some(t0));
        assert_eq!(k.poll(t0), Some(KeyframeReason::Loss));
        assert_eq!(k.poll(t0 + Duration::from_millis(499)), None);
        assert_eq!(k.poll_timeout(), Some(t0 + INTERVAL));
        assert_eq!(k.poll(t0 + INTERVAL), Some(KeyframeReason::Loss));
        k.satisfied();
        assert_eq!(k.poll(t0 + 3 * INTERVAL), None);
        // Wanted again soon after a request: still rate limited.
        let later = t0 + INTERVAL + Duration::from_millis(100);
        k.want(KeyframeReason::Pipeline, later);
        assert_eq!(k.poll(later), None);
        assert_eq!(k.poll(t0 + 2 * INTERVAL), Some(KeyframeReason::Pipeline));
        assert_eq!(k.requests(), 3);
    }
}
