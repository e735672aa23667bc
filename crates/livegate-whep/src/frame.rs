//! The unit a stream's output fans out to its viewers: one access unit, already packetized.

use std::sync::Arc;

use bytes::Bytes;
use livegate_media::{Codec, Pts90k};

/// One access unit of a stream's output, packetized once and shared by every viewer.
///
/// Cloning shares the payloads (one reference count), so handing a frame to a hundred
/// viewers copies no media. Each viewer turns `pts` into its own RTP timestamp
/// ([`crate::ViewerClock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub codec: Codec,
    /// Presentation timestamp on the source's 33-bit clock, as demuxed.
    pub pts: Pts90k,
    /// An H.264 IDR access unit, which a decoder can start from; always `true` for Opus,
    /// whose packets are all independent.
    pub keyframe: bool,
    /// Generation of the output buffer the frame came from
    /// ([`livegate_media::registry::OutputSlot::generation`]): it changes when the pipeline
    /// worker restarts, and with it the source clock.
    pub source_generation: u64,
    /// RTP payloads in order; the sender puts the marker bit on the last one.
    pub payloads: Arc<[Bytes]>,
    /// Size of the access unit as demuxed (after parameter-set injection), for statistics.
    pub access_unit_bytes: usize,
}

impl MediaFrame {
    /// Bytes of RTP payload, headers of STAP-A and FU-A included.
    pub fn payload_bytes(&self) -> usize {
        self.payloads.iter().map(Bytes::len).sum()
    }
}

/// A frame numbered in the order the stream's reader produced it, so that a viewer joining
/// from the GOP cache can tell which live frames it already has.
#[derive(Debug, Clone)]
pub(crate) struct SequencedFrame {
    pub(crate) seq: u64,
    pub(crate) frame: MediaFrame,
}
