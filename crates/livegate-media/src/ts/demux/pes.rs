//! PES reassembly for one track (ISO/IEC 13818-1 §2.4.3.6-7): TS packet payloads in, access
//! units out.
//!
//! `mpeg2ts-reader`'s own `PesPacketFilter` is not used: it delivers a PES only when the next
//! one starts, even when PES_packet_length says it is already complete (an Opus PES would wait
//! for the next audio PES, 100 ms or more), and it has no notion of the damage a continuity
//! error or a splice does. Its PES header parser is used.

use bytes::{Bytes, BytesMut};
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{PesContents, PesError, PesHeader, PtsDts};

use super::{DemuxEvent, DemuxStats, MAX_AUDIO_PES_BYTES, MAX_VIDEO_PES_BYTES};
use crate::access_unit::{AccessUnit, Codec, Pts90k, Track};
use crate::{h264, opus};

/// Bytes of a PES header before its optional fields: start code, stream_id, PES_packet_length.
const PES_FIXED_HEADER_BYTES: usize = 6;

/// Reassembles the PES packets of one track and turns each into access units.
pub(super) struct PesAssembler {
    pid: u16,
    codec: Codec,
    /// continuity_counter of the last packet with payload.
    continuity_counter: Option<u8>,
    pending: Option<PendingPes>,
    /// Payload of the pending PES; split off (not copied) into the access units.
    data: BytesMut,
    /// Size of the previous PES, to reserve that much for the next one in one allocation.
    last_pes_bytes: usize,
}

struct PendingPes {
    pts: Pts90k,
    dts: Option<Pts90k>,
    /// Payload bytes announced by PES_packet_length; `None` for an unbounded (video) PES,
    /// which ends where the next one starts.
    expected_bytes: Option<usize>,
}

/// Why a PES header is not used.
enum HeaderError {
    /// Unparseable: bad start code, marker bits or lengths.
    Malformed,
    NoPts,
}

impl PesAssembler {
    pub(super) fn new(track: &Track) -> Self {
        PesAssembler {
            pid: track.pid,
            codec: track.codec,
            continuity_counter: None,
            pending: None,
            data: BytesMut::new(),
            last_pes_bytes: 0,
        }
    }

    pub(super) fn pid(&self) -> u16 {
        self.pid
    }

    /// Whether this assembler can go on serving `track` after a PMT change.
    pub(super) fn carries(&self, track: &Track) -> bool {
        track.pid == self.pid && track.codec == self.codec
    }

