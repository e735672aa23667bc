//! The demuxer's state shared by all PID filters, as `mpeg2ts-reader`'s `DemuxContext`: which
//! program we follow, its tracks with their PES assemblers, and the events and counters the
//! filters produce.
//!
//! The PES assemblers live here rather than inside the filters because the filters belong to
//! `mpeg2ts-reader`'s `Demultiplex`, which offers no way to reach them from outside: end of
//! input must flush every assembler, and a PMT change must flush the tracks it removes.

use mpeg2ts_reader::demultiplex::{
    DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PacketFilter,
};
use mpeg2ts_reader::packet::{Packet, Pid};
use mpeg2ts_reader::packet_filter_switch;
use mpeg2ts_reader::psi::pat::PAT_PID;
use mpeg2ts_reader::psi::pmt::PmtSection;

use super::pes::PesAssembler;
use super::psi::{self, PatFilter, PmtFilter};
use super::{DemuxEvent, DemuxStats, MAX_TRACKS};
use crate::access_unit::Track;

/// How many ignored (PID, stream_type) pairs are remembered so each is warned about once;
/// beyond that a hostile stream could make the set grow with every PMT.
const MAX_REMEMBERED_IGNORED: usize = 64;

packet_filter_switch! {
    Filter<DemuxState> {
        Pat: PatFilter,
        Pmt: PmtFilter,
        Media: MediaFilter,
        Null: NullPacketFilter<DemuxState>,
    }
}

/// Routes the packets of one track's PID to its assembler.
pub struct MediaFilter {
    pid: u16,
}

impl PacketFilter for MediaFilter {
    type Ctx = DemuxState;

    fn consume(&mut self, state: &mut DemuxState, packet: &Packet<'_>) {
        state.media_packet(self.pid, packet);
    }
}

#[derive(Default)]
pub struct DemuxState {
    changeset: FilterChangeset<Filter>,
    /// Events not yet handed to the caller.
    pub(super) events: Vec<DemuxEvent>,
    pub(super) stats: DemuxStats,
    /// PMT PID and program_number of the program we follow.
    program: Option<(u16, u16)>,
    tracks: Vec<Track>,
    /// One per track.
    assemblers: Vec<PesAssembler>,
    ignored: Vec<(u16, u8)>,
}

impl DemuxState {
    pub(super) fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Delivers every PES still being assembled.
    pub(super) fn flush(&mut self) {
        for assembler in &mut self.assemblers {
            assembler.flush(&mut self.events, &mut self.stats);
        }
    }

    /// The PAT names the program to follow; a different one than before replaces the PMT
    /// filter, whose fresh state reads the new PMT whatever its version.
    pub(super) fn follow_program(&mut self, pmt_pid: u16, program_number: u16) {
        if self.program == Some((pmt_pid, program_number)) {
            return;
        }
        if let Some((old_pid, _)) = self.program {
            self.changeset.remove(Pid::new(old_pid));
        }
        self.program = Some((pmt_pid, program_number));
        self.changeset.insert(
            Pid::new(pmt_pid),
            Filter::Pmt(PmtFilter::new(pmt_pid, program_number)),
        );
    }

    /// A PMT whose content differs from the last one read: announce its tracks if they
    /// changed, keeping the assemblers of tracks that stay.
    pub(super) fn apply_pmt(&mut self, pmt_pid: u16, pmt: &PmtSection<'_>) {
        let tracks = psi::tracks_of(pmt, pmt_pid, MAX_TRACKS, |pid, stream_type| {
            self.ignore_stream(pid, stream_type)
        });
        if tracks == self.tracks {
            return;
        }
        // A track that went away, or changed codec on the same PID, delivers what it holds
        // before the new track list is announced.
        let mut index = 0;
        while index < self.assemblers.len() {
            let assembler = &self.assemblers[index];
            if tracks.iter().any(|t| assembler.carries(t)) {
                index += 1;
                continue;
            }
            let mut gone = self.assemblers.swap_remove(index);
            gone.flush(&mut self.events, &mut self.stats);
            // A PMT moved onto the PID of a track it drops already has its filter there.
            if gone.pid() != pmt_pid {
                self.changeset.remove(Pid::new(gone.pid()));
            }
        }
        for track in &tracks {
            if !self.assemblers.iter().any(|a| a.carries(track)) {
                self.assemblers.push(PesAssembler::new(track));
                self.changeset.insert(
                    Pid::new(track.pid),
                    Filter::Media(MediaFilter { pid: track.pid }),
                );
            }
        }
        self.tracks = tracks.clone();
        self.events.push(DemuxEvent::Tracks(tracks));
    }

    fn ignore_stream(&mut self, pid: u16, stream_type: u8) {
        if self.ignored.contains(&(pid, stream_type))
            || self.ignored.len() >= MAX_REMEMBERED_IGNORED
        {
            return;
        }
        self.ignored.push((pid, stream_type));
        self.stats.ignored_streams += 1;
        tracing::warn!(
            pid,
            stream_type,
            "ignoring an elementary stream: not H.264 or Opus, or too many tracks"
        );
    }

    fn media_packet(&mut self, pid: u16, packet: &Packet<'_>) {
        if let Some(assembler) = self.assemblers.iter_mut().find(|a| a.pid() == pid) {
            assembler.consume(packet, &mut self.events, &mut self.stats);
        }
    }
}

impl DemuxContext for DemuxState {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
        &mut self.changeset
    }

    /// Only PIDs without a filter get here: we install PMT and track filters ourselves (the
    /// crate's PAT/PMT filters, which would ask for them, are not used).
    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
        match req {
            FilterRequest::ByPid(PAT_PID) => Filter::Pat(PatFilter::default()),
            _ => Filter::Null(NullPacketFilter::default()),
        }
    }
}
