//! The looping file source as a viewer sees it: registered in the registry, paced by the
//! (virtual) clock, every loop the file's access units again with timestamps moved by the
//! loop duration, across the PTS wrap, valid for ffmpeg, and gone cleanly on shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use livegate_media::registry::StreamRegistry;
use livegate_media::ring::ReadOutcome;
use livegate_media::time::{PtsUnwrapper, Ticks90k};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec, Pts90k, StreamKey, Track};
use livegate_pipeline::file_source::{FileSource, FileSourceError, FileSourceSpec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How late a unit may be written: tokio's timer rounds a deadline up to its next millisecond.
const MAX_LATE_90K: i64 = 2 * 90;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn spec(name: &str, fixture_name: &str) -> FileSourceSpec {
    FileSourceSpec {
        key: StreamKey::parse(name).unwrap(),
        path: fixture(fixture_name),
    }
}

fn demux(ts: &[u8]) -> (Vec<Track>, Vec<AccessUnit>) {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(ts, &mut events);
    demuxer.finish(&mut events);
    let units = events
        .into_iter()
        .filter_map(|event| match event {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        })
        .collect();
    (demuxer.tracks().to_vec(), units)
}

/// The PTS of every PES that starts in `chunk` (ISO/IEC 13818-1 §2.4.3.2 packet header,
/// §2.4.3.6 adaptation field length, §2.4.3.7 PES header), by PID: what a chunk carries the
/// moment it is written, before a demuxer would deliver an unbounded video PES.
fn pes_starts(chunk: &[u8], pids: &[u16]) -> Vec<(u16, Pts90k)> {
    assert_eq!(chunk.len() % 188, 0, "chunks are whole TS packets");
    chunk
        .chunks(188)
        .filter_map(|packet| {
            let unit_start = packet[1] & 0x40 != 0;
            let pid = u16::from_be_bytes([packet[1] & 0x1F, packet[2]]);
            if !unit_start || !pids.contains(&pid) {
                return None;
            }
            let payload = match packet[3] >> 4 & 0b11 {
                0b01 => &packet[4..],
                0b11 => &packet[5 + packet[4] as usize..],
                _ => return None,
            };
            assert_eq!(&payload[..3], &[0, 0, 1], "a PES starts here");
            assert_ne!(payload[7] & 0x80, 0, "every PES carries a PTS");
            let p = &payload[9..14];
            let pts = (u64::from(p[0] >> 1 & 0x07) << 30)
                | (u64::from(p[1]) << 22)
                | (u64::from(p[2] >> 1) << 15)
                | (u64::from(p[3]) << 7)
                | u64::from(p[4] >> 1);
            Some((pid, Pts90k::new(pts)))
        })
        .collect()
}

/// What a viewer received while the source played `loops` loops.
struct Played {
    source_tracks: Vec<Track>,
    loop_duration_90k: u64,
    /// Each chunk with the virtual time since play started at which the viewer got it.
    chunks: Vec<(Duration, Bytes)>,
}

impl Played {
    fn bytes(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect()
    }
}

/// Plays `fixture_name` as a viewer would watch it, until `loops` loops' worth of access units
/// have been written, then shuts the source down and checks it went cleanly.
async fn play(fixture_name: &str, loops: usize) -> Played {
    let registry = StreamRegistry::new();
    let shutdown = CancellationToken::new();
    let spec = spec("test", fixture_name);
    let source = FileSource::load(&spec).await.expect("fixture loads");
    let (source_tracks, loop_duration_90k) = (source.tracks().to_vec(), source.loop_duration_90k());
    let wanted = loops * source.access_units_per_loop();
    let task = tokio::spawn(source.run(registry.clone(), shutdown.clone()));

    let (stream, output) = registry
        .wait_for_output(&spec.key, Instant::now() + Duration::from_secs(1))
        .await
        .expect("the source registers its stream with an output");
    let start = Instant::now();
    let mut reader = output.reader_from_oldest();
    let pids: Vec<u16> = source_tracks.iter().map(|t| t.pid).collect();
    let mut chunks = Vec::new();
    let mut units_seen = 0;
    loop {
        match reader.read().await {
            ReadOutcome::Chunk(chunk) => {
                units_seen += pes_starts(&chunk, &pids).len();
                chunks.push((start.elapsed(), chunk));
                if units_seen >= wanted && !shutdown.is_cancelled() {
                    shutdown.cancel();
                }
            }
            ReadOutcome::Lagged { skipped_bytes } => panic!("viewer lagged by {skipped_bytes}"),
            ReadOutcome::Closed => break,
        }
    }
    task.await.unwrap().expect("the source stops cleanly");
    assert!(stream.is_closed(), "shutdown closes the stream");
    assert!(registry.get(&spec.key).is_none(), "and unregisters it");
    assert!(units_seen >= wanted);
    Played {
        source_tracks,
        loop_duration_90k,
        chunks,
    }
}

/// Checks, track by track, that the output's first `loops` loops are the file's access units
/// with PTS and DTS moved by `k` loop durations in loop `k`, payloads unchanged.
fn assert_loops_repeat_the_file(fixture_name: &str, played: &Played, loops: usize) {
    let (file_tracks, file_units) = demux(&std::fs::read(fixture(fixture_name)).unwrap());
    let (out_tracks, out_units) = demux(&played.bytes());
    assert_eq!(out_tracks, file_tracks);
    assert_eq!(played.source_tracks, file_tracks);
    for track in &file_tracks {
        let of_track = |units: &[AccessUnit]| -> Vec<AccessUnit> {
            units
                .iter()
                .filter(|au| au.pid == track.pid)
                .cloned()
                .collect()
        };
        let (file, out) = (of_track(&file_units), of_track(&out_units));
        assert!(out.len() >= loops * file.len(), "{track:?}: too few units");
        for (i, got) in out.iter().take(loops * file.len()).enumerate() {
            let (k, original) = ((i / file.len()) as u64, &file[i % file.len()]);
            let shift = k * played.loop_duration_90k;
            let expected = AccessUnit {
                pts: original.pts.wrapping_add(shift),
                dts: original.dts.map(|d| d.wrapping_add(shift)),
                ..original.clone()
            };
            assert_eq!(got, &expected, "{track:?} loop {k} unit {}", i % file.len());
        }
    }
}

/// Unwrapped PTS of one codec's units in output order.
fn unwrapped_pts(units: &[AccessUnit], codec: Codec) -> Vec<i64> {
    let mut unwrapper = PtsUnwrapper::default();
    units
        .iter()
        .filter(|au| au.codec == codec)
        .map(|au| unwrapper.unwrap(au.pts).0)
        .collect()
}

fn assert_strictly_increasing(values: &[i64], what: &str) {
    if let Some(i) = values.windows(2).position(|w| w[1] <= w[0]) {
        panic!(
            "{what} not strictly increasing at {i}: {:?}",
            &values[i..i + 2]
        );
    }
}

/// Runs ffmpeg's decoder over the output; any warning or error fails.
fn assert_ffmpeg_decodes_cleanly(ts: &[u8], name: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("livegate-pipeline-{name}.ts"));
    std::fs::write(&path, ts).unwrap();
    let output = match Command::new("ffmpeg")
        .args(["-nostdin", "-v", "warning", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "this test needs ffmpeg on PATH to judge the output ({e}); \
             install it (apt-get install ffmpeg) or run ./scripts/test.sh"
        ),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty() && output.stdout.is_empty(),
        "ffmpeg on {}: {}\n{stderr}",
        path.display(),
        output.status
    );
}

