//! Per-track accounting of received RTP: packets, payload bytes, sequence gaps, and (for
//! video) frames, their completeness and keyframes, as a player would see them before its
//! decoder. Pure and synchronous: the track task feeds it one packet at a time.
//!
//! Not a jitter buffer: packets are not reordered or held, so a frame whose packets arrive
//! out of order is counted as incomplete, as a player without a jitter buffer would see it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::h264;

/// What one track (one kind) received, as [`crate::whep::WhepSession::stats`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindStats {
    /// RTP packets received, retransmissions and duplicates included.
    pub packets: u64,
    /// RTP payload bytes received (headers excluded): the media bitrate's numerator.
    pub payload_bytes: u64,
    /// Frames seen: video frames delimited by the marker bit or a timestamp change (RFC 6184
    /// §5.1); for audio, one per packet in sequence order (one Opus packet per RTP packet,
    /// RFC 7587 §4.2).
    pub frames: u64,
    /// Frames whose every packet arrived in order, marker bit included.
    pub complete_frames: u64,
    /// Video frames holding an IDR slice (ITU-T H.264 Table 7-1, type 5).
    pub keyframes: u64,
    /// Packets never received: expected (from the highest sequence number) minus received,
    /// as RFC 3550 §6.4.1's cumulative lost, never negative.
    pub packets_lost: u64,
    /// Since the POST: video, the first complete keyframe (the first frame a decoder can
    /// show); audio, the first packet.
    pub first_frame_at: Option<Duration>,
    /// The last frames seen, oldest first, at most [`crate::whep::WhepOptions::frame_log_limit`].
    pub frame_log: Vec<FrameRecord>,
}

/// One frame in [`KindStats::frame_log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRecord {
    /// Its RTP timestamp (90 kHz for H.264, 48 kHz for Opus).
    pub rtp_timestamp: u32,
    /// The NAL unit types its packets carried, bit `n` for type `n` (0 for audio).
    pub nal_types: u32,
    /// Every packet arrived in order, marker bit included.
    pub complete: bool,
}

impl FrameRecord {
    /// The frame holds an IDR slice.
    pub fn is_keyframe(&self) -> bool {
        h264::is_keyframe(self.nal_types)
    }

    /// The frame carries both an SPS and a PPS (a gateway puts them in front of each IDR).
    pub fn has_parameter_sets(&self) -> bool {
        let both = 1 << h264::NAL_SPS | 1 << h264::NAL_PPS;
        self.nal_types & both == both
    }
}

/// Where a packet's sequence number falls relative to the highest seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqEvent {
    First,
    InOrder,
    /// Newer than the highest, with this many numbers skipped.
    Gap(u16),
    /// A duplicate or older than the highest (reordered, or a NACK retransmission).
    Late,
}

/// RFC 3550 Appendix A.1's extended highest sequence number, without its probation and
/// restart rules: the gateway numbers each viewer's packets itself and keeps them continuous.
#[derive(Debug, Default)]
pub(crate) struct SequenceTracker {
    started: bool,
    base: u16,
    max: u16,
    /// Wraps of the 16-bit sequence number (RFC 3550 A.1 `cycles`, counted not shifted).
    cycles: u64,
    received: u64,
}

impl SequenceTracker {
    pub(crate) fn on_packet(&mut self, seq: u16) -> SeqEvent {
        self.received += 1;
        if !self.started {
            self.started = true;
            self.base = seq;
            self.max = seq;
            return SeqEvent::First;
        }
        let delta = seq.wrapping_sub(self.max);
        // Half the number space decides newer vs older (RFC 1982 serial arithmetic).
        if delta == 0 || delta >= 0x8000 {
            return SeqEvent::Late;
        }
        if seq < self.max {
            self.cycles += 1;
        }
        self.max = seq;
        if delta == 1 {
            SeqEvent::InOrder
        } else {
            SeqEvent::Gap(delta - 1)
        }
    }

