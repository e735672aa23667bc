//! Cutting an MPEG-TS byte stream into self-contained segments for segment-based transports
//! such as go-livepeer's trickle protocol.
//!
//! Every segment starts at an H.264 IDR picture, lasts at least a minimum duration measured
//! on the video PTS (or, in a stream without video, on the first audio track's PTS, cut at any
//! PES since every audio frame is independent), and begins with the latest PAT and PMT, so a
//! decoder can start on any segment alone (ISO/IEC 13818-1 §2.4.4: a program can only be
//! found through its PAT and PMT). Bytes before the first IDR are dropped: no segment could
//! start with them.
//!
//! [`Segmenter`] is sans-I/O: [`push`](Segmenter::push) bytes in any chunking, get
//! [`SegmentEvent`]s back. It holds back as little as it can: a video PES start until its
//! first slice tells whether it is an IDR (usually the same or the next few packets), and PAT
//! and PMT packets until the next packet shows whether a cut follows them (a source that
//! writes them before each IDR then does not get them twice). Everything else comes out in the
//! call that completed it, so a segment can be forwarded while it is being cut.
//!
//! It reads only what cutting needs: packet headers, the PAT, the PMT's stream list, PES
//! timestamps and NAL unit types. It decodes nothing and checks no CRC; PSI sections are
//! assumed to fit one packet, as every muxer we meet writes them.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{STREAM_TYPE_H264, TS_PACKET_SIZE};

/// The default shortest segment.
pub const DEFAULT_MIN_SEGMENT_DURATION: Duration = Duration::from_secs(1);

/// Packets held while looking for the first slice of a video PES; a PES that shows none by
/// then is taken as not an IDR. x264's SEI and parameter sets take a handful of packets.
const MAX_DECIDING_PACKETS: usize = 256;
/// PAT/PMT packets held back in case a cut follows them. A source writes a PAT and a PMT
/// before each keyframe; one that writes PSI and nothing else gets its older copies written
/// out instead of held without end.
const MAX_HELD_PSI_PACKETS: usize = 16;

const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const PTS_MASK: u64 = (1 << 33) - 1;
/// A PTS step larger than this is a jump backwards (a source restart), not elapsed time.
const PTS_BACKWARDS_90K: u64 = 1 << 32;

/// What the segmenter outputs, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEvent {
    /// A segment begins; the bytes that follow belong to it until the next `Start`.
    Start(SegmentStart),
    /// Bytes of the current segment, whole TS packets.
    Bytes(Bytes),
}

/// Where a segment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStart {
    /// 0 for the first segment, then one more for each.
    pub index: u64,
    /// The 33-bit PTS of its first picture (or audio frame), 90 kHz.
    pub pts_90k: u64,
    /// Whether it starts at a video IDR (false for a stream without video).
    pub keyframe: bool,
}

/// Cuts an MPEG-TS byte stream into segments; see the module docs.
#[derive(Debug)]
pub struct Segmenter {
    min_duration_90k: u64,
    /// An incomplete packet carried to the next push.
    partial: Vec<u8>,
    pat: Option<Packet>,
    pmt_pid: Option<u16>,
    pmt: Option<Packet>,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    current: Option<SegmentStart>,
    /// PAT/PMT packets not yet emitted: dropped if a cut follows them.
    held_psi: Vec<Packet>,
    deciding: Option<Deciding>,
    /// Bytes of the current segment not yet handed out.
    out: BytesMut,
    dropped_bytes: u64,
}

type Packet = [u8; TS_PACKET_SIZE];

/// A video PES start waiting for its first slice NAL unit.
#[derive(Debug)]
struct Deciding {
    pts_90k: u64,
    packets: Vec<Packet>,
    scanner: NalScanner,
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_SEGMENT_DURATION)
    }
}