#[tokio::test(start_paused = true)]
async fn two_loops_repeat_the_file_paced_by_the_clock() {
    let played = play("h264-baseline-opus.ts", 2).await;
    // The fixture's longest track is its audio: 101 Opus packets of 20 ms (1 800 ticks),
    // starting 585 ticks before the video.
    assert_eq!(played.loop_duration_90k, 101 * 1_800);
    assert_loops_repeat_the_file("h264-baseline-opus.ts", &played, 2);

    let (_, out_units) = demux(&played.bytes());
    assert_strictly_increasing(&unwrapped_pts(&out_units, Codec::H264), "video PTS");
    assert_strictly_increasing(&unwrapped_pts(&out_units, Codec::Opus), "audio PTS");

    // Paced: each unit arrives when the clock reaches its PTS (here also its DTS), measured
    // from the first unit's; never before, and no later than the timer's rounding.
    let pids: Vec<u16> = played.source_tracks.iter().map(|t| t.pid).collect();
    let mut unwrapper = PtsUnwrapper::default();
    let mut first = None;
    let mut units = 0;
    for (at, chunk) in &played.chunks {
        let now_90k = Ticks90k::from_duration(*at).0;
        for (pid, pts) in pes_starts(chunk, &pids) {
            let pts = unwrapper.unwrap(pts).0;
            let due_90k = pts - *first.get_or_insert(pts);
            assert!(
                due_90k <= now_90k,
                "PID {pid:#x} PTS +{due_90k} written early, at {now_90k}"
            );
            assert!(
                now_90k <= due_90k + MAX_LATE_90K,
                "PID {pid:#x} PTS +{due_90k} written late, at {now_90k}"
            );
            units += 1;
        }
    }
    assert!(units >= 2 * (60 + 101));
    // Two loops took two loop durations of (virtual) real time, less the last frame.
    let (last_at, _) = played.chunks.last().unwrap();
    assert!(
        *last_at >= Duration::from_millis(2 * 2_020 - 40),
        "{last_at:?}"
    );

    assert_ffmpeg_decodes_cleanly(&played.bytes(), "baseline-two-loops");
}

