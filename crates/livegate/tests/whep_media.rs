//! WHEP playback end to end: the gateway in-process on 127.0.0.1, real MPEG-TS fixtures as
//! stream outputs, and an independent WebRTC viewer (`livegate_bench::whep`, on the async
//! `webrtc` crate) that counts what it receives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;
use livegate_bench::whep::{FrameRecord, WhepClient, WhepOptions, WhepSession};
use livegate_media::ring::RingBuffer;
use livegate_media::StreamKey;
use livegate_pipeline::file_source::{parse_specs, FileSource};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures")).join(name)
}

async fn gateway(test_streams: &[(&str, &str)]) -> (Gateway, String) {
    let streams: Vec<String> = test_streams
        .iter()
        .map(|(name, file)| format!("{name}={}", fixture(file).display()))
        .collect();
    let streams = streams.join(",");
    let config = Config::try_parse_from([
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "off",
        "--whep-addr",
        "127.0.0.1:0",
        "--test-stream",
        &streams,
    ])
    .unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let base = format!("http://{}", gateway.http_addr());
    (gateway, base)
}

/// The viewer's options. Its offer says `a=setup:passive`, so the gateway is the DTLS
/// client: an `rtc`-based viewer that is the DTLS client itself installs its SRTP keys only
/// when it next polls events, and drops what arrived in between, which is the gateway's
/// first GOP (an rtc 0.21 gap; browsers do not lose it). As DTLS server the viewer has
/// polled long before the gateway's first packet arrives.
fn options() -> WhepOptions {
    WhepOptions {
        offer_transform: Some(Arc::new(|offer: String| {
            offer.replace("a=setup:actpass", "a=setup:passive")
        })),
        ..WhepOptions::default()
    }
}

async fn play(base: &str, stream: &str) -> WhepSession {
    WhepClient::new()
        .play(&format!("{base}/live/{stream}/whep"), &options())
        .await
        .unwrap()
}

/// The media section of `kind` in an SDP answer.
fn section<'a>(answer: &'a str, kind: &str) -> &'a str {
    let start = answer
        .find(&format!("m={kind} "))
        .unwrap_or_else(|| panic!("no m={kind} in {answer}"));
    let rest = &answer[start..];
    let end = rest[2..].find("m=").map_or(rest.len(), |i| i + 2);
    &rest[..end]
}

