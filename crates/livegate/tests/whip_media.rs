//! WHIP ingest end to end: the gateway in-process on 127.0.0.1, an independent WebRTC
//! publisher (`livegate_bench::whip`, on the `rtc` core) playing a fixture in real time, and
//! what the gateway made of it: the stream's input ring demuxed back, ffprobe's view of it,
//! and a WHEP viewer of the stream.

mod whip_common;

use std::process::Command;
use std::time::Duration;

use livegate_bench::whip::{OfferShape, WhipOptions};
use livegate_media::h264::{nal_type, nal_units, NalType};
use livegate_media::{AccessUnit, Codec, StreamKey};
use whip_common::*;

const FIXTURE: &str = "h264-baseline-opus.ts";

/// The NAL units a publisher's RTP must reproduce: all but delimiters (RTP does not carry
/// them; the muxer adds its own) and parameter sets (repeated or moved by either side).
fn picture_nal_units(au: &AccessUnit) -> Vec<Vec<u8>> {
    nal_units(&au.data)
        .filter(|nal| {
            !matches!(
                nal_type(nal),
                Some(NalType::ACCESS_UNIT_DELIMITER | NalType::SPS | NalType::PPS)
            )
        })
        .map(<[u8]>::to_vec)
        .collect()
}

fn of(units: &[AccessUnit], codec: Codec) -> Vec<&AccessUnit> {
    units.iter().filter(|au| au.codec == codec).collect()
}

fn pts_from_first(units: &[&AccessUnit]) -> Vec<i64> {
    units
        .iter()
        .map(|au| au.pts.ticks() as i64 - units[0].pts.ticks() as i64)
        .collect()
}

