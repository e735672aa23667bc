//! One publisher's media path: RTP packets in, MPEG-TS out, one ring write per access unit.
//!
//! ```text
//! RTP ─▶ ReorderBuffer ─▶ H264Depacketizer ─▶ loss policy ─┐
//!  (per track)           (Opus: the payload)                ├─▶ start / timeline ─▶ Muxer ─▶ RingBuffer
//! RTCP SR ─▶ timing (unwrap, 1 MHz detection, A/V offsets) ─┘
//! ```
//!
//! # The event-loop contract
//!
//! [`Ingest`] is sans-I/O: it never reads a clock, sleeps or spawns. The WHIP session task
//! that owns it drives it:
//!
//! | When | Call | Then |
//! |---|---|---|
//! | `SessionEvent::Rtp { codec, packet }` | [`Ingest::push_rtp`] | check [`Ingest::want_keyframe`] |
//! | an RTCP sender report from the publisher | [`Ingest::on_sender_report`] | |
//! | the instant [`Ingest::poll_timeout`] returned | [`Ingest::handle_timeout`] | check [`Ingest::want_keyframe`] |
//! | the pipeline needs a clean start | [`Ingest::request_keyframe`] | check [`Ingest::want_keyframe`] |
//! | `want_keyframe` returned `true` | `SessionHandle::request_keyframe()` | |
//! | the publisher left | [`Ingest::finish`] | close the ring (the caller's) |
//!
//! Every call returns at once; the only error that should end the session is
//! [`IngestError::OutputClosed`] (the stream was closed under us).
//!
//! # The stream's start
//!
//! With video, the stream starts at the first IDR picture that arrives whole with its
//! parameter sets (in it, in an earlier access unit, or given with
//! [`Ingest::add_parameter_sets`]): its presentation time becomes [`START_PTS_90K`], every
//! other time is counted from it, and audio before it is dropped, so the MPEG-TS begins with
//! a decodable keyframe. Until then (and until the video clock is known, see
//! [`crate::timing`]) access units wait in a bounded start queue. Without a negotiated video
//! track, or with [`IngestConfig::video_optional`] once [`IngestConfig::video_start_timeout`]
//! has passed without a keyframe, the first Opus packet starts the stream, and video joins at
//! its first keyframe.
//!
//! # Loss
//!
//! A hole in the sequence numbers that the reorder window does not fill is given up. A
//! damaged access unit is written anyway (only its complete NAL units) when nothing is
//! predicted from it (`nal_ref_idc` = 0), since dropping it would not improve any later
//! picture. Loss in a reference picture, or loss of unknown extent between pictures, breaks
//! every picture up to the next IDR: those are dropped and a keyframe is wanted, unless
//! [`IngestConfig::conceal_reference_loss`] prefers artefacts to a freeze. Nothing ever waits
//! for a packet longer than the reorder window.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use livegate_media::h264::{contains_parameter_sets, ParameterSetCache};
use livegate_media::ring::RingBuffer;
use livegate_media::time::Ticks90k;
use livegate_media::ts::mux::{MuxError, Muxer};
use livegate_media::{AccessUnit, Codec, Pts90k, Track};

use crate::depacketize::h264::{H264Depacketizer, H264Frame};
use crate::depacketize::opus::opus_packet;
use crate::depacketize::H264Limits;
use crate::keyframe::{KeyframeReason, KeyframeRequests};
use crate::reorder::{ReorderBuffer, ReorderLimits, Reordered, RtpUnit};
use crate::stats::{AvAlignment, IngestStats, TrackStats};
use crate::timing::{
    sender_report_offset, ArrivalAnchor, RtpUnwrapper, SenderReport, TrackClock, VideoClockDetector,
};

/// PID of the H.264 track in the output (ffmpeg's first elementary stream PID).
pub const VIDEO_PID: u16 = 0x100;
/// PID of the Opus track in the output.
pub const AUDIO_PID: u16 = 0x101;
/// Presentation time of the stream's first access unit: one second, so that the muxer's
/// PCR, which runs 200 ms behind, starts positive rather than wrapped.
pub const START_PTS_90K: u64 = 90_000;
/// Sender reports move audio against video only when they disagree by more than this
/// (10 ms, half an Opus frame): smaller corrections would be jitter, heard as clicks.
const REALIGN_THRESHOLD_90K: i64 = 900;

/// Settings of an [`Ingest`]. `Default` gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Start without video when none comes (default `false`: wait for a keyframe).
    pub video_optional: bool,
    /// With `video_optional`, how long after the first audio the start waits for a video
    /// keyframe (default 1 s).
    pub video_start_timeout: Duration,
    /// Shortest interval between keyframe requests (default 500 ms).
    pub keyframe_min_interval: Duration,
    /// Reorder window in packets, per track (default 100).
    pub reorder_window_packets: usize,
    /// Longest a packet waits behind a hole before the hole is given up (default 100 ms).
    pub reorder_max_delay: Duration,
    /// Bounds on one H.264 access unit (default 4 MiB, 1024 NAL units).
    pub h264_limits: H264Limits,
    /// Detect publishers that stamp video with a 1 MHz clock and rescale (default `true`).
    /// Off, video is taken at its announced 90 kHz.
    pub detect_1mhz_video: bool,
    /// After loss in a reference picture, keep writing video (with artefacts until the next
    /// keyframe) instead of dropping it until the next keyframe (default `false`).
    pub conceal_reference_loss: bool,
    /// Channel count announced for Opus in the MPEG-TS (default 2, what WebRTC negotiates:
    /// `opus/48000/2`; a mono stream decodes the same).
    pub opus_channels: u8,
    /// Most access units held before the stream starts (default 256: a few seconds).
    pub max_held_frames: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            video_optional: false,
            video_start_timeout: Duration::from_secs(1),
            keyframe_min_interval: Duration::from_millis(500),
            reorder_window_packets: 100,
            reorder_max_delay: Duration::from_millis(100),
            h264_limits: H264Limits::default(),
            detect_1mhz_video: true,
            conceal_reference_loss: false,
            opus_channels: 2,
            max_held_frames: 256,
        }
    }
}

