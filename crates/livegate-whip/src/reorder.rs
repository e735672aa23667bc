//! Putting one RTP stream's packets back in sequence-number order (RFC 3550 §5.1, A.1) within
//! a small window, and giving up on the ones that do not come.
//!
//! This is not a jitter buffer: packets that arrive in order leave at once, and nothing is
//! paced. A hole holds back the packets behind it until the missing packet arrives (reordered
//! in the network, or retransmitted after a NACK), the window fills up, or the oldest packet
//! waiting behind the hole has waited the configured delay; then the hole is reported as lost
//! and what follows is released. Sending NACKs is rtc's interceptors' job, not this module's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// RFC 3550 A.1: a jump forward of this many sequence numbers or more is taken as a restart
/// of the sender's numbering, not as loss.
const MAX_DROPOUT: u16 = 3_000;
/// RFC 3550 A.1: a packet at most this far behind the next expected one is a duplicate or
/// arrived too late; further behind, it is a possible restart.
const MAX_MISORDER: u16 = 100;

/// What the reorder buffer keeps of an RTP packet: the header fields the depacketizers use and
/// the payload, shared with the packet rather than copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtpUnit {
    pub sequence_number: u16,
    /// The RTP timestamp extended to 64 bits (see [`crate::timing`]), in the track's own
    /// clock.
    pub timestamp: i64,
    pub marker: bool,
    pub payload: Bytes,
}

/// The reorder buffer's output, in sequence-number order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reordered {
    /// The next packet.
    Packet(RtpUnit),
    /// This many packets were given up on, just before the next [`Reordered::Packet`].
    Lost(u64),
    /// The sender's sequence numbers jumped (RFC 3550 A.1 restart): an unknown number of
    /// packets is missing before the next packet.
    Discontinuity,
}

/// Bounds of a [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReorderLimits {
    /// Most sequence numbers held between the next expected packet and the newest one; a
    /// packet further ahead forces the oldest holes to be given up.
    pub window_packets: usize,
    /// Longest a packet waits behind a hole.
    pub max_delay: Duration,
}

/// Counters, only growing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReorderStats {
    /// Sequence numbers given up on.
    pub lost: u64,
    /// Packets that arrived after a packet with a higher sequence number and were put back
    /// in order.
    pub reordered: u64,
    /// Packets dropped as duplicates or as too late (their place was already given up).
    pub late_or_duplicate: u64,
    /// Restarts of the sender's numbering.
    pub restarts: u64,
}

/// Reorders one RTP stream (one SSRC).
///
/// Sans-I/O: [`push`](Self::push) takes the arrival time, [`poll_timeout`](Self::poll_timeout)
/// says when [`handle_timeout`](Self::handle_timeout) must run to give up on a hole if no
/// packet comes meanwhile. Output goes to a caller's `Vec`, so steady state allocates nothing.
#[derive(Debug)]
pub(crate) struct ReorderBuffer {
    limits: ReorderLimits,
    /// Extended sequence number of the next packet to release; `None` before the first.
    next: Option<u64>,
    /// `slots[i]` holds packet `next + i` and its arrival time. `slots[0]` is always empty
    /// (a packet there is released at once), and the last slot is always full.
    slots: VecDeque<Option<(RtpUnit, Instant)>>,
    /// RFC 3550 A.1 `bad_seq`: the sequence number that would confirm a restart.
    probation: Option<u16>,
    stats: ReorderStats,
}