impl Segmenter {
    /// A segmenter whose segments last at least `min_duration` (except the last).
    pub fn new(min_duration: Duration) -> Self {
        Self {
            min_duration_90k: (min_duration.as_micros() * 9 / 100) as u64,
            partial: Vec::with_capacity(TS_PACKET_SIZE),
            pat: None,
            pmt_pid: None,
            pmt: None,
            video_pid: None,
            audio_pid: None,
            current: None,
            held_psi: Vec::new(),
            deciding: None,
            out: BytesMut::new(),
            dropped_bytes: 0,
        }
    }

    /// Feeds bytes in any chunking; appends what they complete to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<SegmentEvent>) {
        if !self.partial.is_empty() {
            let wanted = TS_PACKET_SIZE - self.partial.len();
            let taken = wanted.min(data.len());
            self.partial.extend_from_slice(&data[..taken]);
            data = &data[taken..];
            if self.partial.len() == TS_PACKET_SIZE {
                let packet: Packet = self.partial[..].try_into().expect("one packet");
                self.partial.clear();
                self.packet(&packet, out);
            }
        }
        while !data.is_empty() {
            if data[0] != SYNC_BYTE {
                let skip = data
                    .iter()
                    .position(|&byte| byte == SYNC_BYTE)
                    .unwrap_or(data.len());
                self.dropped_bytes += skip as u64;
                data = &data[skip..];
                continue;
            }
            if data.len() < TS_PACKET_SIZE {
                self.partial.extend_from_slice(data);
                break;
            }
            let packet: Packet = data[..TS_PACKET_SIZE].try_into().expect("one packet");
            self.packet(&packet, out);
            data = &data[TS_PACKET_SIZE..];
        }
        self.flush(out);
    }

    /// The input ended: hands out whatever is held. A trailing partial packet is dropped.
    pub fn finish(&mut self, out: &mut Vec<SegmentEvent>) {
        if let Some(deciding) = self.deciding.take() {
            self.resolve(deciding, false, out);
        }
        for packet in std::mem::take(&mut self.held_psi) {
            self.emit(&packet);
        }
        self.dropped_bytes += self.partial.len() as u64;
        self.partial.clear();
        self.flush(out);
    }

    /// Bytes dropped: before the first IDR, while out of sync, or a trailing partial packet.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    fn packet(&mut self, packet: &Packet, out: &mut Vec<SegmentEvent>) {
        let header = PacketHeader::parse(packet);
        if header.pid == PAT_PID || Some(header.pid) == self.pmt_pid {
            self.psi(packet, &header);
        }
        if let Some(mut deciding) = self.deciding.take() {
            if Some(header.pid) == self.video_pid && header.unit_start {
                // The next PES began before a slice showed up: not an IDR.
                self.resolve(deciding, false, out);
            } else {
                deciding.packets.push(*packet);
                let mut found = None;
                if Some(header.pid) == self.video_pid {
                    found = deciding.scanner.first_slice(header.payload(packet));
                }
                match found {
                    Some(nal_type) => self.resolve(deciding, nal_type == NAL_IDR, out),
                    None if deciding.packets.len() >= MAX_DECIDING_PACKETS => {
                        self.resolve(deciding, false, out)
                    }
                    None => self.deciding = Some(deciding),
                }
                return;
            }
        }
        if header.pid == PAT_PID || Some(header.pid) == self.pmt_pid {
            if self.current.is_some() {
                if self.held_psi.len() == MAX_HELD_PSI_PACKETS {
                    for held in std::mem::take(&mut self.held_psi) {
                        self.out.extend_from_slice(&held);
                    }
                }
                self.held_psi.push(*packet);
            } else {
                self.dropped_bytes += TS_PACKET_SIZE as u64;
            }
            return;
        }
        if header.unit_start {
            if Some(header.pid) == self.video_pid {
                if let Some((pts_90k, es)) = pes_start(header.payload(packet)) {
                    if self.may_cut_at(pts_90k) {
                        let mut deciding = Deciding {
                            pts_90k,
                            packets: vec![*packet],
                            scanner: NalScanner::default(),
                        };
                        match deciding.scanner.first_slice(es) {
                            Some(nal_type) => self.resolve(deciding, nal_type == NAL_IDR, out),
                            None => self.deciding = Some(deciding),
                        }
                        return;
                    }
                }
            } else if self.video_pid.is_none() && Some(header.pid) == self.audio_pid {
                if let Some((pts_90k, _)) = pes_start(header.payload(packet)) {
                    if self.may_cut_at(pts_90k) {
                        self.cut(pts_90k, false, out);
                    }
                }
            }
        }
        self.emit(packet);
    }

    fn psi(&mut self, packet: &Packet, header: &PacketHeader) {
        if !header.unit_start {
            return;
        }
        let payload = header.payload(packet);
        let Some(&pointer) = payload.first() else {
            return;
        };
        let Some(section) = payload.get(1 + pointer as usize..) else {
            return;
        };
        if header.pid == PAT_PID {
            if let Some(pmt_pid) = parse_pat(section) {
                self.pmt_pid = Some(pmt_pid);
                self.pat = Some(*packet);
            }
        } else if let Some((video_pid, audio_pid)) = parse_pmt(section) {
            self.video_pid = video_pid;
            self.audio_pid = audio_pid;
            self.pmt = Some(*packet);
        }
    }

    fn may_cut_at(&self, pts_90k: u64) -> bool {
        match &self.current {
            None => self.pat.is_some() && self.pmt.is_some(),
            Some(current) => {
                let elapsed_90k = pts_90k.wrapping_sub(current.pts_90k) & PTS_MASK;
                elapsed_90k >= self.min_duration_90k || elapsed_90k > PTS_BACKWARDS_90K
            }
        }
    }

    fn resolve(&mut self, deciding: Deciding, idr: bool, out: &mut Vec<SegmentEvent>) {
        if idr {
            self.cut(deciding.pts_90k, true, out);
        }
        for packet in &deciding.packets {
            self.emit(packet);
        }
    }

    /// Starts a new segment with the latest PAT and PMT; held PSI packets are older copies.
    fn cut(&mut self, pts_90k: u64, keyframe: bool, out: &mut Vec<SegmentEvent>) {
        self.flush(out);
        self.held_psi.clear();
        let index = self.current.map_or(0, |current| current.index + 1);
        let start = SegmentStart {
            index,
            pts_90k,
            keyframe,
        };
        self.current = Some(start);
        out.push(SegmentEvent::Start(start));
        let (Some(pat), Some(pmt)) = (self.pat, self.pmt) else {
            unreachable!("cuts only happen once PAT and PMT were seen");
        };
        self.out.extend_from_slice(&pat);
        self.out.extend_from_slice(&pmt);
    }

    fn emit(&mut self, packet: &Packet) {
        if self.current.is_none() {
            self.dropped_bytes += TS_PACKET_SIZE as u64;
            return;
        }
        for held in std::mem::take(&mut self.held_psi) {
            self.out.extend_from_slice(&held);
        }
        self.out.extend_from_slice(packet);
    }

    fn flush(&mut self, out: &mut Vec<SegmentEvent>) {
        if !self.out.is_empty() {
            out.push(SegmentEvent::Bytes(self.out.split().freeze()));
        }
    }
}

