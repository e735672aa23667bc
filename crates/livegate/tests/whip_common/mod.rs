//! What the WHIP (and the WHEP endpoint's) integration tests share: the gateway in-process
//! on 127.0.0.1, raw POSTs, the fixture as a publisher's media, a WHEP viewer's options, the
//! stream's input read back, and waits on `/metrics`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;
use livegate_bench::whep::{WhepClient, WhepOptions, WhepSession};
use livegate_bench::whip::{MediaFile, SentStats, WhipClient, WhipOptions, WhipPublisher};
use livegate_media::ring::{ReadOutcome, RingBuffer};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::AccessUnit;
use tokio::time::Instant;

/// Longest any single wait of these tests may take on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures")).join(name)
}

/// The gateway with WHIP and WHEP on ephemeral loopback ports, plus `extra` flags.
pub async fn gateway(extra: &[&str]) -> (Gateway, String) {
    let mut args = vec![
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "127.0.0.1:0",
        "--whep-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let base = format!("http://{}", gateway.http_addr());
    (gateway, base)
}

/// POSTs `body` as `content_type`, as a client that is no WebRTC peer would.
pub async fn post(
    url: impl reqwest::IntoUrl,
    content_type: &'static str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A response's status and its body's one line (a refusal's reason).
pub async fn status_and_reason(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap().trim_end().to_owned())
}

/// An endpoint's answers besides POST: 405 to GET; 204 to OPTIONS with `Accept-Post` and,
/// since the ICE servers come before the offer is made (RFC 9725 §4.4), their `Link`.
pub async fn assert_get_and_options(endpoint: &str, link: &str) {
    let client = reqwest::Client::new();
    assert_eq!(client.get(endpoint).send().await.unwrap().status(), 405);
    let options = client
        .request(reqwest::Method::OPTIONS, endpoint)
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(options.headers()["accept-post"], "application/sdp");
    assert_eq!(options.headers()["link"], link);
}

pub async fn media(name: &str) -> Arc<MediaFile> {
    MediaFile::load(fixture(name)).await.unwrap()
}

/// A publisher of `file` in a loop, with the default (browser-shaped) offer.
pub async fn publish_options(name: &str) -> WhipOptions {
    WhipOptions {
        media: Some(media(name).await),
        ..WhipOptions::default()
    }
}

pub async fn publish(base: &str, stream: &str, options: &WhipOptions) -> WhipPublisher {
    let publisher = WhipClient::new()
        .publish(&format!("{base}/live/{stream}/whip"), options)
        .await
        .unwrap();
    publisher.wait_connected(DEADLINE).await.unwrap();
    publisher
}

/// The viewer's options: its offer says `a=setup:passive` (see whep_media.rs: an rtc-based
/// viewer that is the DTLS client may drop the gateway's first GOP).
pub fn viewer_options() -> WhepOptions {
    WhepOptions {
        offer_transform: Some(Arc::new(|offer: String| {
            offer.replace("a=setup:actpass", "a=setup:passive")
        })),
        ..WhepOptions::default()
    }
}

pub async fn play(base: &str, stream: &str) -> WhepSession {
    WhepClient::new()
        .play(&format!("{base}/live/{stream}/whep"), &viewer_options())
        .await
        .unwrap()
}

/// Everything a ring holds from its oldest chunk until it is closed.
pub async fn read_until_closed(ring: &Arc<RingBuffer>) -> Bytes {
    let mut reader = ring.reader_from_oldest();
    let mut bytes = BytesMut::new();
    loop {
        match tokio::time::timeout(DEADLINE, reader.read())
            .await
            .expect("the ring closes in time")
        {
            ReadOutcome::Chunk(chunk) => bytes.extend_from_slice(&chunk),
            ReadOutcome::Lagged { skipped_bytes } => {
                panic!("the ring evicted {skipped_bytes} bytes before they were read")
            }
            ReadOutcome::Closed => return bytes.freeze(),
        }
    }
}

/// The access units of an MPEG-TS stream, in stream order.
pub fn demux(ts: &[u8]) -> Vec<AccessUnit> {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    for chunk in ts.chunks(7 * 188) {
        demuxer.push(chunk, &mut events);
    }
    demuxer.finish(&mut events);
    assert_eq!(demuxer.stats().continuity_errors, 0);
    assert_eq!(demuxer.stats().dropped_pes, 0);
    events
        .into_iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        })
        .collect()
}

/// The value of a counter or gauge of `/metrics` (with its labels, e.g.
/// `livegate_whip_sessions_ended_total{reason="failed"}`), `None` while it has none.
pub async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads `/metrics` until `name` has `value` (what an operator watches, so what the test
/// waits on), for at most `within`.
pub async fn wait_for_metric(base: &str, name: &str, value: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let current = metric(base, name).await;
        if current == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed {current:?}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the gateway's ingest counted every packet `sent` (the counters are published
/// each second). A DELETE ends the session at once, and RTP still queued towards it would be
/// dropped, so tests that compare everything sent wait for this first. Counts every
/// publisher of the gateway: for tests with one.
pub async fn wait_ingested(base: &str, sent: &SentStats) {
    for (kind, packets) in [("video", sent.video_packets), ("audio", sent.audio_packets)] {
        let name = format!("livegate_whip_rtp_packets_total{{kind=\"{kind}\"}}");
        wait_for_metric(base, &name, packets as f64, DEADLINE).await;
    }
}

/// `GET /live/{stream}/status` as JSON.
pub async fn status(base: &str, stream: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/live/{stream}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Reads the stream's status (what an operator watches) until `ready` holds.
pub async fn wait_status(
    base: &str,
    stream: &str,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = status(base, stream).await;
        if ready(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: status stayed {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the publisher has been asked for more keyframes than `before` (it counts the
/// PLIs it receives), for `why`.
pub async fn wait_keyframe_requests_above(publisher: &WhipPublisher, before: u64, why: &str) {
    let deadline = Instant::now() + DEADLINE;
    while publisher.stats().keyframe_requests <= before {
        assert!(
            Instant::now() < deadline,
            "no PLI reached the publisher: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