    pub(super) fn consume(
        &mut self,
        packet: &Packet<'_>,
        events: &mut Vec<DemuxEvent>,
        stats: &mut DemuxStats,
    ) {
        if !self.check_continuity(packet, stats) {
            return;
        }
        let Some(payload) = packet.payload() else {
            return;
        };
        if packet.payload_unit_start_indicator() {
            // An unbounded PES ends where the next one starts, if not before.
            self.complete(events, stats);
            self.start(payload, events, stats);
        } else {
            self.append(payload, events, stats);
        }
        // An unbounded PES whose data ran out in this packet ends here: waiting for the next
        // PES instead would hold every video frame of an ffmpeg worker (which writes
        // PES_packet_length 0 for video) for one frame interval.
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.expected_bytes.is_none())
            && has_stuffing(packet)
        {
            self.complete(events, stats);
        }
    }

    /// End of input or of the track: delivers the pending PES.
    pub(super) fn flush(&mut self, events: &mut Vec<DemuxEvent>, stats: &mut DemuxStats) {
        self.complete(events, stats);
    }

    /// Continuity check (ISO/IEC 13818-1 §2.4.3.3): the counter grows by one with each packet
    /// that has a payload. A gap means lost packets and drops the pending PES. Returns false
    /// for a packet to ignore: a repeated one, which the standard allows once.
    fn check_continuity(&mut self, packet: &Packet<'_>, stats: &mut DemuxStats) -> bool {
        let cc = packet.continuity_counter().count();
        let discontinuity = packet
            .adaptation_field()
            .is_some_and(|af| af.discontinuity_indicator());
        if discontinuity {
            // §2.4.3.5: the counter may jump here, and after it elementary stream data starts
            // afresh at an access point. A payload that continues the pending PES instead is
            // the remains of a splice: the pending PES is incomplete.
            stats.discontinuities += 1;
            self.continuity_counter = Some(cc);
            let has_payload = packet.adaptation_control().has_payload();
            if has_payload && !packet.payload_unit_start_indicator() {
                self.drop_pending(stats);
            }
            return true;
        }
        // A packet without payload carries no elementary stream data and does not advance the
        // counter; loss shows at the next packet that has a payload.
        if !packet.adaptation_control().has_payload() {
            return true;
        }
        match self.continuity_counter.replace(cc) {
            Some(previous) if cc == previous => false,
            Some(previous) if cc != (previous + 1) & 0x0F => {
                stats.continuity_errors += 1;
                self.drop_pending(stats);
                true
            }
            _ => true,
        }
    }

    fn drop_pending(&mut self, stats: &mut DemuxStats) {
        if self.pending.take().is_some() {
            stats.dropped_pes += 1;
            self.data.clear();
        }
    }

    fn start(&mut self, payload: &[u8], events: &mut Vec<DemuxEvent>, stats: &mut DemuxStats) {
        match parse_header(payload) {
            Ok((pending, body)) => {
                self.data.clear();
                self.data
                    .reserve(pending.expected_bytes.unwrap_or(self.last_pes_bytes));
                self.pending = Some(pending);
                self.append(body, events, stats);
            }
            Err(HeaderError::NoPts) => stats.pes_without_pts += 1,
            Err(HeaderError::Malformed) => stats.dropped_pes += 1,
        }
    }

    fn append(&mut self, bytes: &[u8], events: &mut Vec<DemuxEvent>, stats: &mut DemuxStats) {
        let Some(pending) = &self.pending else {
            return;
        };
        let max_bytes = match self.codec {
            Codec::H264 => MAX_VIDEO_PES_BYTES,
            Codec::Opus => MAX_AUDIO_PES_BYTES,
        };
        // A bounded PES ends at its announced length; what follows in the packet is stuffing.
        let wanted = pending.expected_bytes.map_or(bytes.len(), |expected| {
            bytes.len().min(expected.saturating_sub(self.data.len()))
        });
        if self.data.len() + wanted > max_bytes {
            self.drop_pending(stats);
            return;
        }
        self.data.extend_from_slice(&bytes[..wanted]);
        if pending.expected_bytes == Some(self.data.len()) {
            self.complete(events, stats);
        }
    }

    /// Delivers the pending PES, if any, as access units.
    fn complete(&mut self, events: &mut Vec<DemuxEvent>, stats: &mut DemuxStats) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let data = self.data.split().freeze();
        self.last_pes_bytes = data.len();
        let truncated = pending.expected_bytes.is_some_and(|n| n != data.len());
        if truncated || data.is_empty() {
            stats.dropped_pes += 1;
            return;
        }
        match self.codec {
            Codec::H264 => {
                stats.access_units += 1;
                events.push(DemuxEvent::AccessUnit(AccessUnit {
                    pid: self.pid,
                    codec: Codec::H264,
                    pts: pending.pts,
                    dts: pending.dts,
                    keyframe: h264::is_idr_access_unit(&data),
                    data,
                }));
            }
            Codec::Opus => self.split_opus(pending.pts, data, events, stats),
        }
    }

    /// An Opus PES holds one or more Opus packets, each behind an `opus_control_header`; each
    /// becomes its own access unit, its PTS the PES PTS plus the durations of the packets before
    /// it. Malformed framing ends the PES (what follows cannot be located); a packet with a bad
    /// TOC byte is skipped (its duration is unknown, so the next packet keeps its PTS).
    fn split_opus(
        &self,
        mut pts: Pts90k,
        data: Bytes,
        events: &mut Vec<DemuxEvent>,
        stats: &mut DemuxStats,
    ) {
        let mut offset = 0;
        while offset < data.len() {
            let Ok(framed) = opus::parse_control_header(&data, offset) else {
                stats.dropped_opus_packets += 1;
                return;
            };
            offset = framed.end;
            let packet = data.slice(framed.start..framed.end);
            let Ok(duration_48k) = opus::packet_duration_48k(&packet) else {
                stats.dropped_opus_packets += 1;
                continue;
            };
            stats.access_units += 1;
            events.push(DemuxEvent::AccessUnit(AccessUnit {
                pid: self.pid,
                codec: Codec::Opus,
                pts,
                dts: None,
                keyframe: true,
                data: packet,
            }));
            pts = pts.wrapping_add(opus::samples_48k_to_90k(duration_48k));
        }
    }
}

