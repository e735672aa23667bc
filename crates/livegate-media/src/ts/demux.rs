//! MPEG-TS demuxing (ISO/IEC 13818-1) into tracks and access units, on `mpeg2ts-reader`.
//!
//! `mpeg2ts-reader` parses packets, reassembles PAT/PMT sections with CRC checks and routes
//! PIDs to filters; this module adds what a live gateway needs on top: resynchronisation on
//! misaligned input ([`super::sync`]), its own PES reassembly (so that a PES whose length is
//! known is delivered the moment it is complete instead of when the next one starts, and so
//! that a legitimate `discontinuity_indicator` is not mistaken for loss), keyframe flags, and
//! Opus PES split into single Opus packets.
//!
//! It does not decode anything and keeps no more than one PES per track in memory.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use mpeg2ts_reader::demultiplex::{
    self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PacketFilter,
    PatPacketFilter, PmtPacketFilter,
};
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::packet_filter_switch;
use mpeg2ts_reader::pes::{PesContents, PesHeader, PtsDts};
use mpeg2ts_reader::psi::pmt::{PmtSection, StreamInfo};

use super::sync::PacketAligner;
use super::{STREAM_TYPE_H264, STREAM_TYPE_PRIVATE_PES};
use crate::access_unit::{AccessUnit, Codec, Pts90k, Track};
use crate::{h264, opus};

/// Largest H.264 PES kept; a bigger one is dropped (a 4K IDR at high quality stays below).
const MAX_VIDEO_PES_BYTES: usize = 8 * 1024 * 1024;
/// Largest Opus PES kept: ffmpeg packs at most a few hundred ms of audio into one.
const MAX_AUDIO_PES_BYTES: usize = 64 * 1024;
/// Most tracks taken from one PMT; the rest are ignored so a hostile PMT cannot make us
/// allocate per-track state without bound.
const MAX_TRACKS: usize = 16;

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// A PMT was read and its track list differs from the previous one: the tracks we carry
    /// (H.264, and Opus announced by a registration descriptor `Opus`), in PMT order.
    Tracks(Vec<Track>),
    /// One access unit: an H.264 access unit in Annex B form or exactly one Opus packet.
    AccessUnit(AccessUnit),
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Times sync was lost on a stream that had it.
    pub resyncs: u64,
    /// Bytes skipped while looking for sync.
    pub skipped_bytes: u64,
    /// Continuity-counter gaps on media PIDs (lost TS packets).
    pub continuity_errors: u64,
    /// PES packets dropped: damaged by loss, oversized, without PTS or with a bad header.
    pub dropped_pes: u64,
    /// Opus packets dropped because their control header or TOC was malformed.
    pub dropped_opus_packets: u64,
    /// Elementary streams of a type we do not carry, seen in PMTs.
    pub ignored_streams: u64,
    pub access_units: u64,
}

/// Turns an MPEG-TS byte stream, in any chunking, into [`DemuxEvent`]s.
///
/// ```
/// use livegate_media::ts::demux::{DemuxEvent, Demuxer};
/// let mut demuxer = Demuxer::new();
/// let mut events = Vec::new();
/// demuxer.push(&[0x47, 0x1F, 0xFF, 0x10], &mut events); // part of a null packet
/// demuxer.finish(&mut events);
/// assert!(events.is_empty());
/// ```
pub struct Demuxer {
    aligner: PacketAligner,
    ctx: Context,
    demux: demultiplex::Demultiplex<Context>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    pub fn new() -> Demuxer {
        let mut ctx = Context::new();
        let demux = demultiplex::Demultiplex::new(&mut ctx);
        Demuxer {
            aligner: PacketAligner::default(),
            ctx,
            demux,
        }
    }

