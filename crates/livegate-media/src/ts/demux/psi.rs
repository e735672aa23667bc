//! PAT and PMT handling (ISO/IEC 13818-1 §2.4.4): which program to follow and which of its
//! elementary streams become tracks.
//!
//! The sections are reassembled and CRC-checked by `mpeg2ts-reader`'s section plumbing, but
//! the table handlers are ours. Its `PatPacketFilter`/`PmtPacketFilter` skip a section whose
//! version_number equals the last one seen, so a restarted muxer (ffmpeg always writes version
//! 0) announcing different streams would go unnoticed; and on every new PMT version they replace
//! the filter of every stream, losing the half-assembled PES of tracks that did not change.
//! Here a table is re-read when its CRC changes, and the demuxer state decides what changes.

use mpeg2ts_reader::demultiplex::PacketFilter;
use mpeg2ts_reader::descriptor::{Descriptor, DescriptorError};
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::psi::pat::{PatSection, ProgramDescriptor};
use mpeg2ts_reader::psi::pmt::{PmtSection, StreamInfo};
use mpeg2ts_reader::psi::{
    BufferSectionSyntaxParser, CrcCheckWholeSectionSyntaxPayloadParser, CurrentNext,
    SectionCommonHeader, SectionPacketConsumer, SectionSyntaxSectionProcessor, TableSyntaxHeader,
    WholeSectionSyntaxPayloadParser,
};

use super::state::DemuxState;
use crate::access_unit::{Codec, Track};
use crate::ts::{STREAM_TYPE_H264, STREAM_TYPE_PRIVATE_PES};

/// table_id of a PAT section (ISO/IEC 13818-1 Table 2-31).
const TABLE_ID_PAT: u8 = 0x00;
/// table_id of a PMT section.
const TABLE_ID_PMT: u8 = 0x02;
/// Bytes before a section's table data: the common header and the table syntax header.
const SECTION_HEADER_BYTES: usize = SectionCommonHeader::SIZE + TableSyntaxHeader::SIZE;
const CRC_BYTES: usize = 4;
/// PIDs a PMT or an elementary stream may use: 0x0000-0x000F are reserved for PSI and 0x1FFF
/// is the null packet (ISO/IEC 13818-1 Table 2-3).
const ASSIGNABLE_PIDS: std::ops::RangeInclusive<u16> = 0x0010..=0x1FFE;
/// Opus channel count assumed when the PMT does not say: Opus in MPEG-TS is stereo unless an
/// extension descriptor says otherwise, and RFC 7587 §7 has WebRTC signal 2 channels anyway.
const DEFAULT_OPUS_CHANNELS: u8 = 2;

type SectionFilter<P> = SectionPacketConsumer<
    SectionSyntaxSectionProcessor<
        BufferSectionSyntaxParser<CrcCheckWholeSectionSyntaxPayloadParser<P>>,
    >,
>;

fn section_filter<P>(handler: P) -> SectionFilter<P>
where
    P: WholeSectionSyntaxPayloadParser<Context = DemuxState>,
{
    SectionPacketConsumer::new(SectionSyntaxSectionProcessor::new(
        BufferSectionSyntaxParser::new(CrcCheckWholeSectionSyntaxPayloadParser::new(handler)),
    ))
}

/// The table data of a complete, CRC-checked section that is current, carries `table_id`, and
/// differs from the last one read (`last_crc`).
fn new_table_data<'a>(
    header: &SectionCommonHeader,
    syntax: &TableSyntaxHeader<'_>,
    data: &'a [u8],
    table_id: u8,
    last_crc: &mut Option<[u8; 4]>,
) -> Option<&'a [u8]> {
    // A section with current_next_indicator 0 describes a table not yet in force (§2.4.4.5);
    // PAT sections other than the first are not used since we follow the first program.
    if header.table_id != table_id
        || syntax.current_next_indicator() != CurrentNext::Current
        || syntax.section_number() != 0
        || data.len() < SECTION_HEADER_BYTES + CRC_BYTES
    {
        return None;
    }
    let (table, crc) = data.split_at(data.len() - CRC_BYTES);
    let crc: [u8; 4] = crc.try_into().ok()?;
    if *last_crc == Some(crc) {
        return None;
    }
    *last_crc = Some(crc);
    Some(&table[SECTION_HEADER_BYTES..])
}

/// Reads the PAT and tells the state which program to follow: the first it lists.
pub struct PatFilter {
    sections: SectionFilter<PatHandler>,
}

