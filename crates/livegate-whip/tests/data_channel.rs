//! A publisher's data channel through the gateway and back: the WHIP server with the
//! passthrough pipeline on 127.0.0.1, an independent WebRTC publisher (`webrtc` crate) that
//! opens a data channel, and its messages echoed by the pipeline in order.

mod peer;

use std::time::Duration;

use livegate_media::registry::StreamRegistry;
use livegate_media::StreamKey;
use livegate_pipeline::Pipeline;
use livegate_rtc::{RtcConfig, RtcServer};
use livegate_whip::auth::AuthRequest;
use livegate_whip::{WhipConfig, WhipMetrics, WhipServer};
// `stop`, the DELETE of a session, comes with the session handlers' trait.
use livegate_wish::SessionResource;
use peer::Publisher;
use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

async fn whip_server() -> WhipServer {
    let rtc = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let config = WhipConfig {
        // The test sends no media; the session must outlive its messages.
        media_timeout: Duration::from_secs(60),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_echoes_a_publishers_messages_in_order() {
    const MESSAGES: usize = 200;
    let server = whip_server().await;
    let mut publisher = Publisher::new(RTCRtpTransceiverDirection::Sendonly, Some("control")).await;
    let key = StreamKey::parse("dc").unwrap();
    let offer = publisher.offer().await;
    let published = server
        .publish(key.clone(), offer, AuthRequest::whip(&key))
        .await
        .unwrap();
    publisher.apply_answer(published.answer).await;
    publisher.connected().await;
    let channel = publisher.data_channel_open().await;

    // Text and binary, so both kinds of message make the round trip.
    let message = |i: usize| {
        if i % 10 == 9 {
            bytes::Bytes::from(vec![0xff, 0xfe, i as u8])
        } else {
            bytes::Bytes::from(format!("{{\"seq\":{i}}}"))
        }
    };
    for i in 0..MESSAGES {
        let data = message(i);
        match std::str::from_utf8(&data) {
            Ok(text) => channel.send_text(text).await.unwrap(),
            Err(_) => channel
                .send(bytes::BytesMut::from(&data[..]))
                .await
                .unwrap(),
        }
    }
    for i in 0..MESSAGES {
        assert_eq!(publisher.next_message().await, message(i), "message {i}");
    }

    assert!(server.stop(&key, published.id).await);
    publisher.close().await;
    assert_eq!(server.publishers(), 0);
}
