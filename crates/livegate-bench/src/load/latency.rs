//! `livegate-bench latency`: one publisher and one viewer of the same stream in this process,
//! every video frame timed from the publisher's last `send` of it to the viewer's `recv` of
//! its last packet (see [`livegate_bench::latency`]).
//!
//! Phases: load the file → POST the WHIP offer, wait to connect and for the first frame out
//! → POST the WHEP offer (retried while the stream has no output yet), wait to connect →
//! window (`--duration`, or until Ctrl-C) → DELETE both. Frames arriving in the viewer's
//! first `--warmup` seconds are reported apart: an instant start replays the gateway's GOP
//! cache, whose frames were sent up to a GOP ago by design.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use livegate_bench::latency::{FrameLatency, LatencyProbe, ProbeSnapshot};
use livegate_bench::whep::{WhepClient, WhepClientError, WhepOptions, WhepSession};
use livegate_bench::whip::{MediaFile, WhipClient, WhipOptions, WhipPublisher};
use serde::Serialize;

use super::proc_stat::{self, ProcUsage};
use super::summary::Distribution;
use super::{parse_secs, target, CommonArgs};

/// Sendings remembered for matching: 30 s of 60 fps, far above any latency worth a number.
const SEND_LOG_FRAMES: usize = 1_800;
/// Frames expected per second, to size the sample vector once.
const EXPECTED_FPS: f64 = 60.0;
/// Pause between WHEP attempts while the stream has no output yet.
const PLAY_RETRY: Duration = Duration::from_millis(100);
/// Limit of each DELETE and close at the end.
const TEARDOWN: Duration = Duration::from_secs(10);

/// Arguments of `livegate-bench latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// WHIP endpoint to publish to, e.g. http://127.0.0.1:8935/live/lat/whip
    #[arg(long)]
    pub whip_url: String,
    /// WHEP endpoint of the same stream, e.g. http://127.0.0.1:8935/live/lat/whep
    #[arg(long)]
    pub whep_url: String,
    /// MPEG-TS file (H.264, optionally Opus) published in a loop, in real time.
    #[arg(long)]
    pub file: PathBuf,
    /// Window in seconds, from the viewer's connection.
    #[arg(long, default_value = "20", value_parser = parse_secs)]
    pub duration: f64,
    /// The viewer's first seconds, reported apart from the steady state.
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    pub warmup: f64,
    /// How long each of publisher and viewer may take to connect, in seconds.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Pace of ICE checks in milliseconds (publisher and viewer).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ice_check_ms: u64,
    /// Bearer token for the WHIP and WHEP requests.
    #[arg(long, env = "LIVEGATE_BENCH_TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Latencies of a set of frames, in milliseconds.
#[derive(Debug, Serialize)]
struct Latencies {
    frames: usize,
    latency_ms: Option<Distribution>,
}

impl Latencies {
    fn of<'a>(frames: impl Iterator<Item = &'a FrameLatency>) -> Latencies {
        let values: Vec<f64> = frames.map(|f| f.latency_ms).collect();
        Latencies {
            frames: values.len(),
            latency_ms: Distribution::of(&values),
        }
    }
}

/// The whole run, as printed.
#[derive(Debug, Serialize)]
struct Report {
    whip_url: String,
    whep_url: String,
    file: String,
    window_secs: f64,
    warmup_secs: f64,
    publish_created_ms: f64,
    play_created_attempts: u32,
    viewer_first_frame_ms: Option<f64>,
    frames_sent: u64,
    frames_received: u64,
    frames_matched: usize,
    /// Keyed frames the publisher never sent (or not within the send log).
    frames_unmatched: u64,
    /// Frames whose first slice was lost or damaged.
    frames_unkeyed: u64,
    packets_lost: u64,
    /// Every matched frame.
    all: Latencies,
    /// Frames that arrived in the viewer's first `warmup_secs` (the GOP cache replay).
    warmup: Latencies,
    /// Frames after that: the gateway's added latency in passthrough.
    steady: Latencies,
    gateway: Option<ProcUsage>,
    publisher_delete_status: Option<u16>,
    viewer_delete_status: Option<u16>,
}

