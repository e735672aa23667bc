//! Per-viewer RTP timing: shared frames in, this viewer's RTP timestamps out.
//!
//! Every viewer of a stream gets the same [`MediaFrame`]s, but each WebRTC session has its
//! own RTP streams: random timestamp bases (RFC 3550 §5.1) and a timeline that started when
//! the viewer did. [`ViewerClock`] keeps that timeline continuous while the source under it
//! restarts: a worker restart brings a new output buffer whose PTS start anywhere (lower,
//! higher, about to wrap), and the viewer's session, which outlives the worker, must see its
//! RTP timestamps go on increasing as if the picture had only frozen.
//!
//! This is sans-I/O: the caller passes the time a frame is sent. Sending is not here.

use std::time::Duration;

use livegate_media::time::{RtpClock, RtpTimestamp, Ticks90k, Timeline};
use livegate_media::Codec;
use livegate_rtc::RtpFrame;
use tokio::time::Instant;

use crate::frame::MediaFrame;
use crate::gop::pts_before;

/// Frame interval assumed before two frames of the anchoring track were seen: 30 fps video,
/// 20 ms Opus.
const DEFAULT_VIDEO_INTERVAL: Ticks90k = Ticks90k(3_000);
const DEFAULT_AUDIO_INTERVAL: Ticks90k = Ticks90k(1_800);
/// Opus packets (3 s of 20 ms packets) after a start or source change without a video
/// keyframe, after which the timeline anchors on audio: a worker whose output has no video
/// must not leave the viewer silent too.
const AUDIO_FALLBACK_PACKETS: u32 = 150;
/// Longest frame interval believed; a longer step is a pause in the source, not a rate.
const MAX_FRAME_INTERVAL: Ticks90k = Ticks90k(90_000);

/// Counters of one viewer's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerClockStats {
    /// Frames given an RTP timestamp.
    pub frames_mapped: u64,
    /// Frames dropped while waiting for the anchoring keyframe (at the start and after each
    /// source change), or timed before it.
    pub frames_before_anchor: u64,
    /// Source changes followed by a new anchor: worker restarts the viewer lived through.
    pub rebases: u64,
}

/// One viewer's mapping from [`MediaFrame`]s to RTP timestamps, for every track it sends.
///
/// One [`Timeline`] shared by the tracks (so a source change moves audio and video together
/// and lip sync survives it) and one [`RtpClock`] per track with a random base.
///
/// - **Start:** the timeline anchors on the first keyframe of the *anchoring track*: H.264
///   when the viewer receives video, else Opus. Earlier frames are dropped, as are later
///   ones timed before it (audio muxed behind the picture).
/// - **No video:** when 150 Opus packets (3 s) came without a video
///   keyframe (a worker whose output has no video), the timeline anchors on audio instead,
///   so the viewer at least hears the stream; video joins at its next keyframe.
/// - **Source change:** a frame of a new [`MediaFrame::source_generation`] makes the
///   timeline forget the old source's clock and wait for the new source's first keyframe;
///   that keyframe lands after the latest timestamp sent on any track by the wall-clock time
///   since the last frame was sent (the freeze the viewer saw), and at least one frame
///   interval of the anchoring track. So RTP timestamps never go backwards, and a player's
///   jitter buffer sees the freeze as the pause it was.
///
/// Owned by the one task that sends the viewer's media, which hands it every frame in feed
/// order; plain data, no locks.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use livegate_media::{Codec, Pts90k};
/// use livegate_whep::{MediaFrame, ViewerClock};
///
/// let frame = |pts: u64, keyframe, source_generation| MediaFrame {
///     codec: Codec::H264,
///     pts: Pts90k::new(pts),
///     keyframe,
///     source_generation,
///     payloads: Arc::from([Bytes::from_static(&[0x65, 0x88])]),
///     access_unit_bytes: 6,
/// };
/// let now = tokio::time::Instant::now();
/// let mut clock = ViewerClock::new(&[Codec::H264]);
/// let (track, first) = clock.map(&frame(1_000, true, 1), now).unwrap();
/// let (_, next) = clock.map(&frame(4_000, false, 1), now).unwrap();
/// assert_eq!((track, next.timestamp.wrapping_sub(first.timestamp)), (0, 3_000));
/// // The worker restarts with its clock far back: the P-frame waits for a keyframe, which
/// // goes one frame after the last one sent, not 4000 ticks back.
/// assert!(clock.map(&frame(500, false, 2), now).is_none());
/// let (_, after) = clock.map(&frame(800, true, 2), now).unwrap();
/// assert_eq!(after.timestamp.wrapping_sub(next.timestamp), 3_000);
/// ```
#[derive(Debug, Clone)]
pub struct ViewerClock {
    /// The clock of each track sent, by its index in the session's send tracks.
    tracks: Vec<(Codec, RtpClock)>,
    anchor_codec: Codec,
    timeline: Timeline,
    generation: Option<u64>,
    /// When the last frame was mapped, for the freeze length.
    last_sent_at: Option<Instant>,
    /// Last PTS of the anchoring track in the current source, and its frame interval.
    last_anchor_pts: Option<livegate_media::Pts90k>,
    anchor_interval: Ticks90k,
    /// Audio packets seen while waiting for the anchoring video keyframe.
    audio_waiting: u32,
    stats: ViewerClockStats,
}

