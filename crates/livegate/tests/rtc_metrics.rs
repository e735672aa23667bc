//! `GET /metrics` after WebRTC media flowed: the gateway in-process on 127.0.0.1 plays a real
//! MPEG-TS fixture (30 fps) to an independent WebRTC viewer (`livegate_bench::whep`), and the
//! WebRTC counters and session gauges agree with what the viewer received.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use livegate::config::Config;
use livegate::Gateway;
use livegate_bench::whep::{WhepClient, WhepOptions};
use livegate_rtc::BitrateMeter;

const DEADLINE: Duration = Duration::from_secs(20);

async fn gateway() -> (Gateway, String) {
    let fixture = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
        .join("h264-baseline-opus.ts");
    let config = Config::try_parse_from([
        "livegate",
        "--http-addr",
        "127.0.0.1:0",
        "--whip-addr",
        "off",
        "--whep-addr",
        "127.0.0.1:0",
        "--test-stream",
        &format!("cam={}", fixture.display()),
    ])
    .unwrap();
    let gateway = Gateway::start(&config).await.unwrap();
    let base = format!("http://{}", gateway.http_addr());
    (gateway, base)
}

/// The viewer as DTLS server, as in `whep_media.rs` (an rtc 0.21 viewer that is the DTLS
/// client loses the first packets).
fn options() -> WhepOptions {
    WhepOptions {
        offer_transform: Some(Arc::new(|offer: String| {
            offer.replace("a=setup:actpass", "a=setup:passive")
        })),
        ..WhepOptions::default()
    }
}

async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the series `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let pairs: Vec<(&str, &str)> = label_text
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|label| pairs.contains(label))
                .then(|| value.parse().unwrap())
        })
}

fn whep(direction: &str) -> [(&'static str, &str); 2] {
    [("role", "whep"), ("direction", direction)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_the_webrtc_sessions_after_media_flowed() {
    let (gateway, base) = gateway().await;
    let viewer = WhepClient::new()
        .play(&format!("{base}/live/cam/whep"), &options())
        .await
        .unwrap();
    viewer.wait_video_frames(10, DEADLINE).await.unwrap();

    // The first scrape starts each session's rate meters; the second reads the rates over
    // the media in between, at least one meter interval later.
    let first = scrape(&base).await;
    let first_at = Instant::now();
    let before = viewer.counters();
    viewer
        .wait_video_frames(before.video.frames + 20, DEADLINE)
        .await
        .unwrap();
    tokio::time::sleep(BitrateMeter::MIN_INTERVAL.saturating_sub(first_at.elapsed())).await;
    // Read before the scrape: the scrape's snapshot waits for the event loops, after which
    // everything the viewer has is counted as sent.
    let received = viewer.counters();
    let viewer_span = first_at.elapsed();
    let text = scrape(&base).await;

    for name in [
        "livegate_rtc_rtp_packets_total",
        "livegate_rtc_rtp_bytes_total",
        "livegate_rtc_video_frames_total",
        "livegate_rtc_rtcp_feedback_total",
        "livegate_rtc_packets_lost_total",
        "livegate_rtc_bitrate_bps",
        "livegate_rtc_rtt_seconds",
        "livegate_rtc_jitter_seconds",
        "livegate_rtc_fraction_lost",
        "livegate_rtc_frames_per_second",
        "livegate_rtc_stats_sessions",
        "livegate_rtc_stats_shards_skipped_total",
    ] {
        assert!(
            first.contains(&format!("# HELP {name} ")),
            "{name}: {first}"
        );
    }
    let value = |name, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}:\n{text}"))
    };

    let packets = received.video.packets + received.audio.packets;
    let payload_bytes = received.video.payload_bytes + received.audio.payload_bytes;
    let sent_packets = value("livegate_rtc_rtp_packets_total", &whep("out"));
    assert!(sent_packets >= packets as f64, "{sent_packets} < {packets}");
    // Each SRTP packet: a 12-byte header at least, the payload, a 10-byte tag.
    let sent_bytes = value("livegate_rtc_rtp_bytes_total", &whep("out"));
    assert!(
        sent_bytes >= (payload_bytes + 22 * packets) as f64,
        "{sent_bytes} {received:?}"
    );
    assert_eq!(value("livegate_rtc_rtp_packets_total", &whep("in")), 0.0);
    let frames = value("livegate_rtc_video_frames_total", &whep("out"));
    assert!(
        frames >= received.video.frames as f64,
        "{frames} {received:?}"
    );
    for (direction, kind) in [
        ("in", "nack"),
        ("in", "pli"),
        ("in", "fir"),
        ("out", "nack"),
        ("out", "pli"),
    ] {
        let labels = [("role", "whep"), ("direction", direction), ("kind", kind)];
        assert!(value("livegate_rtc_rtcp_feedback_total", &labels) >= 0.0);
    }
    let lost = value("livegate_rtc_packets_lost_total", &whep("out"));
    assert!(lost <= received.video.packets_lost as f64 + 5.0, "{lost}");

    let role = [("role", "whep")];
    assert_eq!(value("livegate_rtc_stats_sessions", &role), 1.0);
    assert_eq!(value("livegate_rtc_stats_shards_skipped_total", &role), 0.0);
    // The gateway's rate, over its two reads, against the viewer's over about the same span.
    let bitrate = value("livegate_rtc_bitrate_bps", &whep("out"));
    let viewer_bps =
        (payload_bytes - before.video.payload_bytes - before.audio.payload_bytes) as f64 * 8.0
            / viewer_span.as_secs_f64();
    assert!(
        bitrate > viewer_bps / 2.0 && bitrate < viewer_bps * 2.0,
        "gateway {bitrate} bit/s, viewer {viewer_bps} bit/s"
    );
    assert_eq!(value("livegate_rtc_bitrate_bps", &whep("in")), 0.0);
    let quantile = |name, q| value(name, &[("role", "whep"), ("quantile", q)]);
    let fps = quantile("livegate_rtc_frames_per_second", "0.5");
    assert!((15.0..=50.0).contains(&fps), "a 30 fps source: {fps}");
    let rtt = quantile("livegate_rtc_rtt_seconds", "1");
    assert!(rtt > 0.0 && rtt < 0.5, "loopback: {rtt}");
    assert!(quantile("livegate_rtc_rtt_seconds", "0.5") <= rtt);
    let jitter = quantile("livegate_rtc_jitter_seconds", "1");
    assert!((0.0..0.5).contains(&jitter), "{jitter}");
    let fraction_lost = quantile("livegate_rtc_fraction_lost", "1");
    assert!((0.0..=1.0).contains(&fraction_lost), "{fraction_lost}");

    drop(viewer);
    gateway.shutdown(Duration::from_secs(5)).await;
}
