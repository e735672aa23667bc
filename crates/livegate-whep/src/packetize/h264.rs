//! H.264 RTP payloads, RFC 6184 non-interleaved mode (packetization-mode=1, §6.3), the mode
//! browsers implement.
//!
//! Per NAL unit of the access unit, in order:
//!
//! - access unit delimiters (type 9) and filler data (type 12) are dropped: RTP marks access
//!   unit boundaries with the marker bit and timestamp (RFC 6184 §5.1), and filler only pads
//!   a constant bit rate; so are the types RTP cannot carry as themselves (0, 24–31, which
//!   RFC 6184 §5.2 Table 1 reserves or uses for its own packet types);
//! - consecutive small parameter sets and SEI go into one STAP-A (§5.7.1), so that SPS + PPS
//!   in front of an IDR cost one packet;
//! - any other NAL unit that fits the bound is a single NAL unit packet (§5.6): the NAL unit
//!   itself, a slice of the access unit's buffer, not a copy;
//! - a larger one is split into FU-A fragments (§5.8).
//!
//! STAP-A and FU-A payloads need header bytes in front of NAL unit bytes, so they are built,
//! all of an access unit's into one buffer allocated once at the exact size and handed out as
//! `split().freeze()` slices.

use std::mem;
use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use livegate_media::h264::nal_units;

use super::{
    PacketizeError, DEFAULT_MAX_PAYLOAD_BYTES, MAX_MAX_PAYLOAD_BYTES, MIN_MAX_PAYLOAD_BYTES,
};

/// NAL unit type of a STAP-A (RFC 6184 §5.7.1).
const STAP_A: u8 = 24;
/// NAL unit type of an FU-A (RFC 6184 §5.8).
const FU_A: u8 = 28;
/// The STAP-A NAL header byte.
const STAP_A_HEADER_BYTES: usize = 1;
/// The 16-bit NAL unit size in front of each aggregated NAL unit.
const STAP_A_SIZE_BYTES: usize = 2;
/// FU indicator and FU header.
const FU_A_HEADER_BYTES: usize = 2;
/// FU header start bit (RFC 6184 §5.8).
const FU_START: u8 = 0x80;
/// FU header end bit.
const FU_END: u8 = 0x40;
/// `forbidden_zero_bit` of a NAL header (ITU-T H.264 §7.4.1).
const F_BIT: u8 = 0x80;
/// `nal_ref_idc` of a NAL header.
const NRI_MASK: u8 = 0x60;
const TYPE_MASK: u8 = 0x1F;

/// Whether a NAL unit of this type is sent at all.
fn is_carried(nal_type: u8) -> bool {
    // 9: access unit delimiter, 12: filler data; 0 and 24..=31 would be read as RTP
    // packet types (RFC 6184 §5.2, Table 1).
    !matches!(nal_type, 0 | 9 | 12 | 24..=31)
}

/// Whether a NAL unit of this type may share a STAP-A: SEI (6), SPS (7), PPS (8), SPS
/// extension (13) and subset SPS (15), the small non-VCL units that precede a picture.
fn is_aggregated(nal_type: u8) -> bool {
    matches!(nal_type, 6 | 7 | 8 | 13 | 15)
}

/// One payload to be, as indices into the access unit's NAL units.
#[derive(Debug, Clone)]
enum Planned {
    Single(usize),
    StapA(Range<usize>),
    FuA(usize),
}

/// Turns H.264 access units (Annex B) into RTP payloads.
///
/// Every payload is at most [`H264Packetizer::max_payload_bytes`] long. Reusable scratch
/// space makes packetizing allocation-free but for the two allocations an access unit needs
/// anyway: one buffer for its STAP-A and FU-A payloads (none when every NAL unit fits as it
/// is) and the returned payload list.
///
/// Owned by the one task that packetizes a stream; not shared.
///
/// ```
/// use bytes::Bytes;
/// use livegate_whep::packetize::H264Packetizer;
///
/// // AUD, SPS, PPS, and a 3000-byte IDR slice.
/// let mut au = vec![0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F];
/// au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80, 0, 0, 0, 1, 0x65]);
/// au.extend(std::iter::repeat_n(0xAB, 2_999));
/// let payloads = H264Packetizer::default().packetize(&Bytes::from(au));
/// assert_eq!(payloads[0][0] & 0x1F, 24, "SPS + PPS in one STAP-A");
/// assert!(payloads[1..].iter().all(|p| p[0] & 0x1F == 28), "the slice in FU-A fragments");
/// assert!(payloads.iter().all(|p| p.len() <= 1200));
/// ```
#[derive(Debug)]
pub struct H264Packetizer {
    max_payload_bytes: usize,
    nal_units: Vec<Bytes>,
    plan: Vec<Planned>,
    payloads: Vec<Bytes>,
    dropped_nal_units: u64,
}

