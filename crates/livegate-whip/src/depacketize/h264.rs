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
    stats: DepacketizeStats,
}

impl H264Depacketizer {
    pub fn new(limits: H264Limits) -> Self {
        H264Depacketizer {
            limits,
            buffer: BytesMut::new(),
            assembly: None,
            gap: false,
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
            self.finish(out);
        }
    }

    /// Ends the access unit under assembly, if any, as if its last packet had the marker:
    /// for the end of the stream.
    pub fn flush(&mut self, out: &mut Vec<H264Frame>) {
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