impl ViewerClock {
    /// A clock for a session sending `tracks` (the session's send tracks, in order; at most
    /// one per codec), with random RTP bases.
    pub fn new(tracks: &[Codec]) -> ViewerClock {
        let clocks = tracks
            .iter()
            .map(|&codec| (codec, RtpClock::new(codec.rtp_clock_rate())))
            .collect();
        ViewerClock::with_clocks(clocks)
    }

    /// A clock with chosen RTP clocks, for tests and for a session that already fixed its
    /// bases.
    pub fn with_clocks(tracks: Vec<(Codec, RtpClock)>) -> ViewerClock {
        let anchor_codec = if tracks.iter().any(|(c, _)| *c == Codec::H264) {
            Codec::H264
        } else {
            Codec::Opus
        };
        ViewerClock {
            tracks,
            anchor_codec,
            timeline: Timeline::new(),
            generation: None,
            last_sent_at: None,
            last_anchor_pts: None,
            anchor_interval: default_interval(anchor_codec),
            audio_waiting: 0,
            stats: ViewerClockStats::default(),
        }
    }

    /// The RTP clock of send track `track`.
    pub fn rtp_clock(&self, track: usize) -> Option<RtpClock> {
        self.tracks.get(track).map(|(_, clock)| *clock)
    }

    /// The send track index and RTP frame of `frame`, sent at `now`; `None` when the frame
    /// is not to be sent (a codec the session does not send, or before the anchor).
    pub fn map(&mut self, frame: &MediaFrame, now: Instant) -> Option<(usize, RtpFrame)> {
        let track = self.tracks.iter().position(|(c, _)| *c == frame.codec)?;
        if self.generation != Some(frame.source_generation) {
            if self.generation.is_some() {
                self.timeline.source_changed();
            }
            self.generation = Some(frame.source_generation);
            self.last_anchor_pts = None;
            self.audio_waiting = 0;
        }
        if !self.timeline.is_anchored() {
            let audio_fallback =
                frame.codec == Codec::Opus && self.audio_waiting >= AUDIO_FALLBACK_PACKETS;
            if !frame.keyframe || (frame.codec != self.anchor_codec && !audio_fallback) {
                if frame.codec == Codec::Opus {
                    self.audio_waiting += 1;
                }
                self.stats.frames_before_anchor += 1;
                return None;
            }
            self.audio_waiting = 0;
            let freeze = self
                .last_sent_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            let gap = Ticks90k::from_duration(freeze).max(self.anchor_interval);
            self.timeline.anchor(frame.pts, gap);
            if self.stats.frames_mapped > 0 {
                self.stats.rebases += 1;
            }
        }
        let Some(output) = self.timeline.output_time(frame.pts) else {
            self.stats.frames_before_anchor += 1;
            return None;
        };
        if frame.codec == self.anchor_codec {
            self.learn_interval(frame.pts);
        }
        self.last_sent_at = Some(now);
        self.stats.frames_mapped += 1;
        let RtpTimestamp(timestamp) = self.tracks[track].1.timestamp(output);
        Some((
            track,
            RtpFrame {
                timestamp,
                payloads: frame.payloads.clone(),
            },
        ))
    }

    /// Counters so far.
    pub fn stats(&self) -> ViewerClockStats {
        self.stats
    }

    /// Remembers the anchoring track's frame interval, the least gap at a source change.
    fn learn_interval(&mut self, pts: livegate_media::Pts90k) {
        if let Some(last) = self.last_anchor_pts {
            if pts_before(last, pts) {
                let step = Ticks90k(
                    (pts.ticks().wrapping_sub(last.ticks()) & (livegate_media::PTS_WRAP - 1))
                        as i64,
                );
                if step <= MAX_FRAME_INTERVAL {
                    self.anchor_interval = step;
                }
            }
        }
        self.last_anchor_pts = Some(pts);
    }
}

