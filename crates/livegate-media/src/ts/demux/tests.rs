//! The demuxer against the ffmpeg-made fixtures (scripts/make-fixtures.sh). Expected values come
//! from ffprobe, as each test says; ffprobe reports Opus packets one by one, as we do.

use proptest::prelude::*;

use super::*;
use crate::access_unit::{Codec, Pts90k};

/// A fixture's events and counters, fed in one piece.
fn demux_all(data: &[u8]) -> (Vec<DemuxEvent>, DemuxStats) {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(data, &mut events);
    demuxer.finish(&mut events);
    (events, demuxer.stats().clone())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn units(events: &[DemuxEvent], codec: Codec) -> Vec<&AccessUnit> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) if au.codec == codec => Some(au),
            _ => None,
        })
        .collect()
}

fn track_lists(events: &[DemuxEvent]) -> Vec<&Vec<Track>> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::Tracks(tracks) => Some(tracks),
            _ => None,
        })
        .collect()
}

const VIDEO: Track = Track {
    pid: 0x100,
    codec: Codec::H264,
    channels: None,
};
const AUDIO: Track = Track {
    pid: 0x101,
    codec: Codec::Opus,
    channels: Some(2),
};

/// Start of a TS packet of `pid`, with payload_unit_start_indicator or not.
fn is_packet_of(packet: &[u8], pid: u16, unit_start: bool) -> bool {
    (u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])) == pid
        && (packet[1] & 0x40 != 0) == unit_start
}

#[test]
fn fixtures_demux_to_their_tracks_and_as_many_units_as_ffprobe_counts() {
    // Units: `ffprobe -count_packets -show_entries stream=nb_read_packets`.
    let audio_only = Track {
        pid: 0x100,
        ..AUDIO
    };
    for (name, tracks, video, audio) in [
        ("h264-baseline-opus.ts", vec![VIDEO, AUDIO], 60, 101),
        ("h264-high-opus.ts", vec![VIDEO, AUDIO], 60, 101),
        ("h264-bframes-opus.ts", vec![VIDEO, AUDIO], 60, 101),
        ("video-only.ts", vec![VIDEO], 60, 0),
        ("audio-only.ts", vec![audio_only], 0, 101),
        ("pts-wrap.ts", vec![VIDEO, AUDIO], 150, 251),
    ] {
        let (events, stats) = demux_all(&fixture(name));
        assert_eq!(events[0], DemuxEvent::Tracks(tracks), "{name}");
        assert_eq!(
            track_lists(&events).len(),
            1,
            "{name}: PSI repeats are not changes"
        );
        assert_eq!(units(&events, Codec::H264).len(), video, "{name}");
        assert_eq!(units(&events, Codec::Opus).len(), audio, "{name}");
        let clean = DemuxStats {
            access_units: (video + audio) as u64,
            ..DemuxStats::default()
        };
        assert_eq!(stats, clean, "{name}");
    }
}

#[test]
fn units_match_ffprobe_sizes_timestamps_and_keyframes() {
    // `ffprobe -show_packets -show_entries packet=stream_index,pts,dts,size,flags`.
    let (events, _) = demux_all(&fixture("h264-baseline-opus.ts"));
    let video = units(&events, Codec::H264);
    let audio = units(&events, Codec::Opus);
    let sizes = |units: &[&AccessUnit]| units.iter().map(|u| u.data.len()).sum::<usize>();
    assert_eq!((sizes(&video), sizes(&audio)), (41_658, 10_637));
    let first = |units: &[&AccessUnit]| -> Vec<(u64, usize)> {
        units[..3]
            .iter()
            .map(|u| (u.pts.ticks(), u.data.len()))
            .collect()
    };
    assert_eq!(
        first(&video),
        [(126_585, 3_004), (129_585, 572), (132_585, 879)]
    );
    assert_eq!(first(&audio), [(126_000, 84), (127_800, 71), (129_600, 75)]);
    assert!(video[0].data.starts_with(&[0, 0, 0, 1]));
    // 1 s GOPs at 30 fps.
    let keyframes: Vec<usize> = (0..video.len()).filter(|&i| video[i].keyframe).collect();
    assert_eq!(keyframes, [0, 30]);
    assert!(audio.iter().all(|au| au.keyframe));
    assert!(video.iter().chain(&audio).all(|au| au.dts.is_none()));

    let (events, _) = demux_all(&fixture("h264-bframes-opus.ts"));
    let video = units(&events, Codec::H264);
    let stamps: Vec<(Pts90k, Option<Pts90k>)> = video[..2].iter().map(|u| (u.pts, u.dts)).collect();
    let at = Pts90k::new;
    assert_eq!(
        stamps,
        [
            (at(132_000), Some(at(126_000))),
            (at(141_000), Some(at(129_000)))
        ]
    );
    let keyframes: Vec<usize> = (0..video.len()).filter(|&i| video[i].keyframe).collect();
    assert_eq!(keyframes, [0, 30]);
}