/// Why an [`Ingest`] could not be made or cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The negotiated codecs do not make a program (none, or one twice).
    #[error("cannot mux the negotiated tracks: {0}")]
    Tracks(#[from] MuxError),
    /// A packet for a codec that was not negotiated: a bug in the caller.
    #[error("no {0:?} track was negotiated")]
    UnknownTrack(Codec),
    /// The stream's input buffer was closed: the stream is gone.
    #[error("the stream's input buffer is closed")]
    OutputClosed,
}

/// One negotiated track's state.
#[derive(Debug)]
struct TrackState {
    pid: u16,
    /// The clock its timestamps run at; `None` while video's is being detected.
    clock: Option<TrackClock>,
    detector: VideoClockDetector,
    ssrc: Option<u32>,
    reorder: ReorderBuffer,
    unwrapper: RtpUnwrapper,
    anchor: ArrivalAnchor,
    /// Added to its 90 kHz media time to get time on the shared clock; fixed when its first
    /// access unit goes out.
    offset_90k: Option<i64>,
    sender_report: Option<SenderReport>,
    stats: TrackStats,
}

impl TrackState {
    fn new(codec: Codec, pid: u16, config: &IngestConfig) -> Self {
        let (clock, detector) = match codec {
            Codec::Opus => (Some(TrackClock::Hz48k), VideoClockDetector::default()),
            Codec::H264 if config.detect_1mhz_video => (None, VideoClockDetector::default()),
            Codec::H264 => (
                Some(TrackClock::Hz90k),
                VideoClockDetector::decided(TrackClock::Hz90k),
            ),
        };
        TrackState {
            pid,
            clock,
            detector,
            ssrc: None,
            reorder: ReorderBuffer::new(ReorderLimits {
                window_packets: config.reorder_window_packets,
                max_delay: config.reorder_max_delay,
            }),
            unwrapper: RtpUnwrapper::default(),
            anchor: ArrivalAnchor::default(),
            offset_90k: None,
            sender_report: None,
            stats: TrackStats::default(),
        }
    }

    /// `wall-clock − media time` from its sender report, once both are known.
    fn sender_report_offset(&self) -> Option<i64> {
        sender_report_offset(self.sender_report?, &self.unwrapper, self.clock?)
    }
}

/// An access unit waiting for the stream to start.
#[derive(Debug)]
struct Held {
    codec: Codec,
    /// Extended RTP timestamp in the track's clock.
    timestamp: i64,
    data: Bytes,
    keyframe: bool,
}

/// Where the output timeline starts.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// The track whose first access unit started it; the other one is aligned to it.
    master: Codec,
    /// Shared-clock time of that access unit.
    time_90k: i64,
}

/// A publisher's media, from RTP to the stream's input MPEG-TS.
///
/// Owned by the publisher's session task; see the [module docs](crate::ingest) for the event loop.
/// Writes to the ring buffer it is given and to nothing else; it never closes it.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use livegate_media::{ring::{ReadOutcome, RingBuffer}, Codec};
/// use livegate_whip::{Ingest, IngestConfig};
///
/// let ring = RingBuffer::new(1 << 20);
/// let mut reader = ring.reader();
/// let mut ingest = Ingest::new(IngestConfig::default(), &[Codec::Opus], ring.clone())?;
/// let mut packet = rtc::rtp::Packet::default();
/// packet.header.timestamp = 1_000;
/// packet.payload = Bytes::from_static(&[0xFC, 0xFF, 0xFE]); // 20 ms of Opus silence
/// ingest.push_rtp(Codec::Opus, &packet, Instant::now())?;
/// // Audio-only: the first packet starts the stream, and is muxed at once.
/// assert!(matches!(reader.try_read(), Some(ReadOutcome::Chunk(ts)) if ts.len() % 188 == 0));
/// assert_eq!(ingest.stats().audio.frames, 1);
/// # Ok::<(), livegate_whip::IngestError>(())
/// ```
#[derive(Debug)]
pub struct Ingest {
    config: IngestConfig,
    output: Arc<RingBuffer>,
    muxer: Muxer,
    /// TS of the access unit being written; split off and handed to the ring.
    ts: BytesMut,
    video: Option<TrackState>,
    audio: Option<TrackState>,
    h264: H264Depacketizer,
    parameter_sets: ParameterSetCache,
    /// Video is dropped until a clean IDR: at the start, and after reference loss.
    awaiting_keyframe: bool,
    keyframes: KeyframeRequests,
    /// Arrival times are measured from the first packet.
    epoch: Option<Instant>,
    first_audio_at: Option<Instant>,
    start: Option<Start>,
    held: VecDeque<Held>,
    /// Scratch space reused for every packet.
    reordered: Vec<Reordered>,
    frames: Vec<H264Frame>,
    stats: IngestStats,
}

impl Ingest {
    /// An ingest for the negotiated `tracks` (at most one H.264 and one Opus), writing
    /// MPEG-TS to `output`, the stream's input buffer. H.264 goes on [`VIDEO_PID`], Opus on
    /// [`AUDIO_PID`].
    pub fn new(
        config: IngestConfig,
        tracks: &[Codec],
        output: Arc<RingBuffer>,
    ) -> Result<Ingest, IngestError> {
        let ts_tracks: Vec<Track> = tracks
            .iter()
            .map(|&codec| match codec {
                Codec::H264 => Track {
                    pid: VIDEO_PID,
                    codec,
                    channels: None,
                },
                Codec::Opus => Track {
                    pid: AUDIO_PID,
                    codec,
                    channels: Some(config.opus_channels),
                },
            })
            .collect();
        let muxer = Muxer::new(&ts_tracks)?;
        let video = tracks
            .contains(&Codec::H264)
            .then(|| TrackState::new(Codec::H264, VIDEO_PID, &config));
        let audio = tracks
            .contains(&Codec::Opus)
            .then(|| TrackState::new(Codec::Opus, AUDIO_PID, &config));
        let stats = IngestStats {
            video_clock: video.as_ref().and_then(|v| v.clock),
            ..IngestStats::default()
        };
        Ok(Ingest {
            h264: H264Depacketizer::new(config.h264_limits),
            keyframes: KeyframeRequests::new(config.keyframe_min_interval),
            config,
            output,
            muxer,
            ts: BytesMut::new(),
            video,
            audio,
            parameter_sets: ParameterSetCache::new(),
            awaiting_keyframe: true,
            epoch: None,
            first_audio_at: None,
            start: None,
            held: VecDeque::new(),
            reordered: Vec::new(),
            frames: Vec::new(),
            stats,
        })
    }