struct PacketHeader {
    pid: u16,
    unit_start: bool,
    payload_offset: Option<usize>,
}

impl PacketHeader {
    fn parse(packet: &Packet) -> Self {
        let adaptation_field_control = (packet[3] >> 4) & 0b11;
        let mut offset = 4;
        if adaptation_field_control & 0b10 != 0 {
            offset += 1 + packet[4] as usize;
        }
        Self {
            pid: u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2]),
            unit_start: packet[1] & 0x40 != 0,
            payload_offset: (adaptation_field_control & 0b01 != 0 && offset < TS_PACKET_SIZE)
                .then_some(offset),
        }
    }

    fn payload<'a>(&self, packet: &'a Packet) -> &'a [u8] {
        self.payload_offset.map_or(&[], |offset| &packet[offset..])
    }
}

/// The PMT PID of the first program of a PAT section (ISO/IEC 13818-1 §2.4.4.3).
fn parse_pat(section: &[u8]) -> Option<u16> {
    if *section.first()? != 0x00 {
        return None;
    }
    let section_length = usize::from(section.get(1)? & 0x0f) << 8 | usize::from(*section.get(2)?);
    let end = (3 + section_length).checked_sub(4)?.min(section.len());
    section
        .get(8..end)?
        .chunks_exact(4)
        .find(|program| program[0] != 0 || program[1] != 0)
        .map(|program| u16::from(program[2] & 0x1f) << 8 | u16::from(program[3]))
}