impl Default for H264Packetizer {
    /// A packetizer bounded at [`DEFAULT_MAX_PAYLOAD_BYTES`].
    fn default() -> Self {
        H264Packetizer::new(DEFAULT_MAX_PAYLOAD_BYTES).expect("the default bound is in range")
    }
}

impl H264Packetizer {
    /// A packetizer whose payloads are at most `max_payload_bytes` long.
    pub fn new(max_payload_bytes: usize) -> Result<Self, PacketizeError> {
        if !(MIN_MAX_PAYLOAD_BYTES..=MAX_MAX_PAYLOAD_BYTES).contains(&max_payload_bytes) {
            return Err(PacketizeError::MaxPayloadOutOfRange(max_payload_bytes));
        }
        Ok(H264Packetizer {
            max_payload_bytes,
            nal_units: Vec::new(),
            plan: Vec::new(),
            payloads: Vec::new(),
            dropped_nal_units: 0,
        })
    }

    /// The payload bound.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// NAL units dropped so far (delimiters, filler, types RTP cannot carry).
    pub fn dropped_nal_units(&self) -> u64 {
        self.dropped_nal_units
    }

    /// The RTP payloads of one access unit, in decoding order; empty when it holds nothing
    /// to send. Single NAL unit payloads share `access_unit`'s buffer.
    pub fn packetize(&mut self, access_unit: &Bytes) -> Arc<[Bytes]> {
        for nal in nal_units(access_unit) {
            if is_carried(nal[0] & TYPE_MASK) {
                self.nal_units.push(access_unit.slice_ref(nal));
            } else {
                self.dropped_nal_units += 1;
            }
        }
        self.plan_payloads();

        let built_bytes = self.plan.iter().map(|p| self.built_len(p)).sum();
        // `with_capacity(0)` allocates nothing; otherwise this is the one buffer of the
        // access unit, never grown, so every `split()` below shares it.
        let mut buffer = BytesMut::with_capacity(built_bytes);
        let fragment_bytes = self.max_payload_bytes - FU_A_HEADER_BYTES;
        for planned in self.plan.drain(..) {
            match planned {
                Planned::Single(i) => self.payloads.push(mem::take(&mut self.nal_units[i])),
                Planned::StapA(range) => {
                    let nals = &self.nal_units[range];
                    write_stap_a(nals, &mut buffer);
                    self.payloads.push(buffer.split().freeze());
                }
                Planned::FuA(i) => {
                    let nal = &self.nal_units[i];
                    // F and NRI come from the fragmented unit, the type goes to the FU header
                    // (RFC 6184 §5.8).
                    let indicator = nal[0] & (F_BIT | NRI_MASK) | FU_A;
                    let nal_type = nal[0] & TYPE_MASK;
                    let body = &nal[1..];
                    let last = body.len().div_ceil(fragment_bytes) - 1;
                    for (n, fragment) in body.chunks(fragment_bytes).enumerate() {
                        let start = if n == 0 { FU_START } else { 0 };
                        let end = if n == last { FU_END } else { 0 };
                        buffer.put_u8(indicator);
                        buffer.put_u8(start | end | nal_type);
                        buffer.put_slice(fragment);
                        self.payloads.push(buffer.split().freeze());
                    }
                }
            }
        }
        debug_assert!(buffer.capacity() == 0 || built_bytes > 0);
        self.nal_units.clear();
        self.payloads.drain(..).collect()
    }

