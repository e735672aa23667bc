//! `livegate-bench whip`: K publishers of one MPEG-TS file, each to its own stream, opened
//! on a ramp, held through a steady-state window, then DELETEd; reports what they sent, how
//! fast the gateway answered, and, with `--cpu-of`, what each published stream cost it.
//!
//! Phases: load the file once → baseline sample → ramp (publisher i is POSTed at i × ramp
//! to the URL with `{n}` replaced by i, then waits to connect) → window start sample →
//! window (`--duration`, or until Ctrl-C) → window end sample → DELETE every publisher. Rates
//! are over the window only, so ramp and teardown do not blur the per-stream figures.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use livegate_bench::whip::{
    MediaFile, OfferShape, SentStats, WhipClient, WhipOptions, WhipPublisher,
};
use serde::Serialize;

use super::proc_stat::ProcUsage;
use super::runner::{self, Held, Measured, Row};
use super::summary::{failure_label, Distribution, TallyEntry};
use super::{parse_secs, target, CommonArgs, MAX_SESSIONS};

/// What `--url` says the publisher's index is replaced by.
const INDEX_PLACEHOLDER: &str = "{n}";

/// Arguments of `livegate-bench whip`.
#[derive(Debug, Clone, clap::Args)]
pub struct WhipArgs {
    /// WHIP endpoint; `{n}` is replaced by the publisher's index (0, 1, …), e.g.
    /// http://127.0.0.1:8935/live/load{n}/whip
    #[arg(long)]
    pub url: String,
    /// Publishers (streams) to open.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SESSIONS)))]
    pub streams: u32,
    /// MPEG-TS file (H.264 and/or Opus) every publisher plays in a loop, in real time.
    #[arg(long)]
    pub file: PathBuf,
    /// Steady-state window in seconds, after every publisher connected or gave up.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: f64,
    /// Delay between two publishers' POSTs, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub ramp_ms: u64,
    /// How long a publisher may take from its POST to connected, in seconds.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Pace of each publisher's ICE checks in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ice_check_ms: u64,
    /// Bearer token for the POST and the DELETE.
    #[arg(long, env = "LIVEGATE_BENCH_TOKEN")]
    pub token: Option<String>,
    /// Offer no audio section (the file's audio is not sent).
    #[arg(long)]
    pub no_audio: bool,
    /// Offer as OBS does: audio first, no candidates (the gateway learns each publisher as
    /// peer-reflexive).
    #[arg(long)]
    pub obs: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One publisher's figures.
#[derive(Debug, Clone, Default, Serialize)]
struct PublisherReport {
    index: usize,
    url: String,
    /// Why it never reached the window (POST refused, no connection).
    error: Option<String>,
    /// From the POST to the 201's headers.
    created_ms: Option<f64>,
    connect_ms: Option<f64>,
    bitrate_bps: f64,
    video_fps: f64,
    audio_packets_per_sec: f64,
    packets_sent: u64,
    keyframe_requests: u64,
    nacks: u64,
    closed_during_window: bool,
    delete_status: Option<u16>,
}

/// The whole run, as printed.
#[derive(Debug, Serialize)]
struct Report {
    url: String,
    file: String,
    streams_requested: usize,
    streams_connected: usize,
    streams_failed: usize,
    failures: Vec<TallyEntry>,
    ramp_secs: f64,
    window_secs: f64,
    /// POST to 201, over every publisher that got one.
    created_ms: Option<Distribution>,
    connect_ms: Option<Distribution>,
    total_bitrate_bps: f64,
    bitrate_bps: Option<Distribution>,
    video_fps: Option<Distribution>,
    packets_sent: u64,
    keyframe_requests: u64,
    nacks: u64,
    closed_during_window: usize,
    deletes: Vec<TallyEntry>,
    gateway: Option<ProcUsage>,
    /// The gateway's CPU over the window divided by the streams published through it.
    gateway_cpu_percent_per_stream: Option<f64>,
    bench: Option<ProcUsage>,
    publishers: Vec<PublisherReport>,
}

/// A publisher that reached the window.
struct Live {
    index: usize,
    url: String,
    publisher: WhipPublisher,
    connect: Duration,
}

impl Held for Live {
    type Counters = SentStats;

    fn counters(&self) -> SentStats {
        self.publisher.stats()
    }

    async fn end(self) -> (bool, Option<u16>) {
        let closed = self.publisher.closed_reason().is_some();
        let status = self.publisher.delete().await.ok();
        self.publisher.disconnect().await;
        (closed, status)
    }
}

impl Row for PublisherReport {
    fn index(&self) -> usize {
        self.index
    }

