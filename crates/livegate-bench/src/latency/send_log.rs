//! When each frame key was last sent: a bounded map from [`super::frame_key`] keys to send
//! times, so a viewer's frame is matched with its most recent sending (a looping file sends
//! every frame again each pass) and memory stays flat however long the run.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The last `capacity` sendings, by key; a key sent again points at its newest sending.
///
/// Allocates only in [`SendLog::with_capacity`]: inserting past the capacity forgets the
/// oldest sending instead of growing.
#[derive(Debug)]
pub struct SendLog {
    latest: HashMap<u64, Instant>,
    /// Sendings oldest first, to forget them in order.
    order: VecDeque<(u64, Instant)>,
    capacity: usize,
}

impl SendLog {
    /// A log of at most `capacity` (≥ 1) sendings: enough for the longest latency expected,
    /// in frames (e.g. 30 s at 30 fps is 900).
    pub fn with_capacity(capacity: usize) -> SendLog {
        let capacity = capacity.max(1);
        SendLog {
            latest: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records that `key` was sent at `sent_at` (later than every earlier record).
    pub fn insert(&mut self, key: u64, sent_at: Instant) {
        if self.order.len() == self.capacity {
            if let Some((old_key, old_at)) = self.order.pop_front() {
                // Only if it was not sent again since: the newer sending stays.
                if self.latest.get(&old_key) == Some(&old_at) {
                    self.latest.remove(&old_key);
                }
            }
        }
        self.order.push_back((key, sent_at));
        self.latest.insert(key, sent_at);
    }

    /// The most recent sending of `key` still remembered.
    pub fn sent_at(&self, key: u64) -> Option<Instant> {
        self.latest.get(&key).copied()
    }

    /// Sendings remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing was sent yet.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_key_sent_again_matches_its_latest_sending() {
        let t0 = Instant::now();
        let mut log = SendLog::with_capacity(10);
        log.insert(1, t0);
        log.insert(2, t0 + Duration::from_millis(33));
        log.insert(1, t0 + Duration::from_secs(20));
        assert_eq!(log.sent_at(1), Some(t0 + Duration::from_secs(20)));
        assert_eq!(log.sent_at(2), Some(t0 + Duration::from_millis(33)));
        assert_eq!(log.sent_at(3), None);
    }

    #[test]
    fn the_oldest_sending_is_forgotten_but_not_a_newer_one_of_the_same_key() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut log = SendLog::with_capacity(3);
        log.insert(1, at(0));
        log.insert(2, at(1));
        log.insert(1, at(2));
        // Forgets (1, 0), whose key has a newer sending.
        log.insert(3, at(3));
        assert_eq!(log.sent_at(1), Some(at(2)));
        // Forgets (2, 1).
        log.insert(4, at(4));
        assert_eq!(log.sent_at(2), None);
        assert_eq!(log.len(), 3);
        // Forgets (1, 2): now key 1 is gone.
        log.insert(5, at(5));
        assert_eq!(log.sent_at(1), None);
        assert_eq!(
            [3, 4, 5].map(|k| log.sent_at(k)),
            [Some(at(3)), Some(at(4)), Some(at(5))]
        );
    }
}
