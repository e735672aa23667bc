//! An MPEG-TS file as a publisher plays it: demuxed once (livegate-media's [`Demuxer`]),
//! its access units laid out in decoding order with their times relative to the file's
//! start, and the loop duration that keeps timestamps increasing when it is played again.
//!
//! Loaded once and shared (`Arc`) by every publisher of a load run; nothing here is
//! per-publisher. Not a general file player: the whole file is held in memory (at most
//! [`MAX_FILE_BYTES`]), it must run on one clock, its tracks may not change mid-file, and
//! video before the first keyframe is dropped so every pass starts decodable. The loop
//! arithmetic is the same as livegate-pipeline's `file_source` (the last frame's end of the
//! longest track), so a gateway sees the same timeline from either.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use livegate_media::h264::ParameterSetCache;
use livegate_media::time::PtsUnwrapper;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{opus, AccessUnit, Codec};

/// Largest file accepted: the whole file is held in memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Frame duration assumed for a video track whose frame rate cannot be read (30 fps).
const FALLBACK_VIDEO_FRAME_90K: u64 = 3_000;

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
    pub async fn load(path: impl AsRef<Path>) -> Result<std::sync::Arc<MediaFile>, MediaFileError> {
        let path = path.as_ref().to_owned();
        let read_error = |path: &Path, source| MediaFileError::Read {
            path: path.to_owned(),
            source,
        };
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|e| read_error(&path, e))?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(MediaFileError::TooLarge { path, len });
        }
        let ts = tokio::fs::read(&path)
            .await
            .map_err(|e| read_error(&path, e))?;
        MediaFile::from_ts(&path, &ts).map(std::sync::Arc::new)
    }

    /// [`MediaFile::load`] on bytes already read; `path` only names the file in errors.
    pub fn from_ts(path: &Path, ts: &[u8]) -> Result<MediaFile, MediaFileError> {
        let mut demuxer = Demuxer::new();
        let mut events = Vec::new();
        demuxer.push(ts, &mut events);
        demuxer.finish(&mut events);
        let units: Vec<AccessUnit> = events
            .into_iter()
            .filter_map(|event| match event {
                DemuxEvent::AccessUnit(au) => Some(au),
                DemuxEvent::Tracks(_) => None,
            })
            .collect();
        if units.is_empty() {
            return Err(MediaFileError::NoMedia {
                path: path.to_owned(),
            });
        }
        let units = from_first_keyframe(path, units)?;
        let mut parameter_sets = ParameterSetCache::new();
        for au in units.iter().filter(|au| au.codec == Codec::H264) {
            parameter_sets.observe(&au.data);
        }
        let (units, loop_duration_90k) = lay_out(units);
        Ok(MediaFile {
            path: path.to_owned(),
            units,
            loop_duration_90k,
            profile_level_id: parameter_sets.sps_info().map(|sps| sps.profile_level_id()),
        })
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

/// A pass that starts on a P-frame cannot be decoded until the next keyframe, at every seam.
fn from_first_keyframe(
    path: &Path,
    units: Vec<AccessUnit>,
) -> Result<Vec<AccessUnit>, MediaFileError> {
    let is_video = |au: &AccessUnit| au.codec == Codec::H264;
    if !units.iter().any(is_video) {
        return Ok(units);
    }
    let first_keyframe = units
        .iter()
        .position(|au| is_video(au) && au.keyframe)
        .ok_or_else(|| MediaFileError::NoKeyframe {
            path: path.to_owned(),
        })?;
    Ok(units
        .into_iter()
        .enumerate()
        .filter(|(i, au)| *i >= first_keyframe || !is_video(au))
        .map(|(_, au)| au)
        .collect())
}

/// Units in decoding order with their offsets from the earliest time, and the loop length.
fn lay_out(units: Vec<AccessUnit>) -> (Vec<FileUnit>, u64) {
    // One unwrapper for the program: its tracks share the PCR's clock, and file order keeps
    // consecutive values close, so a wrap inside the file is followed.
    let mut unwrapper = PtsUnwrapper::default();
    let timed: Vec<(i64, i64, AccessUnit)> = units
        .into_iter()
        .map(|au| {
            let decode = unwrapper.unwrap(au.dts.unwrap_or(au.pts)).0;
            let pts = unwrapper.unwrap(au.pts).0;
            (decode, pts, au)
        })
        .collect();
    let origin = timed
        .iter()
        .map(|(decode, pts, _)| (*decode).min(*pts))
        .min()
        .expect("at least one unit");
    let first_pts = timed.iter().map(|(_, pts, _)| *pts).min().expect("units");
    let end_pts = [Codec::H264, Codec::Opus]
        .into_iter()
        .filter_map(|codec| track_end_pts(codec, &timed))
        .max()
        .expect("every unit is H.264 or Opus");
    // At least a tick, so passes cannot pile up at one instant.
    let loop_duration_90k = ((end_pts - first_pts) as u64).max(1);
    let mut laid_out: Vec<FileUnit> = timed
        .into_iter()
        .map(|(decode, pts, au)| FileUnit {
            decode_offset_90k: (decode - origin) as u64,
            pts_offset_90k: (pts - origin) as u64,
            codec: au.codec,
            keyframe: au.keyframe,
            data: au.data,
        })
        .collect();
    // Stable: units due at the same time keep their file order.
    laid_out.sort_by_key(|unit| unit.decode_offset_90k);
    (laid_out, loop_duration_90k)
}

/// When a track's last frame ends: its latest PTS plus that frame's duration.
fn track_end_pts(codec: Codec, timed: &[(i64, i64, AccessUnit)]) -> Option<i64> {
    let mut pts: Vec<(i64, &AccessUnit)> = timed
        .iter()
        .filter(|(_, _, au)| au.codec == codec)
        .map(|(_, pts, au)| (*pts, au))
        .collect();
    pts.sort_unstable_by_key(|(pts, _)| *pts);
    let &(last_pts, last) = pts.last()?;
    let exact = match codec {
        // An Opus packet says how long it is (RFC 6716 §3.1).
        Codec::Opus => opus::packet_duration_48k(&last.data)
            .ok()
            .map(opus::samples_48k_to_90k),
        Codec::H264 => None,
    };
    let frame_90k = exact
        .or_else(|| most_common_step(pts.iter().map(|(pts, _)| *pts)))
        .unwrap_or(FALLBACK_VIDEO_FRAME_90K);
    Some(last_pts + frame_90k as i64)
}

/// The most common positive step between consecutive sorted values: a track's frame duration
/// whatever its odd frames.
fn most_common_step(sorted: impl Iterator<Item = i64>) -> Option<u64> {
    let mut steps: Vec<u64> = Vec::new();
    let mut previous = None;
    for value in sorted {
        if let Some(previous) = previous.filter(|&p| value > p) {
            steps.push((value - previous) as u64);
        }
        previous = Some(value);
    }
    steps.sort_unstable();
    steps
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| run.len())
        .map(|run| run[0])
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