/// Whether `packet` pads its payload with adaptation-field stuffing. §2.4.3.5 allows that in a
/// packet carrying PES data only where the PES has too little data left to fill the packet, so
/// the packet is the last of its PES. A PES that exactly fills its last packet has no
/// stuffing; it ends where the next one starts.
fn has_stuffing(packet: &Packet<'_>) -> bool {
    let buf = packet.buffer();
    if buf[3] & 0x20 == 0 {
        return false;
    }
    let length = usize::from(buf[4]);
    if length == 0 {
        // The one-byte stuffing case: an adaptation field that is only its length byte.
        return true;
    }
    let flags = buf[5];
    // The flags byte, then the optional fields the flags announce (§2.4.3.4).
    let mut used = 1;
    if flags & 0x10 != 0 {
        used += 6; // PCR
    }
    if flags & 0x08 != 0 {
        used += 6; // OPCR
    }
    if flags & 0x04 != 0 {
        used += 1; // splice_countdown
    }
    for flag in [0x02, 0x01] {
        // transport_private_data and the adaptation field extension: each a length byte and
        // that many bytes.
        if flags & flag != 0 {
            let Some(&field_length) = buf.get(5 + used) else {
                return false;
            };
            used += 1 + usize::from(field_length);
        }
    }
    length > used
}