    /// Groups the NAL units into payloads.
    fn plan_payloads(&mut self) {
        let max = self.max_payload_bytes;
        // The STAP-A being filled: its NAL units and its size so far.
        let mut group: Option<(Range<usize>, usize)> = None;
        for (i, nal) in self.nal_units.iter().enumerate() {
            let entry_bytes = STAP_A_SIZE_BYTES + nal.len();
            if is_aggregated(nal[0] & TYPE_MASK) && STAP_A_HEADER_BYTES + entry_bytes <= max {
                group = match group.take() {
                    Some((range, size)) if size + entry_bytes <= max => {
                        Some((range.start..i + 1, size + entry_bytes))
                    }
                    full => {
                        close_group(full, &mut self.plan);
                        Some((i..i + 1, STAP_A_HEADER_BYTES + entry_bytes))
                    }
                };
                continue;
            }
            close_group(group.take(), &mut self.plan);
            self.plan.push(if nal.len() <= max {
                Planned::Single(i)
            } else {
                Planned::FuA(i)
            });
        }
        close_group(group, &mut self.plan);
    }

    /// Bytes a planned payload needs in the built buffer (0 for a single NAL unit packet).
    fn built_len(&self, planned: &Planned) -> usize {
        match planned {
            Planned::Single(_) => 0,
            Planned::StapA(range) => {
                STAP_A_HEADER_BYTES
                    + self.nal_units[range.clone()]
                        .iter()
                        .map(|nal| STAP_A_SIZE_BYTES + nal.len())
                        .sum::<usize>()
            }
            Planned::FuA(i) => {
                let body = self.nal_units[*i].len() - 1;
                let fragments = body.div_ceil(self.max_payload_bytes - FU_A_HEADER_BYTES);
                body + fragments * FU_A_HEADER_BYTES
            }
        }
    }
}

/// A group of one is sent as it is; a STAP-A of one unit only adds three bytes.
fn close_group(group: Option<(Range<usize>, usize)>, plan: &mut Vec<Planned>) {
    match group {
        Some((range, _)) if range.len() == 1 => plan.push(Planned::Single(range.start)),
        Some((range, _)) => plan.push(Planned::StapA(range)),
        None => {}
    }
}

