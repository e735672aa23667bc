use bytes::Bytes;
use livegate_media::time::Ticks90k;
use livegate_media::Pts90k;
use proptest::prelude::*;

use super::*;
use crate::looped_file::{lay_out_loop, most_common_step};
use livegate_media::time::PtsUnwrapper;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::Codec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn key(s: &str) -> StreamKey {
    StreamKey::parse(s).unwrap()
}

#[test]
fn specs_accept_lists_with_blanks_and_spaces() {
    assert_eq!(parse_specs("").unwrap(), vec![]);
    assert_eq!(parse_specs(" , ").unwrap(), vec![]);
    let specs = parse_specs(" cam-1 = /srv/a b.ts ,, x.y=rel/c=d.ts,").unwrap();
    assert_eq!(
        specs,
        vec![
            FileSourceSpec {
                key: key("cam-1"),
                path: PathBuf::from("/srv/a b.ts"),
            },
            // Only the first '=' separates: the rest is the path.
            FileSourceSpec {
                key: key("x.y"),
                path: PathBuf::from("rel/c=d.ts"),
            },
        ]
    );
}

#[test]
fn specs_refuse_bad_entries_naming_the_variable() {
    let refused = |list: &str| {
        let err = parse_specs(list).unwrap_err();
        assert!(err.to_string().starts_with("LIVE_AI_TEST_STREAM"), "{err}");
        err
    };
    assert!(matches!(
        refused("a.ts"),
        FileSourceError::NotNameEqualsPath { entry } if entry == "a.ts"
    ));
    assert!(matches!(
        refused("=a.ts"),
        FileSourceError::BadStreamKey {
            source: StreamKeyError::Empty,
            ..
        }
    ));
    assert!(matches!(
        refused("a/b=a.ts"),
        FileSourceError::BadStreamKey {
            source: StreamKeyError::BadChar('/'),
            ..
        }
    ));
    assert!(matches!(
        refused("..=a.ts"),
        FileSourceError::BadStreamKey {
            source: StreamKeyError::LeadingDot,
            ..
        }
    ));
    assert!(matches!(refused("a= "), FileSourceError::EmptyPath { .. }));
    assert!(matches!(
        refused("a=x.ts, b=y.ts, a=z.ts"),
        FileSourceError::DuplicateStream(k) if k == key("a")
    ));
}

#[tokio::test]
async fn load_names_the_variable_and_the_missing_file() {
    let spec = FileSourceSpec {
        key: key("a"),
        path: PathBuf::from("/nonexistent/livegate-test.ts"),
    };
    let err = FileSource::load(&spec).await.unwrap_err();
    assert!(matches!(err, FileSourceError::Read { .. }));
    assert_eq!(
        err.to_string(),
        "LIVE_AI_TEST_STREAM: cannot read /nonexistent/livegate-test.ts"
    );
}

#[test]
fn bytes_that_are_not_mpeg_ts_are_refused() {
    let err = FileSource::from_ts(key("a"), Path::new("x.ts"), &[0x42; 188 * 20]).unwrap_err();
    assert!(matches!(err, FileSourceError::NoMedia { .. }), "{err}");
}

#[test]
fn a_file_cut_mid_gop_starts_its_loop_on_the_keyframe() {
    let ts = std::fs::read(fixture("h264-baseline-opus.ts")).unwrap();
    // About a quarter in: inside the first 1 s GOP, past its IDR.
    let cut = &ts[(ts.len() / 4 / 188) * 188..];
    let mut all = Vec::new();
    let mut demuxer = Demuxer::new();
    demuxer.push(cut, &mut all);
    demuxer.finish(&mut all);
    let video: Vec<&AccessUnit> = all
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) if au.codec == Codec::H264 => Some(au),
            _ => None,
        })
        .collect();
    let leading = video.iter().take_while(|au| !au.keyframe).count();
    assert!(leading > 0, "the cut should land mid-GOP");

    let source = FileSource::from_ts(key("a"), Path::new("cut.ts"), cut).unwrap();
    let played: Vec<&AccessUnit> = source
        .units
        .iter()
        .map(|u| &u.au)
        .filter(|au| au.codec == Codec::H264)
        .collect();
    assert!(played[0].keyframe);
    assert_eq!(played.len(), video.len() - leading);
}