/// The H.264 PID and the first other stream's PID of a PMT section (ISO/IEC 13818-1
/// §2.4.4.8).
fn parse_pmt(section: &[u8]) -> Option<(Option<u16>, Option<u16>)> {
    if *section.first()? != 0x02 {
        return None;
    }
    let section_length = usize::from(section.get(1)? & 0x0f) << 8 | usize::from(*section.get(2)?);
    let end = (3 + section_length).checked_sub(4)?.min(section.len());
    let program_info_length =
        usize::from(section.get(10)? & 0x0f) << 8 | usize::from(*section.get(11)?);
    let mut at = 12 + program_info_length;
    let (mut video, mut audio) = (None, None);
    while at + 5 <= end {
        let stream_type = section[at];
        let pid = u16::from(section[at + 1] & 0x1f) << 8 | u16::from(section[at + 2]);
        let es_info_length =
            usize::from(section[at + 3] & 0x0f) << 8 | usize::from(section[at + 4]);
        if stream_type == STREAM_TYPE_H264 {
            video = video.or(Some(pid));
        } else {
            audio = audio.or(Some(pid));
        }
        at += 5 + es_info_length;
    }
    Some((video, audio))
}

/// The PTS of a PES that starts in this payload, and the elementary stream bytes after its
/// header (ISO/IEC 13818-1 §2.4.3.6).
fn pes_start(payload: &[u8]) -> Option<(u64, &[u8])> {
    if payload.get(..3)? != [0, 0, 1] || payload.get(7)? & 0x80 == 0 {
        return None;
    }
    let pts = payload.get(9..14)?;
    let pts_90k = u64::from(pts[0] >> 1 & 0x07) << 30
        | u64::from(pts[1]) << 22
        | u64::from(pts[2] >> 1) << 15
        | u64::from(pts[3]) << 7
        | u64::from(pts[4] >> 1);
    let es = payload.get(9 + usize::from(payload[8])..).unwrap_or(&[]);
    Some((pts_90k, es))
}

const NAL_IDR: u8 = 5;

/// Finds the type of the first slice NAL unit of an Annex B stream fed in pieces, start codes
/// possibly split between them.
#[derive(Debug, Default)]
struct NalScanner {
    zeros: u8,
    at_nal_header: bool,
}

