//! An MPEG-TS file as a publisher plays it: livegate-pipeline's [`LoopedFile`] (demuxed
//! once, access units in decoding order with their times into a pass, the loop duration that
//! keeps timestamps increasing pass after pass) plus what an offer needs from it.
//!
//! Loaded once and shared (`Arc`) by every publisher of a load run; nothing here is
//! per-publisher. The same layout as the gateway's `LIVE_AI_TEST_STREAM` source, so a gateway
//! sees the same timeline from either.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use livegate_media::h264::ParameterSetCache;
use livegate_media::Codec;
pub use livegate_pipeline::looped_file::MAX_FILE_BYTES;
use livegate_pipeline::looped_file::{LoopedFile, LoopedFileError};

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum MediaFileError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is {len} bytes, more than the {MAX_FILE_BYTES} accepted", .path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("{} holds no H.264 or Opus access units (or is not MPEG-TS)", .path.display())]
    NoMedia { path: PathBuf },
    #[error("{} has H.264 video without a keyframe", .path.display())]
    NoKeyframe { path: PathBuf },
    #[error("{} changes its tracks mid-file", .path.display())]
    TracksChanged { path: PathBuf },
}

impl From<LoopedFileError> for MediaFileError {
    fn from(error: LoopedFileError) -> MediaFileError {
        match error {
            LoopedFileError::Read { path, source } => MediaFileError::Read { path, source },
            LoopedFileError::TooLarge { path, len } => MediaFileError::TooLarge { path, len },
            LoopedFileError::NoMedia { path } => MediaFileError::NoMedia { path },
            LoopedFileError::NoKeyframe { path } => MediaFileError::NoKeyframe { path },
            LoopedFileError::TracksChanged { path } => MediaFileError::TracksChanged { path },
        }
    }
}

/// One access unit of the file and when it is due within a pass.
#[derive(Debug, Clone)]
pub(crate) struct FileUnit {
    /// Decoding time since the pass's origin (the file's earliest time).
    pub(crate) decode_offset_90k: u64,
    /// Presentation time since the same origin.
    pub(crate) pts_offset_90k: u64,
    pub(crate) codec: Codec,
    pub(crate) keyframe: bool,
    pub(crate) data: Bytes,
}

/// A demuxed MPEG-TS file (H.264 and/or Opus), ready to be published in a loop.
///
/// ```no_run
/// # async fn demo() -> Result<(), livegate_bench::whip::MediaFileError> {
/// use livegate_bench::whip::MediaFile;
/// let file = MediaFile::load("tests/fixtures/h264-baseline-opus.ts").await?;
/// assert!(file.has_video() && file.has_audio());
/// println!("{} units per pass of {} ms", file.access_units(), file.loop_duration_90k() / 90);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MediaFile {
    path: PathBuf,
    /// In decoding order.
    units: Vec<FileUnit>,
    loop_duration_90k: u64,
    profile_level_id: Option<String>,
}

impl MediaFile {
    /// Reads and demuxes `path` (off the runtime's threads).
    pub async fn load(path: impl AsRef<Path>) -> Result<Arc<MediaFile>, MediaFileError> {
        let path = path.as_ref();
        let file = LoopedFile::read(path).await?;
        Ok(Arc::new(MediaFile::from_file(path, file)))
    }

    /// [`MediaFile::load`] on bytes already read; `path` only names the file in errors.
    pub fn from_ts(path: &Path, ts: &[u8]) -> Result<MediaFile, MediaFileError> {
        Ok(MediaFile::from_file(path, LoopedFile::from_ts(path, ts)?))
    }

    fn from_file(path: &Path, file: LoopedFile) -> MediaFile {
        let loop_duration_90k = file.loop_duration_90k();
        let (_, units, _) = file.into_parts();
        let mut parameter_sets = ParameterSetCache::new();
        for unit in units.iter().filter(|u| u.au.codec == Codec::H264) {
            parameter_sets.observe(&unit.au.data);
        }
        let units = units
            .into_iter()
            .map(|unit| FileUnit {
                decode_offset_90k: unit.decode_offset_90k,
                pts_offset_90k: unit.pts_offset_90k,
                codec: unit.au.codec,
                keyframe: unit.au.keyframe,
                data: unit.au.data,
            })
            .collect();
        MediaFile {
            path: path.to_owned(),
            units,
            loop_duration_90k,
            profile_level_id: parameter_sets.sps_info().map(|sps| sps.profile_level_id()),
        }
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far each pass moves timestamps forward, and how long it lasts in real time.
    pub fn loop_duration_90k(&self) -> u64 {
        self.loop_duration_90k
    }

    /// Access units per pass (video frames and Opus packets).
    pub fn access_units(&self) -> usize {
        self.units.len()
    }

    /// Whether the file has H.264 video.
    pub fn has_video(&self) -> bool {
        self.units.iter().any(|u| u.codec == Codec::H264)
    }

    /// Whether the file has Opus audio.
    pub fn has_audio(&self) -> bool {
        self.units.iter().any(|u| u.codec == Codec::Opus)
    }

    /// The SPS's `profile-level-id` (RFC 6184 §8.1), e.g. `42c01e`, if it could be read.
    pub fn profile_level_id(&self) -> Option<&str> {
        self.profile_level_id.as_deref()
    }

    pub(crate) fn units(&self) -> &[FileUnit] {
        &self.units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> MediaFile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        MediaFile::from_ts(&path, &std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn the_fixture_is_laid_out_in_decoding_order_from_its_first_keyframe() {
        // make-fixtures.sh: 2 s at 30 fps with a 1 s GOP, Opus in 20 ms packets.
        let file = fixture("h264-baseline-opus.ts");
        let video: Vec<&FileUnit> = file
            .units()
            .iter()
            .filter(|u| u.codec == Codec::H264)
            .collect();
        assert_eq!(video.len(), 60);
        assert!(video[0].keyframe);
        assert_eq!(video.iter().filter(|u| u.keyframe).count(), 2);
        assert!(file
            .units()
            .windows(2)
            .all(|w| w[0].decode_offset_90k <= w[1].decode_offset_90k));
        assert_eq!(
            file.units().iter().map(|u| u.decode_offset_90k).min(),
            Some(0)
        );
        // Two seconds, give or take the audio's last packet sticking out.
        let loop_ms = file.loop_duration_90k() / 90;
        assert!((2_000..=2_040).contains(&loop_ms), "{loop_ms} ms");
        assert!(file.has_audio() && file.has_video());
        assert_eq!(file.profile_level_id().map(|p| &p[..2]), Some("42"));
    }

    #[test]
    fn b_frames_present_after_they_are_decoded() {
        let file = fixture("h264-bframes-opus.ts");
        let video = file.units().iter().filter(|u| u.codec == Codec::H264);
        assert!(video
            .clone()
            .all(|u| u.pts_offset_90k >= u.decode_offset_90k));
        assert!(video
            .clone()
            .any(|u| u.pts_offset_90k > u.decode_offset_90k));
    }

    #[test]
    fn a_file_without_media_or_keyframe_is_refused() {
        let path = Path::new("x.ts");
        assert!(matches!(
            MediaFile::from_ts(path, &[0x47; 188 * 3]),
            Err(MediaFileError::NoMedia { .. })
        ));
        let audio = fixture("audio-only.ts");
        assert!(!audio.has_video() && audio.has_audio());
        assert_eq!(audio.profile_level_id(), None);
    }
}
