//! Counters of one publisher's ingest, for metrics and logs. Everything only grows, except
//! the few fields documented as state.

use std::time::Instant;

use crate::depacketize::DepacketizeStats;
use crate::timing::TrackClock;

/// Counters of one track (one RTP stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// RTP packets received.
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Access units written to the output (H.264 pictures, Opus packets).
    pub frames: u64,
    /// Packets given up on after the reorder window.
    pub packets_lost: u64,
    /// Packets that arrived out of order and were put back.
    pub packets_reordered: u64,
    /// Duplicates, and packets that came after their place was given up.
    pub packets_late_or_duplicate: u64,
    /// Packets whose payload was unusable (see [`DepacketizeStats`] for H.264's reasons).
    pub packets_malformed: u64,
    /// Restarts of the sender's sequence numbers (RFC 3550 A.1).
    pub sequence_restarts: u64,
    /// Times the track's SSRC changed: a new sender, handled as a new source.
    pub source_changes: u64,
}

/// How audio and video were put on one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvAlignment {
    /// From the arrival times of each track's first packets.
    Arrival,
    /// From RTCP sender reports of both tracks (RFC 3550 §6.4.1).
    SenderReports,
}

/// Counters of one [`crate::Ingest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    pub video: TrackStats,
    pub audio: TrackStats,
    /// H.264 depacketizer details.
    pub h264: DepacketizeStats,
    /// IDR access units written.
    pub keyframes: u64,
    /// Keyframe requests decided (times [`crate::Ingest::want_keyframe`] said yes).
    pub keyframe_requests: u64,
    /// Access units written although part of them was lost (non-reference pictures, or any
    /// with [`crate::IngestConfig::conceal_reference_loss`]).
    pub incomplete_sent: u64,
    /// Damaged access units dropped.
    pub incomplete_dropped: u64,
    /// Video access units dropped while waiting for a keyframe (at the start, after loss).
    pub dropped_awaiting_keyframe: u64,
    /// Access units dropped because they belong before the stream's start (audio before the
    /// first keyframe) or did not fit the start queue.
    pub dropped_before_start: u64,
    /// Access units the muxer refused (an Opus packet too large for one PES).
    pub mux_errors: u64,
    /// Timestamp corrections: video found to run a 1 MHz clock and rescaled to 90 kHz.
    pub timestamp_corrections: u64,
    /// Times audio was moved against video by more than 10 ms to follow sender reports.
    pub av_realignments: u64,
    /// State: how audio and video are aligned now, once both have started.
    pub alignment: Option<AvAlignment>,
    /// State: the clock the video's RTP timestamps were found to run at.
    pub video_clock: Option<TrackClock>,
    /// State: when the first keyframe was written (the stream's start, with video).
    pub first_keyframe_at: Option<Instant>,
    /// MPEG-TS bytes written to the output.
    pub ts_bytes: u64,
}
