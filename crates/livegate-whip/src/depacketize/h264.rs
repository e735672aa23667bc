//! H.264 access units from RTP payloads, RFC 6184: single NAL unit packets (§5.6), STAP-A
//! (§5.7.1) and FU-A (§5.8), which is all of packetization-mode 0 and 1 (§6.2, §6.3), the
//! modes WebRTC publishers use.
//!
//! An access unit is the NAL units of one RTP timestamp (§5.1). It ends with the packet that
//! has the marker bit, or, if that packet was lost or the sender never sets the marker, when
//! a packet with another timestamp arrives: an access unit is never held back waiting.
//!
//! Loss comes in from the reorder buffer as "packets missing here". This module only says
//! what it cost: a frame is `damaged` when a packet of it is known to be missing (a gap
//! between two of its packets, an FU-A without its start or end) and `head_unknown` when
//! packets were lost just before it, which may have been its first NAL units or whole frames
//! before it. Which frames to drop and when to wait for an IDR is decided by the ingest.
//!
//! Output is Annex B with four-byte start codes, one buffer per access unit, holding only
//! complete NAL units. Access unit delimiters and filler data are dropped: RTP marks access
//! units by timestamp, and the muxer writes its own delimiter first in every access unit, as
//! H.264 in MPEG-TS wants (ISO/IEC 13818-1 §2.14.1). Not here: interleaved mode (STAP-B,
//! MTAP, FU-B, packetization-mode 2, which no WebRTC sender uses; such packets count as
//! unsupported and damage their frame) and parameter-set handling.

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::NalHeader;
use h264_reader::rbsp::{BitRead, BitReader, ByteReader};

use crate::reorder::RtpUnit;

/// NAL unit type of a STAP-A (RFC 6184 §5.7.1).
const STAP_A: u8 = 24;
/// NAL unit types of STAP-B, MTAP16, MTAP24 (§5.7) and FU-B (§5.8): interleaved mode only.
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_B: u8 = 29;
/// NAL unit type of an FU-A (§5.8).
const FU_A: u8 = 28;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;
const TYPE_MASK: u8 = 0x1F;
/// F and NRI of a NAL unit header, which an FU indicator carries for the fragmented unit.
const F_NRI_MASK: u8 = 0xE0;
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// `nal_unit_type`s dropped: access unit delimiter (the muxer writes its own) and filler.
const ACCESS_UNIT_DELIMITER: u8 = 9;
const FILLER_DATA: u8 = 12;

/// Bounds on one access unit, so hostile or broken input cannot make us buffer without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Limits {
    /// Largest access unit kept, start codes included; the rest of a larger one is dropped
    /// and the frame marked damaged.
    pub max_access_unit_bytes: usize,
    /// Most NAL units in one access unit; likewise.
    pub max_nal_units: usize,
}

impl Default for H264Limits {
    /// 4 MiB (a 4K keyframe at high quality stays below) and 1024 NAL units (slices of a
    /// picture, plus its parameter sets and SEI).
    fn default() -> Self {
        H264Limits {
            max_access_unit_bytes: 4 * 1024 * 1024,
            max_nal_units: 1024,
        }
    }
}

/// Counters of what the depacketizer could not use; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizeStats {
    /// Payloads that break RFC 6184: truncated STAP-A, FU-A with both start and end bit,
    /// a NAL unit header with the forbidden bit set, FU-A fragments without their start.
    pub malformed_packets: u64,
    /// Interleaved-mode packets (STAP-B, MTAP, FU-B), which we do not reassemble.
    pub unsupported_packets: u64,
    /// Packets of NAL unit types 0, 30 and 31, which RFC 6184 §5.2 says to ignore.
    pub ignored_packets: u64,
    /// Access units cut short at [`H264Limits`].
    pub oversized_access_units: u64,
}

