//! A stream whose output is an MPEG-TS file played in a loop, in real time: how ops check
//! playback before any publisher exists, and a steady source for smoke tests
//! (`LIVE_AI_TEST_STREAM=name=path.ts`).
//!
//! The file is read and demuxed once, at load. Each loop then re-muxes the same access units
//! with their timestamps moved forward by the loop duration, so a viewer sees one live stream
//! whose PTS keep increasing across loops and, modulo 2^33, across the PTS wrap
//! (ISO/IEC 13818-1 §2.4.3.7); the muxer, and so the continuity counters and PCR, run on
//! unbroken. Units are written in decoding order, each when the tokio clock reaches its
//! decoding time, so with B-frames a picture arrives its reorder delay before its PTS.
//!
//! The loop duration is the longest track's span, last PTS − first PTS + its last frame's
//! duration (all measured from the earliest first PTS), so no track repeats a timestamp at the
//! seam; a shorter track leaves a gap there rather than an overlap.
//!
//! It is not a general file player: the whole file is held in memory (at most
//! [`MAX_FILE_BYTES`]), it must run on one clock (a splice with a timestamp jump becomes a
//! pause), its tracks may not change mid-file, and video before the first keyframe is dropped
//! so every loop starts decodable. A loop that falls behind the clock (a stalled runtime) is
//! caught up in a burst, not skipped.
//!
//! ```no_run
//! use livegate_media::registry::StreamRegistry;
//! use livegate_pipeline::file_source::{parse_specs, FileSource};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn start() -> Result<(), livegate_pipeline::file_source::FileSourceError> {
//! let registry = StreamRegistry::new();
//! let shutdown = CancellationToken::new();
//! for spec in parse_specs("test=tests/fixtures/h264-baseline-opus.ts")? {
//!     let source = FileSource::load(&spec).await?;
//!     tokio::spawn(source.run(registry.clone(), shutdown.clone()));
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use livegate_media::registry::{RegistryError, Stream, StreamRegistry};
use livegate_media::ring::{RingBuffer, DEFAULT_CAPACITY_BYTES};
use livegate_media::ts::mux::{MuxError, Muxer};
use livegate_media::{AccessUnit, StreamKey, StreamKeyError, Track, PTS_WRAP};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::looped_file::MAX_FILE_BYTES;
use crate::looped_file::{LoopUnit, LoopedFile, LoopedFileError};

const TICKS_PER_SECOND: u64 = 90_000;

/// Why a `LIVE_AI_TEST_STREAM` spec or its file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    /// An entry of the list is not `name=path`.
    #[error("LIVE_AI_TEST_STREAM: {entry:?} is not name=path.ts")]
    NotNameEqualsPath { entry: String },
    /// An entry's name is not a valid stream key.
    #[error("LIVE_AI_TEST_STREAM: {entry:?} does not start with a valid stream name")]
    BadStreamKey {
        entry: String,
        #[source]
        source: StreamKeyError,
    },
    /// An entry has an empty path.
    #[error("LIVE_AI_TEST_STREAM: {entry:?} has no path after '='")]
    EmptyPath { entry: String },
    /// Two entries name the same stream.
    #[error("LIVE_AI_TEST_STREAM names stream {0} twice")]
    DuplicateStream(StreamKey),
    /// The file could not be read.
    #[error("LIVE_AI_TEST_STREAM: cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("LIVE_AI_TEST_STREAM: {} is {len} bytes, more than the {MAX_FILE_BYTES} accepted", .path.display())]
    TooLarge { path: PathBuf, len: u64 },
    /// The file holds no H.264 or Opus access units (or is not MPEG-TS).
    #[error("LIVE_AI_TEST_STREAM: {} holds no H.264 or Opus access units", .path.display())]
    NoMedia { path: PathBuf },
    /// The file's H.264 track has no keyframe to start a loop on.
    #[error("LIVE_AI_TEST_STREAM: {} has H.264 video without a keyframe", .path.display())]
    NoKeyframe { path: PathBuf },
    /// The file's PMT changes the tracks after access units were read.
    #[error("LIVE_AI_TEST_STREAM: {} changes its tracks mid-file", .path.display())]
    TracksChanged { path: PathBuf },
    /// The file's tracks or units cannot be muxed again.
    #[error("LIVE_AI_TEST_STREAM: cannot re-mux {}", .path.display())]
    Mux {
        path: PathBuf,
        #[source]
        source: MuxError,
    },
    /// The stream could not be registered (a live stream has its key).
    #[error("LIVE_AI_TEST_STREAM: cannot play {} as a stream", .path.display())]
    Register {
        path: PathBuf,
        #[source]
        source: RegistryError,
    },
}

