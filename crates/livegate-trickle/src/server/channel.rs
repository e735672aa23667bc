//! A channel: a window of the last few segments, numbered by seq, and its write head.
//!
//! The window and the write head follow go-livepeer's `Stream` (`trickle_server.go`): segment
//! `seq` lives in slot `seq % segments_per_channel`, a newer seq evicts the older one from its
//! slot, and the write head (`next_write`, sent as `Lp-Trickle-Latest`) moves to `seq + 1` when
//! segment `seq` receives its first byte, not when its POST arrives, so that a preconnected
//! POST does not make subscribers at `-1` skip the segment being written.
//!
//! Concurrency contract: the state lock is held for a few instructions and never across an
//! await; waiting happens on the segments.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::segment::{Segment, SegmentEnd};
use crate::error::Refusal;
use crate::{SeqNo, SEQ_CURRENT, SEQ_NEXT};

/// What a reader asking for a seq finds.
pub(crate) enum ReadLookup {
    /// The segment, possibly not started yet (a reader at the write head waits for it).
    Found(Arc<Segment>),
    /// Too old (evicted) or too far ahead: go-livepeer's 470.
    Unavailable { seq: SeqNo, latest: SeqNo },
    /// The channel is closed.
    Closed { seq: SeqNo, latest: SeqNo },
}

