//! One output timeline per session, continued across source changes.
//!
//! This maps source PTS to output time and nothing else: it does not choose where a source
//! may start (the caller anchors on a keyframe), does not detect source changes (the caller
//! announces them), and knows no RTP clock rates ([`crate::time::RtpClock`] does).

use crate::access_unit::Pts90k;
use crate::time::{PtsUnwrapper, Ticks90k};

/// Maps the PTS of every track of a session's current source onto one continuous output
/// timeline in 90 kHz ticks, which one [`crate::time::RtpClock`] per track turns into RTP
/// timestamps.
///
/// One `Timeline` serves all tracks of a session (audio and video), for two reasons: the
/// tracks of one source share a clock, so they are unwrapped on one epoch (a video PTS just
/// before the 2^33 wrap and an audio PTS just after it stay 26 hours from wrong); and a
/// source change moves every track by the same offset, so lip sync survives a worker
/// restart. A session with a single track uses one all the same.
///
/// # Life cycle
///
/// The timeline starts unanchored and maps nothing until [`anchor`] is called with the
/// first unit to send (normally a keyframe), which lands at output time 0. When the source
/// changes (a new output buffer after a worker restart, whose clock may start anywhere:
/// far lower, far higher, or about to wrap), the caller says [`source_changed`] before
/// handing over any unit of the new source, and the timeline is unanchored again; the next
/// [`anchor`] puts the new source's first unit `gap` after the latest output time of any
/// track, so every track's RTP timestamps go on increasing. From then on the new source's
/// units keep their spacing exactly, on every track. Units of a source from before its
/// anchor map to `None` and are to be dropped: letting them through could put a track
/// behind what it already sent.
///
/// # Ownership
///
/// Plain data with `&mut self` methods: it belongs to the one task that sends a session's
/// media, which sees every unit of every track in stream order. Tracks sent from separate
/// tasks would need it behind a lock held for one call, and would lose the stream order the
/// anchor relies on; don't.
///
/// [`anchor`]: Timeline::anchor
/// [`source_changed`]: Timeline::source_changed
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    unwrapper: PtsUnwrapper,
    /// `output = source + offset`, where source is the unwrapped PTS; `None` while
    /// unanchored.
    offset: Option<Ticks90k>,
    /// Unwrapped source time of the anchor; earlier units are dropped.
    anchor_source: Ticks90k,
    /// Latest output time mapped on any track.
    latest_output: Option<Ticks90k>,
    rebases: u64,
}

impl Timeline {
    /// The smallest gap between the latest output time and a new source's anchor: 1 ms,
    /// enough for every RTP clock of 1 kHz or more (Opus's 48 kHz included) to step forward
    /// at least one tick, so no track repeats its last timestamp.
    pub const MIN_REBASE_GAP: Ticks90k = Ticks90k(90);

    /// An unanchored timeline with no history.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Whether [`Timeline::anchor`] has been called for the current source.
    pub fn is_anchored(&self) -> bool {
        self.offset.is_some()
    }

    /// Starts the current source at `pts` and returns the output time it lands on: 0 for the
    /// first source, otherwise `gap` (raised to [`Timeline::MIN_REBASE_GAP`]) after the
    /// latest output time of any track.
    ///
    /// For `gap`, pass the wall-clock time since the last unit was sent
    /// ([`Ticks90k::from_duration`]): the RTP clocks then advance with real time across the
    /// freeze, and receivers' jitter buffers see no delay spike. Anchoring again without a
    /// source change moves the rest of the current source the same way.
    pub fn anchor(&mut self, pts: Pts90k, gap: Ticks90k) -> Ticks90k {
        let source = self.unwrapper.unwrap(pts);
        let output = match self.latest_output {
            None => Ticks90k(0),
            Some(latest) => {
                self.rebases += 1;
                latest + gap.max(Self::MIN_REBASE_GAP)
            }
        };
        self.offset = Some(output - source);
        self.anchor_source = source;
        output
    }

    /// The output time of `pts`, or `None` when unanchored or when `pts` is before the
    /// current source's anchor (drop the unit).
    pub fn output_time(&mut self, pts: Pts90k) -> Option<Ticks90k> {
        let offset = self.offset?;
        let source = self.unwrapper.unwrap(pts);
        if source < self.anchor_source {
            return None;
        }
        let output = source + offset;
        self.latest_output = Some(
            self.latest_output
                .map_or(output, |latest| latest.max(output)),
        );
        Some(output)
    }

    /// The source is about to change: forget its clock and wait for a new anchor.
    pub fn source_changed(&mut self) {
        self.unwrapper.reset();
        self.offset = None;
    }