impl Default for PatFilter {
    fn default() -> Self {
        PatFilter {
            sections: section_filter(PatHandler { last_crc: None }),
        }
    }
}

impl PacketFilter for PatFilter {
    type Ctx = DemuxState;

    fn consume(&mut self, state: &mut DemuxState, packet: &Packet<'_>) {
        self.sections.consume(state, packet);
    }
}

struct PatHandler {
    last_crc: Option<[u8; 4]>,
}

impl WholeSectionSyntaxPayloadParser for PatHandler {
    type Context = DemuxState;

    fn section(
        &mut self,
        state: &mut DemuxState,
        header: &SectionCommonHeader,
        syntax: &TableSyntaxHeader<'_>,
        data: &[u8],
    ) {
        let Some(table) = new_table_data(header, syntax, data, TABLE_ID_PAT, &mut self.last_crc)
        else {
            return;
        };
        // program_number 0 points at the network information table, not a program.
        let program = PatSection::new(table).programs().find_map(|p| match p {
            ProgramDescriptor::Program {
                program_number,
                pid,
            } if ASSIGNABLE_PIDS.contains(&u16::from(pid)) => {
                Some((u16::from(pid), program_number))
            }
            _ => None,
        });
        if let Some((pmt_pid, program_number)) = program {
            state.follow_program(pmt_pid, program_number);
        }
    }
}

/// Reads the PMT of the program we follow and hands every new version to the state.
pub struct PmtFilter {
    sections: SectionFilter<PmtHandler>,
}

impl PmtFilter {
    pub(super) fn new(pid: u16, program_number: u16) -> Self {
        PmtFilter {
            sections: section_filter(PmtHandler {
                pid,
                program_number,
                last_crc: None,
            }),
        }
    }
}

impl PacketFilter for PmtFilter {
    type Ctx = DemuxState;

    fn consume(&mut self, state: &mut DemuxState, packet: &Packet<'_>) {
        self.sections.consume(state, packet);
    }
}

struct PmtHandler {
    pid: u16,
    program_number: u16,
    last_crc: Option<[u8; 4]>,
}

impl WholeSectionSyntaxPayloadParser for PmtHandler {
    type Context = DemuxState;

    fn section(
        &mut self,
        state: &mut DemuxState,
        header: &SectionCommonHeader,
        syntax: &TableSyntaxHeader<'_>,
        data: &[u8],
    ) {
        // A PMT PID may carry the PMTs of several programs; the table id extension tells which.
        if syntax.id() != self.program_number {
            return;
        }
        let Some(table) = new_table_data(header, syntax, data, TABLE_ID_PMT, &mut self.last_crc)
        else {
            return;
        };
        match PmtSection::from_bytes(table) {
            Ok(pmt) => state.apply_pmt(self.pid, &pmt),
            Err(error) => tracing::debug!(?error, "unreadable PMT section"),
        }
    }
}

/// The tracks of a PMT, at most `max_tracks`, in PMT order. Streams we do not carry, on a PID
/// already taken or not assignable, or beyond `max_tracks` are reported to `ignore`.
pub(super) fn tracks_of(
    pmt: &PmtSection<'_>,
    pmt_pid: u16,
    max_tracks: usize,
    mut ignore: impl FnMut(u16, u8),
) -> Vec<Track> {
    let mut tracks: Vec<Track> = Vec::new();
    for info in pmt.streams() {
        let pid = u16::from(info.elementary_pid());
        let usable = ASSIGNABLE_PIDS.contains(&pid)
            && pid != pmt_pid
            && tracks.len() < max_tracks
            && tracks.iter().all(|t| t.pid != pid);
        match track_of(&info) {
            Some(track) if usable => tracks.push(track),
            _ => ignore(pid, u8::from(info.stream_type())),
        }
    }
    tracks
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
                    // registration_descriptor (ISO/IEC 13818-1 §2.6.8), format_identifier "Opus".
                    (0x05, [b'O', b'p', b'u', b's', ..]) => is_opus = true,
                    // DVB extension descriptor (ETSI EN 300 468 §6.2.16) with the Opus tag
                    // extension 0x80 (wiki.xiph.org/OpusTS): channel_config_code 1-8 is the
                    // channel count, 0 is dual mono (two channels), 0x80 is followed by an
                    // explicit channel count.
                    (0x7F, [0x80, 0, ..]) => channels = Some(2),
                    (0x7F, [0x80, code @ 1..=8, ..]) => channels = Some(*code),
                    (0x7F, [0x80, 0x80, count @ 1..=255, ..]) => channels = Some(*count),
                    _ => {}
                }
            }
            is_opus.then_some(Track {
                pid,
                codec: Codec::Opus,
                channels: Some(channels.unwrap_or(DEFAULT_OPUS_CHANNELS)),
            })
        }
        _ => None,
    }
}

