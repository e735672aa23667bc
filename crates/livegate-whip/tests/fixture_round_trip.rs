//! A real stream through the whole ingest: the fixture's access units packetized as a WebRTC
//! publisher would send them, pushed through [`Ingest`] into a ring buffer, and the ring's
//! MPEG-TS demuxed back and judged by ffprobe and ffmpeg.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{nal_units_without_delimiters, publish, Clocks, Sent};
use livegate_media::ring::RingBuffer;
use livegate_media::{AccessUnit, Codec};
use livegate_whip::{Ingest, IngestConfig, IngestStats, TrackClock, START_PTS_90K};

const FIXTURE: &str = "h264-baseline-opus.ts";

/// Pushes the packets at their arrival times, then finishes; returns the TS and the stats.
fn ingest(sent: &[Sent]) -> (Bytes, IngestStats, u64) {
    let ring = RingBuffer::new(64 << 20);
    let mut ingest = Ingest::new(
        IngestConfig::default(),
        &[Codec::H264, Codec::Opus],
        Arc::clone(&ring),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut keyframe_requests = 0;
    for s in sent {
        let now = t0 + s.arrival;
        ingest.push_rtp(s.codec, &s.packet, now).unwrap();
        keyframe_requests += u64::from(ingest.want_keyframe(now));
    }
    let end = t0 + sent.last().unwrap().arrival + Duration::from_secs(1);
    ingest.finish(end).unwrap();
    let ts: Vec<u8> = ring.snapshot().iter().flat_map(|c| c.to_vec()).collect();
    assert_eq!(
        ring.stats().chunks_written,
        ingest.stats().video.frames + ingest.stats().audio.frames,
        "one ring write per access unit"
    );
    (Bytes::from(ts), ingest.stats(), keyframe_requests)
}

/// ffprobe lists exactly H.264 and Opus and warns about nothing; ffmpeg decodes every frame
/// without a word.
fn judge_with_ffmpeg(ts: &[u8], name: &str) {
    let path = std::env::temp_dir().join(format!("livegate-whip-{name}-{}.ts", std::process::id()));
    std::fs::write(&path, ts).unwrap();
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .arg(&path)
            .args(if program == "ffmpeg" {
                &["-f", "null", "-"][..]
            } else {
                &[]
            })
            .output()
            .unwrap_or_else(|e| {
                panic!("{program} is needed for this test (apt-get install ffmpeg): {e}")
            })
    };
    let probe = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ],
    );
    let decode = run("ffmpeg", &["-v", "error", "-nostdin", "-i"]);
    std::fs::remove_file(&path).ok();
    assert!(probe.status.success(), "{name}: ffprobe failed");
    assert_eq!(
        String::from_utf8_lossy(&probe.stderr),
        "",
        "{name}: ffprobe warned"
    );
    // Streams are listed once in the program and once on their own, a blank line between.
    let listing = String::from_utf8_lossy(&probe.stdout);
    let sections: Vec<&str> = listing.split("\n\n").collect();
    assert!(!sections.is_empty());
    for section in sections {
        assert_eq!(section.trim_end(), "h264\nopus", "{name}: {listing}");
    }
    assert!(decode.status.success(), "{name}: ffmpeg failed");
    assert_eq!(
        String::from_utf8_lossy(&decode.stderr),
        "",
        "{name}: ffmpeg complained"
    );
}

fn of(codec: Codec, units: &[AccessUnit]) -> Vec<&AccessUnit> {
    units.iter().filter(|au| au.codec == codec).collect()
}