    /// Latest output time mapped on any track, if any.
    pub fn latest_output(&self) -> Option<Ticks90k> {
        self.latest_output
    }

    /// How many times the timeline was anchored after output had started: source changes
    /// that were followed by media, for logs and metrics.
    pub fn rebases(&self) -> u64 {
        self.rebases
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::access_unit::{AccessUnit, Codec, PTS_WRAP};
    use crate::time::{RtpClock, RtpTimestamp};
    use crate::ts::demux::{DemuxEvent, Demuxer};

    const WRAP: i64 = PTS_WRAP as i64;

    #[test]
    fn a_new_source_continues_after_the_old_one_with_tracks_in_sync() {
        let mut timeline = Timeline::new();
        assert_eq!(timeline.output_time(Pts90k::new(1_000)), None, "unanchored");
        assert_eq!(
            timeline.anchor(Pts90k::new(1_000), Ticks90k(0)),
            Ticks90k(0)
        );
        assert_eq!(timeline.output_time(Pts90k::new(1_000)), Some(Ticks90k(0)));
        assert_eq!(
            timeline.output_time(Pts90k::new(91_000)),
            Some(Ticks90k(90_000))
        );
        // A B-frame style step back is followed, and does not lower the latest output.
        assert_eq!(
            timeline.output_time(Pts90k::new(88_000)),
            Some(Ticks90k(87_000))
        );
        assert_eq!(timeline.latest_output(), Some(Ticks90k(90_000)));
        assert_eq!(timeline.rebases(), 0);

        // Worker restart: the new source's clock starts just before the wrap.
        timeline.source_changed();
        assert!(!timeline.is_anchored());
        assert_eq!(timeline.output_time(Pts90k::new(PTS_WRAP - 100)), None);
        let anchored = timeline.anchor(Pts90k::new(PTS_WRAP - 3_000), Ticks90k(45_000));
        assert_eq!(anchored, Ticks90k(135_000));
        // Audio from before the new keyframe is dropped; after it, both tracks move together
        // and across the wrap.
        assert_eq!(timeline.output_time(Pts90k::new(PTS_WRAP - 4_000)), None);
        assert_eq!(
            timeline.output_time(Pts90k::new(PTS_WRAP - 3_000)),
            Some(Ticks90k(135_000))
        );
        assert_eq!(
            timeline.output_time(Pts90k::new(2_000)),
            Some(Ticks90k(140_000))
        );
        assert_eq!(timeline.rebases(), 1);
    }

    #[test]
    fn new_sources_far_lower_far_higher_or_wrapped_continue_after_the_latest() {
        let mut timeline = Timeline::new();
        timeline.anchor(Pts90k::new(5_000_000), Ticks90k(0));
        let mut latest = timeline.output_time(Pts90k::new(5_090_000)).unwrap();
        for start in [0, PTS_WRAP - 1, 1 << 32, 7, PTS_WRAP / 2 + 3] {
            timeline.source_changed();
            let anchored = timeline.anchor(Pts90k::new(start), Ticks90k(3_000));
            assert_eq!(anchored, latest + Ticks90k(3_000), "start {start}");
            latest = timeline
                .output_time(Pts90k::new(start).wrapping_add(1_800))
                .unwrap();
            assert_eq!(latest, anchored + Ticks90k(1_800), "start {start}");
        }
    }

    #[test]
    fn a_gap_below_the_minimum_is_raised() {
        let mut timeline = Timeline::new();
        timeline.anchor(Pts90k::new(0), Ticks90k(0));
        let last = timeline.output_time(Pts90k::new(10)).unwrap();
        timeline.source_changed();
        let anchored = timeline.anchor(Pts90k::new(123), Ticks90k(0));
        assert_eq!(anchored - last, Timeline::MIN_REBASE_GAP);
        // The raised gap steps Opus forward: the new source does not repeat a timestamp.
        let opus = RtpClock::with_base(48_000, RtpTimestamp(0));
        assert!(opus.timestamp(anchored).is_after(opus.timestamp(last)));
    }

    fn demux(name: &str) -> Vec<AccessUnit> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
        let bytes = std::fs::read(format!("{dir}{name}")).expect("fixture");
        let mut demuxer = Demuxer::new();
        let mut events = Vec::new();
        demuxer.push(&bytes, &mut events);
        demuxer.finish(&mut events);
        events
            .into_iter()
            .filter_map(|event| match event {
                DemuxEvent::AccessUnit(unit) => Some(unit),
                DemuxEvent::Tracks(_) => None,
            })
            .collect()
    }