    /// RFC 3550 §6.4.1: expected minus received, clamped at zero (duplicates can exceed it).
    pub(crate) fn lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let expected = (self.cycles << 16) + u64::from(self.max) - u64::from(self.base) + 1;
        expected.saturating_sub(self.received)
    }
}

/// The media kind a track carries, which decides what a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackKind {
    Video,
    Audio,
}

#[derive(Debug)]
struct FrameInProgress {
    rtp_timestamp: u32,
    nal_types: u32,
    intact: bool,
}

/// One received RTP packet's fields, borrowed from the packet (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    pub ssrc: u32,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// The running account of one track. Owned by that track's task behind a lock that
/// [`TrackAccount::on_packet`] and [`TrackAccount::snapshot`] hold for a few instructions.
#[derive(Debug)]
pub(crate) struct TrackAccount {
    kind: TrackKind,
    ssrc: Option<u32>,
    seq: SequenceTracker,
    /// Loss counted under earlier SSRCs, kept when the sender changes SSRC.
    lost_before: u64,
    packets: u64,
    payload_bytes: u64,
    frames: u64,
    complete_frames: u64,
    keyframes: u64,
    frame: Option<FrameInProgress>,
    first_frame_at: Option<Instant>,
    log: VecDeque<FrameRecord>,
    log_limit: usize,
}

impl TrackAccount {
    pub(crate) fn new(kind: TrackKind, log_limit: usize) -> TrackAccount {
        TrackAccount {
            kind,
            ssrc: None,
            seq: SequenceTracker::default(),
            lost_before: 0,
            packets: 0,
            payload_bytes: 0,
            frames: 0,
            complete_frames: 0,
            keyframes: 0,
            frame: None,
            first_frame_at: None,
            log: VecDeque::new(),
            log_limit,
        }
    }

    /// Frames counted so far (what the track's watch publishes).
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// Accounts one packet. `now` is called only when a first frame completes, so the
    /// common packet costs no clock read.
    pub(crate) fn on_packet(&mut self, packet: PacketView<'_>, now: impl Fn() -> Instant) {
        self.packets += 1;
        self.payload_bytes += packet.payload.len() as u64;
        if self.ssrc != Some(packet.ssrc) {
            if self.ssrc.is_some() {
                self.lost_before += self.seq.lost();
                self.seq = SequenceTracker::default();
                // The old sender's unfinished frame ends with it.
                self.finish_frame(false, &now);
            }
            self.ssrc = Some(packet.ssrc);
        }
        let event = self.seq.on_packet(packet.sequence_number);
        if event == SeqEvent::Late {
            // Its frame was already counted (or given up on) when newer packets arrived.
            return;
        }
        match self.kind {
            TrackKind::Audio => {
                self.frames += 1;
                self.complete_frames += 1;
                self.push_log(FrameRecord {
                    rtp_timestamp: packet.timestamp,
                    nal_types: 0,
                    complete: true,
                });
                if self.first_frame_at.is_none() {
                    self.first_frame_at = Some(now());
                }
            }
            TrackKind::Video => self.on_video_packet(packet, event, &now),
        }
    }

    fn on_video_packet(
        &mut self,
        packet: PacketView<'_>,
        event: SeqEvent,
        now: &impl Fn() -> Instant,
    ) {
        let gap = matches!(event, SeqEvent::Gap(_));
        if self
            .frame
            .as_ref()
            .is_some_and(|frame| frame.rtp_timestamp != packet.timestamp)
        {
            // A new timestamp without the old frame's marker: the marker packet was lost.
            self.finish_frame(false, now);
        }
        match &mut self.frame {
            Some(frame) => frame.intact &= !gap,
            None => {
                // After a gap the lost packets may have been this frame's first ones; the
                // very first packet must itself begin a NAL unit.
                let intact = match event {
                    SeqEvent::First => h264::starts_nal_unit(packet.payload),
                    _ => !gap,
                };
                self.frame = Some(FrameInProgress {
                    rtp_timestamp: packet.timestamp,
                    nal_types: 0,
                    intact,
                });
            }
        }
        if let Some(frame) = &mut self.frame {
            frame.nal_types |= h264::nal_type_mask(packet.payload);
        }
        if packet.marker {
            let intact = self.frame.as_ref().is_some_and(|frame| frame.intact);
            self.finish_frame(intact, now);
        }
    }

