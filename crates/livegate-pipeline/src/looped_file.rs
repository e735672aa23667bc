//! An MPEG-TS file read once and laid out to be played in a loop: its tracks, its access
//! units in decoding order with their times into the loop, and how long a loop lasts.
//!
//! Shared by [`crate::file_source`] (a stream's output from a file) and the load tool's WHIP
//! publisher (a publisher's media from a file). It plays nothing itself.
//!
//! The loop duration is the longest track's span, last PTS − first PTS + its last frame's
//! duration, so no track repeats a timestamp at the seam; a shorter track leaves a gap there
//! rather than an overlap. Video before the first keyframe is dropped so every loop starts
//! decodable; the file must run on one clock and keep its tracks.

use std::path::{Path, PathBuf};

use livegate_media::time::PtsUnwrapper;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{opus, AccessUnit, Codec, Track};

/// Largest file accepted: the whole file is held in memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Frame duration assumed for a video track of a single picture (30 fps).
const FALLBACK_VIDEO_FRAME_90K: u64 = 3_000;

/// Why a file cannot be played in a loop.
#[derive(Debug, thiserror::Error)]
pub enum LoopedFileError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is {len} bytes, more than the {MAX_FILE_BYTES} accepted", .path.display())]
    TooLarge { path: PathBuf, len: u64 },
    /// No H.264 or Opus access units (or not MPEG-TS).
    #[error("{} holds no H.264 or Opus access units", .path.display())]
    NoMedia { path: PathBuf },
    /// An H.264 track without a keyframe to start a loop on.
    #[error("{} has H.264 video without a keyframe", .path.display())]
    NoKeyframe { path: PathBuf },
    /// The PMT changes the tracks after access units were read.
    #[error("{} changes its tracks mid-file", .path.display())]
    TracksChanged { path: PathBuf },
}

/// One access unit of the file and when it is due within a loop.
#[derive(Debug, Clone)]
pub struct LoopUnit {
    /// Decoding time after the loop's start (the file's earliest time).
    pub decode_offset_90k: u64,
    /// Presentation time after the loop's start.
    pub pts_offset_90k: u64,
    pub au: AccessUnit,
}

/// A file laid out for looping. Plain data.
#[derive(Debug)]
pub struct LoopedFile {
    tracks: Vec<Track>,
    units: Vec<LoopUnit>,
    loop_duration_90k: u64,
}

impl LoopedFile {
    /// Reads, demuxes and lays out `path`, refusing what cannot be looped.
    pub async fn read(path: &Path) -> Result<LoopedFile, LoopedFileError> {
        let read_error = |source| LoopedFileError::Read {
            path: path.to_owned(),
            source,
        };
        let len = tokio::fs::metadata(path).await.map_err(read_error)?.len();
        if len > MAX_FILE_BYTES {
            return Err(LoopedFileError::TooLarge {
                path: path.to_owned(),
                len,
            });
        }
        let ts = tokio::fs::read(path).await.map_err(read_error)?;
        LoopedFile::from_ts(path, &ts)
    }

    /// [`LoopedFile::read`] on bytes already read; `path` only names the file in errors.
    pub fn from_ts(path: &Path, ts: &[u8]) -> Result<LoopedFile, LoopedFileError> {
        let (tracks, units) = demux_all(path, ts)?;
        let units = drop_video_before_first_keyframe(path, units)?;
        let (units, loop_duration_90k) = lay_out_loop(&tracks, units);
        Ok(LoopedFile {
            tracks,
            units,
            loop_duration_90k,
        })
    }

    /// The tracks, as the file's PMT announces them.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The access units in decoding order (file order among equal times).
    pub fn units(&self) -> &[LoopUnit] {
        &self.units
    }

    /// How far each loop moves timestamps forward, and how long it lasts in real time.
    pub fn loop_duration_90k(&self) -> u64 {
        self.loop_duration_90k
    }

    /// Tracks, units and loop duration, to own.
    pub fn into_parts(self) -> (Vec<Track>, Vec<LoopUnit>, u64) {
        (self.tracks, self.units, self.loop_duration_90k)
    }
}

