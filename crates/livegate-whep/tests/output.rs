//! A stream output end to end: real fixtures written into a stream's output ring buffer,
//! viewers joining at different times, a worker restart, lagging viewers, closing.

mod common;

use std::sync::Arc;

use common::*;
use livegate_media::{Codec, Pts90k};
use livegate_whep::{
    Activity, MediaFrame, OutputConfig, OutputEvent, StreamOutputs, ViewerClock, ViewerFeed,
};
use tokio::time::Instant;

fn outputs() -> StreamOutputs {
    StreamOutputs::new(OutputConfig::default()).unwrap()
}

/// Reads until `stop` says so, returning what was read (the last frame included).
async fn read_until(
    feed: &mut ViewerFeed,
    mut stop: impl FnMut(&[MediaFrame]) -> bool,
) -> Vec<MediaFrame> {
    let mut frames = Vec::new();
    while !stop(&frames) {
        frames.push(recv(feed).await.expect("feed still open"));
    }
    frames
}

async fn read_to_end(feed: &mut ViewerFeed) -> Vec<MediaFrame> {
    let mut frames = Vec::new();
    while let Some(frame) = recv(feed).await {
        frames.push(frame);
    }
    frames
}

fn pts_of(frames: &[MediaFrame], codec: Codec) -> Vec<Pts90k> {
    frames
        .iter()
        .filter(|f| f.codec == codec)
        .map(|f| f.pts)
        .collect()
}

/// Every track's RTP timestamps through one viewer clock strictly increase.
fn assert_rtp_monotonic(frames: &[MediaFrame], codecs: &[Codec]) -> ViewerClock {
    let mut clock = ViewerClock::new(codecs);
    let now = Instant::now();
    let mut last: Vec<Option<u32>> = vec![None; codecs.len()];
    for frame in frames {
        let Some((track, rtp)) = clock.map(frame, now) else {
            continue;
        };
        if let Some(previous) = last[track] {
            let step = rtp.timestamp.wrapping_sub(previous) as i32;
            assert!(step > 0, "{:?} went back by {step}", codecs[track]);
        }
        last[track] = Some(rtp.timestamp);
    }
    assert!(last.iter().all(Option::is_some), "every track was sent");
    clock
}