    fn ended(&mut self, closed_during_window: bool, delete_status: Option<u16>) {
        self.closed_during_window = closed_during_window;
        self.delete_status = delete_status;
    }
}

/// Runs the subcommand; the exit code is 0 when every publisher connected, 1 otherwise.
pub async fn run(args: WhipArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.streams > 1 && !args.url.contains(INDEX_PLACEHOLDER) {
        anyhow::bail!(
            "--url has no {INDEX_PLACEHOLDER}: all {} publishers would publish the same stream",
            args.streams
        );
    }
    target::check(&url_of(&args.url, 0), args.common.allow_remote).await?;
    let media = MediaFile::load(&args.file)
        .await
        .with_context(|| format!("--file {}", args.file.display()))?;
    let options = WhipOptions {
        audio: !args.no_audio,
        shape: if args.obs {
            OfferShape::Obs
        } else {
            OfferShape::Standard
        },
        bearer_token: args.token.clone(),
        media: Some(media),
        loopback_only: !args.common.allow_remote,
        ice_check_interval: Duration::from_millis(args.ice_check_ms),
        ..WhipOptions::default()
    };
    let measured = runner::measure(
        args.common.cpu_of,
        args.duration,
        open_publishers(&args, &options),
        publisher_report,
    )
    .await?;
    let report = summarize(&args, measured);
    runner::print(&report, args.common.json, print_text)?;
    Ok(runner::exit_code(report.streams_failed))
}

/// The URL of publisher `index`.
fn url_of(template: &str, index: usize) -> String {
    template.replace(INDEX_PLACEHOLDER, &index.to_string())
}

/// POSTs publisher i at ramp start + i × ramp and waits for it to connect; returns those
/// that connected and a report for each that did not (its resource DELETEd if it had one).
async fn open_publishers(
    args: &WhipArgs,
    options: &WhipOptions,
) -> (Vec<Live>, Vec<PublisherReport>) {
    let client = WhipClient::new();
    let connect_timeout = Duration::from_secs_f64(args.connect_timeout);
    let open = |index: usize| {
        let (client, options) = (client.clone(), options.clone());
        let url = url_of(&args.url, index);
        async move {
            open_one(&client, &url, &options, connect_timeout)
                .await
                .map(|(publisher, connect)| Live {
                    index,
                    url: url.clone(),
                    publisher,
                    connect,
                })
                .map_err(|(label, created, status)| PublisherReport {
                    index,
                    url: url.clone(),
                    error: Some(label),
                    created_ms: created.map(millis),
                    delete_status: status,
                    ..PublisherReport::default()
                })
        }
    };
    let task_failed = |why| PublisherReport {
        error: Some(why),
        ..PublisherReport::default()
    };
    runner::ramp(args.streams as usize, args.ramp_ms, open, task_failed).await
}

/// One publisher: POST, then wait to connect; on failure, the failure's label, the time to
/// its 201 if it got one, and the status of the DELETE of its resource.
async fn open_one(
    client: &WhipClient,
    url: &str,
    options: &WhipOptions,
    connect_timeout: Duration,
) -> Result<(WhipPublisher, Duration), (String, Option<Duration>, Option<u16>)> {
    let publisher = client
        .publish(url, options)
        .await
        .map_err(|e| (failure_label(&e), None, None))?;
    match publisher.wait_connected(connect_timeout).await {
        Ok(connect) => Ok((publisher, connect)),
        Err(e) => {
            let status = publisher.delete().await.ok();
            publisher.disconnect().await;
            Err((
                failure_label(&e),
                Some(publisher.resource().answered_after()),
                status,
            ))
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn publisher_report(
    live: &Live,
    before: &SentStats,
    after: &SentStats,
    window: Duration,
) -> PublisherReport {
    let secs = window.as_secs_f64().max(f64::EPSILON);
    let bytes = |s: &SentStats| s.video_payload_bytes + s.audio_payload_bytes;
    PublisherReport {
        index: live.index,
        url: live.url.clone(),
        error: None,
        created_ms: Some(millis(live.publisher.resource().answered_after())),
        connect_ms: Some(millis(live.connect)),
        bitrate_bps: (bytes(after) - bytes(before)) as f64 * 8.0 / secs,
        video_fps: (after.video_frames - before.video_frames) as f64 / secs,
        audio_packets_per_sec: (after.audio_packets - before.audio_packets) as f64 / secs,
        packets_sent: after.video_packets + after.audio_packets,
        keyframe_requests: after.keyframe_requests,
        nacks: after.nacks,
        closed_during_window: false,
        delete_status: None,
    }
}

fn summarize(args: &WhipArgs, measured: Measured<PublisherReport>) -> Report {
    let Measured {
        rows: publishers,
        connected,
        ramp_secs,
        window_secs,
        gateway,
        bench,
    } = measured;
    let reached: Vec<&PublisherReport> = publishers.iter().filter(|p| p.error.is_none()).collect();
    let values = |f: fn(&PublisherReport) -> Option<f64>| -> Vec<f64> {
        reached.iter().filter_map(|p| f(p)).collect()
    };
    let (failures, deletes) = runner::tally_ends(
        publishers
            .iter()
            .map(|p| (p.error.as_deref(), p.delete_status)),
    );
    let created: Vec<f64> = publishers.iter().filter_map(|p| p.created_ms).collect();
    Report {
        url: args.url.clone(),
        file: args.file.display().to_string(),
        streams_requested: args.streams as usize,
        streams_connected: connected,
        streams_failed: args.streams as usize - connected,
        failures,
        ramp_secs,
        window_secs,
        created_ms: Distribution::of(&created),
        connect_ms: Distribution::of(&values(|p| p.connect_ms)),
        total_bitrate_bps: reached.iter().fold(0.0, |sum, p| sum + p.bitrate_bps),
        bitrate_bps: Distribution::of(&values(|p| Some(p.bitrate_bps))),
        video_fps: Distribution::of(&values(|p| Some(p.video_fps))),
        packets_sent: reached.iter().map(|p| p.packets_sent).sum(),
        keyframe_requests: reached.iter().map(|p| p.keyframe_requests).sum(),
        nacks: reached.iter().map(|p| p.nacks).sum(),
        closed_during_window: reached.iter().filter(|p| p.closed_during_window).count(),
        deletes,
        gateway_cpu_percent_per_stream: gateway.as_ref().and_then(|g| g.cpu_percent_per_viewer),
        gateway,
        bench,
        publishers,
    }
}

/// Per-publisher lines are printed for small runs (`--json` always has every one).
const PUBLISHER_LINES_UP_TO: usize = 10;

fn print_text(r: &Report) {
    let mbps = |bps: f64| bps / 1e6;
    println!("livegate-bench whip {} playing {}", r.url, r.file);
    println!(
        "streams       requested {}, connected {}, failed {}, closed by the gateway during the window {}",
        r.streams_requested, r.streams_connected, r.streams_failed, r.closed_during_window
    );
    runner::print_failures(&r.failures);
    println!(
        "window        {:.1} s steady state after a {:.1} s ramp",
        r.window_secs, r.ramp_secs
    );
    if let Some(d) = &r.created_ms {
        println!(
            "POST → 201    p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            d.p50, d.p90, d.p99, d.max
        );
    }
    if let Some(d) = &r.connect_ms {
        println!(
            "connected     since POST p50 {:.0} ms  p90 {:.0} ms  max {:.0} ms",
            d.p50, d.p90, d.max
        );
    }
    println!(
        "sent          {:.2} Mbit/s in total",
        mbps(r.total_bitrate_bps)
    );
    if let Some(d) = &r.bitrate_bps {
        println!(
            "  per stream  min {:.3}  p50 {:.3}  max {:.3} Mbit/s",
            mbps(d.min),
            mbps(d.p50),
            mbps(d.max)
        );
    }
    if let Some(d) = &r.video_fps {
        println!(
            "video fps     per stream min {:.1}  p50 {:.1}  max {:.1}",
            d.min, d.p50, d.max
        );
    }
    println!(
        "feedback      {} keyframe requests, {} NACKs received ({} packets sent)",
        r.keyframe_requests, r.nacks, r.packets_sent
    );
    runner::print_deletes_and_usage(&r.deletes, r.gateway.as_ref(), r.bench.as_ref(), "stream");
    if r.publishers.len() <= PUBLISHER_LINES_UP_TO {
        for p in &r.publishers {
            match &p.error {
                Some(error) => println!("  #{:<3} failed: {error}", p.index),
                None => println!(
                    "  #{:<3} {:.3} Mbit/s  {:.1} fps  201 after {}  keyframe requests {}",
                    p.index,
                    mbps(p.bitrate_bps),
                    p.video_fps,
                    p.created_ms
                        .map_or("-".to_owned(), |ms| format!("{ms:.1} ms")),
                    p.keyframe_requests
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_goes_where_the_placeholder_is() {
        assert_eq!(
            url_of("http://127.0.0.1:8935/live/load{n}/whip", 7),
            "http://127.0.0.1:8935/live/load7/whip"
        );
        assert_eq!(
            url_of("http://h/live/cam/whip", 3),
            "http://h/live/cam/whip"
        );
    }
}