fn assert_increasing(frames: &[FrameRecord], clock_hz: u32, what: &str) {
    for pair in frames.windows(2) {
        let step = pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp);
        // Forward and less than ten seconds: a jump back would be a huge unsigned step.
        assert!(
            step > 0 && step < clock_hz * 10,
            "{what}: RTP timestamp went from {} to {}",
            pair[0].rtp_timestamp,
            pair[1].rtp_timestamp
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_and_the_media_follow_the_output_tracks() {
    let (gateway, base) = gateway(&[
        ("both", "h264-baseline-opus.ts"),
        ("high", "h264-high-opus.ts"),
        ("video", "video-only.ts"),
        ("audio", "audio-only.ts"),
    ])
    .await;

    let both = play(&base, "both").await;
    both.wait_video_frames(10, DEADLINE).await.unwrap();
    both.wait_audio_packets(10, DEADLINE).await.unwrap();
    let video = section(both.resource().answer_sdp(), "video");
    assert!(video.contains("packetization-mode=1"), "{video}");
    assert!(
        video.contains("profile-level-id=42"),
        "baseline SPS: {video}"
    );
    let stats = both.stats();
    let first = &stats.video.frame_log[0];
    assert!(
        first.is_keyframe() && first.has_parameter_sets(),
        "the first frame is an IDR with SPS/PPS: {:?}",
        &stats.video.frame_log[..3]
    );
    // One media stream for both tracks, so players lip-sync them.
    let msid = |kind| {
        section(both.resource().answer_sdp(), kind)
            .lines()
            .find_map(|l| l.strip_prefix("a=msid:"))
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(msid("video"), msid("audio"));
    assert!(msid("video").is_some());

    let high = play(&base, "high").await;
    high.wait_video_frames(5, DEADLINE).await.unwrap();
    assert!(
        section(high.resource().answer_sdp(), "video").contains("profile-level-id=640c0d"),
        "High profile SPS, level 1.3 as in the stream: {}",
        high.resource().answer_sdp()
    );

    // Offered audio that the output lacks is refused in the answer and nothing is sent.
    let video_only = play(&base, "video").await;
    video_only.wait_video_frames(20, DEADLINE).await.unwrap();
    let audio = section(video_only.resource().answer_sdp(), "audio");
    assert!(
        audio.starts_with("m=audio 0 ") || audio.contains("a=inactive"),
        "{audio}"
    );
    assert_eq!(video_only.stats().audio.packets, 0);

    let audio_only = play(&base, "audio").await;
    audio_only.wait_audio_packets(50, DEADLINE).await.unwrap();
    let video = section(audio_only.resource().answer_sdp(), "video");
    assert!(
        video.starts_with("m=video 0 ") || video.contains("a=inactive"),
        "{video}"
    );
    assert_eq!(audio_only.stats().video.packets, 0);

    for session in [&both, &high, &video_only, &audio_only] {
        assert_eq!(session.delete().await.unwrap(), 200);
        session.wait_closed(DEADLINE).await.unwrap();
    }
    // A second DELETE of the same session finds nothing.
    assert_eq!(both.delete().await.unwrap(), 404);
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_timestamps_increase_across_the_pts_wrap() {
    // The fixture starts one second before 2^33 and wraps; the file source continues its
    // timestamps across loops, so the wrap comes again each loop.
    let (gateway, base) = gateway(&[("wrap", "pts-wrap.ts")]).await;
    let session = play(&base, "wrap").await;
    session.wait_video_frames(90, DEADLINE).await.unwrap();
    session.wait_audio_packets(150, DEADLINE).await.unwrap();
    let stats = session.stats();
    assert_increasing(&stats.video.frame_log, 90_000, "video");
    assert_increasing(&stats.audio.frame_log, 48_000, "audio");
    assert_eq!(stats.video.packets_lost, 0);
    session.delete().await.unwrap();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_waiting_before_the_stream_exists_plays_it_and_is_closed_with_it() {
    let (gateway, base) = gateway(&[]).await;
    let viewer = tokio::spawn({
        let base = base.clone();
        async move { play(&base, "late").await }
    });
    // The request is waiting (the stream does not exist) before the source starts.
    while !reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("livegate_whep_pending_requests 1")
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spec = parse_specs(&format!(
        "late={}",
        fixture("h264-baseline-opus.ts").display()
    ))
    .unwrap()
    .remove(0);
    let source = FileSource::load(&spec).await.unwrap();
    let stop = CancellationToken::new();
    let source = tokio::spawn(source.run(gateway.registry.clone(), stop.clone()));

    let session = viewer.await.unwrap();
    session.wait_video_frames(10, DEADLINE).await.unwrap();
    assert!(session.stats().video.frame_log[0].is_keyframe());

    // The stream ends for good: the session is closed by the gateway, not left to time out.
    stop.cancel();
    source.await.unwrap().unwrap();
    session.wait_closed(DEADLINE).await.unwrap();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_output_buffer_keeps_the_session_and_its_timeline() {
    let (gateway, base) = gateway(&[]).await;
    let stream = gateway
        .registry
        .create(StreamKey::parse("swap").unwrap())
        .unwrap();
    let first = RingBuffer::new(8 << 20);
    first
        .write(Bytes::from(
            std::fs::read(fixture("h264-baseline-opus.ts")).unwrap(),
        ))
        .unwrap();
    stream.set_output(first.clone());

    let session = play(&base, "swap").await;
    let mut events = sse(&base, session.resource().location()).await;
    assert_eq!(events.next_event().await, "active");
    session.wait_video_frames(10, DEADLINE).await.unwrap();
    let before = session.stats().video.frames;

    // The worker restarts: its buffer closes, and the new one's clock is far elsewhere.
    first.close();
    assert_eq!(events.next_event().await, "inactive");
    let second = RingBuffer::new(8 << 20);
    stream.set_output(second.clone());
    second
        .write(Bytes::from(std::fs::read(fixture("pts-wrap.ts")).unwrap()))
        .unwrap();
    assert_eq!(events.next_event().await, "active");
    session
        .wait_video_frames(before + 20, DEADLINE)
        .await
        .unwrap();
    assert!(
        !session.is_closed().await,
        "the session outlived its output"
    );
    let stats = session.stats();
    assert_increasing(&stats.video.frame_log, 90_000, "video across the swap");
    assert_increasing(&stats.audio.frame_log, 48_000, "audio across the swap");
    session.delete().await.unwrap();
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_come_on_the_data_channel_when_asked() {
    let (gateway, base) = gateway(&[("cam", "h264-baseline-opus.ts")]).await;
    let options = WhepOptions {
        data_channel: true,
        ..options()
    };
    let session = WhepClient::new()
        .play(&format!("{base}/live/cam/whep?server_metrics=1"), &options)
        .await
        .unwrap();
    let message = session.wait_data_message(DEADLINE).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(json["type"], "server_metrics");
    assert_eq!(json["stream"]["key"], "cam");
    assert_eq!(json["stream"]["viewers"], 1);
    assert!(json["session"]["fps"].as_f64().unwrap() > 0.0, "{json}");

    // Without the flag, the channel stays quiet.
    let quiet = WhepClient::new()
        .play(&format!("{base}/live/cam/whep"), &options)
        .await
        .unwrap();
    quiet.wait_video_frames(60, DEADLINE).await.unwrap();
    assert!(quiet
        .wait_data_message(Duration::from_millis(1_500))
        .await
        .is_err());
    assert!(gateway.shutdown(Duration::from_secs(5)).await);
}

/// A subscription of the WHEP server-sent events extension, read over a raw HTTP/1.1
/// connection.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

async fn sse(base: &str, session: &str) -> Events {
    let client = reqwest::Client::new();
    let subscribed = client
        .post(format!("{base}{session}/sse"))
        .header("content-type", "application/json")
        .body(r#"["active","inactive"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);
    let location = subscribed.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let response = client
        .get(format!("{base}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Events {
        response,
        buffer: String::new(),
    }
}

impl Events {
    /// The name of the next event (keep-alive comments skipped).
    async fn next_event(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(name) = event.lines().find_map(|l| l.strip_prefix("event: ")) {
                    return name.to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the event stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