#[tokio::test]
async fn viewers_start_at_the_last_idr_and_ride_out_a_worker_restart() {
    let ts = with_parameter_sets_once("h264-baseline-opus.ts");
    let (tracks, units) = demux(&ts);
    let idrs: Vec<Pts90k> = units
        .iter()
        .filter(|au| au.codec == Codec::H264 && au.keyframe)
        .map(|au| au.pts)
        .collect();
    assert_eq!(idrs.len(), 2, "the fixture has two GOPs");

    let (_registry, stream, ring) = stream_with_output();
    let outputs = outputs();
    let mut early = outputs.get_or_start(&stream);
    // Part of the first GOP is in the buffer when the first viewer joins.
    let prefix = prefix_with_video_units(&ts, 3);
    write(&ring, &ts[..prefix]);
    let first_early = recv(&mut early).await.unwrap();
    let output = early.output().clone();
    let got = output
        .wait_for_tracks(Instant::now() + SAFETY_NET)
        .await
        .unwrap();
    assert_eq!(got.tracks, tracks);
    assert_eq!(got.codecs(), [Codec::H264, Codec::Opus]);
    let sps = got.h264.expect("SPS seen");
    assert_eq!((sps.width, sps.height), (320, 240));

    // The rest of the first generation; the late viewer joins well after the second IDR.
    write(&ring, &ts[prefix..]);
    let mut early_frames = vec![first_early];
    early_frames.extend(
        read_until(&mut early, |frames| {
            let after_idr = frames
                .iter()
                .skip_while(|f| f.pts != idrs[1] || f.codec != Codec::H264)
                .filter(|f| f.codec == Codec::H264)
                .count();
            after_idr > 5
        })
        .await,
    );
    let mut late = outputs.get_or_start(&stream);
    assert!(Arc::ptr_eq(late.output(), &output), "one output per stream");
    assert_eq!(outputs.stats().reader_starts, 1, "one reader for both");
    let first_late = recv(&mut late).await.unwrap();

    for (who, first, idr) in [
        ("early", &early_frames[0], idrs[0]),
        ("late", &first_late, idrs[1]),
    ] {
        assert_eq!(
            (first.codec, first.keyframe, first.pts),
            (Codec::H264, true, idr),
            "{who}"
        );
        let nal_types = depacketized_nal_types(first);
        for wanted in [7, 8, 5] {
            assert!(nal_types.contains(&wanted), "{who}: {nal_types:?}");
        }
    }

    // Worker restart: a new buffer with the same stream again, then the end of the stream.
    let ring2 = livegate_media::ring::RingBuffer::new(8 * 1024 * 1024);
    stream.set_output(ring2.clone());
    write(&ring2, &ts);
    stream.close();
    early_frames.extend(read_to_end(&mut early).await);
    let mut late_frames = vec![first_late];
    late_frames.extend(read_to_end(&mut late).await);
    assert_eq!(output.status().activity, Activity::Closed);

    // Generation by generation: no frame lost or repeated between cache and live.
    let video_units: Vec<Pts90k> = units
        .iter()
        .filter(|au| au.codec == Codec::H264)
        .map(|au| au.pts)
        .collect();
    let audio_units: Vec<Pts90k> = units
        .iter()
        .filter(|au| au.codec == Codec::Opus)
        .map(|au| au.pts)
        .collect();
    let generation = |frames: &[MediaFrame], g: u64| -> Vec<MediaFrame> {
        frames
            .iter()
            .filter(|f| f.source_generation == g)
            .cloned()
            .collect()
    };
    let from_second_idr =
        video_units[video_units.iter().position(|p| *p == idrs[1]).unwrap()..].to_vec();
    let audio_from_second_idr: Vec<Pts90k> = audio_units
        .iter()
        .copied()
        .filter(|p| pts_at_or_after(*p, idrs[1]))
        .collect();
    let late_first = generation(&late_frames, 1);
    assert_eq!(pts_of(&late_first, Codec::H264), from_second_idr);
    // Audio starts with the picture: all of it from the IDR's PTS on, none before.
    assert_eq!(pts_of(&late_first, Codec::Opus), audio_from_second_idr);
    let early_first = generation(&early_frames, 1);
    assert_eq!(pts_of(&early_first, Codec::H264), video_units);
    for who in [&early_frames, &late_frames] {
        let second = generation(who, 2);
        assert_eq!(pts_of(&second, Codec::H264), video_units);
        assert_eq!(pts_of(&second, Codec::Opus), audio_units);
        let first_video = second.iter().find(|f| f.codec == Codec::H264).unwrap();
        assert!(first_video.keyframe);
        let clock = assert_rtp_monotonic(who, &[Codec::H264, Codec::Opus]);
        assert_eq!(clock.stats().rebases, 1);
    }
    let stats = outputs.stats();
    assert_eq!(stats.viewer_lags, 0);
    assert_eq!(stats.frames, 2 * units.len() as u64);
}

#[tokio::test]
async fn the_first_viewer_starts_from_what_the_buffer_already_holds() {
    let ts = fixture("h264-high-opus.ts");
    let (_, units) = demux(&ts);
    let last_idr = units
        .iter()
        .rfind(|au| au.codec == Codec::H264 && au.keyframe)
        .unwrap()
        .pts;
    let (_registry, stream, ring) = stream_with_output();
    write(&ring, &ts);
    let outputs = outputs();
    let mut feed = outputs.get_or_start(&stream);
    let first = recv(&mut feed).await.unwrap();
    assert_eq!(
        (first.codec, first.keyframe, first.pts),
        (Codec::H264, true, last_idr)
    );
    // The tracks and SPS were learnt from the buffer's history too.
    let tracks = feed.output().tracks().expect("PMT read while catching up");
    assert_eq!(tracks.h264.map(|s| s.profile_idc), Some(100));
    assert_eq!(feed.stats().cached_frames, 1);
    assert_eq!(feed.output().status().activity, Activity::Active);
}