impl From<LoopedFileError> for FileSourceError {
    fn from(error: LoopedFileError) -> FileSourceError {
        match error {
            LoopedFileError::Read { path, source } => FileSourceError::Read { path, source },
            LoopedFileError::TooLarge { path, len } => FileSourceError::TooLarge { path, len },
            LoopedFileError::NoMedia { path } => FileSourceError::NoMedia { path },
            LoopedFileError::NoKeyframe { path } => FileSourceError::NoKeyframe { path },
            LoopedFileError::TracksChanged { path } => FileSourceError::TracksChanged { path },
        }
    }
}

/// One entry of `LIVE_AI_TEST_STREAM`: play `path` as stream `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceSpec {
    pub key: StreamKey,
    pub path: PathBuf,
}

/// Parses `LIVE_AI_TEST_STREAM`: comma-separated `name=path.ts` entries (so a path cannot
/// contain a comma). Blank entries are ignored and an empty string means no test stream;
/// whitespace around names and paths is trimmed.
///
/// ```
/// use livegate_pipeline::file_source::parse_specs;
/// let specs = parse_specs("a=/srv/a.ts, b=b.ts")?;
/// assert_eq!((specs[1].key.as_str(), specs[1].path.to_str()), ("b", Some("b.ts")));
/// assert!(parse_specs("a=x.ts,a=y.ts").is_err());
/// # Ok::<(), livegate_pipeline::file_source::FileSourceError>(())
/// ```
pub fn parse_specs(list: &str) -> Result<Vec<FileSourceSpec>, FileSourceError> {
    let mut specs: Vec<FileSourceSpec> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, path)) = entry.split_once('=') else {
            return Err(FileSourceError::NotNameEqualsPath {
                entry: entry.to_owned(),
            });
        };
        let key =
            StreamKey::parse(name.trim()).map_err(|source| FileSourceError::BadStreamKey {
                entry: entry.to_owned(),
                source,
            })?;
        let path = path.trim();
        if path.is_empty() {
            return Err(FileSourceError::EmptyPath {
                entry: entry.to_owned(),
            });
        }
        if specs.iter().any(|spec| spec.key == key) {
            return Err(FileSourceError::DuplicateStream(key));
        }
        specs.push(FileSourceSpec {
            key,
            path: PathBuf::from(path),
        });
    }
    Ok(specs)
}

/// A demuxed MPEG-TS file, ready to be played in a loop as a stream's output.
///
/// Made by [`FileSource::load`], consumed by [`FileSource::run`], which owns the stream for as
/// long as it plays: it creates it, writes its only output buffer, and removes it (closing
/// the output, so viewers see the end) when it stops.
#[derive(Debug)]
pub struct FileSource {
    key: StreamKey,
    path: PathBuf,
    tracks: Vec<Track>,
    /// In decoding order.
    units: Vec<LoopUnit>,
    loop_duration_90k: u64,
}

impl FileSource {
    /// Reads and demuxes `spec.path` and checks that it can be played: the errors a bad
    /// `LIVE_AI_TEST_STREAM` should stop start-up with.
    pub async fn load(spec: &FileSourceSpec) -> Result<FileSource, FileSourceError> {
        let file = LoopedFile::read(&spec.path).await?;
        FileSource::from_file(spec.key.clone(), &spec.path, file)
    }

    /// [`FileSource::load`] on bytes already read; `path` only names the file in errors.
    #[cfg(test)]
    fn from_ts(key: StreamKey, path: &Path, ts: &[u8]) -> Result<FileSource, FileSourceError> {
        FileSource::from_file(key, path, LoopedFile::from_ts(path, ts)?)
    }

    fn from_file(
        key: StreamKey,
        path: &Path,
        file: LoopedFile,
    ) -> Result<FileSource, FileSourceError> {
        let (tracks, units, loop_duration_90k) = file.into_parts();
        let source = FileSource {
            key,
            path: path.to_owned(),
            tracks,
            units,
            loop_duration_90k,
        };
        // Mux one loop now, so that what cannot be muxed fails at load, not while playing.
        let mut muxer = source.muxer()?;
        let mut scratch = BytesMut::new();
        for unit in &source.units {
            muxer
                .write(&unit.au, &mut scratch)
                .map_err(|e| source.mux_error(e))?;
            scratch.clear();
        }
        Ok(source)
    }

