//! MPEG-TS demuxing (ISO/IEC 13818-1): any byte stream in, the tracks of one program and their
//! access units out.
//!
//! `mpeg2ts-reader` does the packet-level work: TS packet fields, PSI section reassembly with
//! CRC checks, PAT/PMT/PES header parsing and routing packets to per-PID filters. On top of it
//! this module adds what a live gateway needs and the crate does not do:
//!
//! - `sync`: finding packet boundaries in input that starts, or is damaged, anywhere
//!   (`Demultiplex::push` stops silently at the first packet without a sync byte).
//! - `psi`: our own PAT/PMT table handlers on the crate's section plumbing, so that a changed
//!   table is noticed by content even when a restarted muxer reuses its version number, a PMT
//!   change leaves unchanged tracks (and their half-assembled PES) alone, and the track list is
//!   computed once per table.
//! - `pes`: PES reassembly per track, with continuity checks that drop only the damaged PES,
//!   delivery of a PES the moment its announced length is complete, keyframe flags, and Opus PES
//!   split into single packets.
//!
//! It decodes nothing, follows one program (the first the PAT lists), and holds at most one PES
//! per track, of bounded size, for at most [`MAX_TRACKS`] tracks.

mod pes;
mod psi;
mod state;
mod sync;
#[cfg(test)]
mod tests;

use mpeg2ts_reader::demultiplex::Demultiplex;

use crate::access_unit::{AccessUnit, Track};
use state::DemuxState;
use sync::PacketAligner;

/// Largest H.264 PES kept; a bigger one is dropped. A 4K IDR at broadcast quality stays below.
pub const MAX_VIDEO_PES_BYTES: usize = 8 * 1024 * 1024;
/// Largest Opus PES kept: muxers pack at most a few hundred ms of audio into one.
pub const MAX_AUDIO_PES_BYTES: usize = 64 * 1024;
/// Most tracks taken from one PMT; further streams are ignored, so that a hostile PMT cannot
/// make us hold more than `MAX_TRACKS * MAX_VIDEO_PES_BYTES` of PES data.
pub const MAX_TRACKS: usize = 8;

/// What the demuxer found, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// The PMT was read for the first time or changed what it carries: the tracks we carry
    /// (H.264, and Opus announced by an `Opus` registration descriptor), in PMT order. Access
    /// units that follow belong to these tracks.
    Tracks(Vec<Track>),
    /// One access unit: an H.264 access unit in Annex B form, or exactly one Opus packet.
    AccessUnit(AccessUnit),
}

/// Counters for logs and metrics; they only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Times sync was lost on a stream that had it.
    pub resyncs: u64,
    /// Bytes skipped while looking for sync, and a partial packet left at the end.
    pub skipped_bytes: u64,
    /// Continuity-counter gaps on track PIDs: TS packets were lost.
    pub continuity_errors: u64,
    /// Packets of track PIDs with the discontinuity_indicator set (a splice, not a loss).
    pub discontinuities: u64,
    /// PES packets dropped: damaged by loss or a splice, oversized, truncated, or with a header
    /// we cannot parse.
    pub dropped_pes: u64,
    /// PES packets skipped because they carry no PTS.
    pub pes_without_pts: u64,
    /// Opus packets dropped because their control header or TOC byte was malformed.
    pub dropped_opus_packets: u64,
    /// Distinct (PID, stream_type) pairs a PMT announced that we do not carry, or that did not
    /// fit in [`MAX_TRACKS`].
    pub ignored_streams: u64,
    /// Access units delivered.
    pub access_units: u64,
}

/// Turns an MPEG-TS byte stream, in any chunking, into [`DemuxEvent`]s.
///
/// Events come out as soon as the bytes that complete them are pushed: an Opus PES (whose
/// length is announced) with its last packet, an H.264 PES (usually unbounded) when the next
/// one starts. [`Demuxer::finish`] delivers the last one.
///
/// ```
/// use livegate_media::ts::demux::{DemuxEvent, Demuxer};
/// # let stream: Vec<u8> = Vec::new();
/// let mut demuxer = Demuxer::new();
/// let mut events = Vec::new();
/// for chunk in stream.chunks(1316) {
///     demuxer.push(chunk, &mut events);
///     for event in events.drain(..) {
///         match event {
///             DemuxEvent::Tracks(tracks) => println!("tracks: {tracks:?}"),
///             DemuxEvent::AccessUnit(au) => println!("{:?} at {:?}", au.codec, au.pts),
///         }
///     }
/// }
/// demuxer.finish(&mut events);
/// assert_eq!(demuxer.stats().access_units, 0);
/// ```
pub struct Demuxer {
    aligner: PacketAligner,
    state: DemuxState,
    demux: Demultiplex<DemuxState>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Demuxer {
    /// A demuxer that has seen nothing yet; it announces tracks once it reads a PAT and PMT.
    pub fn new() -> Self {
        let mut state = DemuxState::default();
        let demux = Demultiplex::new(&mut state);
        Demuxer {
            aligner: PacketAligner::default(),
            state,
            demux,
        }
    }

    /// Feeds bytes, which need not be packet-aligned; appends the events they complete to
    /// `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<DemuxEvent>) {
        let (demux, state) = (&mut self.demux, &mut self.state);
        self.aligner
            .push(data, |packets| demux.push(state, packets));
        self.drain(out);
    }

    /// End of input: delivers the PES packets still being assembled (a PES whose announced
    /// length was not reached is dropped as truncated). Pushing more afterwards continues the
    /// same stream.
    pub fn finish(&mut self, out: &mut Vec<DemuxEvent>) {
        let (demux, state) = (&mut self.demux, &mut self.state);
        self.aligner.finish(|packet| demux.push(state, packet));
        self.state.flush();
        self.drain(out);
    }

    /// Counters since the demuxer was created.
    pub fn stats(&self) -> &DemuxStats {
        &self.state.stats
    }

    /// The tracks last announced by a [`DemuxEvent::Tracks`].
    pub fn tracks(&self) -> &[Track] {
        self.state.tracks()
    }

    fn drain(&mut self, out: &mut Vec<DemuxEvent>) {
        self.state.stats.resyncs = self.aligner.resyncs;
        self.state.stats.skipped_bytes = self.aligner.skipped_bytes;
        out.append(&mut self.state.events);
    }
}