impl ReorderBuffer {
    pub fn new(limits: ReorderLimits) -> Self {
        let limits = ReorderLimits {
            window_packets: limits.window_packets.max(1),
            ..limits
        };
        ReorderBuffer {
            limits,
            next: None,
            slots: VecDeque::with_capacity(limits.window_packets),
            probation: None,
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Takes one packet; appends whatever can now be released to `out`.
    pub fn push(&mut self, unit: RtpUnit, now: Instant, out: &mut Vec<Reordered>) {
        self.handle_timeout(now, out);
        let seq = unit.sequence_number;
        let Some(next) = self.next else {
            // Extended numbers start one cycle up, so nothing below them underflows.
            self.next = Some(u64::from(seq) + (1 << 16) + 1);
            out.push(Reordered::Packet(unit));
            return;
        };
        let delta = seq.wrapping_sub(next as u16);
        if delta < MAX_DROPOUT {
            self.probation = None;
            self.place(unit, usize::from(delta), now, out);
        } else if delta > u16::MAX - MAX_MISORDER {
            self.stats.late_or_duplicate += 1;
        } else if self.probation == Some(seq) {
            // Two packets in sequence far from where we were: the sender restarted its
            // numbering (RFC 3550 A.1). What we held belongs to the old numbering.
            self.probation = None;
            self.release_all(out);
            self.stats.restarts += 1;
            out.push(Reordered::Discontinuity);
            self.next = Some(u64::from(seq) + (1 << 16) + 1);
            out.push(Reordered::Packet(unit));
        } else {
            self.probation = Some(seq.wrapping_add(1));
            self.stats.late_or_duplicate += 1;
        }
    }

    /// Puts a packet `delta` places after the next expected one.
    fn place(&mut self, unit: RtpUnit, delta: usize, now: Instant, out: &mut Vec<Reordered>) {
        let mut delta = delta;
        if delta >= self.limits.window_packets {
            // The window is full: give up on the oldest places so this packet fits. Packets
            // ready behind them leave too, so count from where `next` ends up.
            let extended = self.next.expect("set by the first packet") + delta as u64;
            let excess = delta + 1 - self.limits.window_packets;
            self.release_places(excess, out);
            delta = (extended - self.next.expect("set by the first packet")) as usize;
        }
        if delta == 0 && self.slots.is_empty() {
            // In order, nothing waiting: the common case, straight through.
            *self.next.as_mut().expect("set by the first packet") += 1;
            out.push(Reordered::Packet(unit));
            return;
        }
        if delta < self.slots.len() {
            if self.slots[delta].is_some() {
                self.stats.late_or_duplicate += 1;
                return;
            }
            self.stats.reordered += 1;
            self.slots[delta] = Some((unit, now));
        } else {
            self.slots.resize_with(delta, || None);
            self.slots.push_back(Some((unit, now)));
        }
        self.release_ready(out);
    }

    /// Gives up on holes whose waiters have waited long enough.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Reordered>) {
        while let Some(deadline) = self.poll_timeout() {
            if deadline > now {
                return;
            }
            let hole = self.slots.iter().take_while(|slot| slot.is_none()).count();
            self.release_places(hole, out);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run, if a hole is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .map(|(_, arrival)| *arrival)
            .min()
            .map(|oldest| oldest + self.limits.max_delay)
    }

    /// Releases everything held, every hole counted as lost: for the end of the stream and
    /// before a reset.
    pub fn release_all(&mut self, out: &mut Vec<Reordered>) {
        let held = self.slots.len();
        self.release_places(held, out);
    }

    /// Forgets the numbering, for a new sender (SSRC) on the track. Call
    /// [`release_all`](Self::release_all) first to keep what is held.
    pub fn reset(&mut self) {
        self.slots.clear();
        self.next = None;
        self.probation = None;
    }

    /// Moves `count` places out, packets released and holes reported, then whatever is
    /// ready behind them.
    fn release_places(&mut self, count: usize, out: &mut Vec<Reordered>) {
        let mut lost = 0;
        for _ in 0..count {
            match self.slots.pop_front() {
                Some(Some((unit, _))) => {
                    flush_lost(&mut lost, out);
                    out.push(Reordered::Packet(unit));
                }
                Some(None) | None => {
                    lost += 1;
                    self.stats.lost += 1;
                }
            }
        }
        flush_lost(&mut lost, out);
        if let Some(next) = self.next.as_mut() {
            *next += count as u64;
        }
        self.release_ready(out);
    }

    /// Releases the packets at the front that have no hole before them.
    fn release_ready(&mut self, out: &mut Vec<Reordered>) {
        while let Some(Some(_)) = self.slots.front() {
            let (unit, _) = self.slots.pop_front().flatten().expect("checked");
            *self.next.as_mut().expect("set by the first packet") += 1;
            out.push(Reordered::Packet(unit));
        }
    }
}

fn flush_lost(lost: &mut u64, out: &mut Vec<Reordered>) {
    if *lost > 0 {
        out.push(Reordered::Lost(*lost));
        *lost = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: ReorderLimits = ReorderLimits {
        window_packets: 8,
        max_delay: Duration::from_millis(100),
    };

    fn unit(seq: u16) -> RtpUnit {
        RtpUnit {
            sequence_number: seq,
            timestamp: 0,
            marker: false,
            payload: Bytes::new(),
        }
    }

    /// Sequence numbers released, with `None` for each packet reported lost.
    fn flatten(out: &[Reordered]) -> Vec<Option<u16>> {
        let mut seqs = Vec::new();
        for item in out {
            match item {
                Reordered::Packet(u) => seqs.push(Some(u.sequence_number)),
                Reordered::Lost(n) => seqs.extend((0..*n).map(|_| None)),
                Reordered::Discontinuity => {}
            }
        }
        seqs
    }

    fn push_all(buffer: &mut ReorderBuffer, seqs: &[u16], now: Instant) -> Vec<Reordered> {
        let mut out = Vec::new();
        for &s in seqs {
            buffer.push(unit(s), now, &mut out);
        }
        out
    }

    #[test]
    fn in_order_packets_pass_straight_through_across_the_wrap() {
        let mut buffer = ReorderBuffer::new(LIMITS);
        let seqs: Vec<u16> = (0..10).map(|i| 65_530u16.wrapping_add(i)).collect();
        let out = push_all(&mut buffer, &seqs, Instant::now());
        assert_eq!(
            flatten(&out),
            seqs.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(buffer.poll_timeout(), None);
        assert_eq!(buffer.stats(), ReorderStats::default());
    }

    #[test]
    fn a_swap_is_put_back_and_counted() {
        let mut buffer = ReorderBuffer::new(LIMITS);
        let out = push_all(&mut buffer, &[1, 3, 2, 4], Instant::now());
        assert_eq!(flatten(&out), [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(buffer.stats().reordered, 1);
        assert_eq!(buffer.stats().lost, 0);
    }

    #[test]
    fn a_hole_is_given_up_after_the_delay() {
        let t0 = Instant::now();
        let mut buffer = ReorderBuffer::new(LIMITS);
        let mut out = push_all(&mut buffer, &[1, 3, 4], t0);
        assert_eq!(flatten(&out), [Some(1)]);
        assert_eq!(buffer.poll_timeout(), Some(t0 + LIMITS.max_delay));
        buffer.handle_timeout(t0 + Duration::from_millis(99), &mut out);
        assert_eq!(flatten(&out), [Some(1)]);
        buffer.handle_timeout(t0 + LIMITS.max_delay, &mut out);
        assert_eq!(flatten(&out), [Some(1), None, Some(3), Some(4)]);
        assert_eq!(buffer.stats().lost, 1);
        // The retransmission that comes too late is dropped.
        buffer.push(unit(2), t0 + Duration::from_millis(150), &mut out);
        buffer.push(unit(5), t0 + Duration::from_millis(150), &mut out);
        assert_eq!(flatten(&out).last(), Some(&Some(5)));
        assert_eq!(buffer.stats().late_or_duplicate, 1);
    }

    #[test]
    fn a_full_window_gives_up_the_oldest_hole() {
        let mut buffer = ReorderBuffer::new(LIMITS);
        // 2 is missing; 3..=10 fill the 8-place window, 11 forces 2 out.
        let seqs: Vec<u16> = [1].into_iter().chain(3..=11).collect();
        let out = push_all(&mut buffer, &seqs, Instant::now());
        let mut want = vec![Some(1), None];
        want.extend((3..=11).map(Some));
        assert_eq!(flatten(&out), want);
    }

    #[test]
    fn a_restart_needs_two_packets_in_sequence() {
        let mut buffer = ReorderBuffer::new(LIMITS);
        let out = push_all(
            &mut buffer,
            &[100, 101, 30_000, 102, 40_000, 40_001, 40_002],
            Instant::now(),
        );
        assert_eq!(
            flatten(&out),
            [Some(100), Some(101), Some(102), Some(40_001), Some(40_002)]
        );
        assert!(out.contains(&Reordered::Discontinuity));
        assert_eq!(buffer.stats().restarts, 1);
    }

    proptest! {
        /// Any arrival order within the window, with drops and duplicates: what comes out is
        /// in order, every sequence number exactly once (as a packet or as lost), every
        /// packet that arrived in time comes out, and loss is exactly what never arrived.
        #[test]
        fn releases_each_place_once_in_order(
            start in any::<u16>(),
            len in 1usize..300,
            jitter in proptest::collection::vec(0usize..8, 300),
            drops in proptest::collection::btree_set(1usize..300, 0..30),
            dups in proptest::collection::vec(0usize..300, 0..10),
        ) {
            // Each packet arrives up to 7 places late, inside the 16-place window.
            let mut order: Vec<usize> = (0..len).filter(|i| !drops.contains(i)).collect();
            order.sort_by_key(|&i| i + jitter[i]);
            let mut arrivals = order.clone();
            for d in dups {
                if !arrivals.is_empty() {
                    let i = d % arrivals.len();
                    arrivals.insert(i, arrivals[i]);
                }
            }
            let window = ReorderLimits { window_packets: 16, max_delay: Duration::from_secs(60) };
            let mut buffer = ReorderBuffer::new(window);
            let now = Instant::now();
            let mut out = Vec::new();
            for &i in &arrivals {
                buffer.push(unit(start.wrapping_add(i as u16)), now, &mut out);
            }
            buffer.release_all(&mut out);
            let got = flatten(&out);
            // Places from the first arrival on, each exactly once, in order.
            let first = arrivals.first().copied().unwrap_or(0);
            let released: Vec<u16> = got.iter().flatten().copied().collect();
            let mut sorted = released.clone();
            sorted.sort_by_key(|s| s.wrapping_sub(start));
            prop_assert_eq!(&released, &sorted);
            sorted.dedup();
            prop_assert_eq!(sorted.len(), released.len());
            if !arrivals.is_empty() {
                let last = released.last().map_or(first, |s| s.wrapping_sub(start) as usize);
                prop_assert_eq!(got.len(), last + 1 - first);
                // Only packets that never came are lost.
                let lost = got.iter().filter(|s| s.is_none()).count();
                let never_came = (first..=last).filter(|i| drops.contains(i)).count();
                prop_assert_eq!(lost, never_came);
                prop_assert_eq!(buffer.stats().lost, lost as u64);
            }
        }
    }
}