#[tokio::test]
async fn a_viewer_that_never_reads_holds_back_nobody() {
    let ts = fixture("h264-baseline-opus.ts");
    let (_, units) = demux(&ts);
    let (_registry, stream, ring) = stream_with_output();
    let config = OutputConfig {
        viewer_queue_frames: 16,
        ..OutputConfig::default()
    };
    let outputs = StreamOutputs::new(config).unwrap();
    let mut reader = outputs.get_or_start(&stream);
    let mut stalled = outputs.get_or_start(&stream);
    // Both join before anything is written; the stalled one then reads nothing more.
    let prefix = prefix_with_video_units(&ts, 2);
    write(&ring, &ts[..prefix]);
    let first = recv(&mut reader).await.unwrap();
    assert!(recv(&mut stalled).await.unwrap().keyframe);
    // It takes what is ready now (the rest of the cached GOP), then stops reading.
    while let Some(frame) = try_recv(&mut stalled) {
        assert!(frame.is_some());
    }

    let writer = tokio::spawn(async move {
        for chunk in ts[prefix..].chunks(CHUNK_BYTES) {
            ring.write(bytes::Bytes::copy_from_slice(chunk)).unwrap();
            tokio::task::yield_now().await;
        }
        stream.close();
    });
    let mut frames = vec![first];
    frames.extend(read_to_end(&mut reader).await);
    writer.await.unwrap();

    assert_eq!(reader.stats().lags, 0);
    assert_eq!(
        frames.len(),
        units.len(),
        "the reading viewer got every frame"
    );
    // The stalled viewer lost frames, was told, and resumes video on a keyframe.
    let rest = read_to_end(&mut stalled).await;
    let stats = stalled.stats();
    assert!(stats.lags >= 1 && stats.frames_lost > 0, "{stats:?}");
    // Video resumes on a keyframe, if one came after the lag, and not before.
    if let Some(first_video) = rest.iter().find(|f| f.codec == Codec::H264) {
        assert!(first_video.keyframe);
    }
    assert!(stats.keyframe_skips > 0);
    let totals = outputs.stats();
    assert_eq!(totals.viewer_lags, stats.lags);
    assert_eq!(totals.keyframe_skips, stats.keyframe_skips);
}

#[tokio::test]
async fn the_reader_stops_with_the_last_viewer_and_restarts_with_the_next() {
    let ts = fixture("h264-baseline-opus.ts");
    let (_, units) = demux(&ts);
    let (_registry, stream, ring) = stream_with_output();
    write(&ring, &ts);
    let outputs = outputs();
    let mut a = outputs.get_or_start(&stream);
    let b = outputs.get_or_start(&stream);
    recv(&mut a).await.unwrap();
    let output = a.output().clone();
    assert_eq!(output.status().viewers, 2);
    assert_eq!(output.status().reader_tasks, 1);

    drop(a);
    drop(b);
    status_until(&output, |s| s.viewers == 0 && s.reader_tasks == 0).await;
    let stats = outputs.stats();
    assert_eq!(stats.reader_starts, 1);
    assert!(
        stats.frames >= units.len() as u64 - 1,
        "the buffer was read"
    );

    // The next viewer restarts the reader, which catches up with the buffer again.
    let mut c = output.subscribe();
    let first = recv(&mut c).await.unwrap();
    assert!(first.keyframe);
    assert_eq!(outputs.stats().reader_starts, 2);
    assert_eq!(
        outputs.stats().frames,
        2 * stats.frames,
        "read again from the start"
    );
    drop(c);
    drop(output);
    assert!(
        outputs.get(stream.key()).is_none(),
        "nothing keeps a watched-by-nobody output"
    );
    assert!(outputs.is_empty());
}