#[test]
fn pts_wrap_fixture_keeps_raw_33_bit_timestamps() {
    // ffprobe shows them unwrapped: first video -90000, first audio -90585.
    let (events, _) = demux_all(&fixture("pts-wrap.ts"));
    let video = units(&events, Codec::H264);
    let audio = units(&events, Codec::Opus);
    assert_eq!(video[0].pts, Pts90k::new(8_589_844_592));
    assert_eq!(video[1].pts, Pts90k::new(8_589_847_592));
    assert_eq!(audio[0].pts, Pts90k::new(8_589_844_007));
    // Every unit follows the previous one by its duration, across the wrap: 30 fps video,
    // 20 ms Opus packets (most of them split out of multi-packet PES).
    for (units, step_90k) in [(&video, 3_000), (&audio, 1_800)] {
        for pair in units.windows(2) {
            let step = pair[1].pts.ticks().wrapping_sub(pair[0].pts.ticks()) % crate::PTS_WRAP;
            assert_eq!(step, step_90k);
        }
    }
    assert!(video.last().unwrap().pts.ticks() < 400_000, "wrapped");
    let keyframes: Vec<usize> = (0..video.len()).filter(|&i| video[i].keyframe).collect();
    assert_eq!(keyframes, [0, 30, 60, 90, 120]);
}

#[test]
fn joining_mid_packet_resyncs_and_delivers_the_tail_of_the_stream() {
    let data = fixture("h264-baseline-opus.ts");
    let (all, _) = demux_all(&data);
    for skip in [1usize, 100, 187, 5_000, 20_001] {
        let (events, stats) = demux_all(&data[skip..]);
        assert!(matches!(events[0], DemuxEvent::Tracks(_)), "skip {skip}");
        // A late joiner gets exactly the tail of the stream: nothing damaged, no PES that
        // started before it joined, nothing out of order.
        let tail: Vec<_> = events[1..].iter().collect();
        let want: Vec<_> = all[all.len() - tail.len()..].iter().collect();
        assert!(tail.len() > 100, "skip {skip}: {} events", tail.len());
        assert_eq!(tail, want, "skip {skip}");
        assert_eq!(
            stats.skipped_bytes as usize,
            188 - skip % 188,
            "skip {skip}"
        );
        assert_eq!(
            stats.resyncs, 0,
            "skip {skip}: sync was never lost, only not yet found"
        );
    }
}

#[test]
fn lost_bytes_resync_and_lose_only_the_units_they_touched() {
    let data = fixture("video-only.ts");
    let (clean, _) = demux_all(&data);
    let clean_video = units(&clean, Codec::H264);
    // Cut 50 bytes out of the middle of packet 150.
    let at = 150 * 188 + 60;
    let damaged = [&data[..at], &data[at + 50..]].concat();
    let (events, stats) = demux_all(&damaged);
    let video = units(&events, Codec::H264);
    assert_eq!(stats.resyncs, 1);
    assert!(stats.continuity_errors >= 1, "{stats:?}");
    assert_eq!(video.len(), clean_video.len() - 1, "{stats:?}");
    assert!(video.iter().all(|au| clean_video.contains(au)));
}

#[test]
fn a_flipped_continuity_counter_loses_only_the_damaged_unit() {
    let mut data = fixture("video-only.ts");
    let (clean, _) = demux_all(&data);
    let clean_video = units(&clean, Codec::H264);
    // A video packet in the middle of a PES gets a counter that does not follow.
    let index = (100..data.len() / 188)
        .find(|&i| is_packet_of(&data[i * 188..], 0x100, false))
        .unwrap();
    data[index * 188 + 3] ^= 0x05;
    let (events, stats) = demux_all(&data);
    let video = units(&events, Codec::H264);
    assert_eq!(
        stats.continuity_errors, 2,
        "the bad counter and the next one"
    );
    assert_eq!(stats.dropped_pes, 1);
    assert_eq!(video.len(), clean_video.len() - 1);
    let lost: Vec<_> = clean_video
        .iter()
        .filter(|au| !video.contains(au))
        .collect();
    assert_eq!(lost.len(), 1);
    // The packet belongs to the PES that started last before it.
    let pes_start = (0..index)
        .rev()
        .find(|&i| is_packet_of(&data[i * 188..], 0x100, true))
        .unwrap();
    let pes_index = (0..=pes_start)
        .filter(|&i| is_packet_of(&data[i * 188..], 0x100, true))
        .count()
        - 1;
    assert_eq!(lost[0], &clean_video[pes_index]);
}

