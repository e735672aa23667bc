//! One output timeline per session, continued across source changes.

use crate::access_unit::Pts90k;
use crate::time::PtsUnwrapper;

/// Maps the PTS of every track of a session's current source onto one continuous output
/// timeline in 90 kHz ticks, which [`crate::time::RtpClock`]s turn into RTP timestamps.
///
/// One `Timeline` is shared by all tracks of a session (audio and video), for two reasons:
/// tracks of one source are unwrapped on one epoch, so a video PTS just before the 2^33 wrap
/// and an audio PTS just after it stay 26 hours from wrong; and a rebase moves every track by
/// the same offset, so lip sync survives a worker restart.
///
/// Life cycle: the timeline starts unanchored and maps nothing until [`anchor`] is called
/// with the first unit to send (normally a keyframe), which lands at output time 0. When the
/// source changes (a new output buffer after a worker restart, whose clock may start
/// anywhere), [`source_changed`] unanchors it again; the next [`anchor`] puts the new source's
/// first keyframe `gap_90k` after the latest output time sent on any track. Units of the new
/// source from before the anchor map to `None` and are dropped, so no track's output time
/// ever goes backwards.
///
/// [`anchor`]: Timeline::anchor
/// [`source_changed`]: Timeline::source_changed
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    unwrapper: PtsUnwrapper,
    /// `output = unwrapped + offset`; `None` while unanchored.
    offset_90k: Option<i64>,
    /// Unwrapped source time of the anchor; earlier units are dropped.
    anchor_source_90k: i64,
    /// Latest output time mapped on any track.
    latest_output_90k: Option<i64>,
    rebases: u64,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Whether [`Timeline::anchor`] has been called for the current source.
    pub fn is_anchored(&self) -> bool {
        self.offset_90k.is_some()
    }

    /// Starts the current source at `pts`: output time 0 for the first source, otherwise
    /// `gap_90k` after the latest output time (use the length of the freeze, at least one
    /// frame).
    pub fn anchor(&mut self, pts: Pts90k, gap_90k: u64) {
        let source = self.unwrapper.unwrap(pts);
        let output = match self.latest_output_90k {
            None => 0,
            Some(latest) => latest + gap_90k.max(1) as i64,
        };
        self.offset_90k = Some(output - source);
        self.anchor_source_90k = source;
    }

    /// The output time of `pts`, or `None` when unanchored or before the anchor.
    pub fn map(&mut self, pts: Pts90k) -> Option<i64> {
        let offset = self.offset_90k?;
        let source = self.unwrapper.unwrap(pts);
        if source < self.anchor_source_90k {
            return None;
        }
        let output = source + offset;
        self.latest_output_90k = Some(self.latest_output_90k.map_or(output, |l| l.max(output)));
        Some(output)
    }

    /// The source is about to change: forget its clock and wait for a new anchor.
    pub fn source_changed(&mut self) {
        if self.offset_90k.is_some() {
            self.rebases += 1;
        }
        self.unwrapper.reset();
        self.offset_90k = None;
    }

    /// Latest output time mapped on any track.
    pub fn latest_output_90k(&self) -> Option<i64> {
        self.latest_output_90k
    }

    /// How many times the source changed after being anchored.
    pub fn rebases(&self) -> u64 {
        self.rebases
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::access_unit::PTS_WRAP;

    #[test]
    fn a_new_source_continues_after_the_old_one_with_tracks_in_sync() {
        let mut timeline = Timeline::new();
        assert_eq!(timeline.map(Pts90k::new(1_000)), None, "unanchored");
        timeline.anchor(Pts90k::new(1_000), 0);
        assert_eq!(timeline.map(Pts90k::new(1_000)), Some(0));
        assert_eq!(timeline.map(Pts90k::new(91_000)), Some(90_000));

        // Worker restart: the new source's clock starts near the wrap.
        timeline.source_changed();
        assert_eq!(timeline.map(Pts90k::new(PTS_WRAP - 100)), None);
        timeline.anchor(Pts90k::new(PTS_WRAP - 3_000), 45_000);
        // Audio from before the new keyframe is dropped; after it, both tracks move together.
        assert_eq!(timeline.map(Pts90k::new(PTS_WRAP - 4_000)), None);
        assert_eq!(timeline.map(Pts90k::new(PTS_WRAP - 3_000)), Some(135_000));
        assert_eq!(timeline.map(Pts90k::new(2_000)), Some(140_000));
        assert_eq!(timeline.rebases(), 1);
    }

    proptest! {
        /// Whatever the new sources' clocks, output time never goes backwards and spacing
        /// within a source is preserved.
        #[test]
        fn never_backwards_and_spacing_preserved(
            sources in proptest::collection::vec(
                (0u64..PTS_WRAP, proptest::collection::vec(0u64..9_000, 1..50), 0u64..90_000),
                1..8,
            ),
        ) {
            let mut timeline = Timeline::new();
            let mut previous: Option<i64> = None;
            for (start, steps, gap) in sources {
                timeline.source_changed();
                timeline.anchor(Pts90k::new(start), gap);
                let mut pts = start;
                let mut first_out = None;
                for step in steps {
                    pts += step;
                    let out = timeline.map(Pts90k::new(pts)).expect("after the anchor");
                    if let Some(previous) = previous {
                        prop_assert!(out >= previous);
                    }
                    let first = *first_out.get_or_insert(out - (pts - start) as i64);
                    prop_assert_eq!(out - first, (pts - start) as i64);
                    previous = Some(out);
                }
            }
        }
    }
}