/// Parses the PES header at the start of `payload`; returns the PES to assemble and the part of
/// `payload` that belongs to it. The header must lie in the first TS packet of the PES, as every
/// muxer writes it (`mpeg2ts-reader` has the same limit).
fn parse_header(payload: &[u8]) -> Result<(PendingPes, &[u8]), HeaderError> {
    let header = PesHeader::from_bytes(payload).ok_or(HeaderError::Malformed)?;
    let parsed = match header.contents() {
        PesContents::Parsed(Some(parsed)) => parsed,
        // stream_ids such as padding_stream have no optional header, so no timestamps.
        PesContents::Payload(_) => return Err(HeaderError::NoPts),
        PesContents::Parsed(None) => return Err(HeaderError::Malformed),
    };
    let (pts, dts) = match parsed.pts_dts() {
        Ok(PtsDts::PtsOnly(Ok(pts))) => (pts.value(), None),
        Ok(PtsDts::Both {
            pts: Ok(pts),
            dts: Ok(dts),
        }) => (pts.value(), Some(dts.value())),
        Err(PesError::FieldNotPresent) => return Err(HeaderError::NoPts),
        _ => return Err(HeaderError::Malformed),
    };
    let body = parsed.payload();
    // PES_packet_length counts the bytes after itself: the optional header and the payload
    // (§2.4.3.7); 0 means unbounded, allowed for video only but accepted for any stream.
    let optional_header_bytes = payload.len() - PES_FIXED_HEADER_BYTES - body.len();
    let declared = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
    let expected_bytes = (declared > 0).then(|| declared.saturating_sub(optional_header_bytes));
    let pending = PendingPes {
        pts: Pts90k::new(pts),
        dts: dts.filter(|&d| d != pts).map(Pts90k::new),
        expected_bytes,
    };
    Ok((pending, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::write_control_header;

    const PID: u16 = 0x101;

    /// A PES header with PTS (and DTS if given); `len` is PES_packet_length.
    fn pes_header(pts: u64, dts: Option<u64>, len: u16) -> Vec<u8> {
        let stamp = |prefix: u8, t: u64| {
            [
                prefix << 4 | ((t >> 29) as u8 & 0x0E) | 1,
                (t >> 22) as u8,
                ((t >> 14) as u8 & 0xFE) | 1,
                (t >> 7) as u8,
                ((t << 1) as u8) | 1,
            ]
        };
        let mut h = vec![0, 0, 1, 0xBD];
        h.extend_from_slice(&len.to_be_bytes());
        match dts {
            None => {
                h.extend_from_slice(&[0x80, 0x80, 5]);
                h.extend_from_slice(&stamp(0b0010, pts));
            }
            Some(dts) => {
                h.extend_from_slice(&[0x80, 0xC0, 10]);
                h.extend_from_slice(&stamp(0b0011, pts));
                h.extend_from_slice(&stamp(0b0001, dts));
            }
        }
        h
    }

    /// A bounded PES: header announcing exactly `body`.
    fn bounded_pes(pts: u64, body: &[u8]) -> Vec<u8> {
        let mut pes = pes_header(pts, None, (8 + body.len()) as u16);
        pes.extend_from_slice(body);
        pes
    }

    /// TS packets carrying `pes` on PID, counters from `cc`; the last packet is padded with
    /// adaptation-field stuffing.
    fn packets(pes: &[u8], cc: &mut u8) -> Vec<[u8; 188]> {
        pes.chunks(184)
            .enumerate()
            .map(|(i, chunk)| {
                let mut p = [0xFF; 188];
                p[0] = 0x47;
                p[1] = if i == 0 { 0x40 } else { 0 } | (PID >> 8) as u8;
                p[2] = PID as u8;
                let stuffing = 184 - chunk.len();
                if stuffing == 0 {
                    p[3] = 0x10 | *cc;
                } else {
                    p[3] = 0x30 | *cc;
                    p[4] = (stuffing - 1) as u8;
                    if stuffing > 1 {
                        p[5] = 0;
                    }
                }
                p[4 + stuffing..].copy_from_slice(chunk);
                *cc = (*cc + 1) & 0x0F;
                p
            })
            .collect()
    }

    fn feed(
        assembler: &mut PesAssembler,
        packets: &[[u8; 188]],
        stats: &mut DemuxStats,
    ) -> Vec<AccessUnit> {
        let mut events = Vec::new();
        for p in packets {
            assembler.consume(&Packet::new(p), &mut events, stats);
        }
        events
            .into_iter()
            .map(|e| match e {
                DemuxEvent::AccessUnit(au) => au,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn opus_assembler() -> PesAssembler {
        PesAssembler::new(&Track {
            pid: PID,
            codec: Codec::Opus,
            channels: Some(2),
        })
    }

    /// `opus_control_header` + packet for each packet.
    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for p in packets {
            write_control_header(p.len(), &mut out);
            out.extend_from_slice(p);
        }
        out.to_vec()
    }

    #[test]
    fn opus_pes_splits_into_packets_timed_by_their_durations() {
        // 20 ms CELT, 10 ms CELT, 60 ms SILK (code 0 TOCs).
        let (a, b, c): (&[u8], &[u8], &[u8]) = (&[0xFC, 1, 2], &[0xF4, 3], &[0x58; 300]);
        let pes = bounded_pes(PTS_NEAR_WRAP, &framed(&[a, b, c]));
        let mut stats = DemuxStats::default();
        let units = feed(&mut opus_assembler(), &packets(&pes, &mut 0), &mut stats);
        let got: Vec<(u64, &[u8])> = units.iter().map(|u| (u.pts.ticks(), &u.data[..])).collect();
        assert_eq!(
            got,
            vec![
                (PTS_NEAR_WRAP, a),
                (PTS_NEAR_WRAP + 1_800, b),
                // 20 ms + 10 ms later, across the 2^33 wrap.
                ((PTS_NEAR_WRAP + 2_700) % crate::PTS_WRAP, c),
            ]
        );
        assert!(units.iter().all(|u| u.keyframe && u.dts.is_none()));
        assert_eq!(stats.access_units, 3);
    }

    const PTS_NEAR_WRAP: u64 = crate::PTS_WRAP - 2_000;

    #[test]
    fn malformed_opus_is_skipped_and_counted() {
        let mut stats = DemuxStats::default();
        let mut cc = 0;
        // A packet with an unusable TOC (code 3 without frame count) is skipped, the next one
        // kept; then framing that breaks off loses the rest of its PES.
        let mut body = framed(&[&[0x03], &[0xFC, 9]]);
        body.extend_from_slice(&[0x7F, 0xE0, 50, 1, 2]);
        let mut stream = packets(&bounded_pes(1_000, &body), &mut cc);
        stream.extend(packets(
            &bounded_pes(5_000, &framed(&[&[0xFC, 7]])),
            &mut cc,
        ));
        let units = feed(&mut opus_assembler(), &stream, &mut stats);
        let got: Vec<(u64, &[u8])> = units.iter().map(|u| (u.pts.ticks(), &u.data[..])).collect();
        assert_eq!(got, vec![(1_000, &[0xFC, 9][..]), (5_000, &[0xFC, 7][..])]);
        assert_eq!(stats.dropped_opus_packets, 2);
    }

    #[test]
    fn pes_without_pts_or_with_a_bad_header_is_skipped() {
        let mut stats = DemuxStats::default();
        let mut cc = 0;
        let mut no_pts = vec![0, 0, 1, 0xBD, 0, 7, 0x80, 0x00, 0];
        no_pts.extend_from_slice(&framed(&[&[0xFC]]));
        let mut stream = packets(&no_pts, &mut cc);
        stream.extend(packets(&[0, 0, 2, 0xBD, 0, 0, 0x80], &mut cc));
        stream.extend(packets(&bounded_pes(9_000, &framed(&[&[0xFC]])), &mut cc));
        let units = feed(&mut opus_assembler(), &stream, &mut stats);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].pts, Pts90k::new(9_000));
        assert_eq!((stats.pes_without_pts, stats.dropped_pes), (1, 1));
    }

    fn video_assembler() -> PesAssembler {
        PesAssembler::new(&Track {
            pid: PID,
            codec: Codec::H264,
            channels: None,
        })
    }

    #[test]
    fn unbounded_video_pes_ends_at_its_stuffed_last_packet_with_dts_and_idr_flag() {
        let mut assembler = video_assembler();
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        let non_idr = [0, 0, 0, 1, 0x41, 0x9A, 0x02];
        let mut cc = 0;
        let mut first = pes_header(3_000, Some(0), 0);
        first.extend_from_slice(&idr);
        first.extend(std::iter::repeat_n(0xAB, 400)); // spans three TS packets
        let mut second = pes_header(6_000, Some(6_000), 0);
        second.extend_from_slice(&non_idr);
        let mut stats = DemuxStats::default();
        let first_packets = packets(&first, &mut cc);
        // Complete with its own last packet (stuffed), before any next PES starts.
        let units = feed(&mut assembler, &first_packets, &mut stats);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].data.len(), idr.len() + 400);
        assert_eq!(
            (units[0].pts, units[0].dts),
            (Pts90k::new(3_000), Some(Pts90k::new(0)))
        );
        assert!(units[0].keyframe);
        let units = feed(&mut assembler, &packets(&second, &mut cc), &mut stats);
        // DTS equal to PTS is not reported.
        assert_eq!((units[0].pts, units[0].dts), (Pts90k::new(6_000), None));
        assert!(!units[0].keyframe);
        assert_eq!(&units[0].data[..], &non_idr);
        assert_eq!(stats.dropped_pes, 0);
    }

    #[test]
    fn unbounded_video_pes_that_fills_its_packets_ends_where_the_next_starts() {
        let mut assembler = video_assembler();
        let mut cc = 0;
        let mut first = pes_header(3_000, None, 0);
        first.resize(2 * 184, 0xAB); // no room left over, so no stuffing
        let mut stats = DemuxStats::default();
        assert!(feed(&mut assembler, &packets(&first, &mut cc), &mut stats).is_empty());
        let mut second = pes_header(6_000, None, 0);
        second.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9A]);
        let units = feed(&mut assembler, &packets(&second, &mut cc), &mut stats);
        let pts: Vec<u64> = units.iter().map(|u| u.pts.ticks()).collect();
        assert_eq!(pts, [3_000, 6_000]);
        assert_eq!(units[0].data.len(), 2 * 184 - 14);
    }

    #[test]
    fn an_adaptation_field_without_stuffing_does_not_end_a_pes() {
        let mut assembler = video_assembler();
        let mut cc = 0;
        let mut pes = pes_header(3_000, None, 0);
        pes.resize(3 * 184 - 8, 0xAB);
        let mut stream = packets(&pes, &mut cc);
        // A PCR in the middle packet takes 8 bytes of its payload room: an adaptation field,
        // but no stuffing. Rebuild that packet as a muxer writing a PCR there would.
        let middle = &mut stream[1];
        let payload = middle[4..4 + 176].to_vec();
        middle[3] = 0x30 | (middle[3] & 0x0F);
        middle[4] = 7;
        middle[5] = 0x10;
        middle[6..12].fill(0);
        middle[12..].copy_from_slice(&payload);
        // The 8 bytes the PCR displaced fill the last packet, whose stuffing goes.
        let mut tail = pes[184 + 176..184 + 184].to_vec();
        tail.extend_from_slice(&stream[2][4 + 8..]);
        stream[2][3] = 0x10 | (stream[2][3] & 0x0F);
        stream[2][4..].copy_from_slice(&tail);
        let mut stats = DemuxStats::default();
        assert!(
            feed(&mut assembler, &stream, &mut stats).is_empty(),
            "neither the PCR packet nor the full last packet ends the PES"
        );
        let mut events = Vec::new();
        assembler.flush(&mut events, &mut stats);
        let [DemuxEvent::AccessUnit(unit)] = &events[..] else {
            panic!("one access unit: {events:?}");
        };
        assert_eq!(unit.data.len(), pes.len() - 14);
    }

    #[test]
    fn continuity_gap_drops_the_damaged_pes_and_a_duplicate_is_ignored() {
        let mut stats = DemuxStats::default();
        let body = framed(&[&[0xFC; 400]]); // three TS packets
        let mut cc = 0;
        let mut stream = packets(&bounded_pes(0, &body), &mut cc);
        stream.remove(1);
        let duplicate = packets(&bounded_pes(1_800, &body), &mut cc);
        stream.extend_from_slice(&duplicate[..2]);
        stream.push(duplicate[1]);
        stream.extend_from_slice(&duplicate[2..]);
        let units = feed(&mut opus_assembler(), &stream, &mut stats);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].pts, Pts90k::new(1_800));
        assert_eq!(&units[0].data[..], &[0xFC; 400]);
        assert_eq!((stats.continuity_errors, stats.dropped_pes), (1, 1));
    }

    #[test]
    fn discontinuity_indicator_restarts_counting_and_drops_only_a_spliced_pes() {
        let mut stats = DemuxStats::default();
        let one_packet = framed(&[&[0xFC; 100]]);
        let two_packets = framed(&[&[0xFC; 200]]);
        let mut cc = 0;
        let mut stream = packets(&bounded_pes(0, &one_packet), &mut cc);
        // A splice after that PES: counters start over, flagged by discontinuity_indicator on
        // the packet that starts the next PES. Nothing is lost.
        cc = 9;
        let mut spliced = packets(&bounded_pes(90_000, &one_packet), &mut cc);
        set_discontinuity(&mut spliced[0]);
        stream.extend_from_slice(&spliced);
        // A splice in the middle of a PES: its first packet, then the second packet of another.
        let cut = packets(&bounded_pes(180_000, &two_packets), &mut cc);
        cc = 3;
        let mut resumed = packets(&bounded_pes(270_000, &two_packets), &mut cc);
        set_discontinuity(&mut resumed[1]);
        stream.push(cut[0]);
        stream.push(resumed[1]);
        stream.extend(packets(&bounded_pes(360_000, &one_packet), &mut cc));
        let units = feed(&mut opus_assembler(), &stream, &mut stats);
        let pts: Vec<u64> = units.iter().map(|u| u.pts.ticks()).collect();
        assert_eq!(pts, [0, 90_000, 360_000]);
        assert_eq!(stats.continuity_errors, 0);
        assert_eq!((stats.discontinuities, stats.dropped_pes), (2, 1));
    }

    /// Sets discontinuity_indicator in a packet whose adaptation field has a flags byte.
    fn set_discontinuity(packet: &mut [u8; 188]) {
        assert!(
            packet[3] & 0x20 != 0 && packet[4] > 0,
            "needs an adaptation field"
        );
        packet[5] |= 0x80;
    }

    #[test]
    fn oversized_pes_is_dropped() {
        let mut stats = DemuxStats::default();
        let body = vec![0xFC; MAX_AUDIO_PES_BYTES + 1];
        let mut pes = pes_header(0, None, 0);
        pes.extend_from_slice(&body);
        let mut cc = 0;
        let mut stream = packets(&pes, &mut cc);
        stream.extend(packets(&bounded_pes(1_800, &framed(&[&[0xFC]])), &mut cc));
        let units = feed(&mut opus_assembler(), &stream, &mut stats);
        assert_eq!(units.len(), 1);
        assert_eq!(stats.dropped_pes, 1);
    }
}