fn default_interval(codec: Codec) -> Ticks90k {
    match codec {
        Codec::H264 => DEFAULT_VIDEO_INTERVAL,
        Codec::Opus => DEFAULT_AUDIO_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use livegate_media::{Pts90k, PTS_WRAP};
    use proptest::prelude::*;

    use super::*;

    fn frame(codec: Codec, pts: u64, keyframe: bool, source_generation: u64) -> MediaFrame {
        MediaFrame {
            codec,
            pts: Pts90k::new(pts),
            keyframe,
            source_generation,
            payloads: Arc::from([Bytes::from_static(&[1, 2, 3])]),
            access_unit_bytes: 3,
        }
    }

    fn clock(video_base: u32, audio_base: u32) -> ViewerClock {
        ViewerClock::with_clocks(vec![
            (
                Codec::H264,
                RtpClock::with_base(90_000, RtpTimestamp(video_base)),
            ),
            (
                Codec::Opus,
                RtpClock::with_base(48_000, RtpTimestamp(audio_base)),
            ),
        ])
    }

    #[test]
    fn starts_on_the_first_video_keyframe_with_audio_in_sync() {
        let mut clock = clock(1_000, 2_000);
        let now = Instant::now();
        assert!(clock
            .map(&frame(Codec::Opus, 9_000, true, 1), now)
            .is_none());
        assert!(clock
            .map(&frame(Codec::H264, 9_000, false, 1), now)
            .is_none());
        let (track, idr) = clock
            .map(&frame(Codec::H264, 12_000, true, 1), now)
            .unwrap();
        assert_eq!((track, idr.timestamp), (0, 1_000));
        // Audio muxed late but timed before the picture: dropped.
        assert!(clock
            .map(&frame(Codec::Opus, 11_000, true, 1), now)
            .is_none());
        let (track, audio) = clock
            .map(&frame(Codec::Opus, 13_800, true, 1), now)
            .unwrap();
        // 1800 ticks after the picture is 960 samples.
        assert_eq!((track, audio.timestamp), (1, 2_960));
        assert_eq!(clock.stats().frames_before_anchor, 3);
        assert_eq!(clock.stats().frames_mapped, 2);
    }

    #[test]
    fn an_output_without_video_anchors_on_audio_after_a_while() {
        let mut clock = clock(1_000, 2_000);
        let now = Instant::now();
        let mut pts = 90_000;
        for _ in 0..AUDIO_FALLBACK_PACKETS {
            assert!(clock.map(&frame(Codec::Opus, pts, true, 1), now).is_none());
            pts += 1_800;
        }
        let (track, audio) = clock.map(&frame(Codec::Opus, pts, true, 1), now).unwrap();
        assert_eq!((track, audio.timestamp), (1, 2_000));
        // Video that turns up later joins the same timeline, in sync.
        let (track, video) = clock
            .map(&frame(Codec::H264, pts + 3_000, true, 1), now)
            .unwrap();
        assert_eq!((track, video.timestamp), (0, 1_000 + 3_000));
        // And a restart whose output has no video falls back again instead of going silent.
        let later = now + Duration::from_secs(1);
        for i in 0..AUDIO_FALLBACK_PACKETS {
            assert!(clock
                .map(&frame(Codec::Opus, u64::from(i) * 1_800, true, 2), later)
                .is_none());
        }
        let (_, resumed) = clock
            .map(&frame(Codec::Opus, 1_000_000, true, 2), later)
            .unwrap();
        assert!(resumed.timestamp.wrapping_sub(audio.timestamp) < u32::MAX / 2);
        assert!(resumed.timestamp > audio.timestamp);
        assert_eq!(clock.stats().rebases, 1);
    }

    #[test]
    fn audio_only_sessions_start_on_audio() {
        let mut clock = ViewerClock::with_clocks(vec![(
            Codec::Opus,
            RtpClock::with_base(48_000, RtpTimestamp(7)),
        )]);
        let now = Instant::now();
        assert!(clock.map(&frame(Codec::H264, 0, true, 1), now).is_none());
        let (track, first) = clock.map(&frame(Codec::Opus, 100, true, 1), now).unwrap();
        assert_eq!((track, first.timestamp), (0, 7));
    }

    #[test]
    fn a_restart_continues_after_the_freeze_measured_in_wall_time() {
        let mut clock = clock(0, 0);
        let t0 = Instant::now();
        clock.map(&frame(Codec::H264, 90_000, true, 1), t0).unwrap();
        let (_, last_video) = clock
            .map(&frame(Codec::H264, 93_000, false, 1), t0)
            .unwrap();
        let (_, last_audio) = clock.map(&frame(Codec::Opus, 93_600, true, 1), t0).unwrap();
        // The worker restarts: 2.5 s later the new source starts at PTS 5.
        let t1 = t0 + Duration::from_millis(2_500);
        assert!(clock.map(&frame(Codec::Opus, 5, true, 2), t1).is_none());
        let (_, video) = clock.map(&frame(Codec::H264, 5, true, 2), t1).unwrap();
        let (_, audio) = clock.map(&frame(Codec::Opus, 1_805, true, 2), t1).unwrap();
        // The anchor lands 2.5 s (225000 ticks) after the latest output time, the audio's.
        let latest_90k = 3_600;
        assert_eq!(video.timestamp, latest_90k + 225_000);
        assert_eq!(
            audio.timestamp.wrapping_sub(last_audio.timestamp),
            (225_000 + 1_800) * 8 / 15
        );
        assert!(video.timestamp > last_video.timestamp);
        assert_eq!(clock.stats().rebases, 1);
    }

    #[test]
    fn an_instant_restart_still_moves_on_by_one_frame() {
        let mut clock = clock(0, 0);
        let now = Instant::now();
        for (i, pts) in [0u64, 1_500, 3_000].into_iter().enumerate() {
            clock.map(&frame(Codec::H264, pts, i == 0, 1), now).unwrap();
        }
        let (_, next) = clock
            .map(&frame(Codec::H264, PTS_WRAP - 10, true, 2), now)
            .unwrap();
        // 60 fps learnt from the source: one frame is 1500 ticks.
        assert_eq!(next.timestamp, 3_000 + 1_500);
    }

    proptest! {
        /// Generations with unrelated clocks (any start, wraps included), any freeze between
        /// them: each track's RTP timestamps strictly increase, spacing within a generation
        /// is exact, and every generation's first keyframe comes at least one frame and the
        /// freeze after the latest timestamp sent.
        #[test]
        fn rtp_timestamps_increase_across_generations(
            bases in (any::<u32>(), any::<u32>()),
            generations in proptest::collection::vec(
                (0u64..PTS_WRAP, 1usize..40, 0u64..5_000, 0i64..200_000),
                1..6,
            ),
        ) {
            let mut clock = clock(bases.0, bases.1);
            let mut now = Instant::now();
            let mut last: [Option<u32>; 2] = [None, None];
            let mut latest_output: Option<i64> = None;
            for (g, (start, frames, freeze_ms, audio_lead)) in generations.into_iter().enumerate() {
                now += Duration::from_millis(freeze_ms);
                let mut anchored_at: Option<(u64, i64)> = None;
                for i in 0..frames as u64 {
                    let video_pts = start + i * 3_000;
                    // Audio is muxed with the picture it plays with, sometimes ahead of it.
                    let audio_pts = (video_pts as i64 + audio_lead - 100_000).rem_euclid(PTS_WRAP as i64) as u64;
                    for (codec, pts) in [(Codec::H264, video_pts), (Codec::Opus, audio_pts)] {
                        let f = frame(codec, pts, codec == Codec::Opus || i % 10 == 0, g as u64 + 1);
                        let Some((track, rtp)) = clock.map(&f, now) else { continue };
                        let base = if track == 0 { bases.0 } else { bases.1 };
                        let output_at_rate = rtp.timestamp.wrapping_sub(base);
                        if let Some(prev) = last[track] {
                            let step = rtp.timestamp.wrapping_sub(prev) as i32;
                            prop_assert!(step > 0, "track {} stepped {}", track, step);
                        }
                        if codec == Codec::H264 {
                            let output = i64::from(output_at_rate);
                            match anchored_at {
                                None => {
                                    if let Some(latest) = latest_output {
                                        let gap = output - latest;
                                        prop_assert!(gap >= (freeze_ms as i64 * 90).max(3_000), "gap {}", gap);
                                    }
                                    anchored_at = Some((video_pts, output));
                                }
                                Some((pts0, out0)) => {
                                    prop_assert_eq!(output - out0, (video_pts - pts0) as i64);
                                }
                            }
                            latest_output = Some(latest_output.map_or(output, |l| l.max(output)));
                        } else {
                            // Audio's output time at 90 kHz, to within one 48 kHz sample.
                            let output = i64::from(output_at_rate) * 15 / 8;
                            latest_output = Some(latest_output.map_or(output, |l| l.max(output)));
                        }
                        last[track] = Some(rtp.timestamp);
                    }
                }
            }
        }
    }
}
