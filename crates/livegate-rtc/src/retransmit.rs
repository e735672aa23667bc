//! Answering a viewer's NACKs (RFC 4585 §6.2.1) from the packets recently sent to it.
//!
//! rtc's NACK responder kept a copy of every outgoing packet per viewer and sat on every
//! packet's write path; here a viewer's history holds the frame's own payload `Bytes` (shared
//! with every other viewer of the stream) and is only read when a NACK comes.

use std::collections::VecDeque;

use bytes::Bytes;

/// Packets kept per video track: about 2.5 s at 2 Mbit/s, longer than any retransmission a
/// live viewer can still use.
pub(crate) const HISTORY_PACKETS: usize = 512;

/// One packet as sent, enough to send it again unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentPacket {
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    pub(crate) payload: Bytes,
}

/// The last packets of one track, by sequence number.
#[derive(Debug)]
pub(crate) struct SentPackets {
    /// Consecutive sequence numbers, oldest first.
    packets: VecDeque<SentPacket>,
    capacity: usize,
}

impl SentPackets {
    pub(crate) fn new(capacity: usize) -> SentPackets {
        SentPackets {
            packets: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Keeps `packet`, forgetting the oldest one when full. A packet that does not follow the
    /// newest (never the case for a track's own numbering) starts the history afresh, so the
    /// sequence numbers stay consecutive.
    pub(crate) fn push(&mut self, packet: SentPacket) {
        if self
            .packets
            .back()
            .is_some_and(|last| last.sequence.wrapping_add(1) != packet.sequence)
        {
            self.packets.clear();
        }
        if self.packets.len() == self.capacity {
            self.packets.pop_front();
        }
        self.packets.push_back(packet);
    }

    /// The packet sent with `sequence`, if it is still kept.
    pub(crate) fn get(&self, sequence: u16) -> Option<&SentPacket> {
        let oldest = self.packets.front()?.sequence;
        self.packets.get(usize::from(sequence.wrapping_sub(oldest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence: u16) -> SentPacket {
        SentPacket {
            sequence,
            timestamp: u32::from(sequence) * 3_000,
            marker: sequence % 4 == 3,
            payload: Bytes::from(sequence.to_be_bytes().to_vec()),
        }
    }

    #[test]
    fn finds_what_it_keeps_across_the_sequence_wrap() {
        let mut sent = SentPackets::new(8);
        for sequence in (65_530..=u16::MAX).chain(0..4) {
            sent.push(packet(sequence));
        }
        // 10 pushed into 8 places: 65530 and 65531 are gone.
        assert_eq!(sent.get(65_531), None);
        assert_eq!(sent.get(65_532), Some(&packet(65_532)));
        assert_eq!(sent.get(u16::MAX), Some(&packet(u16::MAX)));
        assert_eq!(sent.get(3), Some(&packet(3)));
        // Not sent yet, or long ago.
        assert_eq!(sent.get(4), None);
        assert_eq!(sent.get(30_000), None);
    }

    #[test]
    fn a_jump_in_numbering_starts_afresh() {
        let mut sent = SentPackets::new(8);
        sent.push(packet(10));
        sent.push(packet(11));
        sent.push(packet(500));
        assert_eq!(sent.get(10), None);
        assert_eq!(sent.get(500), Some(&packet(500)));
    }

    #[test]
    fn an_empty_history_has_nothing() {
        assert_eq!(SentPackets::new(4).get(0), None);
    }
}
