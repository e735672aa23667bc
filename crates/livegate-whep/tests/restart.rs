//! A viewer session outliving two worker restarts whose clocks start from unrelated values,
//! one of them crossing the 2^33 PTS wrap: RTP timestamps go on, exact within a source, one
//! freeze apart across restarts, with audio and video moved together.
//!
//! Time is paused: each generation's frames are sent at one instant, and the test advances
//! the clock by the freeze between generations.

mod common;

use std::time::Duration;

use common::*;
use livegate_media::ring::RingBuffer;
use livegate_media::time::Ticks90k;
use livegate_media::{Codec, Pts90k, PTS_WRAP};
use livegate_whep::{MediaFrame, OutputConfig, StreamOutputs, ViewerClock, ViewerFeed};
use tokio::time::Instant;

/// One frame as the viewer's session would send it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    generation: u64,
    codec: Codec,
    pts: Pts90k,
    rtp: u32,
}

fn map(clock: &mut ViewerClock, frame: &MediaFrame, sent: &mut Vec<Sent>) {
    if let Some((_, rtp)) = clock.map(frame, Instant::now()) {
        sent.push(Sent {
            generation: frame.source_generation,
            codec: frame.codec,
            pts: frame.pts,
            rtp: rtp.timestamp,
        });
    }
}

/// Maps every frame the feed has ready now.
fn drain(feed: &mut ViewerFeed, clock: &mut ViewerClock, sent: &mut Vec<Sent>) {
    while let Some(Some(frame)) = try_recv(feed) {
        map(clock, &frame, sent);
    }
}

/// `later - earlier` on the 33-bit clock, the short way round.
fn pts_distance(later: Pts90k, earlier: Pts90k) -> i64 {
    let d = later.ticks().wrapping_sub(earlier.ticks()) & (PTS_WRAP - 1);
    if d >= PTS_WRAP / 2 {
        d as i64 - PTS_WRAP as i64
    } else {
        d as i64
    }
}

const FREEZE: Duration = Duration::from_millis(1_500);

#[tokio::test(start_paused = true)]
async fn rtp_timestamps_continue_across_worker_restarts_and_the_pts_wrap() {
    let sources = ["pts-wrap.ts", "h264-baseline-opus.ts", "pts-wrap.ts"];
    let (_registry, stream, ring) = stream_with_output();
    let outputs = StreamOutputs::new(OutputConfig::default()).unwrap();
    let mut feed = outputs.get_or_start(&stream);
    let output = feed.output().clone();
    let mut clock = ViewerClock::new(&[Codec::H264, Codec::Opus]);
    let mut sent = Vec::new();

    // The viewer joins early in the first source, before its wrap.
    let first = fixture(sources[0]);
    let prefix = prefix_with_video_units(&first, 2);
    write(&ring, &first[..prefix]);
    let frame = recv(&mut feed).await.unwrap();
    map(&mut clock, &frame, &mut sent);
    write(&ring, &first[prefix..]);

    for (i, name) in sources.iter().enumerate().skip(1) {
        let generation = i as u64 + 1;
        let next = RingBuffer::new(8 * 1024 * 1024);
        stream.set_output(next.clone());
        // The reader took the new buffer, so it published all of the old one.
        status_until(&output, |s| s.generation == generation).await;
        drain(&mut feed, &mut clock, &mut sent);
        tokio::time::advance(FREEZE).await;
        write(&next, &fixture(name));
    }
    stream.close();
    while let Some(frame) = recv(&mut feed).await {
        map(&mut clock, &frame, &mut sent);
    }
    assert_eq!(feed.stats().lags, 0, "the viewer kept up");
    assert_eq!(clock.stats().rebases, 2);

    let video_clock = clock.rtp_clock(0).unwrap();
    let audio_clock = clock.rtp_clock(1).unwrap();
    let of = |generation: u64, codec: Codec| -> Vec<Sent> {
        sent.iter()
            .copied()
            .filter(|s| s.generation == generation && s.codec == codec)
            .collect()
    };
    for generation in 1..=3 {
        let (video, audio) = (of(generation, Codec::H264), of(generation, Codec::Opus));
        assert!(
            video.len() > 50 && audio.len() > 90,
            "generation {generation}"
        );
        // Within a source, 30 fps and 20 ms Opus exactly, across the PTS wrap too.
        for pair in video.windows(2) {
            assert_eq!(pair[1].rtp.wrapping_sub(pair[0].rtp), 3_000, "{pair:?}");
        }
        for pair in audio.windows(2) {
            assert_eq!(pair[1].rtp.wrapping_sub(pair[0].rtp), 960, "{pair:?}");
        }
        // Lip sync: every audio packet sits where its PTS says relative to the first
        // picture, on the session's 48 kHz clock.
        let anchor = video[0];
        let anchor_output = i64::from(anchor.rtp.wrapping_sub(video_clock.base().0));
        for a in &audio {
            let output = Ticks90k(anchor_output + pts_distance(a.pts, anchor.pts));
            assert_eq!(audio_clock.timestamp(output).0, a.rtp, "{a:?}");
        }
        if generation > 1 {
            // One freeze after the last timestamps of the previous source, on both tracks:
            // at least the freeze, and the previous source's audio lead (under 100 ms) at
            // most on top.
            let (last_video, last_audio) = (
                *of(generation - 1, Codec::H264).last().unwrap(),
                *of(generation - 1, Codec::Opus).last().unwrap(),
            );
            let freeze_90k = Ticks90k::from_duration(FREEZE).0 as u32;
            let video_jump = video[0].rtp.wrapping_sub(last_video.rtp);
            assert!(
                (freeze_90k..freeze_90k + 9_000).contains(&video_jump),
                "video jump {video_jump}"
            );
            let audio_jump = audio[0].rtp.wrapping_sub(last_audio.rtp);
            let freeze_48k = freeze_90k * 8 / 15;
            assert!(
                (freeze_48k..freeze_48k + 4_800).contains(&audio_jump),
                "audio jump {audio_jump}"
            );
        }
    }
    // The first and third sources cross the wrap; the whole session never went back.
    for codec in [Codec::H264, Codec::Opus] {
        let rtp: Vec<u32> = sent
            .iter()
            .filter(|s| s.codec == codec)
            .map(|s| s.rtp)
            .collect();
        assert!(rtp.windows(2).all(|p| (p[1].wrapping_sub(p[0]) as i32) > 0));
    }
    let wrapped = |generation| {
        of(generation, Codec::H264)
            .windows(2)
            .any(|p| p[1].pts < p[0].pts)
    };
    assert!(wrapped(1) && wrapped(3) && !wrapped(2));
}