#[derive(Debug)]
struct ChannelState {
    slots: Vec<Option<Arc<Segment>>>,
    next_write: SeqNo,
    last_write: Instant,
    closed_at: Option<Instant>,
    /// Content-Type of the latest POST, served on GETs as go-livepeer does.
    content_type: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Channel {
    name: Arc<str>,
    state: Mutex<ChannelState>,
}

impl Channel {
    pub(crate) fn new(name: Arc<str>, segments_per_channel: usize) -> Self {
        Self {
            name,
            state: Mutex::new(ChannelState {
                slots: vec![None; segments_per_channel.max(1)],
                next_write: 0,
                last_write: Instant::now(),
                closed_at: None,
                content_type: None,
            }),
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn slot(state: &ChannelState, seq: SeqNo) -> usize {
        (seq as u64 % state.slots.len() as u64) as usize
    }

    /// The segment a publisher writes for `seq` (`-1`: the write head), created if needed.
    pub(crate) fn segment_for_write(&self, seq: SeqNo) -> Result<Arc<Segment>, Refusal> {
        let mut state = self.state.lock();
        let seq = if seq == SEQ_NEXT {
            state.next_write
        } else {
            seq
        };
        if seq < 0 {
            return Err(Refusal::InvalidSeq(seq.to_string()));
        }
        if state.closed_at.is_some() {
            return Err(Refusal::ChannelNotFound);
        }
        let slot = Self::slot(&state, seq);
        if let Some(segment) = &state.slots[slot] {
            if segment.seq() == seq {
                return Ok(segment.clone());
            }
            // An older segment in the slot leaves the window; its readers keep what it has.
            segment.end(SegmentEnd::Dropped);
        }
        let segment = Arc::new(Segment::new(seq));
        state.slots[slot] = Some(segment.clone());
        Ok(segment)
    }

    /// The segment a subscriber reads for `seq` (`-1`: the write head, `-2`: the segment being
    /// written).
    pub(crate) fn segment_for_read(&self, seq: SeqNo) -> ReadLookup {
        let mut state = self.state.lock();
        let latest = state.next_write;
        let seq = match seq {
            SEQ_NEXT => latest,
            SEQ_CURRENT => (latest - 1).max(0),
            seq => seq,
        };
        let slot = Self::slot(&state, seq);
        if let Some(segment) = &state.slots[slot] {
            if segment.seq() == seq {
                return ReadLookup::Found(segment.clone());
            }
        }
        if state.closed_at.is_some() {
            return ReadLookup::Closed { seq, latest };
        }
        // go-livepeer precreates the segment at the write head so that a reader just ahead of
        // the publisher waits instead of failing; seq 1 is allowed before anything was written
        // because a preconnecting publisher opens 0 and 1 together.
        if seq == latest || (latest == 0 && seq == 1) {
            if let Some(old) = &state.slots[slot] {
                old.end(SegmentEnd::Dropped);
            }
            let segment = Arc::new(Segment::new(seq));
            state.slots[slot] = Some(segment.clone());
            return ReadLookup::Found(segment);
        }
        ReadLookup::Unavailable { seq, latest }
    }

    /// The segment `seq` received its first byte: the write head moves past it. Unlike
    /// go-livepeer, which assigns `seq + 1` even for a late POST, the head never moves back.
    pub(crate) fn note_first_byte(&self, seq: SeqNo) {
        let mut state = self.state.lock();
        state.next_write = state.next_write.max(seq + 1);
        state.last_write = Instant::now();
    }

    /// Moves the write head past a segment that ended without a byte, as go-livepeer does
    /// for a preconnected POST whose segment was closed ("avoids clients erroring out on next
    /// seq"); otherwise readers at the head would be sent back to it.
    pub(crate) fn advance_past(&self, seq: SeqNo) {
        let mut state = self.state.lock();
        state.next_write = state.next_write.max(seq + 1);
    }

    /// A restarted publisher (`Lp-Trickle-Reset`): end every segment before `seq` so their
    /// readers stop waiting, but leave preconnected later ones.
    pub(crate) fn reset_before(&self, seq: SeqNo) {
        let state = self.state.lock();
        for segment in state.slots.iter().flatten() {
            if segment.seq() < seq {
                segment.end(SegmentEnd::Dropped);
            }
        }
    }

    /// Ends the segment `seq` if the window holds it (`DELETE {channel}/{seq}`).
    pub(crate) fn drop_segment(&self, seq: SeqNo) -> Result<(), Refusal> {
        if seq < 0 {
            return Err(Refusal::InvalidSeq(seq.to_string()));
        }
        let segment = {
            let state = self.state.lock();
            state.slots[Self::slot(&state, seq)].clone()
        };
        match segment {
            Some(segment) if segment.seq() == seq => {
                segment.end(SegmentEnd::Dropped);
                // An empty segment is skipped: readers must not come back to it.
                if segment.len_bytes() == 0 {
                    self.advance_past(seq);
                }
                Ok(())
            }
            _ => Err(Refusal::NonexistentSegment { seq }),
        }
    }

    pub(crate) fn set_content_type(&self, content_type: Option<String>) {
        if content_type.is_some() {
            self.state.lock().content_type = content_type;
        }
    }

    pub(crate) fn content_type(&self) -> Option<String> {
        self.state.lock().content_type.clone()
    }

    pub(crate) fn latest(&self) -> SeqNo {
        self.state.lock().next_write
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed_at.is_some()
    }

    pub(crate) fn closed_at(&self) -> Option<Instant> {
        self.state.lock().closed_at
    }

    pub(crate) fn last_write(&self) -> Instant {
        self.state.lock().last_write
    }

    /// Closes the channel: unfinished segments end with [`SegmentEnd::ChannelClosed`], so
    /// waiting readers and preconnected publishers wake up. Finished segments stay readable,
    /// so that a subscriber a little behind still gets the tail before it sees the end
    /// (go-livepeer drops them at once, losing that tail).
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed_at.get_or_insert_with(Instant::now);
        for segment in state.slots.iter().flatten() {
            segment.end(SegmentEnd::ChannelClosed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel::new("c".into(), 3)
    }

    #[test]
    fn the_write_head_moves_on_first_byte_not_on_post() {
        let channel = channel();
        let zero = channel.segment_for_write(0).unwrap();
        let _one = channel.segment_for_write(1).unwrap();
        assert_eq!(channel.latest(), 0);
        channel.note_first_byte(zero.seq());
        assert_eq!(channel.latest(), 1);
        match channel.segment_for_read(SEQ_NEXT) {
            ReadLookup::Found(segment) => assert_eq!(segment.seq(), 1),
            _ => panic!("the preconnected segment 1 is the next one"),
        }
    }

    #[test]
    fn old_and_far_ahead_seqs_are_unavailable() {
        let channel = channel();
        for seq in 0..5 {
            channel.segment_for_write(seq).unwrap();
            channel.note_first_byte(seq);
        }
        assert!(matches!(
            channel.segment_for_read(1),
            ReadLookup::Unavailable { seq: 1, latest: 5 }
        ));
        assert!(matches!(channel.segment_for_read(4), ReadLookup::Found(_)));
        assert!(matches!(channel.segment_for_read(5), ReadLookup::Found(_)));
        assert!(matches!(
            channel.segment_for_read(7),
            ReadLookup::Unavailable { seq: 7, latest: 5 }
        ));
    }

    #[test]
    fn closing_ends_every_segment() {
        let channel = channel();
        let zero = channel.segment_for_write(0).unwrap();
        channel.close();
        assert_eq!(zero.ended(), Some(SegmentEnd::ChannelClosed));
        assert!(matches!(channel.segment_for_read(0), ReadLookup::Found(_)));
        assert!(matches!(
            channel.segment_for_read(1),
            ReadLookup::Closed { seq: 1, .. }
        ));
        assert_eq!(
            channel.segment_for_write(1).unwrap_err(),
            Refusal::ChannelNotFound
        );
    }
}