/// RFC 6184 §5.7.1: F is set if any unit has it, NRI is the largest of the units'.
fn write_stap_a(nals: &[Bytes], buffer: &mut BytesMut) {
    let f = nals.iter().fold(0, |f, nal| f | nal[0] & F_BIT);
    let nri = nals.iter().map(|nal| nal[0] & NRI_MASK).max().unwrap_or(0);
    buffer.put_u8(f | nri | STAP_A);
    for nal in nals {
        // The caller only aggregates units shorter than the payload bound, itself ≤ u16::MAX.
        buffer.put_u16(nal.len() as u16);
        buffer.put_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use livegate_media::testing::{annexb, fixture_video, nal};
    use proptest::prelude::*;
    use rtc::rtp::codec::h264::H264Packet;
    use rtc::rtp::packetizer::Depacketizer;

    use super::*;

    /// A strict depacketizer written from RFC 6184 alone, independent of the packetizer: the
    /// NAL units the payloads carry, or what is wrong with them.
    fn depacketize(payloads: &[Bytes]) -> Result<Vec<Vec<u8>>, String> {
        let mut units = Vec::new();
        let mut fragmented: Option<Vec<u8>> = None;
        for (n, p) in payloads.iter().enumerate() {
            let t = *p.first().ok_or("empty payload")? & TYPE_MASK;
            if fragmented.is_some() && t != FU_A {
                return Err(format!("payload {n}: FU-A interrupted"));
            }
            match t {
                1..=23 => units.push(p.to_vec()),
                STAP_A => {
                    let mut rest = &p[1..];
                    let (mut f, mut nri, mut count) = (0, 0, 0);
                    while !rest.is_empty() {
                        let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                        let nal = rest.get(2..2 + size).ok_or("STAP-A unit overruns")?;
                        if nal.is_empty() {
                            return Err("empty unit in STAP-A".into());
                        }
                        f |= nal[0] & F_BIT;
                        nri = nri.max(nal[0] & NRI_MASK);
                        count += 1;
                        units.push(nal.to_vec());
                        rest = &rest[2 + size..];
                    }
                    if count < 2 {
                        return Err(format!("payload {n}: STAP-A of {count} unit(s)"));
                    }
                    if p[0] & F_BIT != f || p[0] & NRI_MASK != nri {
                        return Err(format!("payload {n}: STAP-A F/NRI {:#x}", p[0]));
                    }
                }
                FU_A => {
                    let header = *p.get(1).ok_or("FU-A without header")?;
                    let (start, end) = (header & FU_START != 0, header & FU_END != 0);
                    if start && end {
                        return Err(format!("payload {n}: FU-A with S and E"));
                    }
                    if p.len() < 3 {
                        return Err(format!("payload {n}: FU-A without data"));
                    }
                    if start == fragmented.is_some() {
                        return Err(format!("payload {n}: FU-A start bit out of place"));
                    }
                    let unit =
                        fragmented.get_or_insert_with(|| vec![p[0] & 0xE0 | header & TYPE_MASK]);
                    if unit[0] & TYPE_MASK != header & TYPE_MASK || unit[0] & 0xE0 != p[0] & 0xE0 {
                        return Err(format!("payload {n}: FU-A header changed"));
                    }
                    unit.extend_from_slice(&p[2..]);
                    if end {
                        units.extend(fragmented.take());
                    }
                }
                other => return Err(format!("payload {n}: packet type {other}")),
            }
        }
        match fragmented {
            Some(_) => Err("FU-A without end".into()),
            None => Ok(units),
        }
    }

    /// Depacketizes with webrtc-rs's `H264Packet` and splits its Annex B output back into
    /// NAL units.
    fn oracle(payloads: &[Bytes]) -> Vec<Vec<u8>> {
        let mut depacketizer = H264Packet::default();
        let mut annexb = Vec::new();
        for p in payloads {
            let out = depacketizer
                .depacketize(p)
                .expect("webrtc-rs accepts the payload");
            annexb.extend_from_slice(&out);
        }
        nal_units(&annexb).map(<[u8]>::to_vec).collect()
    }

    fn carried(nals: &[Vec<u8>]) -> Vec<Vec<u8>> {
        nals.iter()
            .filter(|nal| is_carried(nal[0] & TYPE_MASK))
            .cloned()
            .collect()
    }

    fn any_nal_type() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(1u8),
            Just(5),
            Just(6),
            Just(7),
            Just(8),
            Just(9),
            Just(12),
            0u8..32
        ]
    }

    #[test]
    fn bounds_outside_the_usable_range_are_refused() {
        assert_eq!(
            H264Packetizer::new(2).unwrap_err(),
            PacketizeError::MaxPayloadOutOfRange(2)
        );
        assert!(H264Packetizer::new(65_536).is_err());
        assert!(H264Packetizer::new(3).is_ok());
        assert!(H264Packetizer::new(65_535).is_ok());
    }

    #[test]
    fn x264_access_units_round_trip_through_webrtc_rs() {
        for name in ["h264-baseline-opus.ts", "h264-high-opus.ts", "pts-wrap.ts"] {
            let mut packetizer = H264Packetizer::default();
            let units = fixture_video(name);
            let mut fragmented = 0;
            for au in &units {
                let payloads = packetizer.packetize(au);
                assert!(payloads
                    .iter()
                    .all(|p| p.len() <= DEFAULT_MAX_PAYLOAD_BYTES));
                let want: Vec<Vec<u8>> = nal_units(au)
                    .filter(|nal| is_carried(nal[0] & TYPE_MASK))
                    .map(<[u8]>::to_vec)
                    .collect();
                assert_eq!(oracle(&payloads), want, "{name}");
                assert_eq!(depacketize(&payloads).unwrap(), want, "{name}");
                if livegate_media::h264::is_idr_access_unit(au) {
                    // SPS and PPS (x264 writes them, plus an SEI on the first IDR) share the
                    // first packet.
                    assert_eq!(payloads[0][0] & TYPE_MASK, STAP_A, "{name}");
                }
                fragmented += usize::from(payloads.iter().any(|p| p[0] & TYPE_MASK == FU_A));
            }
            // ffmpeg's delimiters were dropped, one per access unit.
            assert_eq!(packetizer.dropped_nal_units(), units.len() as u64, "{name}");
            assert!(fragmented > 0, "{name}: no access unit needed FU-A");
        }
    }

    #[test]
    fn single_units_share_the_access_unit_and_built_payloads_share_one_buffer() {
        let mut nals = vec![vec![0x67, 1, 2, 3], vec![0x68, 4, 5], vec![0x65]];
        nals[2].extend(std::iter::repeat_n(0x11, 3_000));
        nals.push(vec![0x41, 9, 9, 9]);
        let au = annexb(&nals);
        let payloads = H264Packetizer::default().packetize(&au);
        assert_eq!(payloads.len(), 1 + 3 + 1);
        let last = payloads.last().unwrap();
        let inside = au.as_ptr_range();
        assert!(inside.contains(&last.as_ptr()), "single NAL unit copied");
        // The STAP-A and the FU-A fragments lie back to back in one buffer.
        for pair in payloads[..4].windows(2) {
            assert_eq!(pair[0].as_ptr_range().end, pair[1].as_ptr());
        }
    }

    #[test]
    fn aggregation_stops_at_the_bound_and_at_slices() {
        // Three 500-byte SEI at a 1200-byte bound: two fit one STAP-A (3 + 2 * 502), the
        // third goes alone; the slice between parameter sets ends a group.
        let sei = |b: u8| {
            let mut nal = vec![0x06];
            nal.extend(std::iter::repeat_n(b, 499));
            nal
        };
        let nals = vec![
            sei(1),
            sei(2),
            sei(3),
            vec![0x65, 1, 1],
            vec![0x67, 2],
            vec![0x68, 3],
        ];
        let payloads = H264Packetizer::default().packetize(&annexb(&nals));
        let types: Vec<u8> = payloads.iter().map(|p| p[0] & TYPE_MASK).collect();
        assert_eq!(types, [STAP_A, 6, 5, STAP_A]);
        assert_eq!(payloads[0].len(), 1 + 2 * 502);
        assert_eq!(depacketize(&payloads).unwrap(), nals);
    }

    #[test]
    fn an_access_unit_of_delimiters_and_filler_has_no_payload() {
        let au = annexb(&[vec![0x09, 0xF0], vec![0x0C, 0xFF, 0xFF]]);
        let mut packetizer = H264Packetizer::default();
        assert!(packetizer.packetize(&au).is_empty());
        assert!(packetizer.packetize(&Bytes::new()).is_empty());
        assert_eq!(packetizer.dropped_nal_units(), 2);
    }

    proptest! {
        /// Any access unit at any bound: the payloads carry exactly the NAL units that are
        /// carried, in order, each payload within the bound, in valid RFC 6184 packets.
        #[test]
        fn payloads_carry_exactly_the_nal_units(
            nals in proptest::collection::vec(nal(any_nal_type(), 0..3_000), 0..12),
            max in prop_oneof![Just(1_200usize), 3usize..64, 64usize..2_000],
        ) {
            let au = annexb(&nals);
            let mut packetizer = H264Packetizer::new(max).unwrap();
            let payloads = packetizer.packetize(&au);
            prop_assert!(payloads.iter().all(|p| !p.is_empty() && p.len() <= max));
            prop_assert_eq!(depacketize(&payloads), Ok(carried(&nals)));
            let dropped = nals.len() - carried(&nals).len();
            prop_assert_eq!(packetizer.dropped_nal_units(), dropped as u64);
        }

        /// webrtc-rs reads the same units back. Its depacketizer refuses single NAL unit
        /// packets of two bytes or less, so units here have three bytes or more.
        #[test]
        fn webrtc_rs_reads_back_the_nal_units(
            nals in proptest::collection::vec(nal(any_nal_type(), 2..4_000), 1..10),
            max in prop_oneof![Just(1_200usize), 16usize..1_500],
        ) {
            let au = annexb(&nals);
            let payloads = H264Packetizer::new(max).unwrap().packetize(&au);
            prop_assert!(payloads.iter().all(|p| p.len() <= max));
            prop_assert_eq!(oracle(&payloads), carried(&nals));
        }
    }
}