/// The same access units come out, from the first keyframe on, at the same times relative
/// to it (within a tick of rounding when a clock is not 90 kHz).
fn assert_round_trip(
    input: &[(i64, AccessUnit)],
    out: &[AccessUnit],
    tolerance_90k: i64,
    name: &str,
) {
    let video_in: Vec<&(i64, AccessUnit)> = input
        .iter()
        .filter(|(_, au)| au.codec == Codec::H264)
        .collect();
    let video_out = of(Codec::H264, out);
    assert_eq!(
        video_out.len(),
        video_in.len(),
        "{name}: video access units"
    );
    let start_in = video_in[0].0;
    assert!(
        video_out[0].keyframe,
        "{name}: the TS starts with a keyframe"
    );
    assert_eq!(video_out[0].pts.ticks(), START_PTS_90K);
    for ((t, au_in), au_out) in video_in.iter().zip(&video_out) {
        assert_eq!(
            nal_units_without_delimiters(&au_out.data),
            nal_units_without_delimiters(&au_in.data),
            "{name}"
        );
        assert_eq!(au_out.keyframe, au_in.keyframe, "{name}");
        let moved = au_out.pts.ticks() as i64 - START_PTS_90K as i64 - (t - start_in);
        assert!(
            moved.abs() <= tolerance_90k,
            "{name}: video at {t} moved {moved}"
        );
    }
    let audio_in: Vec<&(i64, AccessUnit)> = input
        .iter()
        .filter(|(t, au)| au.codec == Codec::Opus && *t >= start_in)
        .collect();
    let audio_out = of(Codec::Opus, out);
    assert_eq!(
        audio_out.len(),
        audio_in.len(),
        "{name}: audio from the keyframe on"
    );
    for ((t, au_in), au_out) in audio_in.iter().zip(&audio_out) {
        assert_eq!(au_out.data, au_in.data, "{name}");
        let moved = au_out.pts.ticks() as i64 - START_PTS_90K as i64 - (t - start_in);
        assert!(
            moved.abs() <= 1 + tolerance_90k,
            "{name}: audio at {t} moved {moved}"
        );
    }
}

#[test]
fn a_fixture_comes_back_across_rtp_wraps() {
    let (input, mut sent) = publish(FIXTURE, Clocks::default());
    // A little reordering on the way: every 13th packet overtakes the one before it.
    for i in (13..sent.len()).step_by(13) {
        sent.swap(i - 1, i);
    }
    let (ts, stats, _) = ingest(&sent);
    let out = common::demux(&ts);
    assert_round_trip(&input, &out, 0, "90 kHz");
    assert_eq!(stats.video_clock, Some(TrackClock::Hz90k));
    assert_eq!(stats.video.packets_lost + stats.audio.packets_lost, 0);
    assert!(stats.video.packets_reordered + stats.audio.packets_reordered > 0);
    assert_eq!(stats.keyframes, 2, "a 2 s fixture with a 1 s GOP");
    judge_with_ffmpeg(&ts, "wraps");
}

#[test]
fn video_stamped_in_microseconds_comes_back_at_90k() {
    let clocks = Clocks {
        video_base: u32::MAX - 500_000,
        video_hz: 1_000_000,
        ..Clocks::default()
    };
    let (input, sent) = publish(FIXTURE, clocks);
    let (ts, stats, _) = ingest(&sent);
    assert_round_trip(&input, &common::demux(&ts), 1, "1 MHz");
    assert_eq!(stats.video_clock, Some(TrackClock::Hz1M));
    assert_eq!(stats.timestamp_corrections, 1);
    judge_with_ffmpeg(&ts, "1mhz");
}

#[test]
fn loss_never_reaches_the_decoder_as_a_broken_picture() {
    let (input, sent) = publish(FIXTURE, Clocks::default());
    // Drop one video packet in 40, never the first keyframe's.
    let mut video = 0;
    let lossy: Vec<Sent> = sent
        .into_iter()
        .filter(|s| {
            if s.codec != Codec::H264 {
                return true;
            }
            video += 1;
            video < 20 || video % 40 != 0
        })
        .collect();
    let (ts, stats, requests) = ingest(&lossy);
    let out = common::demux(&ts);
    assert!(stats.video.packets_lost > 0);
    assert!(stats.incomplete_dropped > 0);
    assert!(requests > 0, "keyframes were asked for");
    assert_eq!(requests, stats.keyframe_requests);
    // Every picture written is one the encoder made, whole: x264's baseline P pictures are
    // all reference pictures, so nothing damaged may be sent.
    let video_out = of(Codec::H264, &out);
    assert!(
        video_out.len()
            < input
                .iter()
                .filter(|(_, au)| au.codec == Codec::H264)
                .count()
    );
    for au in video_out {
        let t = au.pts.ticks() - START_PTS_90K;
        let original = input
            .iter()
            .filter(|(_, i)| i.codec == Codec::H264)
            .find(|(ti, _)| (*ti - input[0].0) as u64 == t)
            .map(|(_, i)| i)
            .unwrap_or_else(|| panic!("no input picture at {t}"));
        assert_eq!(
            nal_units_without_delimiters(&au.data),
            nal_units_without_delimiters(&original.data)
        );
    }
    judge_with_ffmpeg(&ts, "loss");
}