/// One access unit as it came out of RTP, with what is known of its losses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct H264Frame {
    /// The extended RTP timestamp shared by its packets.
    pub timestamp: i64,
    /// Annex B, complete NAL units only.
    pub data: Bytes,
    /// Part of it is known to be missing.
    pub damaged: bool,
    /// Packets were lost just before it: its first NAL units, or whole frames before it.
    pub head_unknown: bool,
    /// Slices received.
    pub slices: usize,
    /// Some slice has `nal_ref_idc` ≠ 0: other pictures may be predicted from it (ITU-T
    /// H.264 §7.4.1).
    pub reference: bool,
    /// Its slices are IDR slices (nal_unit_type 5).
    pub idr: bool,
    /// The first slice received starts the picture (`first_mb_in_slice` = 0, §7.4.3), so no
    /// slice was lost before it.
    pub starts_at_first_macroblock: bool,
}

/// The access unit being assembled.
#[derive(Debug)]
struct Assembly {
    timestamp: i64,
    damaged: bool,
    head_unknown: bool,
    nal_units: usize,
    slices: usize,
    reference: bool,
    idr: bool,
    starts_at_first_macroblock: bool,
    /// An FU-A NAL unit under reassembly: where its start code is in the buffer, or `None`
    /// while fragments of a unit we drop (delimiter, filler) are skipped.
    fragmented: Option<Option<usize>>,
    /// Past a limit: the rest of the access unit is skipped.
    overflowed: bool,
}

/// Reassembles one H.264 RTP stream, packets in sequence order, into access units.
///
/// Each access unit is written once, payload bytes straight into one buffer that is reused
/// from one access unit to the next once the previous one has been dropped downstream.
#[derive(Debug)]
pub(crate) struct H264Depacketizer {
    limits: H264Limits,
    buffer: BytesMut,
    assembly: Option<Assembly>,
    /// Packets went missing since the last packet.
    gap: bool,
    /// The sender sets the marker bit, so an access unit cut off without one lost its end.
    saw_marker: bool,
    stats: DepacketizeStats,
}

impl H264Depacketizer {
    pub fn new(limits: H264Limits) -> Self {
        H264Depacketizer {
            limits,
            buffer: BytesMut::new(),
            assembly: None,
            gap: false,
            saw_marker: false,
            stats: DepacketizeStats::default(),
        }
    }

    pub fn stats(&self) -> DepacketizeStats {
        self.stats
    }

    /// Packets are missing before the next one.
    pub fn lost(&mut self) {
        self.gap = true;
        if let Some(assembly) = self.assembly.as_mut() {
            // A unit being reassembled has lost a fragment, whatever comes next.
            if let Some(fragmented) = assembly.fragmented.take() {
                self.buffer
                    .truncate(fragmented.unwrap_or(self.buffer.len()));
                assembly.damaged = true;
            }
        }
    }

    /// Takes the next packet in sequence order; appends the access units it completes.
    pub fn push(&mut self, unit: &RtpUnit, out: &mut Vec<H264Frame>) {
        // Padding-only packets (bandwidth probes) carry nothing and often reuse the last
        // frame's timestamp after its marker.
        if unit.payload.is_empty() {
            return;
        }
        let gap = std::mem::take(&mut self.gap);
        match self.assembly.as_mut() {
            Some(assembly) if assembly.timestamp != unit.timestamp => {
                // Packets lost between the last one and this one may have been its tail.
                assembly.damaged |= gap;
                self.finish(out);
            }
            Some(assembly) => assembly.damaged |= gap,
            None => {}
        }
        if self.assembly.is_none() {
            self.buffer.reserve(unit.payload.len() + START_CODE.len());
            self.assembly = Some(Assembly {
                timestamp: unit.timestamp,
                damaged: false,
                head_unknown: gap,
                nal_units: 0,
                slices: 0,
                reference: false,
                idr: false,
                starts_at_first_macroblock: false,
                fragmented: None,
                overflowed: false,
            });
        }
        self.payload(&unit.payload);
        if unit.marker {
            self.saw_marker = true;
            self.finish(out);
        }
    }