/// A descriptor as tag and payload; `mpeg2ts-reader` hands over each descriptor's bytes, tag
/// and length included (at least two bytes).
struct RawDescriptor<'buf> {
    tag: u8,
    payload: &'buf [u8],
}

impl<'buf> Descriptor<'buf> for RawDescriptor<'buf> {
    fn from_bytes(buf: &'buf [u8]) -> Result<Self, DescriptorError> {
        match buf {
            [tag, _length, payload @ ..] => Ok(RawDescriptor { tag: *tag, payload }),
            _ => Err(DescriptorError::BufferTooShort { buflen: buf.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PMT section's table data (after the syntax header, before the CRC): PCR PID, no
    /// program descriptors, then (stream_type, PID, descriptors) for each stream.
    fn pmt_table(streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
        let mut table = vec![0xE1, 0x00, 0xF0, 0x00];
        for (stream_type, pid, descriptors) in streams {
            table.push(*stream_type);
            table.extend_from_slice(&(0xE000 | pid).to_be_bytes());
            table.extend_from_slice(&(0xF000 | descriptors.len() as u16).to_be_bytes());
            table.extend_from_slice(descriptors);
        }
        table
    }

    const OPUS_REGISTRATION: [u8; 6] = [0x05, 4, b'O', b'p', b'u', b's'];

    fn tracks(streams: &[(u8, u16, &[u8])]) -> (Vec<Track>, Vec<(u16, u8)>) {
        let table = pmt_table(streams);
        let pmt = PmtSection::from_bytes(&table).unwrap();
        let mut ignored = Vec::new();
        let tracks = tracks_of(&pmt, 0x1000, 2, |pid, st| ignored.push((pid, st)));
        (tracks, ignored)
    }

    #[test]
    fn h264_and_registered_opus_become_tracks_in_pmt_order() {
        let mono = [OPUS_REGISTRATION.as_slice(), &[0x7F, 2, 0x80, 1]].concat();
        let (found, ignored) = tracks(&[(0x06, 0x101, &mono), (0x1B, 0x100, &[])]);
        assert_eq!(
            found,
            vec![
                Track {
                    pid: 0x101,
                    codec: Codec::Opus,
                    channels: Some(1)
                },
                Track {
                    pid: 0x100,
                    codec: Codec::H264,
                    channels: None
                },
            ]
        );
        assert!(ignored.is_empty());
        // Without an extension descriptor Opus is taken as stereo; dual mono is two channels.
        let dual_mono = [OPUS_REGISTRATION.as_slice(), &[0x7F, 2, 0x80, 0]].concat();
        for descriptors in [OPUS_REGISTRATION.as_slice(), &dual_mono] {
            let (found, _) = tracks(&[(0x06, 0x101, descriptors)]);
            assert_eq!(found[0].channels, Some(2));
        }
    }

    #[test]
    fn other_streams_are_ignored_and_reported() {
        let (found, ignored) = tracks(&[
            (0x0F, 0x102, &[]),                                // AAC
            (0x06, 0x103, &[0x05, 4, b'A', b'C', b'-', b'3']), // private data, not Opus
            (0x1B, 0x0001, &[]),                               // reserved PID
            (0x1B, 0x1000, &[]),                               // the PMT's own PID
            (0x1B, 0x100, &[]),
            (0x1B, 0x100, &[]), // PID taken
            (0x06, 0x104, &OPUS_REGISTRATION),
            (0x1B, 0x105, &[]), // over the limit of 2
        ]);
        assert_eq!(
            found.iter().map(|t| t.pid).collect::<Vec<_>>(),
            [0x100, 0x104]
        );
        assert_eq!(
            ignored,
            [
                (0x102, 0x0F),
                (0x103, 0x06),
                (0x0001, 0x1B),
                (0x1000, 0x1B),
                (0x100, 0x1B),
                (0x105, 0x1B)
            ]
        );
    }

    #[test]
    fn descriptors_shorter_than_their_header_are_refused() {
        assert!(RawDescriptor::from_bytes(&[0x05]).is_err());
        let d = RawDescriptor::from_bytes(&[0x05, 0]).unwrap();
        assert_eq!((d.tag, d.payload), (0x05, &[][..]));
    }
}