#[test]
fn most_common_step_ignores_odd_frames_and_repeats() {
    assert_eq!(
        most_common_step([0, 3_000, 6_000, 6_000, 7_000, 10_000].into_iter()),
        Some(3_000)
    );
    assert_eq!(most_common_step([5].into_iter()), None);
}

/// A synthetic program: 30 fps video with B-frame-like PTS ≠ DTS offsets and 20 ms Opus.
fn synthetic_units(first_pts: u64, video_frames: usize, audio_packets: usize) -> Vec<AccessUnit> {
    let mut units = Vec::new();
    for i in 0..video_frames.max(audio_packets) {
        if i < video_frames {
            let dts = Pts90k::new(first_pts + i as u64 * 3_000);
            units.push(AccessUnit {
                pid: 0x100,
                codec: Codec::H264,
                pts: dts.wrapping_add(6_000),
                dts: Some(dts),
                keyframe: i == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
            });
        }
        if i < audio_packets {
            units.push(AccessUnit {
                pid: 0x101,
                codec: Codec::Opus,
                pts: Pts90k::new(first_pts + i as u64 * 1_800),
                dts: None,
                keyframe: true,
                // TOC 0xFC: one 20 ms CELT frame.
                data: Bytes::from_static(&[0xFC, 0xFF, 0xFE]),
            });
        }
    }
    units
}

fn synthetic_tracks() -> Vec<Track> {
    vec![
        Track {
            pid: 0x100,
            codec: Codec::H264,
            channels: None,
        },
        Track {
            pid: 0x101,
            codec: Codec::Opus,
            channels: Some(2),
        },
    ]
}

proptest! {
    /// Across loops, wherever the file starts on the 33-bit clock: decoding times never go
    /// back, each track's PTS strictly increase (unwrapped), and unit `i` of loop `k + 1` is
    /// unit `i` of loop `k` moved by exactly the loop duration, due that much later.
    #[test]
    fn loops_continue_every_timestamp_across_the_wrap(
        first_pts in prop_oneof![0..PTS_WRAP, (PTS_WRAP - 400_000)..PTS_WRAP],
        video_frames in 1usize..40,
        audio_packets in 1usize..60,
    ) {
        let tracks = synthetic_tracks();
        let (units, loop_duration_90k) =
            lay_out_loop(&tracks, synthetic_units(first_pts, video_frames, audio_packets));
        let video_span = video_frames as u64 * 3_000;
        let audio_span = audio_packets as u64 * 1_800;
        // The loop spans from the earliest PTS (the audio's) to the later track end.
        prop_assert_eq!(loop_duration_90k, (video_span + 6_000).max(audio_span));
        let n = units.len();
        let source = FileSource {
            key: key("p"),
            path: PathBuf::from("p.ts"),
            tracks,
            units,
            loop_duration_90k,
        };
        let played: Vec<(u64, AccessUnit)> = source.schedule().take(3 * n).collect();

        let mut last_due = 0;
        let mut unwrappers = [PtsUnwrapper::default(), PtsUnwrapper::default()];
        let mut last_pts = [None::<Ticks90k>; 2];
        for (i, (due, au)) in played.iter().enumerate() {
            prop_assert!(*due >= last_due);
            last_due = *due;
            let track = usize::from(au.codec == Codec::Opus);
            let pts = unwrappers[track].unwrap(au.pts);
            prop_assert!(last_pts[track].is_none_or(|last| pts > last), "unit {i}");
            last_pts[track] = Some(pts);
            if i >= n {
                let (earlier_due, earlier) = &played[i - n];
                prop_assert_eq!(*due, earlier_due + loop_duration_90k);
                prop_assert_eq!(au.pts, earlier.pts.wrapping_add(loop_duration_90k));
                prop_assert_eq!(au.dts, earlier.dts.map(|d| d.wrapping_add(loop_duration_90k)));
                prop_assert_eq!(&au.data, &earlier.data);
            }
        }
    }

    /// Rounding up to the nanosecond never moves a unit before its tick, nor past the next.
    #[test]
    fn durations_round_up_within_one_tick(ticks in 0u64..(1 << 50)) {
        let duration = duration_of_90k(ticks);
        prop_assert_eq!(Ticks90k::from_duration(duration), Ticks90k(ticks as i64));
        prop_assert!(
            ticks == 0
                || Ticks90k::from_duration(duration - Duration::from_nanos(1)).0 < ticks as i64
        );
    }
}