    /// The stream it plays as.
    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    /// The tracks of the file, as its PMT announces them.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// How far each loop moves timestamps forward, and how long it lasts in real time.
    pub fn loop_duration_90k(&self) -> u64 {
        self.loop_duration_90k
    }

    /// Access units written per loop.
    pub fn access_units_per_loop(&self) -> usize {
        self.units.len()
    }

    /// Creates the stream in `registry`, installs its output buffer and plays the file into it
    /// in a loop, paced by the tokio clock, until `shutdown` is cancelled or somebody closes
    /// the stream. Then removes the stream, which closes its output; dropping the future does
    /// the same.
    ///
    /// Fails at once if a live stream already has the key.
    pub async fn run(
        self,
        registry: StreamRegistry,
        shutdown: CancellationToken,
    ) -> Result<(), FileSourceError> {
        let stream =
            registry
                .create(self.key.clone())
                .map_err(|source| FileSourceError::Register {
                    path: self.path.clone(),
                    source,
                })?;
        let _registration = Registration {
            registry,
            stream: stream.clone(),
        };
        let output = RingBuffer::new(DEFAULT_CAPACITY_BYTES);
        stream.set_output(output.clone());
        let mut muxer = self.muxer()?;
        tracing::info!(
            stream = %self.key,
            path = %self.path.display(),
            loop_ms = self.loop_duration_90k * 1_000 / TICKS_PER_SECOND,
            "playing a file in a loop"
        );

        let mut out = BytesMut::new();
        let start = Instant::now();
        let sleep = tokio::time::sleep_until(start);
        tokio::pin!(sleep);
        for (due_90k, au) in self.schedule() {
            let due = start + duration_of_90k(due_90k);
            if due > Instant::now() {
                sleep.as_mut().reset(due);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = &mut sleep => {}
                }
            } else if shutdown.is_cancelled() {
                break;
            } else {
                // Catching up never sleeps, so yield to the runtime's budget instead of
                // starving other tasks on this thread for a whole burst.
                tokio::task::consume_budget().await;
            }
            muxer.write(&au, &mut out).map_err(|e| self.mux_error(e))?;
            // `split` hands the written packets to the ring and keeps the spare capacity here.
            if output.write(out.split().freeze()).is_err() {
                tracing::info!(stream = %self.key, "stream closed; file source stops");
                return Ok(());
            }
        }
        tracing::info!(stream = %self.key, "file source stopped");
        Ok(())
    }

    /// The units of every loop, forever: decoding time since the start of play, and the unit
    /// with its timestamps moved forward by the loops before it.
    fn schedule(&self) -> impl Iterator<Item = (u64, AccessUnit)> + '_ {
        (0u64..).flat_map(move |loop_index| {
            let loop_start_90k = loop_index * self.loop_duration_90k;
            // Reduced mod 2^33 here, as `wrapping_add` would, so the product never overflows.
            let shift_90k = (loop_index % PTS_WRAP) * (self.loop_duration_90k % PTS_WRAP);
            let shift_90k = shift_90k % PTS_WRAP;
            self.units.iter().map(move |unit| {
                let au = AccessUnit {
                    pts: unit.au.pts.wrapping_add(shift_90k),
                    dts: unit.au.dts.map(|dts| dts.wrapping_add(shift_90k)),
                    ..unit.au.clone()
                };
                (loop_start_90k + unit.decode_offset_90k, au)
            })
        })
    }

    fn muxer(&self) -> Result<Muxer, FileSourceError> {
        Muxer::new(&self.tracks).map_err(|e| self.mux_error(e))
    }

    fn mux_error(&self, source: MuxError) -> FileSourceError {
        FileSourceError::Mux {
            path: self.path.clone(),
            source,
        }
    }
}

/// Removes the stream when the source stops, however it stops.
struct Registration {
    registry: StreamRegistry,
    stream: std::sync::Arc<Stream>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.stream);
    }
}

/// `ticks_90k` as a duration, rounded up so nothing is due before its time.
fn duration_of_90k(ticks_90k: u64) -> Duration {
    let nanos = (ticks_90k % TICKS_PER_SECOND * 1_000_000_000).div_ceil(TICKS_PER_SECOND);
    Duration::from_secs(ticks_90k / TICKS_PER_SECOND) + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests;
