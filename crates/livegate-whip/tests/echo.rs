//! WHIP echo end to end: the WHIP server with the passthrough pipeline and stream outputs
//! on 127.0.0.1, and an independent WebRTC publisher (`webrtc` crate) that publishes a
//! fixture. Offered `sendrecv`, it gets its own video back on the same peer connection;
//! offered `sendonly`, it is answered `recvonly` as before.

mod common;
mod peer;

use std::time::Duration;

use livegate_media::registry::StreamRegistry;
use livegate_media::{Codec, StreamKey};
use livegate_pipeline::Pipeline;
use livegate_rtc::{RtcConfig, RtcServer};
use livegate_whep::{OutputConfig, StreamOutputs};
use livegate_whip::auth::AuthRequest;
use livegate_whip::{WhipConfig, WhipMetrics, WhipServer};
// `stop`, the DELETE of a session, comes with the session handlers' trait.
use livegate_wish::SessionResource;
use peer::{direction, media_section, Publisher, DEADLINE};
use tokio::time::Instant;
use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

const FIXTURE: &str = "h264-baseline-opus.ts";
/// Frames the publisher must get back: over a second of the fixture's video.
const FRAMES_BACK: usize = 40;

async fn echoing_whip_server() -> WhipServer {
    let rtc = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let config = WhipConfig {
        echo: Some(StreamOutputs::new(OutputConfig::default()).unwrap()),
        ..WhipConfig::default()
    };
    WhipServer::new(
        config,
        StreamRegistry::new(),
        Pipeline::Passthrough,
        rtc,
        WhipMetrics::unregistered(),
    )
}

/// Whether an H.264 RTP payload (RFC 6184 §5.2) carries, or starts, an IDR slice.
fn starts_idr(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    match payload.first().map(|b| b & 0x1f) {
        Some(IDR) => true,
        // STAP-A: 16-bit sizes, each followed by a NAL unit.
        Some(24) => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if rest.get(2).is_some_and(|h| h & 0x1f == IDR) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        // FU-A: the start bit and the fragmented unit's type.
        Some(28) => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == IDR),
        _ => false,
    }
}

/// One H.264 frame received: its RTP timestamp and whether it was a keyframe.
#[derive(Debug)]
struct FrameBack {
    timestamp: u32,
    keyframe: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendrecv_publisher_gets_its_own_video_back() {
    let server = echoing_whip_server().await;
    let mut publisher = Publisher::new(RTCRtpTransceiverDirection::Sendrecv, None).await;
    let key = StreamKey::parse("echo").unwrap();
    let offer = publisher.offer().await;
    assert_eq!(
        direction(media_section(&offer, "video").unwrap()),
        Some("sendrecv")
    );
    let published = server
        .publish(key.clone(), offer, AuthRequest::whip(&key))
        .await
        .unwrap();
    let video = media_section(&published.answer, "video").unwrap();
    assert_eq!(direction(video), Some("sendrecv"), "{}", published.answer);
    assert!(video.contains("a=msid:echo "), "{video}");
    publisher.apply_answer(published.answer.clone()).await;
    publisher.connected().await;

    let units: Vec<_> = common::demux(&common::fixture(FIXTURE))
        .into_iter()
        .filter(|au| au.codec == Codec::H264)
        .collect();
    // Played in a loop: the RTP timestamps come from the frames' durations, so they go on.
    assert!(units[0].keyframe);
    let deadline = Instant::now() + DEADLINE;
    let mut back: Vec<FrameBack> = Vec::new();
    let mut keyframe_in_frame = false;
    let mut sent = 0;
    // Real time: one frame per 33 ms, reading what comes back in between.
    let mut pace = tokio::time::interval(Duration::from_millis(33));
    while back.len() < FRAMES_BACK {
        assert!(
            Instant::now() < deadline,
            "{} frames back after sending {sent}",
            back.len()
        );
        tokio::select! {
            _ = pace.tick() => {
                let au = &units[sent % units.len()];
                publisher.send_h264(au.data.clone(), Duration::from_millis(33)).await;
                sent += 1;
            }
            packet = publisher.received.recv() => {
                let packet = packet.expect("the publisher's receiver stays open");
                keyframe_in_frame |= starts_idr(&packet.payload);
                if packet.header.marker {
                    back.push(FrameBack { timestamp: packet.header.timestamp, keyframe: keyframe_in_frame });
                    keyframe_in_frame = false;
                }
            }
        }
    }

    // The echo starts at a keyframe (the output's GOP cache), and its clock only moves on.
    assert!(back[0].keyframe, "first frame back: {:?}", back[0]);
    for pair in back.windows(2) {
        let step = pair[1].timestamp.wrapping_sub(pair[0].timestamp) as i32;
        assert!(
            step > 0 && step <= 90_000,
            "RTP timestamps {} then {}",
            pair[0].timestamp,
            pair[1].timestamp
        );
    }
    assert!(server.stop(&key, published.id).await);
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sendonly_publisher_is_answered_recvonly_by_an_echoing_server() {
    let server = echoing_whip_server().await;
    let mut publisher = Publisher::new(RTCRtpTransceiverDirection::Sendonly, None).await;
    let key = StreamKey::parse("plain").unwrap();
    let offer = publisher.offer().await;
    assert_eq!(
        direction(media_section(&offer, "video").unwrap()),
        Some("sendonly")
    );
    let published = server
        .publish(key.clone(), offer, AuthRequest::whip(&key))
        .await
        .unwrap();
    let video = media_section(&published.answer, "video").unwrap();
    assert_eq!(direction(video), Some("recvonly"), "{}", published.answer);
    assert!(!video.contains("a=msid:"), "{video}");
    publisher.apply_answer(published.answer).await;
    publisher.connected().await;
    assert!(server.stop(&key, published.id).await);
}