    /// Ends the access unit under assembly, if any: for the end of the stream. From a
    /// sender that sets the marker bit, it is damaged (its last packet never came).
    pub fn flush(&mut self, out: &mut Vec<H264Frame>) {
        if let Some(assembly) = self.assembly.as_mut() {
            assembly.damaged |= self.saw_marker || self.gap;
        }
        self.finish(out);
    }

    /// Drops the access unit under assembly and forgets any gap, for a new sender.
    pub fn reset(&mut self) {
        self.assembly = None;
        self.buffer.clear();
        self.gap = false;
    }

    fn payload(&mut self, payload: &[u8]) {
        let nal_type = payload[0] & TYPE_MASK;
        match nal_type {
            1..=23 => self.complete_nal(payload),
            STAP_A => self.stap_a(&payload[1..]),
            FU_A => self.fu_a(payload),
            STAP_B | MTAP16 | MTAP24 | FU_B => {
                self.stats.unsupported_packets += 1;
                self.damage();
            }
            // 0, 30, 31: "undefined", to be ignored (RFC 6184 §5.2).
            _ => self.stats.ignored_packets += 1,
        }
    }

    /// RFC 6184 §5.7.1: NAL units, each behind its 16-bit size.
    fn stap_a(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let Some(&[hi, lo]) = rest.get(..2).map(|b| <&[u8; 2]>::try_from(b).unwrap()) else {
                return self.malformed();
            };
            let size = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(nal) = rest.get(2..2 + size).filter(|nal| !nal.is_empty()) else {
                return self.malformed();
            };
            self.complete_nal(nal);
            rest = &rest[2 + size..];
        }
    }

    /// RFC 6184 §5.8: FU indicator (F, NRI, type 28), FU header (S, E, R, the unit's type),
    /// then a piece of the unit without its header byte.
    fn fu_a(&mut self, payload: &[u8]) {
        let Some(&header) = payload.get(1) else {
            return self.malformed();
        };
        let (start, end) = (header & FU_START != 0, header & FU_END != 0);
        if start && end || matches!(header & TYPE_MASK, 0 | 24..=31) {
            return self.malformed();
        }
        let nal_header = payload[0] & F_NRI_MASK | header & TYPE_MASK;
        let fragment = &payload[2..];
        let assembly = self.assembly.as_mut().expect("push starts an assembly");
        if start {
            if let Some(previous) = assembly.fragmented.take() {
                // The previous unit never ended: its end was lost, or never sent.
                self.buffer.truncate(previous.unwrap_or(self.buffer.len()));
                assembly.damaged = true;
            }
            let overflowed = assembly.overflowed;
            if overflowed || !self.admit(nal_header, 1 + fragment.len()) {
                return;
            }
            let assembly = self.assembly.as_mut().expect("checked");
            if is_dropped(nal_header) {
                assembly.fragmented = Some(None);
            } else {
                assembly.fragmented = Some(Some(self.buffer.len()));
                self.buffer.put_slice(&START_CODE);
                self.buffer.put_u8(nal_header);
                self.buffer.put_slice(fragment);
            }
        } else {
            match assembly.fragmented {
                None => {
                    // A middle or end without its start: the start was lost in a gap we were
                    // told about (already counted), or never sent.
                    if !assembly.damaged {
                        self.stats.malformed_packets += 1;
                    }
                    assembly.damaged = true;
                    return;
                }
                Some(None) => {}
                Some(Some(_)) => {
                    if self.buffer.len() + fragment.len() > self.limits.max_access_unit_bytes {
                        return self.overflow();
                    }
                    self.buffer.put_slice(fragment);
                }
            }
        }
        if end {
            let assembly = self.assembly.as_mut().expect("checked");
            if let Some(Some(start_at)) = assembly.fragmented.take() {
                note(assembly, &self.buffer[start_at + START_CODE.len()..]);
            }
        }
    }

    /// A whole NAL unit: header checked, then copied behind a start code.
    fn complete_nal(&mut self, nal: &[u8]) {
        let overflowed = self.assembly.as_ref().is_none_or(|a| a.overflowed);
        if overflowed || !self.admit(nal[0], nal.len()) {
            return;
        }
        if is_dropped(nal[0]) {
            return;
        }
        self.buffer.put_slice(&START_CODE);
        self.buffer.put_slice(nal);
        note(self.assembly.as_mut().expect("checked"), nal);
    }

    /// Whether a NAL unit of `len` bytes with this header may go in: forbidden bit clear
    /// (RFC 6184 §5.3: F = 1 signals a unit with bit errors, which a receiver may discard)
    /// and within the limits.
    fn admit(&mut self, header: u8, len: usize) -> bool {
        if NalHeader::new(header).is_err() {
            self.malformed();
            return false;
        }
        let assembly = self.assembly.as_mut().expect("push starts an assembly");
        if assembly.nal_units >= self.limits.max_nal_units
            || self.buffer.len() + START_CODE.len() + len > self.limits.max_access_unit_bytes
        {
            self.overflow();
            return false;
        }
        assembly.nal_units += 1;
        true
    }

    fn malformed(&mut self) {
        self.stats.malformed_packets += 1;
        self.damage();
    }

    fn damage(&mut self) {
        if let Some(assembly) = self.assembly.as_mut() {
            assembly.damaged = true;
        }
    }

    /// Past a limit: drop the unit in progress and skip the rest of the access unit.
    fn overflow(&mut self) {
        let assembly = self.assembly.as_mut().expect("push starts an assembly");
        if let Some(Some(start_at)) = assembly.fragmented.take() {
            self.buffer.truncate(start_at);
        }
        if !assembly.overflowed {
            self.stats.oversized_access_units += 1;
        }
        assembly.overflowed = true;
        assembly.damaged = true;
    }

    fn finish(&mut self, out: &mut Vec<H264Frame>) {
        let Some(mut assembly) = self.assembly.take() else {
            return;
        };
        if let Some(fragmented) = assembly.fragmented.take() {
            // The last unit never got its end fragment.
            self.buffer
                .truncate(fragmented.unwrap_or(self.buffer.len()));
            assembly.damaged = true;
        }
        out.push(H264Frame {
            timestamp: assembly.timestamp,
            data: self.buffer.split().freeze(),
            damaged: assembly.damaged,
            head_unknown: assembly.head_unknown,
            slices: assembly.slices,
            reference: assembly.reference,
            idr: assembly.idr,
            starts_at_first_macroblock: assembly.starts_at_first_macroblock,
        });
    }
}