    /// Feeds bytes; appends what they complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<DemuxEvent>) {
        let (demux, ctx) = (&mut self.demux, &mut self.ctx);
        self.aligner.push(data, |packets| demux.push(ctx, packets));
        self.ctx.stats.resyncs = self.aligner.resyncs;
        self.ctx.stats.skipped_bytes = self.aligner.skipped_bytes;
        out.append(&mut self.ctx.events);
    }

    /// End of input: delivers the PES packets still being assembled.
    pub fn finish(&mut self, out: &mut Vec<DemuxEvent>) {
        // Flush every PES filter by sending it a synthetic end. The filters live inside the
        // mpeg2ts-reader demultiplexer, so they report through the context instead.
        self.ctx.flush_requested = true;
        let pids: Vec<u16> = self.ctx.tracks.iter().map(|t| t.pid).collect();
        for pid in pids {
            let mut packet = [0u8; 188];
            packet[0] = 0x47;
            packet[1] = 0x40 | (pid >> 8) as u8; // payload_unit_start_indicator
            packet[2] = pid as u8;
            // Adaptation field only, no payload: the filter flushes and starts nothing new.
            packet[3] = 0x20;
            packet[4] = 183;
            packet[5..].fill(0xFF);
            packet[5] = 0;
            self.demux.push(&mut self.ctx, &packet);
        }
        self.ctx.flush_requested = false;
        out.append(&mut self.ctx.events);
    }

    pub fn stats(&self) -> &DemuxStats {
        &self.ctx.stats
    }

    /// The tracks of the last PMT read.
    pub fn tracks(&self) -> &[Track] {
        &self.ctx.tracks
    }
}

packet_filter_switch! {
    Filter<Context> {
        Pes: PesFilter,
        Pat: PatPacketFilter<Context>,
        Pmt: PmtPacketFilter<Context>,
        Null: NullPacketFilter<Context>,
    }
}

/// State shared by all filters of one demuxer; filters report through it.
pub struct Context {
    changeset: FilterChangeset<Filter>,
    events: Vec<DemuxEvent>,
    tracks: Vec<Track>,
    stats: DemuxStats,
    warned_streams: HashSet<(u16, u8)>,
    /// Set by [`Demuxer::finish`]: filters deliver what they hold.
    flush_requested: bool,
}

impl Context {
    fn new() -> Context {
        Context {
            changeset: FilterChangeset::default(),
            events: Vec::new(),
            tracks: Vec::new(),
            stats: DemuxStats::default(),
            warned_streams: HashSet::new(),
            flush_requested: false,
        }
    }

    /// The first time a PMT version is seen (its first stream is constructed), announce its
    /// track list if it changed.
    fn observe_pmt(&mut self, pmt: &PmtSection<'_>) {
        let mut tracks = Vec::new();
        for info in pmt.streams() {
            match track_of(&info) {
                Some(track) if tracks.len() < MAX_TRACKS => tracks.push(track),
                Some(_) => {}
                None => {
                    let key = (
                        u16::from(info.elementary_pid()),
                        u8::from(info.stream_type()),
                    );
                    if self.warned_streams.insert(key) {
                        self.stats.ignored_streams += 1;
                        tracing::warn!(
                            pid = key.0,
                            stream_type = key.1,
                            "ignoring an elementary stream that is neither H.264 nor Opus"
                        );
                    }
                }
            }
        }
        if tracks != self.tracks {
            self.tracks = tracks.clone();
            self.events.push(DemuxEvent::Tracks(tracks));
        }
    }
}

impl DemuxContext for Context {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Self::F> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Self::F {
        match req {
            FilterRequest::ByPid(mpeg2ts_reader::psi::pat::PAT_PID) => {
                Filter::Pat(PatPacketFilter::default())
            }
            FilterRequest::ByPid(_) => Filter::Null(NullPacketFilter::default()),
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filter::Pmt(PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                pmt, stream_info, ..
            } => {
                self.observe_pmt(pmt);
                let pid = u16::from(stream_info.elementary_pid());
                match self.tracks.iter().find(|t| t.pid == pid) {
                    Some(track) => Filter::Pes(PesFilter::new(track.clone())),
                    None => Filter::Null(NullPacketFilter::default()),
                }
            }
            FilterRequest::Nit { .. } => Filter::Null(NullPacketFilter::default()),
        }
    }
}

/// The track an elementary stream becomes, if we carry its codec.
fn track_of(info: &StreamInfo<'_>) -> Option<Track> {
    let pid = u16::from(info.elementary_pid());
    match u8::from(info.stream_type()) {
        STREAM_TYPE_H264 => Some(Track {
            pid,
            codec: Codec::H264,
            channels: None,
        }),
        STREAM_TYPE_PRIVATE_PES => {
            let mut is_opus = false;
            let mut channels = None;
            for descriptor in info.descriptors::<RawDescriptor<'_>>().flatten() {
                match (descriptor.tag, descriptor.payload) {
                    // registration_descriptor (ISO/IEC 13818-1 §2.6.8) with format "Opus".
                    (0x05, [b'O', b'p', b'u', b's', ..]) => is_opus = true,
                    // DVB extension descriptor, Opus audio (tag 0x80): channel_config_code;
                    // values up to 8 are the channel count.
                    (0x7F, [0x80, code, ..]) if (1..=8).contains(code) => channels = Some(*code),
                    _ => {}
                }
            }
            is_opus.then_some(Track {
                pid,
                codec: Codec::Opus,
                channels: Some(channels.unwrap_or(2)),
            })
        }
        _ => None,
    }
}