    /// Takes one RTP packet of the `codec` track, received at `now`, and writes to the output
    /// whatever access units it completes.
    pub fn push_rtp(
        &mut self,
        codec: Codec,
        packet: &rtc::rtp::Packet,
        now: Instant,
    ) -> Result<(), IngestError> {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival_90k = Ticks90k::from_duration(now.saturating_duration_since(epoch)).0;
        let track = self.track_mut(codec)?;
        track.stats.packets += 1;
        track.stats.bytes += packet.payload.len() as u64;
        let ssrc = packet.header.ssrc;
        if track.ssrc.replace(ssrc).is_some_and(|old| old != ssrc) {
            self.source_changed(codec, now)?;
        }
        let track = self.track_mut(codec)?;
        let timestamp = track.unwrapper.unwrap(packet.header.timestamp);
        if !packet.payload.is_empty() {
            if track.offset_90k.is_none() {
                track.anchor.observe(timestamp, arrival_90k);
            }
            if track.clock.is_none() {
                track.clock = track.detector.observe(timestamp, now);
                self.video_clock_decided();
            }
        }
        let unit = RtpUnit {
            sequence_number: packet.header.sequence_number,
            timestamp,
            marker: packet.header.marker,
            payload: packet.payload.clone(),
        };
        let mut reordered = std::mem::take(&mut self.reordered);
        self.track_mut(codec)?
            .reorder
            .push(unit, now, &mut reordered);
        let result = self.process(codec, &mut reordered, now);
        self.reordered = reordered;
        result?;
        self.handle_timeout(now)
    }

    /// Takes an RTCP sender report of the `codec` track: its NTP timestamp (64-bit fixed
    /// point, RFC 3550 §6.4.1) and the RTP timestamp of the same instant. With reports of
    /// both tracks, audio is aligned to video by them rather than by arrival times.
    pub fn on_sender_report(&mut self, codec: Codec, ntp_time: u64, rtp_time: u32) {
        let Ok(track) = self.track_mut(codec) else {
            return;
        };
        track.sender_report = Some(SenderReport { ntp_time, rtp_time });
        self.realign();
    }

    /// The pipeline wants a keyframe; [`want_keyframe`](Self::want_keyframe) will say so
    /// (rate limited) until one goes out. Nothing happens without a video track.
    pub fn request_keyframe(&mut self, now: Instant) {
        if self.video.is_some() {
            self.keyframes.want(KeyframeReason::Pipeline, now);
        }
    }

    /// Whether to ask the publisher for a keyframe now (`SessionHandle::request_keyframe`).
    /// Says yes at most once per [`IngestConfig::keyframe_min_interval`], for as long as a
    /// keyframe is wanted: before the first one, after loss broke the reference chain, and
    /// after [`request_keyframe`](Self::request_keyframe).
    pub fn want_keyframe(&mut self, now: Instant) -> bool {
        let reason = self.keyframes.poll(now);
        if let Some(reason) = reason {
            tracing::debug!(?reason, "asking the publisher for a keyframe");
        }
        reason.is_some()
    }

    /// Remembers parameter sets the publisher gave out of band (the SDP's
    /// `sprop-parameter-sets`, RFC 6184 §8.1), for keyframes that come without them.
    pub fn add_parameter_sets(&mut self, nal_units: &[&[u8]]) {
        let mut annexb = BytesMut::new();
        for nal in nal_units {
            annexb.put_slice(&[0, 0, 0, 1]);
            annexb.put_slice(nal);
        }
        self.parameter_sets.observe(&annexb);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run if no packet comes first: a
    /// hole to give up, a decision to take, a keyframe request to repeat. A keyframe request
    /// that is due keeps this in the past until [`want_keyframe`](Self::want_keyframe) is
    /// called, so call it after every `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tracks = self.video.iter().chain(&self.audio);
        let reorder = tracks.clone().filter_map(|t| t.reorder.poll_timeout());
        let detection = self
            .video
            .as_ref()
            .filter(|v| v.clock.is_none())
            .and_then(|v| v.detector.poll_timeout());
        let video_wait = self
            .first_audio_at
            .filter(|_| self.start.is_none() && self.config.video_optional)
            .map(|first| first + self.config.video_start_timeout);
        reorder
            .chain(detection)
            .chain(video_wait)
            .chain(self.keyframes.poll_timeout())
            .min()
    }