    fn finish_frame(&mut self, complete: bool, now: &impl Fn() -> Instant) {
        let Some(frame) = self.frame.take() else {
            return;
        };
        let record = FrameRecord {
            rtp_timestamp: frame.rtp_timestamp,
            nal_types: frame.nal_types,
            complete,
        };
        self.frames += 1;
        if complete {
            self.complete_frames += 1;
        }
        if record.is_keyframe() {
            self.keyframes += 1;
            if complete && self.first_frame_at.is_none() {
                self.first_frame_at = Some(now());
            }
        }
        self.push_log(record);
    }

    fn push_log(&mut self, record: FrameRecord) {
        if self.log_limit == 0 {
            return;
        }
        if self.log.len() == self.log_limit {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    /// The account as public figures, times relative to `posted_at`; the frame log is
    /// copied only when asked for (a load run samples every session twice and needs none).
    pub(crate) fn snapshot(&self, posted_at: Instant, with_log: bool) -> KindStats {
        KindStats {
            packets: self.packets,
            payload_bytes: self.payload_bytes,
            frames: self.frames,
            complete_frames: self.complete_frames,
            keyframes: self.keyframes,
            packets_lost: self.lost_before + self.seq.lost(),
            first_frame_at: self
                .first_frame_at
                .map(|at| at.saturating_duration_since(posted_at)),
            frame_log: if with_log {
                self.log.iter().copied().collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IDR_START: &[u8] = &[0x7C, 0x85, 0xAA]; // FU-A, S bit, type 5
    const IDR_MIDDLE: &[u8] = &[0x7C, 0x05, 0xAA];
    const IDR_END: &[u8] = &[0x7C, 0x45, 0xAA];
    const SLICE: &[u8] = &[0x41, 0x9A, 0x02]; // single NAL unit, type 1

    fn packet(seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> PacketView<'_> {
        PacketView {
            ssrc: 7,
            sequence_number: seq,
            timestamp,
            marker,
            payload,
        }
    }

    fn video() -> TrackAccount {
        TrackAccount::new(TrackKind::Video, 100)
    }

    fn feed(account: &mut TrackAccount, packets: &[PacketView<'_>], clock: Instant) {
        for p in packets {
            account.on_packet(*p, || clock);
        }
    }

    #[test]
    fn sequence_tracker_counts_gaps_across_the_wrap() {
        let mut seq = SequenceTracker::default();
        assert_eq!(seq.on_packet(65_534), SeqEvent::First);
        assert_eq!(seq.on_packet(65_535), SeqEvent::InOrder);
        assert_eq!(seq.on_packet(2), SeqEvent::Gap(2)); // 0 and 1 lost
        assert_eq!(seq.lost(), 2);
        assert_eq!(seq.on_packet(0), SeqEvent::Late); // 0 recovered late (NACK)
        assert_eq!(seq.lost(), 1);
        assert_eq!(seq.on_packet(2), SeqEvent::Late); // duplicate
        assert_eq!(seq.lost(), 0, "duplicates never make loss negative");
    }

    #[test]
    fn marker_bit_ends_a_frame_and_a_complete_idr_is_the_first_frame() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(250);
        let mut account = video();
        feed(
            &mut account,
            &[
                packet(10, 0, false, IDR_START),
                packet(11, 0, false, IDR_MIDDLE),
                packet(12, 0, true, IDR_END),
                packet(13, 3000, true, SLICE),
            ],
            at,
        );
        let stats = account.snapshot(t0, true);
        assert_eq!(
            (stats.frames, stats.complete_frames, stats.keyframes),
            (2, 2, 1)
        );
        assert_eq!(stats.first_frame_at, Some(Duration::from_millis(250)));
        assert!(stats.frame_log[0].is_keyframe());
        assert!(!stats.frame_log[1].is_keyframe());
        assert_eq!(stats.frame_log[1].rtp_timestamp, 3000);
        assert_eq!(stats.packets_lost, 0);
    }

    #[test]
    fn a_lost_marker_is_noticed_at_the_next_timestamp() {
        let mut account = video();
        let t0 = Instant::now();
        feed(
            &mut account,
            &[
                packet(1, 0, false, IDR_START),
                // 2 (the marker packet) lost
                packet(3, 3000, true, SLICE),
            ],
            t0,
        );
        let stats = account.snapshot(t0, true);
        assert_eq!(stats.frames, 2);
        assert_eq!(
            stats.complete_frames, 0,
            "the slice after the gap is suspect too"
        );
        assert_eq!(stats.keyframes, 1);
        assert_eq!(
            stats.first_frame_at, None,
            "an incomplete keyframe shows nothing"
        );
        assert_eq!(stats.packets_lost, 1);
    }

    #[test]
    fn a_first_packet_in_the_middle_of_a_nal_unit_is_not_a_complete_frame() {
        let mut account = video();
        let t0 = Instant::now();
        feed(
            &mut account,
            &[
                packet(5, 0, true, IDR_END),
                packet(6, 3000, false, IDR_START),
                packet(7, 3000, true, IDR_END),
            ],
            t0,
        );
        let stats = account.snapshot(t0, true);
        assert_eq!(
            stats
                .frame_log
                .iter()
                .map(|f| f.complete)
                .collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(stats.keyframes, 2);
        assert!(stats.first_frame_at.is_some());
    }

    #[test]
    fn late_packets_count_as_received_but_not_as_frames() {
        let mut account = video();
        let t0 = Instant::now();
        feed(
            &mut account,
            &[
                packet(1, 0, true, SLICE),
                packet(3, 6000, true, SLICE),
                packet(2, 3000, true, SLICE),
            ],
            t0,
        );
        let stats = account.snapshot(t0, false);
        assert_eq!((stats.packets, stats.frames, stats.packets_lost), (3, 2, 0));
        assert!(stats.frame_log.is_empty(), "no log unless asked for");
    }

    #[test]
    fn audio_counts_one_frame_per_packet_and_starts_at_the_first() {
        let mut account = TrackAccount::new(TrackKind::Audio, 100);
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(40);
        feed(
            &mut account,
            &[
                packet(1, 0, true, &[1; 80]),
                packet(2, 960, false, &[2; 70]),
            ],
            at,
        );
        let stats = account.snapshot(t0, true);
        assert_eq!(
            (stats.packets, stats.frames, stats.payload_bytes),
            (2, 2, 150)
        );
        assert_eq!(stats.first_frame_at, Some(Duration::from_millis(40)));
        assert_eq!(stats.frame_log[1].rtp_timestamp, 960);
    }

    #[test]
    fn the_frame_log_keeps_the_newest_frames() {
        let mut account = TrackAccount::new(TrackKind::Video, 3);
        let t0 = Instant::now();
        for i in 0..10u16 {
            account.on_packet(packet(i, u32::from(i) * 3000, true, SLICE), || t0);
        }
        let stats = account.snapshot(t0, true);
        assert_eq!(stats.frames, 10);
        assert_eq!(
            stats
                .frame_log
                .iter()
                .map(|f| f.rtp_timestamp)
                .collect::<Vec<_>>(),
            [21_000, 24_000, 27_000]
        );
    }

    #[test]
    fn a_new_ssrc_restarts_sequence_accounting_and_keeps_earlier_loss() {
        let mut account = video();
        let t0 = Instant::now();
        feed(
            &mut account,
            &[packet(1, 0, true, SLICE), packet(3, 3000, true, SLICE)],
            t0,
        );
        let mut other = packet(40_000, 90_000, true, SLICE);
        other.ssrc = 8;
        account.on_packet(other, || t0);
        let stats = account.snapshot(t0, false);
        assert_eq!((stats.packets_lost, stats.frames), (1, 3));
    }

    /// A generated stream: frames of 1..=4 packets, a keyframe every `gop` frames.
    fn stream(
        sizes: &[u8],
        gop: usize,
        first_seq: u16,
    ) -> Vec<(u16, u32, bool, &'static [u8], usize)> {
        let mut out = Vec::new();
        let mut seq = first_seq;
        for (i, &size) in sizes.iter().enumerate() {
            let key = i % gop == 0;
            for k in 0..size {
                let payload: &'static [u8] = match (key, size, k) {
                    (true, 1, _) => &[0x65, 0x88],
                    (true, _, 0) => IDR_START,
                    (true, _, k) if k + 1 == size => IDR_END,
                    (true, _, _) => IDR_MIDDLE,
                    (false, 1, _) => SLICE,
                    (false, _, 0) => &[0x7C, 0x81, 0x00],
                    (false, _, k) if k + 1 == size => &[0x7C, 0x41, 0x00],
                    (false, _, _) => &[0x7C, 0x01, 0x00],
                };
                out.push((seq, i as u32 * 3000, k + 1 == size, payload, i));
                seq = seq.wrapping_add(1);
            }
        }
        out
    }

    proptest! {
        /// With packets dropped at random (in-order delivery), the account matches what was
        /// actually delivered: frames with any packet, complete frames exactly those whose
        /// packets and predecessor all arrived, loss between first and last received.
        #[test]
        fn accounting_matches_a_lossy_delivery(
            sizes in proptest::collection::vec(1u8..=4, 1..60),
            drops in proptest::collection::vec(any::<bool>(), 240),
            gop in 1usize..10,
            first_seq in any::<u16>(),
        ) {
            let packets = stream(&sizes, gop, first_seq);
            // Drop about one in four.
            let delivered: Vec<bool> = packets
                .iter()
                .enumerate()
                .map(|(i, _)| !(drops[i % drops.len()] && drops[(i * 7 + 3) % drops.len()]))
                .collect();
            let mut account = TrackAccount::new(TrackKind::Video, 1000);
            let t0 = Instant::now();
            for (p, _) in packets.iter().zip(&delivered).filter(|(_, d)| **d) {
                account.on_packet(packet(p.0, p.1, p.2, p.3), || t0);
            }
            let stats = account.snapshot(t0, true);

            let first = delivered.iter().position(|d| *d);
            let last = delivered.iter().rposition(|d| *d);
            let mut frames = 0;
            let mut complete = Vec::new();
            let mut keyframes = 0;
            for i in 0..sizes.len() {
                let idx: Vec<usize> = (0..packets.len()).filter(|&j| packets[j].4 == i).collect();
                let finished = idx.iter().any(|&j| delivered[j] && packets[j].2)
                    || last.is_some_and(|l| l > *idx.last().unwrap());
                if !idx.iter().any(|&j| delivered[j]) || !finished {
                    // Nothing arrived, or still waiting for its marker or a newer timestamp.
                    continue;
                }
                frames += 1;
                if i % gop == 0 {
                    keyframes += 1;
                }
                let own = idx.iter().all(|&j| delivered[j]);
                let start = idx[0];
                let predecessor = Some(start) == first || (start > 0 && delivered[start - 1]);
                complete.push(own && predecessor);
            }
            let lost = match (first, last) {
                (Some(f), Some(l)) => (f..=l).filter(|&j| !delivered[j]).count() as u64,
                _ => 0,
            };
            prop_assert_eq!(stats.frames, frames);
            prop_assert_eq!(stats.keyframes, keyframes);
            prop_assert_eq!(stats.frame_log.iter().map(|f| f.complete).collect::<Vec<_>>(), complete);
            prop_assert_eq!(stats.packets_lost, lost);
            prop_assert_eq!(stats.packets, delivered.iter().filter(|d| **d).count() as u64);
        }
    }
}