/// ffprobe's codecs and decoded frame counts of an MPEG-TS file, and what it said on stderr.
fn ffprobe(ts: &[u8]) -> (Vec<String>, String) {
    let path = std::env::temp_dir().join(format!("livegate-whip-{}.ts", std::process::id()));
    std::fs::write(&path, ts).unwrap();
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe must be installed (scripts/test.sh installs ffmpeg)");
    let _ = std::fs::remove_file(&path);
    assert!(output.status.success());
    // A stream is listed under its program and again on its own.
    let mut streams: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if !line.is_empty() && !streams.iter().any(|s| s == line) {
            streams.push(line.to_owned());
        }
    }
    (
        streams,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_holds_the_access_units_the_publisher_sent() {
    let (gateway, base) = gateway(&[]).await;
    let options = WhipOptions {
        passes: Some(1),
        ..publish_options(FIXTURE).await
    };
    let publisher = publish(&base, "cam", &options).await;
    assert!(publisher
        .resource()
        .location()
        .starts_with("/live/cam/whip/"));
    assert!(publisher
        .resource()
        .etag()
        .is_some_and(|etag| !etag.is_empty()));
    assert_eq!(
        publisher.resource().playback_url(),
        Some(format!("{base}/live/cam/whep").as_str())
    );
    let input = gateway
        .registry
        .get(&StreamKey::parse("cam").unwrap())
        .expect("the stream exists once answered")
        .input()
        .clone();

    publisher.wait_media_finished(DEADLINE).await.unwrap();
    let sent = publisher.stats();
    assert_eq!((sent.video_frames, sent.keyframes), (60, 2), "{sent:?}");
    wait_ingested(&base, &sent).await;
    // DELETE flushes what the ingest still held and closes the input.
    assert_eq!(publisher.delete().await.unwrap(), 200);
    let ts = read_until_closed(&input).await;
    let got = demux(&ts);
    let expected = demux(&std::fs::read(fixture(FIXTURE)).unwrap());

    let (got_video, want_video) = (of(&got, Codec::H264), of(&expected, Codec::H264));
    assert_eq!(got_video.len(), want_video.len(), "every picture arrived");
    for (i, (got, want)) in got_video.iter().zip(&want_video).enumerate() {
        assert_eq!(
            picture_nal_units(got),
            picture_nal_units(want),
            "picture {i}"
        );
        assert_eq!(got.keyframe, want.keyframe, "picture {i}");
    }
    assert!(got_video[0].keyframe, "the input starts on a keyframe");
    assert_eq!(pts_from_first(&got_video), pts_from_first(&want_video));

    // Audio before the first picture may be dropped (the input starts at the keyframe);
    // everything from there on arrives, in order, unchanged.
    let (got_audio, want_audio) = (of(&got, Codec::Opus), of(&expected, Codec::Opus));
    let skipped = want_audio
        .iter()
        .position(|want| want.data == got_audio[0].data)
        .expect("the first Opus packet is one of the file's");
    assert!(skipped <= 5, "{skipped} Opus packets dropped at the start");
    let want_audio = &want_audio[skipped..];
    assert_eq!(got_audio.len(), want_audio.len(), "{sent:?}");
    for (i, (got, want)) in got_audio.iter().zip(want_audio).enumerate() {
        assert_eq!(got.data, want.data, "Opus packet {i}");
    }
    // 48 kHz RTP and back: within two 90 kHz ticks of the file's own steps.
    for (i, (got, want)) in pts_from_first(&got_audio)
        .iter()
        .zip(pts_from_first(want_audio))
        .enumerate()
    {
        assert!((got - want).abs() <= 2, "Opus packet {i}: {got} vs {want}");
    }
    // Audio against video: aligned by arrival times, within an Opus packet (20 ms) of the
    // file's offset (about 1 ms on an idle machine).
    let offset = |audio: &AccessUnit, video: &AccessUnit| {
        audio.pts.ticks() as i64 - video.pts.ticks() as i64
    };
    let drift = offset(got_audio[0], got_video[0]) - offset(want_audio[0], want_video[0]);
    assert!(drift.abs() <= 1_800, "A/V offset moved by {drift} ticks");

    let (streams, errors) = ffprobe(&ts);
    assert_eq!(errors, "", "ffprobe complained");
    assert_eq!(
        streams,
        ["h264,60".to_owned(), format!("opus,{}", got_audio.len())]
    );
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_plays_what_is_published() {
    let (gateway, base) = gateway(&[]).await;
    let publisher = publish(&base, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base, "cam").await;
    viewer.wait_video_frames(45, DEADLINE).await.unwrap();
    viewer.wait_audio_packets(50, DEADLINE).await.unwrap();
    let stats = viewer.stats();
    let first = &stats.video.frame_log[0];
    assert!(
        first.is_keyframe() && first.has_parameter_sets(),
        "{:?}",
        &stats.video.frame_log[..3]
    );
    assert_eq!(stats.video.packets_lost, 0);
    assert!(stats.video.complete_frames >= 44, "{:?}", stats.video);
    assert_eq!(publisher.stats().keyframe_requests, 0, "nothing was lost");
    assert_eq!(viewer.delete().await.unwrap(), 200);
    assert_eq!(publisher.delete().await.unwrap(), 200);
    publisher.wait_closed(DEADLINE).await.unwrap();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

/// The media section of `kind` in an SDP.
fn section<'a>(sdp: &'a str, kind: &str) -> &'a str {
    let start = sdp
        .find(&format!("m={kind} "))
        .unwrap_or_else(|| panic!("no m={kind} in {sdp}"));
    let rest = &sdp[start..];
    let end = rest[2..].find("m=").map_or(rest.len(), |i| i + 2);
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_obs_shaped_offer_without_candidates_connects_as_peer_reflexive() {
    let (gateway, base) = gateway(&[]).await;
    let options = WhipOptions {
        shape: OfferShape::Obs,
        passes: Some(1),
        ..publish_options(FIXTURE).await
    };
    let publisher = publish(&base, "obs", &options).await;
    let offer = publisher.resource().offer_sdp();
    assert!(!offer.contains("a=candidate"), "{offer}");
    assert!(!offer.contains("a=end-of-candidates"), "{offer}");
    assert!(offer.find("m=audio").unwrap() < offer.find("m=video").unwrap());
    assert!(section(offer, "audio").contains("a=mid:0"));
    assert!(section(offer, "video").contains("a=mid:1"));
    assert!(section(offer, "video")
        .lines()
        .next()
        .unwrap()
        .ends_with(" 96"));
    assert!(section(offer, "audio").contains("a=rtpmap:111 opus/48000/2"));
    assert!(section(offer, "video").contains("a=sendonly"));
    let input = gateway
        .registry
        .get(&StreamKey::parse("obs").unwrap())
        .unwrap()
        .input()
        .clone();

    publisher.wait_media_finished(DEADLINE).await.unwrap();
    wait_ingested(&base, &publisher.stats()).await;
    assert_eq!(publisher.delete().await.unwrap(), 200);
    let got = demux(&read_until_closed(&input).await);
    assert_eq!(of(&got, Codec::H264).len(), 60);
    assert!(of(&got, Codec::Opus).len() >= 95);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}