    /// Gives up on holes whose time is up, settles pending decisions, starts the stream if
    /// it can.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), IngestError> {
        for codec in [Codec::H264, Codec::Opus] {
            let Ok(track) = self.track_mut(codec) else {
                continue;
            };
            if track.reorder.poll_timeout().is_some_and(|t| t <= now) {
                let mut reordered = std::mem::take(&mut self.reordered);
                self.track_mut(codec)?
                    .reorder
                    .handle_timeout(now, &mut reordered);
                let result = self.process(codec, &mut reordered, now);
                self.reordered = reordered;
                result?;
            }
        }
        if let Some(video) = self.video.as_mut().filter(|v| v.clock.is_none()) {
            video.clock = video.detector.handle_timeout(now);
            self.video_clock_decided();
        }
        self.try_start(now)
    }

    /// The publisher is gone: releases what the reorder buffers hold (holes given up) and
    /// the access unit under assembly, and starts the stream if it has what it needs.
    /// Closing the ring is the caller's.
    pub fn finish(&mut self, now: Instant) -> Result<(), IngestError> {
        for codec in [Codec::H264, Codec::Opus] {
            let mut reordered = std::mem::take(&mut self.reordered);
            if let Ok(track) = self.track_mut(codec) {
                track.reorder.release_all(&mut reordered);
            }
            let result = self.process(codec, &mut reordered, now);
            self.reordered = reordered;
            result?;
        }
        if let Some(video) = self.video.as_mut() {
            video.clock.get_or_insert(TrackClock::Hz90k);
            self.video_clock_decided();
            let mut frames = std::mem::take(&mut self.frames);
            self.h264.flush(&mut frames);
            let result = self.video_frames(&mut frames, now);
            self.frames = frames;
            result?;
        }
        self.try_start(now)
    }

    /// The counters so far.
    pub fn stats(&self) -> IngestStats {
        let mut stats = self.stats;
        stats.h264 = self.h264.stats();
        stats.keyframe_requests = self.keyframes.requests();
        for (track, out) in [
            (&self.video, &mut stats.video),
            (&self.audio, &mut stats.audio),
        ] {
            if let Some(track) = track {
                let reorder = track.reorder.stats();
                *out = TrackStats {
                    packets_lost: reorder.lost,
                    packets_reordered: reorder.reordered,
                    packets_late_or_duplicate: reorder.late_or_duplicate,
                    sequence_restarts: reorder.restarts,
                    ..track.stats
                };
            }
        }
        stats.video.packets_malformed += stats.h264.malformed_packets
            + stats.h264.unsupported_packets
            + stats.h264.ignored_packets;
        stats
    }

    fn track(&self, codec: Codec) -> Option<&TrackState> {
        match codec {
            Codec::H264 => self.video.as_ref(),
            Codec::Opus => self.audio.as_ref(),
        }
    }

    fn track_mut(&mut self, codec: Codec) -> Result<&mut TrackState, IngestError> {
        match codec {
            Codec::H264 => self.video.as_mut(),
            Codec::Opus => self.audio.as_mut(),
        }
        .ok_or(IngestError::UnknownTrack(codec))
    }

    fn video_clock_decided(&mut self) {
        let clock = self.video.as_ref().and_then(|v| v.clock);
        if clock.is_some() && self.stats.video_clock.is_none() {
            self.stats.video_clock = clock;
            if clock == Some(TrackClock::Hz1M) {
                self.stats.timestamp_corrections += 1;
                tracing::info!("publisher stamps video at 1 MHz; rescaling to 90 kHz");
            }
        }
    }

    /// Runs the reorder buffer's output through the track's depacketizer.
    fn process(
        &mut self,
        codec: Codec,
        reordered: &mut Vec<Reordered>,
        now: Instant,
    ) -> Result<(), IngestError> {
        let mut result = Ok(());
        match codec {
            Codec::H264 => {
                let mut frames = std::mem::take(&mut self.frames);
                for item in reordered.drain(..) {
                    match item {
                        Reordered::Packet(unit) => self.h264.push(&unit, &mut frames),
                        Reordered::Lost(_) | Reordered::Discontinuity => self.h264.lost(),
                    }
                    if result.is_ok() {
                        result = self.video_frames(&mut frames, now);
                    }
                    frames.clear();
                }
                self.frames = frames;
            }
            Codec::Opus => {
                for item in reordered.drain(..) {
                    if let (Reordered::Packet(unit), true) = (item, result.is_ok()) {
                        result = self.audio_packet(unit, now);
                    }
                }
            }
        }
        result
    }

    fn audio_packet(&mut self, unit: RtpUnit, now: Instant) -> Result<(), IngestError> {
        if unit.payload.is_empty() {
            return Ok(());
        }
        let Some(packet) = opus_packet(&unit.payload) else {
            self.track_mut(Codec::Opus)?.stats.packets_malformed += 1;
            return Ok(());
        };
        self.first_audio_at.get_or_insert(now);
        self.emit(Codec::Opus, unit.timestamp, packet, true, now)
    }

    fn video_frames(
        &mut self,
        frames: &mut Vec<H264Frame>,
        now: Instant,
    ) -> Result<(), IngestError> {
        for frame in frames.drain(..) {
            self.video_frame(frame, now)?;
        }
        Ok(())
    }

    /// The loss policy of the module docs, then parameter sets, then out.
    fn video_frame(&mut self, frame: H264Frame, now: Instant) -> Result<(), IngestError> {
        if frame.slices == 0 {
            // Parameter sets or SEI sent with a timestamp of their own: keep the parameter
            // sets for the next IDR. If something was lost around them, a picture may be.
            self.parameter_sets.observe(&frame.data);
            if frame.damaged || frame.head_unknown {
                self.reference_loss(now);
            }
            return Ok(());
        }
        let clean_start = frame.idr
            && !frame.damaged
            && (!frame.head_unknown || frame.starts_at_first_macroblock);
        let clock_known = self.video.as_ref().is_some_and(|v| v.clock.is_some());
        if self.awaiting_keyframe {
            // Video joining a stream already started by audio needs its clock now.
            let can_start = clean_start && (clock_known || self.start.is_none());
            if !can_start {
                self.stats.dropped_awaiting_keyframe += 1;
                let reason = if self.stats.keyframes == 0 {
                    KeyframeReason::Start
                } else {
                    KeyframeReason::Loss
                };
                self.keyframes.want(reason, now);
                return Ok(());
            }
            self.parameter_sets.observe(&frame.data);
            let data = self.parameter_sets.with_parameter_sets(frame.data);
            if !contains_parameter_sets(&data) {
                self.stats.dropped_awaiting_keyframe += 1;
                self.keyframes.want(KeyframeReason::Start, now);
                return Ok(());
            }
            self.awaiting_keyframe = false;
            self.keyframes.satisfied();
            return self.emit(Codec::H264, frame.timestamp, data, true, now);
        }

        let broken_chain = frame.head_unknown && !clean_start;
        if frame.damaged || broken_chain {
            let harmless = !broken_chain && !frame.reference;
            if harmless || self.config.conceal_reference_loss {
                self.stats.incomplete_sent += 1;
                if !harmless {
                    self.keyframes.want(KeyframeReason::Loss, now);
                }
                // A damaged IDR is not a place to start decoding.
                return self.emit(Codec::H264, frame.timestamp, frame.data, false, now);
            }
            self.stats.incomplete_dropped += 1;
            self.reference_loss(now);
            return Ok(());
        }
        self.parameter_sets.observe(&frame.data);
        let data = if frame.idr {
            self.keyframes.satisfied();
            self.parameter_sets.with_parameter_sets(frame.data)
        } else {
            frame.data
        };
        self.emit(Codec::H264, frame.timestamp, data, frame.idr, now)
    }

    /// The reference chain is broken: drop video until the next clean IDR.
    fn reference_loss(&mut self, now: Instant) {
        if self.config.conceal_reference_loss && !self.awaiting_keyframe {
            self.keyframes.want(KeyframeReason::Loss, now);
            return;
        }
        if !self.awaiting_keyframe {
            tracing::debug!("video loss broke the reference chain; waiting for an IDR");
        }
        self.awaiting_keyframe = true;
        self.keyframes.want(KeyframeReason::Loss, now);
    }

    /// An access unit ready to go: held until the stream starts, written after.
    fn emit(
        &mut self,
        codec: Codec,
        timestamp: i64,
        data: Bytes,
        keyframe: bool,
        now: Instant,
    ) -> Result<(), IngestError> {
        if self.start.is_some() {
            return self.write(codec, timestamp, data, keyframe, now);
        }
        self.held.push_back(Held {
            codec,
            timestamp,
            data,
            keyframe,
        });
        if self.held.len() > self.config.max_held_frames.max(1) {
            self.evict_held(now);
        }
        self.try_start(now)
    }

    /// Makes room in the start queue: the oldest audio goes first; if only video is held,
    /// all of it goes, since what follows a keyframe is useless without it.
    fn evict_held(&mut self, now: Instant) {
        if let Some(i) = self.held.iter().position(|h| h.codec == Codec::Opus) {
            self.held.remove(i);
            self.stats.dropped_before_start += 1;
            return;
        }
        let before = self.held.len();
        self.held.retain(|h| h.codec != Codec::H264);
        self.stats.dropped_before_start += (before - self.held.len()) as u64;
        self.awaiting_keyframe = true;
        self.keyframes.want(KeyframeReason::Start, now);
    }

    /// Starts the stream if it has what it needs (see the module docs).
    fn try_start(&mut self, now: Instant) -> Result<(), IngestError> {
        if self.start.is_some() {
            return Ok(());
        }
        let holds = |codec| self.held.iter().any(|h: &Held| h.codec == codec);
        let master = match &self.video {
            Some(video) if video.clock.is_some() && holds(Codec::H264) => Codec::H264,
            None if holds(Codec::Opus) => Codec::Opus,
            Some(_)
                if self.config.video_optional
                    && holds(Codec::Opus)
                    && self
                        .first_audio_at
                        .is_some_and(|first| first + self.config.video_start_timeout <= now) =>
            {
                Codec::Opus
            }
            _ => return Ok(()),
        };
        let Some(offset) = self.offset_for(master) else {
            return Ok(());
        };
        let first = self
            .held
            .iter()
            .find(|h| h.codec == master)
            .expect("checked above");
        let clock = self.track(master).and_then(|t| t.clock).expect("checked");
        let time_90k = clock.to_90k(first.timestamp) + offset;
        self.start = Some(Start { master, time_90k });
        tracing::debug!(?master, "stream starts");
        let held = std::mem::take(&mut self.held);
        for h in held {
            if h.codec == Codec::H264 && self.video.as_ref().is_some_and(|v| v.clock.is_none()) {
                // Audio started the stream before the video clock was known.
                self.stats.dropped_before_start += 1;
                self.awaiting_keyframe = true;
                self.keyframes.want(KeyframeReason::Start, now);
                continue;
            }
            self.write(h.codec, h.timestamp, h.data, h.keyframe, now)?;
        }
        Ok(())
    }

    /// Fixes a track's offset to the shared clock, at its first access unit out: the
    /// master's from arrival times; the other's from sender reports of both when there are,
    /// else from arrival times too.
    fn offset_for(&mut self, codec: Codec) -> Option<i64> {
        let track = self.track(codec)?;
        if let Some(offset) = track.offset_90k {
            return Some(offset);
        }
        let clock = track.clock?;
        let master = self.start.map_or(codec, |s| s.master);
        let by_reports = (master != codec)
            .then(|| {
                let master = self.track(master)?;
                let relative = track.sender_report_offset()? - master.sender_report_offset()?;
                Some(master.offset_90k? + relative)
            })
            .flatten();
        let offset = by_reports.or_else(|| track.anchor.offset_90k(clock))?;
        if master != codec {
            self.stats.alignment = Some(match by_reports {
                Some(_) => AvAlignment::SenderReports,
                None => AvAlignment::Arrival,
            });
        }
        self.track_mut(codec).ok()?.offset_90k = Some(offset);
        Some(offset)
    }

    /// Moves the non-master track to where the latest sender reports put it, if they
    /// disagree with where it is by more than [`REALIGN_THRESHOLD_90K`].
    fn realign(&mut self) {
        let Some(start) = self.start else {
            return;
        };
        let other = match start.master {
            Codec::H264 => Codec::Opus,
            Codec::Opus => Codec::H264,
        };
        let (Some(master), Some(track)) = (self.track(start.master), self.track(other)) else {
            return;
        };
        let (Some(master_offset), Some(current)) = (master.offset_90k, track.offset_90k) else {
            return;
        };
        let (Some(master_report), Some(report)) =
            (master.sender_report_offset(), track.sender_report_offset())
        else {
            return;
        };
        let wanted = master_offset + report - master_report;
        if (wanted - current).abs() > REALIGN_THRESHOLD_90K {
            tracing::debug!(
                shift_90k = wanted - current,
                "sender reports move audio against video"
            );
            if let Ok(track) = self.track_mut(other) {
                track.offset_90k = Some(wanted);
            }
            self.stats.av_realignments += 1;
        }
        self.stats.alignment = Some(AvAlignment::SenderReports);
    }

    /// Muxes one access unit and hands its TS packets to the ring.
    fn write(
        &mut self,
        codec: Codec,
        timestamp: i64,
        data: Bytes,
        keyframe: bool,
        now: Instant,
    ) -> Result<(), IngestError> {
        let start = self.start.expect("written only once started");
        let Some(offset) = self.offset_for(codec) else {
            self.stats.dropped_before_start += 1;
            return Ok(());
        };
        let track = self.track(codec).expect("a negotiated track");
        let clock = track.clock.expect("known before its first access unit");
        let pid = track.pid;
        let since_start = clock.to_90k(timestamp) + offset - start.time_90k;
        let Ok(since_start) = u64::try_from(since_start) else {
            // Audio from before the first keyframe.
            self.stats.dropped_before_start += 1;
            return Ok(());
        };
        let au = AccessUnit {
            pid,
            codec,
            pts: Pts90k::new(since_start + START_PTS_90K),
            dts: None,
            keyframe,
            data,
        };
        if let Err(error) = self.muxer.write(&au, &mut self.ts) {
            tracing::debug!(%error, "access unit not muxed");
            self.stats.mux_errors += 1;
            return Ok(());
        }
        let chunk = self.ts.split().freeze();
        self.stats.ts_bytes += chunk.len() as u64;
        self.output
            .write(chunk)
            .map_err(|_| IngestError::OutputClosed)?;
        self.track_mut(codec)?.stats.frames += 1;
        if codec == Codec::H264 && keyframe {
            self.stats.keyframes += 1;
            self.stats.first_keyframe_at.get_or_insert(now);
        }
        Ok(())
    }

    /// A new SSRC on the track: a new sender, with its own numbering and clock. What the
    /// old one left is released first; the new one is timed from its arrival.
    fn source_changed(&mut self, codec: Codec, now: Instant) -> Result<(), IngestError> {
        tracing::debug!(?codec, "the publisher changed SSRC");
        let mut reordered = std::mem::take(&mut self.reordered);
        self.track_mut(codec)?.reorder.release_all(&mut reordered);
        let result = self.process(codec, &mut reordered, now);
        self.reordered = reordered;
        result?;
        if codec == Codec::H264 {
            let mut frames = std::mem::take(&mut self.frames);
            self.h264.flush(&mut frames);
            let result = self.video_frames(&mut frames, now);
            self.frames = frames;
            result?;
            self.h264.reset();
            self.awaiting_keyframe = true;
            self.keyframes.want(KeyframeReason::Start, now);
        }
        self.held.retain(|h| h.codec != codec);
        let track = self.track_mut(codec)?;
        track.stats.source_changes += 1;
        track.reorder.reset();
        track.unwrapper.reset();
        track.anchor.reset();
        track.offset_90k = None;
        track.sender_report = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use livegate_media::ts::demux::{DemuxEvent, Demuxer};

    use super::*;

    const OPUS_20MS: [u8; 3] = [0xFC, 0xFF, 0xFE];
    const SPS: [u8; 4] = [0x67, 0x42, 0xC0, 0x1E];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];
    /// Slice NAL units whose first_mb_in_slice is 0 (the `1` bit after the header).
    const IDR: [u8; 4] = [0x65, 0x88, 0x84, 0x21];
    const P: [u8; 4] = [0x41, 0x9A, 0x21, 0x11];
    /// A slice nothing is predicted from (nal_ref_idc 0); a later slice of the same picture.
    const B: [u8; 4] = [0x01, 0x9E, 0x21, 0x11];
    const B_LATER: [u8; 4] = [0x01, 0x4E, 0x21, 0x11];

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x78];
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    fn idr_payloads() -> Vec<Vec<u8>> {
        vec![stap_a(&[&SPS, &PPS]), IDR.to_vec()]
    }

    /// A publisher on a simulated clock: video frames every 33 ms (2970 ticks), Opus every
    /// 20 ms (960 samples), both starting at `t0`.
    struct Publisher {
        ingest: Ingest,
        ring: Arc<RingBuffer>,
        t0: Instant,
        video_seq: u16,
        audio_seq: u16,
    }

    impl Publisher {
        fn new(config: IngestConfig, tracks: &[Codec]) -> Publisher {
            let ring = RingBuffer::new(1 << 24);
            Publisher {
                ingest: Ingest::new(config, tracks, ring.clone()).unwrap(),
                ring,
                t0: Instant::now(),
                video_seq: 100,
                audio_seq: 5_000,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Frame `n` of video (RTP time 2970 n), arriving `late_ms` after its time, with the
        /// packets at the indices in `lose` lost.
        fn video(&mut self, n: u32, payloads: &[Vec<u8>], late_ms: u64, lose: &[usize]) {
            let now = self.at(u64::from(n) * 33 + late_ms);
            for (i, payload) in payloads.iter().enumerate() {
                let mut packet = rtc::rtp::Packet::default();
                packet.header.ssrc = 1;
                packet.header.sequence_number = self.video_seq;
                packet.header.timestamp = 2_970 * n;
                packet.header.marker = i == payloads.len() - 1;
                packet.payload = Bytes::copy_from_slice(payload);
                self.video_seq = self.video_seq.wrapping_add(1);
                if !lose.contains(&i) {
                    self.ingest.push_rtp(Codec::H264, &packet, now).unwrap();
                }
            }
        }

        /// Opus packet `n` (RTP time 77 + 960 n), arriving `late_ms` after its time.
        fn audio(&mut self, n: u32, late_ms: u64) {
            let now = self.at(u64::from(n) * 20 + late_ms);
            let mut packet = rtc::rtp::Packet::default();
            packet.header.ssrc = 2;
            packet.header.sequence_number = self.audio_seq;
            packet.header.timestamp = 77 + 960 * n;
            packet.payload = Bytes::from_static(&OPUS_20MS);
            self.audio_seq = self.audio_seq.wrapping_add(1);
            self.ingest.push_rtp(Codec::Opus, &packet, now).unwrap();
        }

        fn output(&self) -> Vec<AccessUnit> {
            let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
            for chunk in self.ring.snapshot() {
                demuxer.push(&chunk, &mut events);
            }
            demuxer.finish(&mut events);
            events
                .into_iter()
                .filter_map(|e| match e {
                    DemuxEvent::AccessUnit(au) => Some(au),
                    DemuxEvent::Tracks(_) => None,
                })
                .collect()
        }
    }

    fn video_pts(units: &[AccessUnit]) -> Vec<u64> {
        units
            .iter()
            .filter(|au| au.codec == Codec::H264)
            .map(|au| au.pts.ticks())
            .collect()
    }

    #[test]
    fn the_stream_starts_at_the_first_keyframe_and_drops_audio_before_it() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::H264, Codec::Opus]);
        // Audio from the start; a P frame first (useless), the IDR as frame 1.
        p.audio(0, 0);
        p.video(0, &[P.to_vec()], 0, &[]);
        assert!(p.ingest.want_keyframe(p.at(0)));
        assert!(!p.ingest.want_keyframe(p.at(100)), "rate limited");
        for n in 1..8 {
            let payloads = if n == 1 {
                idr_payloads()
            } else {
                vec![P.to_vec()]
            };
            p.video(n, &payloads, 0, &[]);
            p.audio(2 * n - 1, 0);
            p.audio(2 * n, 0);
        }
        assert!(!p.ingest.want_keyframe(p.at(1_000)), "the keyframe came");
        // The demuxer delivers an H.264 PES when the next one starts, so look by codec.
        let out = p.output();
        let first_video = out.iter().find(|au| au.codec == Codec::H264).unwrap();
        assert!(first_video.keyframe);
        assert_eq!(first_video.pts.ticks(), START_PTS_90K);
        assert_eq!(
            video_pts(&out),
            (0..7)
                .map(|i| START_PTS_90K + 2_970 * i)
                .collect::<Vec<_>>()
        );
        // Audio at or after the keyframe's 33 ms, on the same clock: packets 2.. of 20 ms.
        let audio: Vec<u64> = out
            .iter()
            .filter(|au| au.codec == Codec::Opus)
            .map(|au| au.pts.ticks())
            .collect();
        let first_audio_ms = 40;
        assert_eq!(audio[0], START_PTS_90K + (first_audio_ms - 33) * 90);
        assert!(audio.windows(2).all(|w| w[1] - w[0] == 1_800));
        let stats = p.ingest.stats();
        assert_eq!(stats.keyframes, 1);
        assert_eq!(stats.dropped_awaiting_keyframe, 1);
        assert_eq!(stats.dropped_before_start, 2, "audio packets 0 and 1");
        assert_eq!(stats.video_clock, Some(TrackClock::Hz90k));
        assert_eq!(stats.alignment, Some(AvAlignment::Arrival));
        // Held until 100 ms of video arrivals (frames 0 to 4) showed the clock is 90 kHz.
        assert_eq!(stats.first_keyframe_at, Some(p.at(4 * 33)));
        assert_eq!(stats.keyframe_requests, 1);
    }

    #[test]
    fn reference_loss_drops_video_until_the_next_idr() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::H264]);
        let two_slices = vec![P.to_vec(), P.to_vec()];
        for n in 0..6 {
            p.video(
                n,
                &if n == 0 {
                    idr_payloads()
                } else {
                    two_slices.clone()
                },
                0,
                &[],
            );
        }
        let before = video_pts(&p.output()).len();
        assert_eq!(before, 6);
        // Frame 6 loses its first slice; 7 and 8 are fine but predicted from it.
        p.video(6, &two_slices, 0, &[0]);
        p.video(7, &two_slices, 0, &[]);
        p.video(8, &two_slices, 0, &[]);

        p.ingest.handle_timeout(p.at(300)).unwrap();
        assert_eq!(
            video_pts(&p.output()).len(),
            before,
            "nothing after the loss"
        );
        assert!(p.ingest.want_keyframe(p.at(300)));
        p.video(9, &idr_payloads(), 0, &[]);
        p.video(10, &two_slices, 0, &[]);
        p.ingest.finish(p.at(400)).unwrap();
        let out = p.output();
        assert_eq!(out.len(), before + 2);
        assert!(out[before].keyframe);
        assert_eq!(out[before].pts.ticks(), START_PTS_90K + 9 * 2_970);
        let stats = p.ingest.stats();
        assert_eq!(stats.video.packets_lost, 1);
        assert_eq!(stats.incomplete_dropped, 1);
        assert_eq!(stats.dropped_awaiting_keyframe, 2);
        assert!(!p.ingest.want_keyframe(p.at(5_000)), "the IDR came");
    }

    #[test]
    fn a_damaged_non_reference_picture_is_sent_as_far_as_it_came() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::H264]);
        for n in 0..5 {
            p.video(
                n,
                &if n == 0 {
                    idr_payloads()
                } else {
                    vec![P.to_vec()]
                },
                0,
                &[],
            );
        }
        p.video(
            5,
            &[B.to_vec(), B_LATER.to_vec(), B_LATER.to_vec()],
            0,
            &[1],
        );
        p.video(6, &[P.to_vec()], 0, &[]);
        p.ingest.handle_timeout(p.at(1_000)).unwrap();
        let out = p.output();
        assert_eq!(video_pts(&out).len(), 7);
        let damaged = out
            .iter()
            .filter(|au| au.codec == Codec::H264)
            .nth(5)
            .unwrap();
        let nals: Vec<&[u8]> = livegate_media::h264::nal_units(&damaged.data).collect();
        assert_eq!(
            nals,
            [&[0x09, 0xF0][..], &B, &B_LATER],
            "delimiter and what arrived"
        );
        let stats = p.ingest.stats();
        assert_eq!(stats.incomplete_sent, 1);
        assert!(!p.ingest.want_keyframe(p.at(1_000)));
    }

    #[test]
    fn sender_reports_move_audio_to_where_they_say() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::H264, Codec::Opus]);
        // Audio arrives 50 ms later than video for the same capture time.
        for n in 0..8 {
            p.video(
                n,
                &if n == 0 {
                    idr_payloads()
                } else {
                    vec![P.to_vec()]
                },
                0,
                &[],
            );
            p.audio(2 * n, 50);
            p.audio(2 * n + 1, 50);
        }
        let audio_pts = |p: &Publisher| -> Vec<u64> {
            p.output()
                .iter()
                .filter(|au| au.codec == Codec::Opus)
                .map(|au| au.pts.ticks())
                .collect()
        };
        let by_arrival = *audio_pts(&p).last().unwrap();
        // Audio packet 15 (RTP 77 + 960 * 15) was captured at 300 ms, as the video at
        // RTP 27000: the reports say so.
        let ntp = (3_900_000_000u64 << 32) | (1 << 31);
        p.ingest.on_sender_report(Codec::H264, ntp, 27_000);
        p.ingest.on_sender_report(Codec::Opus, ntp, 77 + 960 * 15);
        assert_eq!(p.ingest.stats().av_realignments, 1);
        assert_eq!(p.ingest.stats().alignment, Some(AvAlignment::SenderReports));
        p.audio(16, 50);
        let last = *audio_pts(&p).last().unwrap();
        assert_eq!(by_arrival - START_PTS_90K, 300 * 90 + 50 * 90);
        assert_eq!(
            last - START_PTS_90K,
            320 * 90,
            "50 ms earlier than by arrival"
        );
        // A report that agrees moves nothing.
        p.ingest
            .on_sender_report(Codec::Opus, ntp + (1 << 32), 77 + 960 * 15 + 48_000);
        assert_eq!(p.ingest.stats().av_realignments, 1);
    }

    #[test]
    fn optional_video_lets_audio_start_and_video_join_later() {
        let config = IngestConfig {
            video_optional: true,
            ..IngestConfig::default()
        };
        let mut p = Publisher::new(config, &[Codec::H264, Codec::Opus]);
        for n in 0..60 {
            p.audio(n, 0);
        }
        let out = p.output();
        assert!(!out.is_empty(), "audio started without video");
        assert_eq!(out[0].codec, Codec::Opus);
        assert_eq!(out[0].pts.ticks(), START_PTS_90K);
        // Video shows up at 1.2 s: it joins at its first keyframe once its clock is known.
        for n in 37..50 {
            p.video(
                n,
                &if n % 5 == 0 {
                    idr_payloads()
                } else {
                    vec![P.to_vec()]
                },
                0,
                &[],
            );
        }
        let out = p.output();
        let first_video = out.iter().find(|au| au.codec == Codec::H264).unwrap();
        assert!(first_video.keyframe);
        // Same clock as the audio, by arrival: frame n is at 33 n ms.
        let ms = (first_video.pts.ticks() - START_PTS_90K) / 90;
        // The clock is known from frame 41 (100 ms of arrivals), so the IDR at frame 40
        // is dropped and the one at frame 45 starts video.
        assert_eq!(ms, 45 * 33);
    }

    #[test]
    fn video_stamped_at_1_mhz_is_rescaled() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::H264]);
        for n in 0..10u32 {
            let now = p.at(u64::from(n) * 33);
            let mut packet = rtc::rtp::Packet::default();
            packet.header.ssrc = 1;
            packet.header.sequence_number = n as u16;
            // 33 ms in microseconds, from a base just before the 32-bit wrap.
            packet.header.timestamp = (u32::MAX - 50_000).wrapping_add(33_000 * n);
            packet.header.marker = true;
            packet.payload = Bytes::copy_from_slice(if n == 0 { &IDR[..] } else { &P[..] });
            p.ingest.add_parameter_sets(&[&SPS, &PPS]);
            p.ingest.push_rtp(Codec::H264, &packet, now).unwrap();
        }
        let pts = video_pts(&p.output());
        assert!(pts.len() >= 6, "{pts:?}");
        assert!(pts.windows(2).all(|w| w[1] - w[0] == 2_970), "{pts:?}");
        let stats = p.ingest.stats();
        assert_eq!(stats.video_clock, Some(TrackClock::Hz1M));
        assert_eq!(stats.timestamp_corrections, 1);
    }

    #[test]
    fn a_closed_output_ends_the_ingest_and_unknown_tracks_are_refused() {
        let mut p = Publisher::new(IngestConfig::default(), &[Codec::Opus]);
        p.audio(0, 0);
        p.ring.close();
        let mut packet = rtc::rtp::Packet::default();
        packet.header.sequence_number = p.audio_seq;
        packet.payload = Bytes::from_static(&OPUS_20MS);
        assert_eq!(
            p.ingest.push_rtp(Codec::Opus, &packet, p.at(20)),
            Err(IngestError::OutputClosed)
        );
        assert_eq!(
            p.ingest.push_rtp(Codec::H264, &packet, p.at(20)),
            Err(IngestError::UnknownTrack(Codec::H264))
        );
        assert!(matches!(
            Ingest::new(IngestConfig::default(), &[], p.ring.clone()),
            Err(IngestError::Tracks(MuxError::NoTracks))
        ));
    }
}
