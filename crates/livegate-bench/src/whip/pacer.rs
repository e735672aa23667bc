//! When each access unit of a [`MediaFile`] goes out, pass after pass: at its decoding time
//! since the start of play, with its presentation time moved forward by the passes before
//! it, so the receiver sees one live stream whose timestamps keep increasing across loops.
//! Sans-I/O: the publisher's event loop reads [`Pacer::next_due_90k`], sleeps until then
//! and takes the units with [`Pacer::pop_due`].

use std::sync::Arc;
use std::time::Duration;

use super::media::{FileUnit, MediaFile};

const TICKS_PER_SECOND: u64 = 90_000;

/// One access unit to send now (its payload shared with the file, not copied).
#[derive(Debug, Clone)]
pub(crate) struct Due {
    pub(crate) unit: FileUnit,
    /// Presentation time since the start of play (pass shift included).
    pub(crate) pts_90k: u64,
}

/// A position in the endless (or bounded) schedule of a file.
#[derive(Debug)]
pub(crate) struct Pacer {
    file: Arc<MediaFile>,
    pass: u64,
    index: usize,
    /// Passes to play; `None` forever.
    passes: Option<u64>,
}

impl Pacer {
    pub(crate) fn new(file: Arc<MediaFile>, passes: Option<u64>) -> Pacer {
        Pacer {
            file,
            pass: 0,
            index: 0,
            passes,
        }
    }

    /// Passes completed.
    pub(crate) fn passes_done(&self) -> u64 {
        self.pass
    }

    /// Whether every pass asked for has been sent.
    pub(crate) fn finished(&self) -> bool {
        self.passes.is_some_and(|passes| self.pass >= passes) || self.file.units().is_empty()
    }

    /// Decoding time of the next unit since the start of play; `None` when finished.
    pub(crate) fn next_due_90k(&self) -> Option<u64> {
        if self.finished() {
            return None;
        }
        let unit = &self.file.units()[self.index];
        Some(self.pass * self.file.loop_duration_90k() + unit.decode_offset_90k)
    }

    /// The next unit if it is due at `elapsed_90k` since the start of play.
    pub(crate) fn pop_due(&mut self, elapsed_90k: u64) -> Option<Due> {
        if self.next_due_90k()? > elapsed_90k {
            return None;
        }
        let (pass, index) = (self.pass, self.index);
        self.index += 1;
        if self.index == self.file.units().len() {
            self.index = 0;
            self.pass += 1;
        }
        let unit = self.file.units()[index].clone();
        Some(Due {
            pts_90k: pass * self.file.loop_duration_90k() + unit.pts_offset_90k,
            unit,
        })
    }
}

/// `ticks_90k` as a duration, rounded up so nothing is due before its time.
pub(crate) fn duration_of_90k(ticks_90k: u64) -> Duration {
    let nanos = (ticks_90k % TICKS_PER_SECOND * 1_000_000_000).div_ceil(TICKS_PER_SECOND);
    Duration::from_secs(ticks_90k / TICKS_PER_SECOND) + Duration::from_nanos(nanos)
}

/// Whole 90 kHz ticks in `duration`, rounded down.
pub(crate) fn ticks_90k_of(duration: Duration) -> u64 {
    (duration.as_nanos() * u128::from(TICKS_PER_SECOND) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use livegate_media::Codec;
    use proptest::prelude::*;

    use super::*;

    fn fixture() -> Arc<MediaFile> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/h264-baseline-opus.ts");
        Arc::new(MediaFile::from_ts(&path, &std::fs::read(&path).unwrap()).unwrap())
    }

    #[test]
    fn units_come_when_due_and_the_second_pass_continues_the_timestamps() {
        let file = fixture();
        let per_pass = file.access_units();
        let loop_90k = file.loop_duration_90k();
        let mut pacer = Pacer::new(file.clone(), Some(2));
        assert_eq!(pacer.next_due_90k(), Some(0));
        let first_pass: Vec<(u64, u64, Codec)> = std::iter::from_fn(|| {
            pacer
                .pop_due(loop_90k - 1)
                .map(|d| (d.unit.decode_offset_90k, d.pts_90k, d.unit.codec))
        })
        .collect();
        assert_eq!(
            first_pass.len(),
            per_pass,
            "all of pass one is due within it"
        );
        assert_eq!(pacer.passes_done(), 1);
        assert_eq!(pacer.next_due_90k(), Some(loop_90k));
        assert!(
            pacer.pop_due(loop_90k - 1).is_none(),
            "pass two is not due yet"
        );

        let mut second_pass = Vec::new();
        while let Some(due) = pacer.pop_due(u64::MAX) {
            second_pass.push((due.pts_90k, due.unit.codec));
        }
        assert!(pacer.finished());
        assert_eq!(pacer.next_due_90k(), None);
        assert_eq!(second_pass.len(), per_pass);
        for ((_, pts1, codec1), (pts2, codec2)) in first_pass.iter().zip(&second_pass) {
            assert_eq!((pts2 - pts1, codec2), (loop_90k, codec1));
        }
        // Across the seam each track moves forward: the last video frame of pass one is
        // before the first of pass two.
        let last_video_1 = first_pass
            .iter()
            .filter(|u| u.2 == Codec::H264)
            .map(|u| u.1)
            .max();
        let first_video_2 = second_pass
            .iter()
            .filter(|u| u.1 == Codec::H264)
            .map(|u| u.0)
            .min();
        assert!(last_video_1 < first_video_2);
    }

    proptest! {
        #[test]
        fn durations_and_ticks_round_trip(ticks in 0u64..(1 << 40)) {
            let duration = duration_of_90k(ticks);
            prop_assert_eq!(ticks_90k_of(duration), ticks);
            prop_assert!(duration.as_nanos() * 90_000 >= u128::from(ticks) * 1_000_000_000);
        }
    }
}