/// The file's tracks and access units, in file order.
fn demux_all(path: &Path, ts: &[u8]) -> Result<(Vec<Track>, Vec<AccessUnit>), LoopedFileError> {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(ts, &mut events);
    demuxer.finish(&mut events);
    let mut tracks = Vec::new();
    let mut units = Vec::new();
    for event in events {
        match event {
            DemuxEvent::Tracks(announced) if units.is_empty() => tracks = announced,
            DemuxEvent::Tracks(announced) if announced != tracks => {
                return Err(LoopedFileError::TracksChanged {
                    path: path.to_owned(),
                })
            }
            DemuxEvent::Tracks(_) => {}
            DemuxEvent::AccessUnit(au) => units.push(au),
        }
    }
    if units.is_empty() {
        return Err(LoopedFileError::NoMedia {
            path: path.to_owned(),
        });
    }
    Ok((tracks, units))
}

/// A loop that starts on a P-frame cannot be decoded until the next keyframe, at every seam.
fn drop_video_before_first_keyframe(
    path: &Path,
    mut units: Vec<AccessUnit>,
) -> Result<Vec<AccessUnit>, LoopedFileError> {
    let is_video = |au: &AccessUnit| au.codec == Codec::H264;
    if !units.iter().any(is_video) {
        return Ok(units);
    }
    let first_keyframe = units
        .iter()
        .position(|au| is_video(au) && au.keyframe)
        .ok_or_else(|| LoopedFileError::NoKeyframe {
            path: path.to_owned(),
        })?;
    let mut index = 0;
    units.retain(|au| {
        let keep = index >= first_keyframe || !is_video(au);
        index += 1;
        keep
    });
    Ok(units)
}

/// Puts the units in decoding order with their offsets into the loop, and measures the loop.
pub(crate) fn lay_out_loop(tracks: &[Track], units: Vec<AccessUnit>) -> (Vec<LoopUnit>, u64) {
    // One unwrapper for the whole program: its tracks share one clock (the PCR), and file
    // order keeps consecutive values close, so a wrap inside the file is followed.
    let mut unwrapper = PtsUnwrapper::default();
    let timed: Vec<(i64, i64, AccessUnit)> = units
        .into_iter()
        .map(|au| {
            let decode = unwrapper.unwrap(au.dts.unwrap_or(au.pts)).0;
            let pts = unwrapper.unwrap(au.pts).0;
            (decode, pts, au)
        })
        .collect();

    let first_pts = timed.iter().map(|(_, pts, _)| *pts).min().expect("units");
    let end_pts = tracks
        .iter()
        .filter_map(|track| track_end_pts(track, &timed))
        .max()
        .expect("every unit belongs to a track");
    // At least a tick, even for units without a duration, so loops cannot pile up at one
    // instant.
    let loop_duration_90k = ((end_pts - first_pts) as u64).max(1);

    // The earliest time of any kind, so both offsets are positive (a PTS is never before
    // its own DTS, but audio may start before the first video's DTS).
    let origin = timed
        .iter()
        .map(|(decode, pts, _)| (*decode).min(*pts))
        .min()
        .expect("units");
    let mut units: Vec<LoopUnit> = timed
        .into_iter()
        .map(|(decode, pts, au)| LoopUnit {
            decode_offset_90k: (decode - origin) as u64,
            pts_offset_90k: (pts - origin) as u64,
            au,
        })
        .collect();
    // Stable, so units due at the same time keep their file order.
    units.sort_by_key(|unit| unit.decode_offset_90k);
    (units, loop_duration_90k)
}

/// When the track's last frame ends: its latest PTS plus that frame's duration.
fn track_end_pts(track: &Track, timed: &[(i64, i64, AccessUnit)]) -> Option<i64> {
    let mut pts: Vec<(i64, &AccessUnit)> = timed
        .iter()
        .filter(|(_, _, au)| au.pid == track.pid)
        .map(|(_, pts, au)| (*pts, au))
        .collect();
    pts.sort_unstable_by_key(|(pts, _)| *pts);
    let &(last_pts, last) = pts.last()?;
    let exact = match track.codec {
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

/// The most common positive step between consecutive sorted values: the frame duration of a
/// track, whatever its odd frames.
pub(crate) fn most_common_step(sorted: impl Iterator<Item = i64>) -> Option<u64> {
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
