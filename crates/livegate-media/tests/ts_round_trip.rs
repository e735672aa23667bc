//! Demux → mux → demux round trips: every fixture and generated access units survive the
//! muxer unchanged (but for an access unit delimiter it may add), and ffmpeg reads what the
//! muxer writes without a warning.
//!
//! The ffmpeg checks need `ffmpeg` and `ffprobe` on PATH (CI installs them); without them
//! these tests fail, they never pass silently.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use bytes::{Bytes, BytesMut};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::ts::mux::Muxer;
use livegate_media::{AccessUnit, Codec, Pts90k, Track, PTS_WRAP};
use proptest::prelude::*;

/// What the muxer prepends to an H.264 access unit that lacks a delimiter.
const ACCESS_UNIT_DELIMITER: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x09, 0xF0];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Demuxes a whole stream, fed in odd-sized chunks so that packet boundaries fall anywhere.
fn demux(stream: &[u8]) -> (Vec<Track>, Vec<AccessUnit>) {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    for chunk in stream.chunks(1_000) {
        demuxer.push(chunk, &mut events);
    }
    demuxer.finish(&mut events);
    let mut tracks = None;
    let mut units = Vec::new();
    for event in events {
        match event {
            DemuxEvent::Tracks(t) => tracks = Some(t),
            DemuxEvent::AccessUnit(au) => units.push(au),
        }
    }
    (tracks.expect("demuxer announced tracks"), units)
}

fn mux(tracks: &[Track], units: &[AccessUnit]) -> Bytes {
    let mut muxer = Muxer::new(tracks).expect("tracks are muxable");
    let mut out = BytesMut::new();
    for au in units {
        muxer.write(au, &mut out).expect("access unit is muxable");
    }
    out.freeze()
}

/// The fields a round trip must keep, with DTS normalised to "only when it differs" and the
/// muxer's delimiter taken off again when the original had none.
#[derive(Debug, PartialEq, Eq)]
struct Kept {
    codec: Codec,
    pts: Pts90k,
    dts: Option<Pts90k>,
    keyframe: bool,
    data: Bytes,
}

fn kept(au: &AccessUnit, original: Option<&AccessUnit>) -> Kept {
    let mut data = au.data.clone();
    let added_aud = au.codec == Codec::H264
        && original.is_some_and(|o| !o.data.starts_with(&ACCESS_UNIT_DELIMITER[..5]))
        && data.starts_with(&ACCESS_UNIT_DELIMITER);
    if added_aud {
        data = data.slice(ACCESS_UNIT_DELIMITER.len()..);
    }
    Kept {
        codec: au.codec,
        pts: au.pts,
        dts: au.dts.filter(|&dts| dts != au.pts),
        keyframe: au.keyframe,
        data,
    }
}

/// Access units by PID, in order: the muxer writes one PES per unit where ffmpeg grouped
/// Opus packets, so only the order within a PID is comparable.
fn by_pid(units: &[AccessUnit]) -> BTreeMap<u16, Vec<&AccessUnit>> {
    let mut map: BTreeMap<u16, Vec<&AccessUnit>> = BTreeMap::new();
    for au in units {
        map.entry(au.pid).or_default().push(au);
    }
    map
}

fn assert_units_survive(original: &[AccessUnit], remuxed: &[AccessUnit], what: &str) {
    let original = by_pid(original);
    let remuxed = by_pid(remuxed);
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        remuxed.keys().collect::<Vec<_>>(),
        "{what}: PIDs"
    );
    for (pid, before) in &original {
        let after = &remuxed[pid];
        assert_eq!(
            before.len(),
            after.len(),
            "{what}: unit count on PID {pid:#x}"
        );
        for (i, (b, a)) in before.iter().zip(after).enumerate() {
            assert_eq!(
                kept(a, Some(b)),
                kept(b, None),
                "{what}: unit {i} on PID {pid:#x}"
            );
        }
    }
}