/// A descriptor as tag and payload; `mpeg2ts-reader` hands us its bytes.
struct RawDescriptor<'buf> {
    tag: u8,
    payload: &'buf [u8],
}

impl<'buf> mpeg2ts_reader::descriptor::Descriptor<'buf> for RawDescriptor<'buf> {
    fn from_bytes(buf: &'buf [u8]) -> Result<Self, mpeg2ts_reader::descriptor::DescriptorError> {
        Ok(RawDescriptor {
            tag: buf[0],
            payload: &buf[2..],
        })
    }
}

/// Reassembles the PES packets of one track.
pub struct PesFilter {
    track: Track,
    continuity_counter: Option<u8>,
    pes: Option<PendingPes>,
    data: BytesMut,
}

struct PendingPes {
    pts: Pts90k,
    dts: Option<Pts90k>,
    /// Payload bytes announced by PES_packet_length; `None` for unbounded video PES.
    expected_len: Option<usize>,
}

impl PesFilter {
    fn new(track: Track) -> PesFilter {
        PesFilter {
            track,
            continuity_counter: None,
            pes: None,
            data: BytesMut::new(),
        }
    }

    fn max_pes_bytes(&self) -> usize {
        match self.track.codec {
            Codec::H264 => MAX_VIDEO_PES_BYTES,
            Codec::Opus => MAX_AUDIO_PES_BYTES,
        }
    }

    /// Checks the continuity counter (ISO/IEC 13818-1 §2.4.3.3). Returns false for a
    /// duplicate packet, which must be ignored.
    fn check_continuity(&mut self, ctx: &mut Context, packet: &Packet<'_>) -> bool {
        let has_payload = packet.adaptation_control().has_payload();
        let cc = packet.continuity_counter().count();
        let discontinuity = packet
            .adaptation_field()
            .is_some_and(|af| af.discontinuity_indicator());
        let previous = self.continuity_counter.replace(cc);
        match previous {
            Some(prev) if !discontinuity => {
                let expected = if has_payload { (prev + 1) & 0x0F } else { prev };
                if cc == expected {
                    true
                } else if has_payload && cc == prev {
                    false
                } else {
                    ctx.stats.continuity_errors += 1;
                    if self.pes.take().is_some() {
                        ctx.stats.dropped_pes += 1;
                    }
                    true
                }
            }
            _ => true,
        }
    }