/// Records what a complete NAL unit says about its access unit.
fn note(assembly: &mut Assembly, nal: &[u8]) {
    let nal_type = nal[0] & TYPE_MASK;
    if !(1..=5).contains(&nal_type) {
        return;
    }
    if assembly.slices == 0 {
        assembly.starts_at_first_macroblock = first_mb_in_slice(nal) == Some(0);
    }
    assembly.slices += 1;
    // nal_ref_idc (ITU-T H.264 §7.4.1).
    assembly.reference |= nal[0] & 0x60 != 0;
    assembly.idr |= nal_type == 5;
}

fn is_dropped(header: u8) -> bool {
    matches!(header & TYPE_MASK, ACCESS_UNIT_DELIMITER | FILLER_DATA)
}

/// `first_mb_in_slice`, the first field of every slice header (ITU-T H.264 §7.3.3), read
/// with h264-reader's RBSP reader (it removes emulation prevention bytes).
fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    BitReader::new(ByteReader::skipping_h264_header(nal))
        .read_ue("first_mb_in_slice")
        .ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use livegate_media::h264::nal_units;
    use livegate_media::testing::{annexb, fixture_video, nal};
    use livegate_whep::packetize::H264Packetizer;
    use proptest::prelude::*;
    use rtc::rtp::codec::h264::H264Payloader;
    use rtc::rtp::packetizer::Payloader;

    use super::*;
    use crate::reorder::{ReorderBuffer, ReorderLimits, Reordered};

    fn unit(seq: u16, timestamp: i64, marker: bool, payload: &[u8]) -> RtpUnit {
        RtpUnit {
            sequence_number: seq,
            timestamp,
            marker,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn depacketize(units: &[RtpUnit]) -> (Vec<H264Frame>, H264Depacketizer) {
        let mut d = H264Depacketizer::new(H264Limits::default());
        let mut out = Vec::new();
        for u in units {
            d.push(u, &mut out);
        }
        d.flush(&mut out);
        (out, d)
    }

    fn nals(frame: &H264Frame) -> Vec<Vec<u8>> {
        nal_units(&frame.data).map(<[u8]>::to_vec).collect()
    }

    /// A slice NAL unit: `header`, then `first_mb_in_slice` as ue(v) (0 is the bit `1`, 1
    /// is `010`), then filler bits.
    fn slice(header: u8, first_mb: u8) -> Vec<u8> {
        let first = if first_mb == 0 { 0x80 } else { 0x40 };
        vec![header, first | 0x11, 0xAB, 0xCD]
    }

    #[test]
    fn single_stap_a_and_fu_a_packets_make_one_access_unit() {
        let sps = [0x67, 0x42, 0xC0, 0x1E];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let idr = slice(0x65, 0);
        let mut stap = vec![0x78];
        for nal in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        // The IDR in three fragments: FU indicator keeps F/NRI, the FU header its type.
        let fu = |se: u8, body: &[u8]| [&[0x7C, se | 5][..], body].concat();
        let units = [
            unit(1, 0, false, &[0x09, 0xF0]), // access unit delimiter: dropped
            unit(2, 0, false, &stap),
            unit(3, 0, false, &fu(0x80, &idr[1..2])),
            unit(4, 0, false, &fu(0x00, &idr[2..3])),
            unit(5, 0, true, &fu(0x40, &idr[3..])),
            unit(6, 3_000, true, &slice(0x41, 0)),
        ];
        let (frames, d) = depacketize(&units);
        assert_eq!(frames.len(), 2);
        assert_eq!(nals(&frames[0]), [sps.to_vec(), pps.to_vec(), idr.clone()]);
        let f = &frames[0];
        assert!(f.idr && f.reference && f.starts_at_first_macroblock);
        assert!(!f.damaged && !f.head_unknown);
        assert_eq!(f.slices, 1);
        assert_eq!(frames[1].timestamp, 3_000);
        assert!(!frames[1].idr);
        assert_eq!(d.stats(), DepacketizeStats::default());
        // Four-byte start codes, as Annex B.1 wants before parameter sets.
        assert_eq!(&f.data[..5], &[0, 0, 0, 1, 0x67]);
    }

    #[test]
    fn without_markers_a_new_timestamp_ends_the_access_unit() {
        let units = [
            unit(1, 0, false, &slice(0x65, 0)),
            unit(2, 0, false, &slice(0x65, 1)),
            unit(3, 3_000, false, &slice(0x41, 0)),
        ];
        let (frames, _) = depacketize(&units);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].slices, 2);
        assert!(!frames[0].damaged);
        // Flushed at the end without a marker from a sender that never sets it: whole.
        assert!(!frames[1].damaged);
    }

    #[test]
    fn loss_inside_between_and_at_the_end_is_reported() {
        let mut d = H264Depacketizer::new(H264Limits::default());
        let mut out = Vec::new();
        d.push(&unit(1, 0, false, &slice(0x65, 0)), &mut out);
        d.lost();
        d.push(&unit(3, 0, true, &slice(0x65, 1)), &mut out);
        d.lost();
        d.push(&unit(5, 3_000, false, &slice(0x21, 1)), &mut out);
        d.lost();
        d.push(&unit(7, 6_000, true, &slice(0x01, 0)), &mut out);
        d.push(&unit(8, 9_000, false, &slice(0x41, 0)), &mut out);
        d.flush(&mut out);
        let flags: Vec<(bool, bool)> = out.iter().map(|f| (f.damaged, f.head_unknown)).collect();
        // A gap between two packets of one timestamp damages it; a gap after a marker
        // leaves the next picture's head unknown; a gap before a new timestamp damages the
        // unfinished picture (its tail may be gone) and leaves the new one's head unknown;
        // the last one never got its marker.
        assert_eq!(
            flags,
            [(true, false), (true, true), (false, true), (true, false)]
        );
        assert!(!out[1].starts_at_first_macroblock);
        assert!(out[1].reference && !out[2].reference);
    }

    #[test]
    fn a_fragmented_unit_cut_by_loss_is_left_out() {
        let mut d = H264Depacketizer::new(H264Limits::default());
        let mut out = Vec::new();
        let whole = slice(0x41, 0);
        d.push(&unit(1, 0, false, &whole), &mut out);
        d.push(&unit(2, 0, false, &[0x7C, 0x85, 0x88]), &mut out);
        d.lost();
        d.push(&unit(4, 0, false, &[0x7C, 0x45, 0x99]), &mut out);
        // An FU-A start while another is open: the open one lost its end.
        d.push(&unit(5, 0, false, &[0x7C, 0x85, 0x77]), &mut out);
        d.push(&unit(6, 0, true, &[0x7C, 0x81, 0x66]), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(nals(&out[0]), [whole]);
        assert!(out[0].damaged);
    }

    #[test]
    fn broken_and_foreign_packets_are_counted_and_skipped() {
        let units = [
            unit(1, 0, false, &[]),                       // padding: nothing
            unit(2, 0, false, &[0x78, 0x00, 0x09, 0x67]), // STAP-A overrun
            unit(3, 0, false, &[0x7C, 0xC5, 0x01]),       // FU-A with S and E
            unit(4, 0, false, &[0x19, 0x00]),             // STAP-B: interleaved mode
            unit(5, 0, false, &[0x1E, 0x00]),             // type 30: ignored
            unit(6, 0, false, &[0xE5, 0x88]),             // forbidden bit
            unit(7, 0, true, &[0x7C, 0x05, 0x01]),        // FU-A middle, no start
        ];
        let (frames, d) = depacketize(&units);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].data.is_empty() && frames[0].damaged);
        let stats = d.stats();
        // The FU-A middle is not counted: its frame was damaged already, so its start may
        // just have been lost.
        assert_eq!(stats.malformed_packets, 3);
        assert_eq!(stats.unsupported_packets, 1);
        assert_eq!(stats.ignored_packets, 1);
    }

    #[test]
    fn limits_cut_an_access_unit_short() {
        let limits = H264Limits {
            max_access_unit_bytes: 64,
            max_nal_units: 3,
        };
        let mut d = H264Depacketizer::new(limits);
        let mut out = Vec::new();
        for seq in 0..5 {
            d.push(&unit(seq, 0, false, &slice(0x41, seq as u8)), &mut out);
        }
        let big = [&[0x7C, 0x81][..], &[0x55; 100]].concat();
        d.push(&unit(5, 3_000, false, &big), &mut out);
        d.push(&unit(6, 3_000, true, &[0x7C, 0x41, 0x55]), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].slices, 3);
        assert!(out[0].damaged && out[1].damaged);
        assert!(out.iter().all(|f| f.data.len() <= 64));
        assert_eq!(d.stats().oversized_access_units, 2);
    }

    fn carried(au: &[u8]) -> Vec<Vec<u8>> {
        nal_units(au)
            .filter(|nal| !matches!(nal[0] & TYPE_MASK, ACCESS_UNIT_DELIMITER | FILLER_DATA))
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// x264's access units through both packetizers we know, mode 1 (ours and webrtc-rs's)
    /// and mode 0 (one NAL unit per packet): the same NAL units come back.
    #[test]
    fn x264_access_units_survive_three_packetizers() {
        let aus = fixture_video("h264-high-opus.ts");
        let mut ours = H264Packetizer::default();
        let mut theirs = H264Payloader::default();
        type Packetize<'a> = Box<dyn FnMut(&Bytes) -> Vec<Bytes> + 'a>;
        let packetizers: [(&str, Packetize<'_>); 3] = [
            ("livegate-whep", Box::new(|au| ours.packetize(au).to_vec())),
            (
                "webrtc-rs",
                Box::new(|au| theirs.payload(1_200, au).unwrap()),
            ),
            (
                "mode 0",
                Box::new(|au| nal_units(au).map(|n| au.slice_ref(n)).collect()),
            ),
        ];
        for (name, mut packetize) in packetizers {
            let mut units = Vec::new();
            for (i, au) in aus.iter().enumerate() {
                let payloads = packetize(au);
                let last = payloads.len() - 1;
                for (j, p) in payloads.into_iter().enumerate() {
                    let seq = units.len() as u16;
                    units.push(RtpUnit {
                        sequence_number: seq,
                        timestamp: i as i64 * 3_000,
                        marker: j == last,
                        payload: p,
                    });
                }
            }
            let (frames, d) = depacketize(&units);
            assert_eq!(frames.len(), aus.len(), "{name}");
            for (frame, au) in frames.iter().zip(&aus) {
                assert_eq!(nals(frame), carried(au), "{name}");
                assert!(!frame.damaged && !frame.head_unknown, "{name}");
                assert_eq!(frame.idr, livegate_media::h264::is_idr_access_unit(au));
                assert!(frame.starts_at_first_macroblock, "{name}");
            }
            assert_eq!(d.stats(), DepacketizeStats::default(), "{name}");
        }
    }

    fn nal_type() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(1u8),
            Just(5),
            Just(6),
            Just(7),
            Just(8),
            Just(9),
            Just(12),
            1u8..24
        ]
    }

    /// Packetizes `aus` (timestamps `base + 3000 i`, sequence numbers from `seq0`), lets
    /// packets arrive up to 7 places late, drops `drops` (never from the last access unit,
    /// whose loss nothing after it could reveal), and depacketizes through the reorder
    /// buffer. Returns the frames and, per access unit, whether it lost a packet.
    fn round_trip(
        aus: &[Vec<Vec<u8>>],
        max_payload: usize,
        seq0: u16,
        base: i64,
        jitter: &[usize],
        drops: &std::collections::BTreeSet<usize>,
        markers: bool,
    ) -> (Vec<H264Frame>, Vec<bool>) {
        let mut packetizer = H264Packetizer::new(max_payload).unwrap();
        let mut units = Vec::new();
        let mut owner = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            let payloads = packetizer.packetize(&annexb(au));
            let last = payloads.len().saturating_sub(1);
            for (j, p) in payloads.iter().enumerate() {
                units.push(RtpUnit {
                    sequence_number: seq0.wrapping_add(units.len() as u16),
                    timestamp: base + i as i64 * 3_000,
                    marker: markers && j == last,
                    payload: p.clone(),
                });
                owner.push(i);
            }
        }
        let last_au = owner.last().copied();
        let mut lossy = vec![false; aus.len()];
        let mut order: Vec<usize> = (0..units.len())
            .filter(|&k| {
                let dropped = k > 0 && drops.contains(&k) && Some(owner[k]) != last_au;
                if dropped {
                    lossy[owner[k]] = true;
                }
                !dropped
            })
            .collect();
        // The first packet arrives first: nothing before it can be known to be missing.
        order.sort_by_key(|&k| {
            if k == 0 {
                0
            } else {
                k + jitter[k % jitter.len()]
            }
        });
        let limits = ReorderLimits {
            window_packets: 16,
            max_delay: Duration::from_secs(60),
        };
        let mut reorder = ReorderBuffer::new(limits);
        let mut d = H264Depacketizer::new(H264Limits::default());
        let (mut reordered, mut frames) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for k in order {
            reorder.push(units[k].clone(), now, &mut reordered);
        }
        reorder.release_all(&mut reordered);
        for item in reordered {
            match item {
                Reordered::Packet(u) => d.push(&u, &mut frames),
                Reordered::Lost(_) | Reordered::Discontinuity => d.lost(),
            }
        }
        d.flush(&mut frames);
        (frames, lossy)
    }

    proptest! {
        /// Without loss, any access units at any payload bound, reordered within the window,
        /// with or without marker bits, come back exactly (less delimiters and filler),
        /// across the sequence number wrap.
        #[test]
        fn access_units_come_back_whole(
            aus in proptest::collection::vec(proptest::collection::vec(nal(nal_type(), 1..2_500), 1..6), 1..12),
            max_payload in prop_oneof![Just(1_200usize), 16usize..1_500],
            seq0 in any::<u16>(),
            jitter in proptest::collection::vec(0usize..8, 1..32),
            markers in any::<bool>(),
        ) {
            let (frames, _) = round_trip(&aus, max_payload, seq0, 1 << 32, &jitter, &Default::default(), markers);
            let want: Vec<(i64, Vec<Vec<u8>>)> = aus
                .iter()
                .enumerate()
                .map(|(i, au)| ((1 << 32) + i as i64 * 3_000, carried(&annexb(au))))
                .filter(|(_, nals)| !nals.is_empty())
                .collect();
            let got: Vec<(i64, Vec<Vec<u8>>)> = frames.iter().map(|f| (f.timestamp, nals(f))).collect();
            prop_assert_eq!(got, want);
            prop_assert!(frames.iter().all(|f| !f.damaged && !f.head_unknown));
        }

        /// With loss: an access unit that lost nothing comes back exactly; one that lost a
        /// packet comes back flagged, with only NAL units it really had, or not at all, and
        /// then the next one that does come back is flagged as having an unknown head.
        #[test]
        fn loss_is_always_flagged_and_never_invents_data(
            aus in proptest::collection::vec(proptest::collection::vec(nal(nal_type(), 1..2_500), 1..6), 2..12),
            max_payload in prop_oneof![Just(1_200usize), 16usize..1_500],
            seq0 in any::<u16>(),
            jitter in proptest::collection::vec(0usize..8, 1..32),
            drops in proptest::collection::btree_set(1usize..200, 1..12),
        ) {
            let (frames, lossy) = round_trip(&aus, max_payload, seq0, 0, &jitter, &drops, true);
            let mut previous_missing = false;
            let mut next_frame = frames.iter().peekable();
            for (i, au) in aus.iter().enumerate() {
                let want = carried(&annexb(au));
                if want.is_empty() {
                    continue;
                }
                let frame = next_frame.next_if(|f| f.timestamp == i as i64 * 3_000);
                match frame {
                    None => {
                        prop_assert!(lossy[i], "access unit {} vanished without loss", i);
                        previous_missing = true;
                    }
                    Some(f) => {
                        let got = nals(f);
                        if !lossy[i] {
                            prop_assert_eq!(&got, &want, "access unit {}", i);
                        } else {
                            prop_assert!(f.damaged || f.head_unknown, "access unit {} not flagged", i);
                            let mut rest = want.iter();
                            prop_assert!(got.iter().all(|n| rest.any(|w| w == n)), "access unit {}: not a subsequence", i);
                        }
                        if previous_missing {
                            prop_assert!(f.head_unknown, "access unit {} after a vanished one", i);
                        }
                        previous_missing = false;
                    }
                }
            }
            prop_assert!(next_frame.next().is_none());
        }
    }

    #[test]
    fn first_mb_in_slice_is_read_through_emulation_prevention() {
        assert_eq!(first_mb_in_slice(&slice(0x65, 0)), Some(0));
        assert_eq!(first_mb_in_slice(&slice(0x65, 1)), Some(1));
        // RBSP 00 00 02 00 00 00 80 is 22 zeros, a one, 22 zeros: ue(v) = 2^22 - 1. Its
        // `00 00 0x` runs carry emulation prevention bytes, which must be skipped.
        let nal = [0x41, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x03, 0x00, 0x80];
        assert_eq!(first_mb_in_slice(&nal), Some((1 << 22) - 1));
        assert_eq!(first_mb_in_slice(&[0x41]), None);
    }
}