#[test]
fn a_restarted_muxer_with_other_streams_is_a_pmt_change() {
    // An H.264 + Opus stream, then the same muxer restarted on an Opus-only stream whose PMT
    // has the same version number (0) and puts Opus on the PID video had.
    let first = fixture("h264-baseline-opus.ts");
    let second = fixture("audio-only.ts");
    let (events, stats) = demux_all(&[first, second].concat());
    let audio_only = Track {
        pid: 0x100,
        ..AUDIO
    };
    assert_eq!(
        track_lists(&events),
        [&vec![VIDEO, AUDIO], &vec![audio_only]]
    );
    // The last video unit is delivered before the change, nothing is lost on either side.
    let change = events
        .iter()
        .rposition(|e| matches!(e, DemuxEvent::Tracks(_)))
        .unwrap();
    assert!(units(&events[..change], Codec::H264).len() == 60);
    assert!(units(&events[change..], Codec::H264).is_empty());
    assert_eq!(units(&events[change..], Codec::Opus).len(), 101);
    assert!(units(&events[change..], Codec::Opus)
        .iter()
        .all(|au| au.pid == 0x100));
    assert_eq!(
        (stats.dropped_pes, stats.continuity_errors),
        (0, 0),
        "{stats:?}"
    );
}

#[test]
fn a_splice_flagged_by_discontinuity_indicator_loses_nothing() {
    let clip = fixture("video-only.ts");
    let (once, _) = demux_all(&clip);
    let per_clip = units(&once, Codec::H264).len();
    // Unflagged, the second clip's counters restart, which counts as a continuity error. The
    // first clip's last unit is not lost: it ended at its own stuffed last packet.
    let (events, stats) = demux_all(&[clip.clone(), clip.clone()].concat());
    assert_eq!(units(&events, Codec::H264).len(), 2 * per_clip);
    assert_eq!((stats.continuity_errors, stats.dropped_pes), (1, 0));
    // Flagged, as a splicer does on the first packet after the splice (which ffmpeg gives an
    // adaptation field for the PCR).
    let mut flagged = clip.clone();
    let first_video = (0..flagged.len() / 188)
        .find(|&i| is_packet_of(&flagged[i * 188..], 0x100, true))
        .unwrap();
    let packet = &mut flagged[first_video * 188..];
    assert!(packet[3] & 0x20 != 0 && packet[4] > 0);
    packet[5] |= 0x80;
    let (events, stats) = demux_all(&[clip, flagged].concat());
    assert_eq!(units(&events, Codec::H264).len(), 2 * per_clip);
    assert_eq!(
        track_lists(&events).len(),
        1,
        "identical PMTs are not a change"
    );
    assert_eq!(
        (
            stats.discontinuities,
            stats.continuity_errors,
            stats.dropped_pes
        ),
        (1, 0, 0)
    );
}

/// Feeds `data` in chunks of the given sizes, cycling through them.
fn demux_chunked(data: &[u8], sizes: &[usize]) -> Vec<DemuxEvent> {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        demuxer.push(chunk, &mut events);
        rest = tail;
    }
    demuxer.finish(&mut events);
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunking_yields_the_same_events(
        name in prop::sample::select(vec!["h264-bframes-opus.ts", "pts-wrap.ts"]),
        sizes in prop::collection::vec(1usize..3_000, 1..40),
    ) {
        let data = fixture(name);
        let (want, _) = demux_all(&data);
        prop_assert_eq!(demux_chunked(&data, &sizes), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary bytes, and fixtures with bytes overwritten, cut out or repeated: no panic, and
    /// whatever comes out keeps the access-unit contract.
    #[test]
    fn demux_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..6_000),
        overwrites in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..300),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 1usize..400), 0..4),
        sizes in prop::collection::vec(1usize..2_000, 1..8),
        restart_on_other_streams in any::<bool>(),
    ) {
        // Random bytes do not hold a PAT and a PMT with valid CRCs, so nothing comes out.
        let (events, _) = demux_all(&bytes);
        prop_assert!(events.is_empty(), "{:?}", events);

        let mut data = fixture("h264-baseline-opus.ts");
        if restart_on_other_streams {
            data.extend_from_slice(&fixture("audio-only.ts"));
        }
        for (at, value) in overwrites {
            let at = at.index(data.len());
            data[at] = value;
        }
        for (at, len) in cuts {
            let at = at.index(data.len());
            let end = (at + len).min(data.len());
            if at % 2 == 0 {
                data.drain(at..end);
            } else {
                let repeated = data[at..end].to_vec();
                data.splice(at..at, repeated);
            }
        }
        let events = demux_chunked(&data, &sizes);
        let mut tracks = Vec::new();
        for event in events {
            match event {
                DemuxEvent::AccessUnit(au) => {
                    prop_assert!(!au.data.is_empty());
                    prop_assert!(au.data.len() <= MAX_VIDEO_PES_BYTES);
                    prop_assert!(au.dts != Some(au.pts));
                    // A unit belongs to a track of the last list announced.
                    prop_assert!(tracks.iter().any(|t: &Track| t.pid == au.pid && t.codec == au.codec));
                }
                DemuxEvent::Tracks(list) => {
                    prop_assert!(list.len() <= MAX_TRACKS);
                    tracks = list;
                }
            }
        }
    }
}