    fn start_pes(&mut self, ctx: &mut Context, payload: &[u8]) {
        let Some(header) = PesHeader::from_bytes(payload) else {
            ctx.stats.dropped_pes += 1;
            return;
        };
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            ctx.stats.dropped_pes += 1;
            return;
        };
        let (pts, dts) = match parsed.pts_dts() {
            Ok(PtsDts::PtsOnly(Ok(pts))) => (pts.value(), None),
            Ok(PtsDts::Both {
                pts: Ok(pts),
                dts: Ok(dts),
            }) => (pts.value(), Some(dts.value())),
            _ => {
                ctx.stats.dropped_pes += 1;
                return;
            }
        };
        let body = parsed.payload();
        // PES_packet_length counts the bytes after itself: 3 fixed header bytes, the optional
        // fields and the payload.
        let header_after_length = payload.len() - 6 - body.len();
        let declared = u16::from_be_bytes([payload[4], payload[5]]) as usize;
        let expected_len = (declared > 0).then(|| declared.saturating_sub(header_after_length));
        self.pes = Some(PendingPes {
            pts: Pts90k::new(pts),
            dts: dts.filter(|&d| d != pts).map(Pts90k::new),
            expected_len,
        });
        self.data.clear();
        self.append(ctx, body);
    }

    fn append(&mut self, ctx: &mut Context, bytes: &[u8]) {
        let Some(pes) = &self.pes else { return };
        if self.data.len() + bytes.len() > self.max_pes_bytes() {
            ctx.stats.dropped_pes += 1;
            self.pes = None;
            self.data.clear();
            return;
        }
        self.data.extend_from_slice(bytes);
        if pes.expected_len.is_some_and(|len| self.data.len() >= len) {
            self.complete(ctx);
        }
    }

    /// Delivers the PES being assembled, if any.
    fn complete(&mut self, ctx: &mut Context) {
        let Some(pes) = self.pes.take() else { return };
        let mut data = self.data.split().freeze();
        if let Some(len) = pes.expected_len {
            data.truncate(len);
        }
        if data.is_empty() {
            ctx.stats.dropped_pes += 1;
            return;
        }
        match self.track.codec {
            Codec::H264 => {
                ctx.stats.access_units += 1;
                ctx.events.push(DemuxEvent::AccessUnit(AccessUnit {
                    pid: self.track.pid,
                    codec: Codec::H264,
                    pts: pes.pts,
                    dts: pes.dts,
                    keyframe: h264::is_idr(&data),
                    data,
                }));
            }
            Codec::Opus => self.split_opus(ctx, pes.pts, data),
        }
    }

    /// One PES may carry several Opus packets, each behind an `opus_control_header`; each
    /// becomes its own access unit, timed by the durations of the packets before it.
    fn split_opus(&self, ctx: &mut Context, mut pts: Pts90k, data: Bytes) {
        let mut offset = 0;
        while offset < data.len() {
            let framed = match opus::parse_control_header(&data, offset) {
                Ok(framed) => framed,
                Err(_) => {
                    ctx.stats.dropped_opus_packets += 1;
                    return;
                }
            };
            offset = framed.end;
            let packet = data.slice(framed.start..framed.end);
            let Ok(duration_48k) = opus::packet_duration_48k(&packet) else {
                ctx.stats.dropped_opus_packets += 1;
                continue;
            };
            ctx.stats.access_units += 1;
            ctx.events.push(DemuxEvent::AccessUnit(AccessUnit {
                pid: self.track.pid,
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

impl PacketFilter for PesFilter {
    type Ctx = Context;

    fn consume(&mut self, ctx: &mut Context, packet: &Packet<'_>) {
        if ctx.flush_requested {
            self.complete(ctx);
            return;
        }
        if !self.check_continuity(ctx, packet) {
            return;
        }
        let Some(payload) = packet.payload() else {
            return;
        };
        if packet.payload_unit_start_indicator() {
            // An unbounded PES ends where the next one starts.
            self.complete(ctx);
            self.start_pes(ctx, payload);
        } else {
            self.append(ctx, payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture's events, fed in one piece.
    pub(crate) fn demux_all(data: &[u8]) -> (Vec<DemuxEvent>, DemuxStats) {
        let mut demuxer = Demuxer::new();
        let mut events = Vec::new();
        demuxer.push(data, &mut events);
        demuxer.finish(&mut events);
        (events, demuxer.stats().clone())
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn access_units(events: &[DemuxEvent], codec: Codec) -> Vec<&AccessUnit> {
        events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::AccessUnit(au) if au.codec == codec => Some(au),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fixtures_demux_to_their_tracks_and_units() {
        // Counts from `ffprobe -v error -count_packets -show_entries stream=nb_read_packets`.
        for (name, tracks, video, audio) in [
            ("h264-baseline-opus.ts", 2, 60, 101),
            ("h264-high-opus.ts", 2, 60, 101),
            ("h264-bframes-opus.ts", 2, 60, 101),
            ("video-only.ts", 1, 60, 0),
            ("audio-only.ts", 1, 0, 101),
            ("pts-wrap.ts", 2, 150, 251),
        ] {
            let (events, stats) = demux_all(&fixture(name));
            let DemuxEvent::Tracks(found) = &events[0] else {
                panic!("{name}: first event is not the track list: {:?}", events[0]);
            };
            assert_eq!(found.len(), tracks, "{name}");
            assert_eq!(access_units(&events, Codec::H264).len(), video, "{name}");
            assert_eq!(access_units(&events, Codec::Opus).len(), audio, "{name}");
            assert_eq!(stats.dropped_pes, 0, "{name}: {stats:?}");
            assert_eq!(stats.continuity_errors, 0, "{name}: {stats:?}");
        }
    }

    #[test]
    fn timestamps_keyframes_and_opus_splitting_match_ffprobe() {
        // Raw PES timestamps as written by ffmpeg (scripts/make-fixtures.sh).
        let (events, _) = demux_all(&fixture("pts-wrap.ts"));
        let video = access_units(&events, Codec::H264);
        let audio = access_units(&events, Codec::Opus);
        assert_eq!(video[0].pts, Pts90k::new(8_589_844_592));
        assert_eq!(video[1].pts, Pts90k::new(8_589_847_592));
        assert_eq!(audio[0].pts, Pts90k::new(8_589_844_007));
        // Packets split out of one PES follow each other by their 20 ms duration, across the
        // 2^33 wrap.
        for pair in audio.windows(2) {
            let step =
                pair[1].pts.ticks().wrapping_sub(pair[0].pts.ticks()) & (crate::PTS_WRAP - 1);
            assert_eq!(step, 1_800);
        }
        let keyframes: Vec<usize> = (0..video.len()).filter(|&i| video[i].keyframe).collect();
        assert_eq!(keyframes, vec![0, 30, 60, 90, 120]);
        assert!(video[0].data.starts_with(&[0, 0, 0, 1]) || video[0].data.starts_with(&[0, 0, 1]));
        assert!(video.iter().all(|au| au.dts.is_none()), "no B-frames");

        let (events, _) = demux_all(&fixture("h264-bframes-opus.ts"));
        let reordered = access_units(&events, Codec::H264)
            .iter()
            .filter(|au| au.dts.is_some())
            .count();
        assert!(
            reordered > 30,
            "B-frame fixture has PTS != DTS: {reordered}"
        );
    }

    #[test]
    fn joining_mid_packet_resyncs() {
        let data = fixture("h264-baseline-opus.ts");
        let (all, _) = demux_all(&data);
        let all_video = access_units(&all, Codec::H264);
        for skip in [1usize, 100, 187, 5_000, 20_001] {
            let (events, stats) = demux_all(&data[skip..]);
            let video = access_units(&events, Codec::H264);
            // What a late joiner gets is exactly the tail of the stream: nothing damaged,
            // nothing out of order.
            assert!(!video.is_empty(), "skip {skip}");
            assert!(
                all_video.ends_with(&video),
                "skip {skip}: {} units",
                video.len()
            );
            assert!(matches!(events[0], DemuxEvent::Tracks(_)), "skip {skip}");
            assert_eq!(
                stats.resyncs, 0,
                "skip {skip}: never synced before, so no resync"
            );
        }
    }

    #[test]
    fn a_corrupted_continuity_counter_loses_only_the_damaged_unit() {
        let mut data = fixture("video-only.ts");
        let (clean, _) = demux_all(&data);
        let clean_video = access_units(&clean, Codec::H264);
        // Find a video packet in the middle of a PES (no payload_unit_start) and bump its CC.
        let index = (0..data.len() / 188)
            .skip(100)
            .find(|&i| {
                let p = &data[i * 188..];
                u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]) == 0x100 && p[1] & 0x40 == 0
            })
            .unwrap();
        data[index * 188 + 3] ^= 0x05;
        let (events, stats) = demux_all(&data);
        let video = access_units(&events, Codec::H264);
        assert!(stats.continuity_errors >= 1);
        assert_eq!(video.len(), clean_video.len() - 1, "{stats:?}");
        let lost: Vec<_> = clean_video
            .iter()
            .filter(|au| !video.contains(au))
            .collect();
        assert_eq!(lost.len(), 1);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn any_chunking_yields_the_same_events(cuts in proptest::collection::vec(1usize..5_000, 1..60)) {
            let data = fixture("h264-baseline-opus.ts");
            let (want, _) = demux_all(&data);
            let mut demuxer = Demuxer::new();
            let mut events = Vec::new();
            let mut rest = &data[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                demuxer.push(chunk, &mut events);
                rest = tail;
            }
            demuxer.finish(&mut events);
            prop_assert_eq!(events, want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes and damaged fixtures: no panic, and nothing delivered that breaks
        /// the access-unit contract.
        #[test]
        fn demux_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..4_000),
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..200),
        ) {
            let (events, _) = demux_all(&bytes);
            prop_assert!(events.len() <= bytes.len());
            let mut data = fixture("h264-baseline-opus.ts");
            let len = data.len();
            for (at, value) in mutations {
                data[at % len] = value;
            }
            let (events, _) = demux_all(&data);
            for event in events {
                if let DemuxEvent::AccessUnit(au) = event {
                    prop_assert!(!au.data.is_empty());
                    prop_assert!(au.data.len() <= MAX_VIDEO_PES_BYTES);
                }
            }
        }
    }
}