/// Runs an ffmpeg tool, failing loudly when it is not installed.
fn run_tool(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{tool}` ({e}): these tests need ffmpeg and ffprobe on PATH \
             (Debian: apt-get install ffmpeg)"
        )
    })
}

/// Writes `stream` where ffmpeg can read it; the file is named after the test case so
/// parallel tests do not collide.
fn temp_file(name: &str, stream: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "livegate-ts-round-trip-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, stream).expect("writing a temp file");
    path
}

/// Decodes the stream with ffmpeg at warning level and asserts it said nothing; checks
/// ffprobe's codec names and channel counts against `tracks`.
fn assert_ffmpeg_accepts(name: &str, stream: &[u8], tracks: &[Track]) {
    let path = temp_file(name, stream);
    let path_str = path.to_str().expect("UTF-8 temp path");
    let decode = run_tool(
        "ffmpeg",
        &[
            "-nostdin", "-v", "warning", "-i", path_str, "-f", "null", "-",
        ],
    );
    let probe = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=id,codec_name,channels",
            "-of",
            "csv=p=0",
            path_str,
        ],
    );
    std::fs::remove_file(&path).ok();
    let warnings = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && warnings.trim().is_empty(),
        "{name}: ffmpeg complained about the muxed stream: {warnings}"
    );
    // ffprobe lists each stream twice, under its program and on its own.
    let mut streams: Vec<String> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    streams.sort();
    streams.dedup();
    let mut expected: Vec<String> = tracks
        .iter()
        .map(|t| match t.codec {
            Codec::H264 => format!("h264,{:#x}", t.pid),
            Codec::Opus => format!("opus,{},{:#x}", t.channels.unwrap(), t.pid),
        })
        .collect();
    expected.sort();
    assert_eq!(streams, expected, "{name}: ffprobe's streams");
}

fn fixture_round_trip(name: &str) {
    let (tracks, original) = demux(&fixture(name));
    assert!(!original.is_empty(), "{name}: fixture has access units");
    let muxed = mux(&tracks, &original);
    let (remuxed_tracks, remuxed) = demux(&muxed);
    assert_eq!(remuxed_tracks, tracks, "{name}: tracks");
    assert_units_survive(&original, &remuxed, name);
    assert_ffmpeg_accepts(name, &muxed, &tracks);
}

#[test]
fn h264_baseline_opus() {
    fixture_round_trip("h264-baseline-opus.ts");
}

#[test]
fn h264_high_opus() {
    fixture_round_trip("h264-high-opus.ts");
}

#[test]
fn h264_bframes_opus() {
    fixture_round_trip("h264-bframes-opus.ts");
}

#[test]
fn video_only() {
    fixture_round_trip("video-only.ts");
}

#[test]
fn audio_only() {
    fixture_round_trip("audio-only.ts");
}

#[test]
fn pts_wrap() {
    fixture_round_trip("pts-wrap.ts");
}

/// An access unit that lost its delimiter upstream gets one, and ffmpeg is happy with it.
#[test]
fn h264_without_delimiters_gains_them() {
    let (tracks, original) = demux(&fixture("video-only.ts"));
    let stripped: Vec<AccessUnit> = original
        .iter()
        .map(|au| AccessUnit {
            data: au
                .data
                .strip_prefix(&ACCESS_UNIT_DELIMITER[..])
                .map(|rest| au.data.slice(au.data.len() - rest.len()..))
                .expect("ffmpeg writes AUDs"),
            ..au.clone()
        })
        .collect();
    let muxed = mux(&tracks, &stripped);
    let (_, remuxed) = demux(&muxed);
    assert!(remuxed
        .iter()
        .all(|au| au.data.starts_with(&ACCESS_UNIT_DELIMITER)));
    assert_units_survive(&stripped, &remuxed, "stripped AUDs");
    assert_ffmpeg_accepts("stripped-auds.ts", &muxed, &tracks);
}

const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// One generated unit: which track, payload size, time step, keyframe, and for video the
/// PTS - DTS offset of B-frame reordering.
#[derive(Debug, Clone)]
struct Step {
    video: bool,
    size: usize,
    step_90k: u64,
    keyframe: bool,
    pts_offset_90k: u64,
    with_aud: bool,
    filler: u8,
}

/// Payload sizes anywhere up to a few packets, and every size near the packet boundaries
/// that PES headers, delimiters, control headers and PCR fields shift around.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..3_000usize,
        (1..5usize, 0..40usize).prop_map(|(k, d)| k * 184 - 35 + d),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        any::<bool>(),
        size(),
        0..4_000u64,
        any::<bool>(),
        0..6_000u64,
        any::<bool>(),
        1..=255u8,
    )
        .prop_map(
            |(video, size, step_90k, keyframe, pts_offset_90k, with_aud, filler)| Step {
                video,
                size,
                step_90k,
                keyframe,
                pts_offset_90k,
                with_aud,
                filler,
            },
        )
}

/// Builds units the demuxer can recognise: H.264 as Annex B with an IDR (type 5) or non-IDR
/// (type 1) slice whose payload has no zero bytes (so no false start codes), Opus behind a
/// valid TOC byte (CELT 20 ms, one frame).
fn units(start_90k: u64, steps: &[Step], tracks: Tracks) -> Vec<AccessUnit> {
    let mut time_90k = start_90k;
    steps
        .iter()
        .map(|s| {
            time_90k += s.step_90k;
            let video = match tracks {
                Tracks::Video => true,
                Tracks::Audio => false,
                Tracks::Both => s.video,
            };
            if video {
                let mut data = Vec::with_capacity(s.size + 11);
                if s.with_aud {
                    data.extend_from_slice(&ACCESS_UNIT_DELIMITER);
                }
                data.extend_from_slice(&[0, 0, 0, 1, if s.keyframe { 0x65 } else { 0x41 }]);
                data.resize(data.len() + s.size, s.filler);
                AccessUnit {
                    pid: VIDEO_PID,
                    codec: Codec::H264,
                    pts: Pts90k::new(time_90k + s.pts_offset_90k),
                    dts: (s.pts_offset_90k > 0).then(|| Pts90k::new(time_90k)),
                    keyframe: s.keyframe,
                    data: data.into(),
                }
            } else {
                let mut data = vec![0xFC];
                data.resize(1 + s.size, s.filler);
                AccessUnit {
                    pid: AUDIO_PID,
                    codec: Codec::Opus,
                    pts: Pts90k::new(time_90k),
                    dts: None,
                    keyframe: true,
                    data: data.into(),
                }
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Tracks {
    Video,
    Audio,
    Both,
}

impl Tracks {
    fn list(self) -> Vec<Track> {
        let video = Track {
            pid: VIDEO_PID,
            codec: Codec::H264,
            channels: None,
        };
        let audio = Track {
            pid: AUDIO_PID,
            codec: Codec::Opus,
            channels: Some(2),
        };
        match self {
            Tracks::Video => vec![video],
            Tracks::Audio => vec![audio],
            Tracks::Both => vec![video, audio],
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_units_survive_mux_then_demux(
        start_90k in prop_oneof![0..PTS_WRAP, (PTS_WRAP - 20_000)..PTS_WRAP],
        tracks in prop_oneof![Just(Tracks::Video), Just(Tracks::Audio), Just(Tracks::Both)],
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let units = units(start_90k, &steps, tracks);
        let muxed = mux(&tracks.list(), &units);
        let (remuxed_tracks, remuxed) = demux(&muxed);
        prop_assert_eq!(remuxed_tracks, tracks.list());
        assert_units_survive(&units, &remuxed, "generated");
    }
}