#[tokio::test]
async fn events_follow_the_worker_and_the_stream() {
    let ts = fixture("video-only.ts");
    let (_registry, stream, ring) = stream_with_output();
    let outputs = outputs();
    let mut feed = outputs.get_or_start(&stream);
    let mut events = feed.output().events();
    assert_eq!(events.next().await, Some(OutputEvent::Inactive));
    assert_eq!(events.next().await, Some(OutputEvent::ViewerCount(1)));

    write(&ring, &ts);
    recv(&mut feed).await.unwrap();
    assert_eq!(
        events.next().await,
        Some(OutputEvent::Active { generation: 1 })
    );
    let tracks = feed.output().tracks().unwrap();
    assert_eq!(tracks.codecs(), [Codec::H264]);

    // The worker restarts: its old buffer closes, the new one stays silent for a while.
    let ring2 = livegate_media::ring::RingBuffer::new(1 << 20);
    stream.set_output(ring2.clone());
    assert_eq!(events.next().await, Some(OutputEvent::Inactive));
    write(&ring2, &ts);
    assert_eq!(
        events.next().await,
        Some(OutputEvent::Active { generation: 2 })
    );
    let second = outputs.get_or_start(&stream);
    assert_eq!(events.next().await, Some(OutputEvent::ViewerCount(2)));
    drop(second);
    assert_eq!(events.next().await, Some(OutputEvent::ViewerCount(1)));
    stream.close();
    assert_eq!(events.next().await, Some(OutputEvent::Closed));
    assert_eq!(events.next().await, None);
    read_to_end(&mut feed).await;
}