    /// What a session sent on each track of one source: (PTS, output time, RTP timestamp).
    #[derive(Default)]
    struct Sent {
        video: Vec<(Pts90k, Ticks90k, RtpTimestamp)>,
        audio: Vec<(Pts90k, Ticks90k, RtpTimestamp)>,
        dropped: Vec<AccessUnit>,
    }

    /// Sends one source the way a WHEP session does: anchored on its first keyframe.
    fn send_source(
        timeline: &mut Timeline,
        clocks: (&RtpClock, &RtpClock),
        units: Vec<AccessUnit>,
        gap: Ticks90k,
    ) -> Sent {
        let mut sent = Sent::default();
        timeline.source_changed();
        for unit in units {
            if !timeline.is_anchored() && unit.codec == Codec::H264 && unit.keyframe {
                timeline.anchor(unit.pts, gap);
            }
            let Some(output) = timeline.output_time(unit.pts) else {
                sent.dropped.push(unit);
                continue;
            };
            let (clock, track) = match unit.codec {
                Codec::H264 => (clocks.0, &mut sent.video),
                Codec::Opus => (clocks.1, &mut sent.audio),
            };
            track.push((unit.pts, output, clock.timestamp(output)));
        }
        sent
    }

    /// Every step of a track's RTP timestamps, in its clock's ticks.
    fn rtp_steps(track: &[(Pts90k, Ticks90k, RtpTimestamp)]) -> Vec<i32> {
        track
            .windows(2)
            .map(|w| w[1].2.ticks_since(w[0].2))
            .collect()
    }

    /// `later - earlier` for two PTS less than 2^32 ticks apart, across a wrap.
    fn pts_distance(later: Pts90k, earlier: Pts90k) -> i64 {
        let d = (later.ticks() as i64 - earlier.ticks() as i64).rem_euclid(WRAP);
        if d >= WRAP / 2 {
            d - WRAP
        } else {
            d
        }
    }

    #[test]
    fn fixtures_across_the_pts_wrap_and_a_worker_restart() {
        let video = RtpClock::with_base(90_000, RtpTimestamp(u32::MAX - 100_000));
        let audio = RtpClock::with_base(48_000, RtpTimestamp(u32::MAX - 50_000));
        let mut timeline = Timeline::new();

        // The first source crosses the 2^33 wrap one second in (30 fps, 20 ms Opus).
        let first = send_source(
            &mut timeline,
            (&video, &audio),
            demux("pts-wrap.ts"),
            Ticks90k(0),
        );
        assert!(first.video.len() > 100 && first.audio.len() > 200);
        assert!(first.video.first().unwrap().0.ticks() > first.video.last().unwrap().0.ticks());
        assert!(
            rtp_steps(&first.video).iter().all(|&s| s == 3_000),
            "{:?}",
            rtp_steps(&first.video)
        );
        assert!(
            rtp_steps(&first.audio).iter().all(|&s| s == 960),
            "{:?}",
            rtp_steps(&first.audio)
        );
        assert_eq!(
            first.video[0].2,
            video.base(),
            "the first keyframe is output time 0"
        );
        // Only audio from before the keyframe was dropped; the first audio sent is in sync.
        let (keyframe_pts, first_audio_pts) = (first.video[0].0, first.audio[0].0);
        assert!(!first.dropped.is_empty());
        assert!(first.dropped.iter().all(|u| u.codec == Codec::Opus));
        assert!(first
            .dropped
            .iter()
            .all(|u| pts_distance(u.pts, keyframe_pts) < 0));
        let lead_90k = pts_distance(first_audio_pts, keyframe_pts);
        assert!((0..1_800).contains(&lead_90k));
        assert_eq!(
            i64::from(first.audio[0].2.ticks_since(audio.base())),
            lead_90k * 8 / 15
        );

        // Worker restart after a half-second freeze: a new clock, far lower than the old.
        let latest = first
            .video
            .iter()
            .chain(&first.audio)
            .map(|s| s.1)
            .max()
            .unwrap();
        let freeze = Ticks90k(45_000);
        let second = send_source(
            &mut timeline,
            (&video, &audio),
            demux("h264-baseline-opus.ts"),
            freeze,
        );
        assert_eq!(timeline.rebases(), 1);
        assert_eq!(second.video[0].1, latest + freeze);
        let video_jump = second.video[0].2.ticks_since(first.video.last().unwrap().2);
        let audio_jump = second.audio[0].2.ticks_since(first.audio.last().unwrap().2);
        assert!(video_jump >= 45_000, "{video_jump}");
        assert!(audio_jump >= 24_000, "{audio_jump}");
        assert!(rtp_steps(&second.video).iter().all(|&s| s == 3_000));
        assert!(rtp_steps(&second.audio).iter().all(|&s| s == 960));
        // Lip sync in the new source: audio and video keep their source distance.
        let lead_90k = pts_distance(second.audio[0].0, second.video[0].0);
        let audio_at_48k = second.audio[0].2.ticks_since(audio.base()) as i64;
        let video_at_90k = second.video[0].2.ticks_since(video.base()) as i64;
        assert_eq!(audio_at_48k, (video_at_90k + lead_90k) * 8 / 15);
    }