/// Runs the subcommand; the exit code is 0 when steady-state frames were matched.
pub async fn run(args: LatencyArgs) -> anyhow::Result<ExitCode> {
    let allow_remote = args.common.allow_remote;
    target::check(&args.whip_url, allow_remote).await?;
    target::check(&args.whep_url, allow_remote).await?;
    let media = MediaFile::load(&args.file)
        .await
        .with_context(|| format!("--file {}", args.file.display()))?;
    anyhow::ensure!(
        media.has_video(),
        "--file {} has no H.264 video to time",
        args.file.display()
    );
    let expected = ((args.duration + args.warmup) * EXPECTED_FPS) as usize;
    let probe = Arc::new(LatencyProbe::new(SEND_LOG_FRAMES, expected));
    let connect_timeout = Duration::from_secs_f64(args.connect_timeout);
    let ice_check_interval = Duration::from_millis(args.ice_check_ms);
    let baseline = args.common.cpu_of.map(sample).transpose()?;

    let publish = WhipOptions {
        bearer_token: args.token.clone(),
        media: Some(media),
        sent_video_tap: Some(probe.clone()),
        loopback_only: !allow_remote,
        ice_check_interval,
        ..WhipOptions::default()
    };
    let publisher = WhipClient::new()
        .publish(&args.whip_url, &publish)
        .await
        .context("WHIP publish")?;
    let outcome = async {
        publisher
            .wait_connected(connect_timeout)
            .await
            .context("WHIP connection")?;
        publisher
            .wait_video_frames_sent(1, connect_timeout)
            .await
            .context("the publisher's first frame")?;
        let play = WhepOptions {
            bearer_token: args.token.clone(),
            loopback_only: !allow_remote,
            ice_check_interval,
            video_tap: Some(probe.clone()),
            frame_log_limit: 0,
            // With `a=setup:passive` the gateway is the DTLS client, so this viewer has
            // installed its SRTP keys long before the GOP cache arrives (rtc 0.21 installs
            // them only when events are next polled; see livegate's tests/whep_media.rs).
            offer_transform: Some(Arc::new(|offer: String| {
                offer.replace("a=setup:actpass", "a=setup:passive")
            })),
            ..WhepOptions::default()
        };
        let (viewer, attempts) = play_when_ready(&args.whep_url, &play, connect_timeout).await?;
        let outcome = hold(&args, &publisher, &viewer, attempts, &probe, baseline).await;
        let deleted = tokio::time::timeout(TEARDOWN, viewer.delete()).await;
        viewer.close().await;
        let mut report = outcome?;
        report.viewer_delete_status = deleted.ok().and_then(Result::ok);
        Ok::<Report, anyhow::Error>(report)
    }
    .await;
    let deleted = tokio::time::timeout(TEARDOWN, publisher.delete()).await;
    let _ = tokio::time::timeout(TEARDOWN, publisher.close()).await;
    let mut report = outcome?;
    report.publisher_delete_status = deleted.ok().and_then(Result::ok);

    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if report.steady.frames > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn sample(pid: u32) -> anyhow::Result<proc_stat::ProcSample> {
    Ok(proc_stat::sample(Some(pid))?)
}

/// POSTs the WHEP offer until the gateway has the stream's output (404 and 409 are retried,
/// after `Retry-After` if it says), then waits to connect. Returns the viewer and the POSTs
/// it took.
async fn play_when_ready(
    url: &str,
    options: &WhepOptions,
    timeout: Duration,
) -> anyhow::Result<(WhepSession, u32)> {
    let client = WhepClient::new();
    let deadline = Instant::now() + timeout;
    let mut attempts = 0;
    let viewer = loop {
        attempts += 1;
        match client.play(url, options).await {
            Ok(viewer) => break viewer,
            Err(e @ WhepClientError::Status { .. })
                if matches!(e.status(), Some(404 | 409)) && Instant::now() < deadline =>
            {
                let wait = e.retry_after().unwrap_or(PLAY_RETRY).min(PLAY_RETRY * 10);
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("WHEP play")),
        }
    };
    viewer
        .wait_connected(timeout)
        .await
        .context("WHEP connection")?;
    Ok((viewer, attempts))
}

/// Holds the window and turns what the probe saw into the report.
async fn hold(
    args: &LatencyArgs,
    publisher: &WhipPublisher,
    viewer: &WhepSession,
    attempts: u32,
    probe: &LatencyProbe,
    baseline: Option<proc_stat::ProcSample>,
) -> anyhow::Result<Report> {
    let window_start = args.common.cpu_of.map(sample).transpose()?;
    let started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(args.duration)) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("livegate-bench: interrupted; ending the window early"),
        why = viewer.wait_closed(Duration::from_secs_f64(args.duration)) => {
            if let Ok(why) = why {
                anyhow::bail!("the viewer's session ended during the window: {why}");
            }
        }
    }
    let window_end = args.common.cpu_of.map(sample).transpose()?;
    let window_secs = started.elapsed().as_secs_f64();
    let ProbeSnapshot {
        frames_sent,
        matched,
        unmatched,
        unkeyed,
    } = probe.snapshot();
    let stats = viewer.counters();
    let warmup = Duration::from_secs_f64(args.warmup);
    let gateway = match (args.common.cpu_of, baseline, window_start, window_end) {
        (Some(pid), Some(baseline), Some(start), Some(end)) => {
            Some(ProcUsage::between(pid, &baseline, &start, &end, 1))
        }
        _ => None,
    };
    Ok(Report {
        whip_url: args.whip_url.clone(),
        whep_url: args.whep_url.clone(),
        file: args.file.display().to_string(),
        window_secs,
        warmup_secs: args.warmup,
        publish_created_ms: millis(publisher.resource().answered_after()),
        play_created_attempts: attempts,
        viewer_first_frame_ms: stats.first_frame_at.map(millis),
        frames_sent,
        frames_received: stats.video.frames,
        frames_matched: matched.len(),
        frames_unmatched: unmatched,
        frames_unkeyed: unkeyed,
        packets_lost: stats.video.packets_lost,
        all: Latencies::of(matched.iter()),
        warmup: Latencies::of(matched.iter().filter(|f| f.since_first_packet < warmup)),
        steady: Latencies::of(matched.iter().filter(|f| f.since_first_packet >= warmup)),
        gateway,
        publisher_delete_status: None,
        viewer_delete_status: None,
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_text(r: &Report) {
    println!(
        "livegate-bench latency {} → {} playing {}",
        r.whip_url, r.whep_url, r.file
    );
    println!(
        "window        {:.1} s; WHIP 201 after {:.1} ms; WHEP 201 after {} POST(s); first frame {}",
        r.window_secs,
        r.publish_created_ms,
        r.play_created_attempts,
        r.viewer_first_frame_ms
            .map_or("-".to_owned(), |ms| format!("{ms:.0} ms after its POST")),
    );
    println!(
        "frames        sent {}, received {}, matched {}, unmatched {}, unkeyed {} ({} packets lost)",
        r.frames_sent,
        r.frames_received,
        r.frames_matched,
        r.frames_unmatched,
        r.frames_unkeyed,
        r.packets_lost
    );
    let line = |label: &str, l: &Latencies| match &l.latency_ms {
        Some(d) => println!(
            "{label:<13} {:>5} frames  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            l.frames, d.p50, d.p90, d.p99, d.max
        ),
        None => println!("{label:<13}     0 frames"),
    };
    line("latency all", &r.all);
    line(&format!("first {:.0} s", r.warmup_secs), &r.warmup);
    line("steady", &r.steady);
    if let Some(u) = &r.gateway {
        println!(
            "gateway       pid {}: CPU {:.1} % of one core; RSS {:.1} → {:.1} MiB",
            u.pid,
            u.cpu_percent_of_core,
            u.rss_before_kib as f64 / 1024.0,
            u.rss_after_kib as f64 / 1024.0,
        );
    }
    let status = |s: Option<u16>| s.map_or("-".to_owned(), |s| s.to_string());
    println!(
        "DELETE        publisher {}, viewer {}",
        status(r.publisher_delete_status),
        status(r.viewer_delete_status)
    );
}