/// Where `got` sits in `reference`: it must be a contiguous run of it.
fn assert_contiguous(got: &[Pts90k], reference: &[Pts90k], what: &str) {
    let Some(first) = got.first() else {
        return;
    };
    let start = reference
        .iter()
        .position(|p| p == first)
        .unwrap_or_else(|| panic!("{what}: {first:?} is not in the stream"));
    assert_eq!(
        got,
        &reference[start..(start + got.len()).min(reference.len())],
        "{what}: a gap or a repeat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_joining_while_frames_flow_miss_nothing_and_repeat_nothing() {
    let ts = fixture("pts-wrap.ts");
    let (_, units) = demux(&ts);
    let reference = |codec| -> Vec<Pts90k> {
        units
            .iter()
            .filter(|au| au.codec == codec)
            .map(|au| au.pts)
            .collect()
    };
    let (video, audio) = (reference(Codec::H264), reference(Codec::Opus));
    let (_registry, stream, ring) = stream_with_output();
    let outputs = outputs();
    // Keeps the reader running between joiners; joins at the first IDR, reads everything
    // else at the end.
    let mut anchor = outputs.get_or_start(&stream);
    let prefix = prefix_with_video_units(&ts, 2);
    write(&ring, &ts[..prefix]);
    let first = recv(&mut anchor).await.unwrap();
    assert_eq!((first.pts, first.keyframe), (video[0], true));
    // The writer pauses every few chunks until a viewer has joined, so joins interleave
    // with frames the reader task publishes from another thread.
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::channel::<()>(1);
    let writer = {
        let stream = stream.clone();
        tokio::spawn(async move {
            for group in ts[prefix..].chunks(4 * CHUNK_BYTES) {
                for chunk in group.chunks(CHUNK_BYTES) {
                    ring.write(bytes::Bytes::copy_from_slice(chunk)).unwrap();
                    tokio::task::yield_now().await;
                }
                if joined_rx.recv().await.is_none() {
                    break;
                }
            }
            stream.close();
        })
    };
    let mut joins = 0;
    loop {
        let mut feed = outputs.get_or_start(&stream);
        let Some(first) = recv(&mut feed).await else {
            break;
        };
        let mut frames = vec![first];
        while let Some(Some(frame)) = try_recv(&mut feed) {
            frames.push(frame);
        }
        assert!(frames[0].keyframe, "join {joins} started on a P-frame");
        assert_contiguous(&pts_of(&frames, Codec::H264), &video, "video");
        assert_contiguous(&pts_of(&frames, Codec::Opus), &audio, "audio");
        joins += 1;
        if joined_tx.send(()).await.is_err() {
            break;
        }
    }
    writer.await.unwrap();
    let mut all = vec![first];
    all.extend(read_to_end(&mut anchor).await);
    assert_eq!(pts_of(&all, Codec::H264), video);
    // Live audio muxed after the IDR but timed before it still comes through (a viewer's
    // clock drops it); from the IDR's time on, all of it.
    let got_audio = pts_of(&all, Codec::Opus);
    assert_contiguous(&got_audio, &audio, "anchor audio");
    let from_idr = |pts: &[Pts90k]| -> Vec<Pts90k> {
        pts.iter()
            .copied()
            .filter(|p| pts_at_or_after(*p, video[0]))
            .collect()
    };
    assert_eq!(from_idr(&got_audio), from_idr(&audio));
    assert!(joins > 30, "{joins} joins");
}

#[tokio::test]
async fn b_frames_are_counted_and_still_sent() {
    let ts = fixture("h264-bframes-opus.ts");
    let (_, units) = demux(&ts);
    let (_registry, stream, ring) = stream_with_output();
    let outputs = outputs();
    let mut feed = outputs.get_or_start(&stream);
    let prefix = prefix_with_video_units(&ts, 2);
    write(&ring, &ts[..prefix]);
    let mut frames = vec![recv(&mut feed).await.unwrap()];
    write(&ring, &ts[prefix..]);
    stream.close();
    frames.extend(read_to_end(&mut feed).await);
    let video: Vec<Pts90k> = units
        .iter()
        .filter(|au| au.codec == Codec::H264)
        .map(|au| au.pts)
        .collect();
    assert_eq!(pts_of(&frames, Codec::H264), video, "in decoding order");
    let reordered = units
        .iter()
        .filter(|au| au.dts.is_some_and(|dts| dts != au.pts))
        .count();
    assert!(reordered > 0);
    assert_eq!(outputs.stats().b_frame_access_units, reordered as u64);
}

#[tokio::test]
async fn an_audio_only_stream_needs_no_keyframe_and_no_sps() {
    let ts = fixture("audio-only.ts");
    let (tracks, units) = demux(&ts);
    let (_registry, stream, ring) = stream_with_output();
    let outputs = outputs();
    let feed = outputs.get_or_start(&stream);
    let output = feed.output().clone();
    // Without video there is no GOP to cache: a viewer starts on the next packet written.
    let viewer = tokio::spawn(async move {
        let mut feed = feed;
        read_to_end(&mut feed).await
    });
    for chunk in ts.chunks(CHUNK_BYTES) {
        ring.write(bytes::Bytes::copy_from_slice(chunk)).unwrap();
        tokio::task::yield_now().await;
    }
    stream.close();
    let frames = viewer.await.unwrap();
    let audio: Vec<Pts90k> = units.iter().map(|au| au.pts).collect();
    let got_audio = pts_of(&frames, Codec::Opus);
    assert!(
        got_audio.len() > audio.len() / 2,
        "{} packets",
        got_audio.len()
    );
    assert_eq!(got_audio, audio[audio.len() - got_audio.len()..]);
    let got = output.tracks().unwrap();
    assert_eq!((got.tracks, got.h264), (tracks, None));
    let waited = output.wait_for_tracks(Instant::now()).await;
    assert_eq!(
        waited.unwrap_err(),
        livegate_whep::TracksError::StreamClosed
    );
    // An audio-only session anchors on the first packet and sends them all, 20 ms apart.
    let mut clock = ViewerClock::new(&[Codec::Opus]);
    let now = Instant::now();
    let rtp: Vec<u32> = frames
        .iter()
        .filter_map(|f| clock.map(f, now))
        .map(|(_, f)| f.timestamp)
        .collect();
    assert_eq!(rtp.len(), frames.len());
    assert!(rtp.windows(2).all(|p| p[1].wrapping_sub(p[0]) == 960));
}