#[tokio::test(start_paused = true)]
async fn timestamps_keep_increasing_across_the_pts_wrap() {
    let played = play("pts-wrap.ts", 2).await;
    assert_loops_repeat_the_file("pts-wrap.ts", &played, 2);
    let (_, out_units) = demux(&played.bytes());
    let video: Vec<Pts90k> = out_units
        .iter()
        .filter(|au| au.codec == Codec::H264)
        .map(|au| au.pts)
        .collect();
    // The fixture starts 1 s before the wrap, so the first loop wraps on the 33-bit clock.
    assert!(video.windows(2).any(|w| w[1] < w[0]), "the output wraps");
    assert_strictly_increasing(&unwrapped_pts(&out_units, Codec::H264), "video PTS");
    assert_strictly_increasing(&unwrapped_pts(&out_units, Codec::Opus), "audio PTS");
    assert_ffmpeg_decodes_cleanly(&played.bytes(), "pts-wrap-two-loops");
}

#[tokio::test(start_paused = true)]
async fn b_frames_audio_only_and_video_only_files_loop_too() {
    for (fixture_name, codecs) in [
        ("h264-bframes-opus.ts", &[Codec::H264, Codec::Opus][..]),
        ("audio-only.ts", &[Codec::Opus][..]),
        ("video-only.ts", &[Codec::H264][..]),
    ] {
        let played = play(fixture_name, 2).await;
        assert_loops_repeat_the_file(fixture_name, &played, 2);
        let (_, out_units) = demux(&played.bytes());
        for &codec in codecs {
            let mut pts = unwrapped_pts(&out_units, codec);
            // With B-frames PTS go back within a GOP; presented in order they never repeat.
            pts.sort_unstable();
            assert_strictly_increasing(&pts, &format!("{fixture_name} {codec:?} PTS"));
        }
        assert_ffmpeg_decodes_cleanly(&played.bytes(), fixture_name);
    }
}

#[tokio::test(start_paused = true)]
async fn a_live_stream_of_the_same_name_is_not_taken_over() {
    let registry = StreamRegistry::new();
    let spec = spec("taken", "audio-only.ts");
    let publisher = registry.create(spec.key.clone()).unwrap();
    let source = FileSource::load(&spec).await.unwrap();
    let err = source
        .run(registry.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, FileSourceError::Register { .. }), "{err}");
    assert!(
        !publisher.is_closed(),
        "the publisher's stream is left alone"
    );
}

#[tokio::test(start_paused = true)]
async fn the_source_stops_when_somebody_closes_its_stream() {
    let registry = StreamRegistry::new();
    let spec = spec("closed", "audio-only.ts");
    let source = FileSource::load(&spec).await.unwrap();
    let task = tokio::spawn(source.run(registry.clone(), CancellationToken::new()));
    let (stream, _) = registry
        .wait_for_output(&spec.key, Instant::now() + Duration::from_secs(1))
        .await
        .unwrap();
    stream.close();
    // Without a cancellation the only way out is noticing the closed output.
    task.await
        .unwrap()
        .expect("a closed stream is a clean stop");
    assert!(registry.get(&spec.key).is_none());
}