impl NalScanner {
    /// The first slice's `nal_unit_type` (1..=5, H.264 Table 7-1) if it is in `data`.
    fn first_slice(&mut self, data: &[u8]) -> Option<u8> {
        for &byte in data {
            if self.at_nal_header {
                self.at_nal_header = false;
                self.zeros = 0;
                let nal_type = byte & 0x1f;
                if (1..=5).contains(&nal_type) {
                    return Some(nal_type);
                }
                continue;
            }
            match byte {
                0 => self.zeros = self.zeros.saturating_add(1),
                1 if self.zeros >= 2 => {
                    self.at_nal_header = true;
                    self.zeros = 0;
                }
                _ => self.zeros = 0,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::demux::{DemuxEvent, Demuxer};
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    /// Segments as (start, bytes), from the input cut into chunks of the given sizes.
    fn segments(
        input: &[u8],
        min: Duration,
        chunk_sizes: &[usize],
    ) -> Vec<(SegmentStart, Vec<u8>)> {
        let mut segmenter = Segmenter::new(min);
        let mut events = Vec::new();
        let mut rest = input;
        let mut sizes = chunk_sizes.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().unwrap_or(&rest.len())).clamp(1, rest.len());
            segmenter.push(&rest[..size], &mut events);
            rest = &rest[size..];
        }
        segmenter.finish(&mut events);
        let mut segments: Vec<(SegmentStart, Vec<u8>)> = Vec::new();
        for event in events {
            match event {
                SegmentEvent::Start(start) => segments.push((start, Vec::new())),
                SegmentEvent::Bytes(bytes) => segments
                    .last_mut()
                    .expect("bytes only after a start")
                    .1
                    .extend_from_slice(&bytes),
            }
        }
        segments
    }

    fn pid(packet: &[u8]) -> u16 {
        u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2])
    }

    /// Demuxes one segment alone: (has video, first video AU is a keyframe, AU count).
    fn demux_alone(segment: &[u8]) -> (bool, bool, usize) {
        let mut demuxer = Demuxer::new();
        let mut events = Vec::new();
        demuxer.push(segment, &mut events);
        demuxer.finish(&mut events);
        let units: Vec<_> = events
            .into_iter()
            .filter_map(|event| match event {
                DemuxEvent::AccessUnit(unit) => Some(unit),
                DemuxEvent::Tracks(_) => None,
            })
            .collect();
        let first_video = units
            .iter()
            .find(|unit| matches!(unit.codec, crate::access_unit::Codec::H264));
        (
            first_video.is_some(),
            first_video.is_some_and(|unit| unit.keyframe),
            units.len(),
        )
    }

    fn check_fixture(name: &str, min: Duration, expected_segments: usize, video: bool) {
        let input = fixture(name);
        let segments = segments(&input, min, &[input.len()]);
        assert_eq!(segments.len(), expected_segments, "{name}");
        for (i, (start, bytes)) in segments.iter().enumerate() {
            assert_eq!(start.index, i as u64);
            assert_eq!(start.keyframe, video);
            assert_eq!(bytes.len() % TS_PACKET_SIZE, 0);
            assert_eq!(
                pid(&bytes[..]),
                PAT_PID,
                "{name} segment {i} starts with its PAT"
            );
            let (has_video, keyframe_first, units) = demux_alone(bytes);
            assert!(units > 0, "{name} segment {i} demuxes on its own");
            assert_eq!(has_video, video, "{name} segment {i}");
            assert_eq!(
                keyframe_first, video,
                "{name} segment {i} starts with a keyframe"
            );
            if let Some((next, _)) = segments.get(i + 1) {
                let duration_90k = next.pts_90k.wrapping_sub(start.pts_90k) & PTS_MASK;
                assert!(
                    duration_90k >= (min.as_millis() * 90) as u64,
                    "{name} segment {i}"
                );
            }
        }
    }

    #[test]
    fn fixtures_cut_at_each_idr_past_the_minimum() {
        // 2 s fixtures with a 1 s GOP.
        check_fixture("h264-baseline-opus.ts", Duration::from_secs(1), 2, true);
        check_fixture("h264-bframes-opus.ts", Duration::from_secs(1), 2, true);
        check_fixture("video-only.ts", Duration::from_secs(1), 2, true);
        // 5 s across the 2^33 wrap.
        check_fixture("pts-wrap.ts", Duration::from_secs(1), 5, true);
        // 8 s and a single IDR: one segment, however long.
        check_fixture("long-gop.ts", Duration::from_secs(1), 1, true);
    }

    #[test]
    fn a_longer_minimum_skips_idrs() {
        check_fixture("pts-wrap.ts", Duration::from_millis(1500), 3, true);
    }

    #[test]
    fn audio_only_is_cut_by_duration() {
        // 2 s of Opus (plus encoder delay): four full segments and a short last one.
        check_fixture("audio-only.ts", Duration::from_millis(500), 5, false);
    }

    #[test]
    fn psi_written_before_the_idr_is_not_repeated() {
        // The fixtures resend PAT and PMT before every keyframe (+resend_headers).
        let input = fixture("h264-baseline-opus.ts");
        for (start, bytes) in segments(&input, Duration::from_secs(1), &[input.len()]) {
            let pids: Vec<u16> = bytes.chunks(TS_PACKET_SIZE).take(4).map(pid).collect();
            assert_eq!(pids[0], PAT_PID, "segment {}", start.index);
            assert_ne!(pids[2], PAT_PID, "segment {}: PAT twice", start.index);
            assert_ne!(pids[2], pids[1], "segment {}: PMT twice", start.index);
        }
    }

    #[test]
    fn a_source_writing_only_psi_is_not_held_without_bound() {
        let input = fixture("h264-baseline-opus.ts");
        let pat = input
            .chunks(TS_PACKET_SIZE)
            .find(|packet| pid(packet) == PAT_PID)
            .expect("a PAT");
        let mut segmenter = Segmenter::default();
        let mut events = Vec::new();
        segmenter.push(&input, &mut events);
        assert!(segmenter.current.is_some(), "the fixture started a segment");
        events.clear();
        let psi_only = pat.repeat(10_000);
        segmenter.push(&psi_only, &mut events);
        assert!(segmenter.held_psi.len() <= MAX_HELD_PSI_PACKETS);
        let written: usize = events
            .iter()
            .map(|event| match event {
                SegmentEvent::Bytes(bytes) => bytes.len(),
                SegmentEvent::Start(_) => 0,
            })
            .sum();
        assert!(written >= psi_only.len() - MAX_HELD_PSI_PACKETS * TS_PACKET_SIZE);
    }

    #[test]
    fn psi_is_repeated_when_the_source_did_not_write_it() {
        // Remove every PAT and PMT after the first pair: segments still start with them.
        let input = fixture("h264-baseline-opus.ts");
        let mut seen_psi = 0;
        let stripped: Vec<u8> = input
            .chunks(TS_PACKET_SIZE)
            .filter(|packet| {
                let is_psi = pid(packet) == PAT_PID || pid(packet) == 0x1000;
                seen_psi += usize::from(is_psi);
                !is_psi || seen_psi <= 2
            })
            .flatten()
            .copied()
            .collect();
        assert!(stripped.len() < input.len(), "the fixture repeats its PSI");
        let segments = segments(&stripped, Duration::from_secs(1), &[stripped.len()]);
        assert_eq!(segments.len(), 2);
        for (_, bytes) in &segments {
            assert_eq!(pid(bytes), PAT_PID);
            assert_eq!(pid(&bytes[TS_PACKET_SIZE..]), 0x1000);
            assert!(demux_alone(bytes).1);
        }
    }

    #[test]
    fn bytes_before_the_first_idr_are_dropped() {
        let input = fixture("h264-baseline-opus.ts");
        // Start mid-GOP: skip the first 60 packets.
        let tail = &input[60 * TS_PACKET_SIZE..];
        let mut segmenter = Segmenter::new(Duration::from_secs(1));
        let mut events = Vec::new();
        segmenter.push(tail, &mut events);
        segmenter.finish(&mut events);
        assert!(segmenter.dropped_bytes() > 0);
        assert!(matches!(events.first(), Some(SegmentEvent::Start(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn chunking_does_not_change_the_segments(
            sizes in proptest::collection::vec(1usize..700, 1..8),
            fixture_index in 0usize..3,
        ) {
            let name = ["h264-bframes-opus.ts", "audio-only.ts", "pts-wrap.ts"][fixture_index];
            let input = fixture(name);
            let whole = segments(&input, Duration::from_millis(500), &[input.len()]);
            let chunked = segments(&input, Duration::from_millis(500), &sizes);
            prop_assert_eq!(whole, chunked);
        }

        #[test]
        fn damaged_input_never_panics_and_segments_still_start_with_psi(
            damage in proptest::collection::vec((0usize..71_628, any::<u8>()), 0..200),
            garbage in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut input = fixture("h264-baseline-opus.ts");
            for (at, byte) in damage {
                let at = at % input.len();
                input[at] = byte;
            }
            input.splice(input.len() / 2..input.len() / 2, garbage);
            for (_, bytes) in segments(&input, Duration::from_millis(500), &[1000]) {
                prop_assert_eq!(bytes.len() % TS_PACKET_SIZE, 0);
                prop_assert_eq!(pid(&bytes), PAT_PID);
            }
        }
    }
}