    /// One track of one generated source: its first PTS relative to the source start and its
    /// steps in ticks.
    fn track(step: std::ops::Range<i64>) -> impl Strategy<Value = (i64, Vec<i64>)> {
        (-90_000i64..90_000, proptest::collection::vec(step, 1..40))
    }

    proptest! {
        /// Whatever the new sources' clocks and the gaps: every track's RTP timestamps go
        /// strictly forward, each source starts exactly `gap` after the latest output, and
        /// within a source spacing is exact on both tracks and audio stays in sync with video.
        #[test]
        fn rebased_rtp_never_goes_backwards_and_keeps_spacing(
            bases in (any::<u32>(), any::<u32>()),
            sources in proptest::collection::vec(
                (
                    0u64..PTS_WRAP,
                    track(1..9_000),
                    // Opus frames: multiples of 2.5 ms (225 ticks), up to 120 ms.
                    track(1..49).prop_map(|(at, steps)| (at, steps.into_iter().map(|s| s * 225).collect())),
                    0i64..9_000,
                    0i64..900_000,
                ),
                1..8,
            ),
        ) {
            let video = RtpClock::with_base(90_000, RtpTimestamp(bases.0));
            let audio = RtpClock::with_base(48_000, RtpTimestamp(bases.1));
            let mut timeline = Timeline::new();
            let mut last_rtp: [Option<RtpTimestamp>; 2] = [None, None];
            let mut latest: Option<Ticks90k> = None;
            for (start, (video_at, video_steps), (audio_at, audio_steps), audio_delay, gap) in sources {
                // True source times (which may be negative or cross 2^33: the wire wraps them)
                // and the order a muxer writes them in, audio `audio_delay` late.
                let times = |at: i64, steps: Vec<i64>| -> Vec<i64> {
                    steps.iter().scan(start as i64 + at, |t, s| { *t += s; Some(*t) }).collect()
                };
                let mut units: Vec<(i64, usize, i64)> = times(video_at, video_steps)
                    .into_iter().map(|t| (t, 0, t))
                    .chain(times(audio_at, audio_steps).into_iter().map(|t| (t + audio_delay, 1, t)))
                    .collect();
                units.sort();

                timeline.source_changed();
                let mut anchor: Option<(i64, Ticks90k)> = None;
                for (_, track, t) in units {
                    let pts = Pts90k::new(t.rem_euclid(WRAP) as u64);
                    if anchor.is_none() && track == 0 {
                        let output = timeline.anchor(pts, Ticks90k(gap));
                        let expected = latest.map_or(Ticks90k(0), |l| l + Ticks90k(gap).max(Timeline::MIN_REBASE_GAP));
                        prop_assert_eq!(output, expected);
                        anchor = Some((t, output));
                    }
                    let Some(output) = timeline.output_time(pts) else {
                        // Only units before the anchor are dropped.
                        prop_assert!(anchor.is_none_or(|(anchor_t, _)| t < anchor_t));
                        continue;
                    };
                    let (anchor_t, anchor_output) = anchor.expect("mapped only once anchored");
                    prop_assert!(t >= anchor_t);
                    // Spacing, and sync between the tracks: output time is source time plus
                    // one offset for the whole source.
                    prop_assert_eq!(output - anchor_output, Ticks90k(t - anchor_t));
                    let clock = if track == 0 { &video } else { &audio };
                    let rtp = clock.timestamp(output);
                    let exact = (i128::from(output.0) * i128::from(clock.clock_rate_hz())).div_euclid(90_000) as u32;
                    prop_assert_eq!(rtp, clock.base().wrapping_add(exact));
                    if let Some(last) = last_rtp[track] {
                        prop_assert!(rtp.is_after(last), "track {} went from {:?} to {:?}", track, last, rtp);
                    }
                    last_rtp[track] = Some(rtp);
                    latest = latest.max(Some(output));
                }
            }
        }
    }
}
