//! `livegate-bench whep`: N viewers of one WHEP endpoint, opened on a ramp, held through a
//! steady-state window, then DELETEd; reports what they received and, with `--cpu-of`,
//! what they cost the gateway.
//!
//! Phases: baseline sample → ramp (session i is POSTed at i × ramp, then waits to connect)
//! → window start sample → window (`--duration`, or until Ctrl-C) → window end sample →
//! DELETE every session. Rates are over the window only, so ramp and teardown do not blur
//! the steady state the per-viewer figures describe.

use std::time::Duration;

use livegate_bench::whep::{SessionStats, WhepClient, WhepOptions, WhepSession};
use serde::Serialize;

use super::proc_stat::ProcUsage;
use super::runner::{self, Held, Measured, Row};
use super::summary::{failure_label, Distribution, TallyEntry};
use super::{parse_secs, target, CommonArgs, MAX_SESSIONS};

/// Arguments of `livegate-bench whep`.
#[derive(Debug, Clone, clap::Args)]
pub struct WhepArgs {
    /// WHEP endpoint, e.g. http://127.0.0.1:8935/live/cam/whep
    #[arg(long)]
    pub url: String,
    /// Viewers to open.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SESSIONS)))]
    pub sessions: u32,
    /// Steady-state window in seconds, after every viewer connected or gave up.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub duration: f64,
    /// Delay between two viewers' POSTs, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub ramp_ms: u64,
    /// How long a viewer may take from its POST to connected, in seconds.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Pace of each viewer's ICE checks in milliseconds; about one interval is part of the
    /// measured time to first frame (50 is browser-like; 5 leaves mostly the gateway's share).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ice_check_ms: u64,
    /// Bearer token for the POST and the DELETE.
    #[arg(long, env = "LIVEGATE_BENCH_TOKEN")]
    pub token: Option<String>,
    /// Offer no video section.
    #[arg(long)]
    pub no_video: bool,
    /// Offer no audio section.
    #[arg(long)]
    pub no_audio: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One viewer's figures over the window.
#[derive(Debug, Clone, Default, Serialize)]
struct SessionReport {
    index: usize,
    /// Why it never reached the window (POST refused, no connection).
    error: Option<String>,
    connect_ms: Option<f64>,
    first_frame_ms: Option<f64>,
    bitrate_bps: f64,
    video_fps: f64,
    audio_packets_per_sec: f64,
    packets_received: u64,
    packets_lost: u64,
    closed_during_window: bool,
    delete_status: Option<u16>,
}

/// The whole run, as printed.
#[derive(Debug, Serialize)]
struct Report {
    url: String,
    ice_check_ms: u64,
    sessions_requested: usize,
    sessions_connected: usize,
    sessions_failed: usize,
    failures: Vec<TallyEntry>,
    ramp_secs: f64,
    window_secs: f64,
    total_bitrate_bps: f64,
    bitrate_bps: Option<Distribution>,
    video_fps: Option<Distribution>,
    first_frame_ms: Option<Distribution>,
    sessions_without_first_frame: usize,
    connect_ms: Option<Distribution>,
    packets_received: u64,
    packets_lost: u64,
    closed_during_window: usize,
    deletes: Vec<TallyEntry>,
    gateway: Option<ProcUsage>,
    bench: Option<ProcUsage>,
    sessions: Vec<SessionReport>,
}

/// A viewer that reached the window.
struct Viewer {
    index: usize,
    session: WhepSession,
    connect: Duration,
}

impl Held for Viewer {
    type Counters = SessionStats;

    fn counters(&self) -> SessionStats {
        self.session.counters()
    }

    async fn end(self) -> (bool, Option<u16>) {
        let closed = self.session.closed_reason().is_some();
        let status = self.session.delete().await.ok();
        self.session.close().await;
        (closed, status)
    }
}

impl Row for SessionReport {
    fn index(&self) -> usize {
        self.index
    }

    fn ended(&mut self, closed_during_window: bool, delete_status: Option<u16>) {
        self.closed_during_window = closed_during_window;
        self.delete_status = delete_status;
    }
}

/// Runs the subcommand; the exit code is 0 when every viewer connected, 1 otherwise.
pub async fn run(args: WhepArgs) -> anyhow::Result<std::process::ExitCode> {
    target::check(&args.url, args.common.allow_remote).await?;
    let options = WhepOptions {
        video: !args.no_video,
        audio: !args.no_audio,
        bearer_token: args.token.clone(),
        loopback_only: !args.common.allow_remote,
        ice_check_interval: Duration::from_millis(args.ice_check_ms),
        // Rates need counters only; the frame log would cost memory per viewer.
        frame_log_limit: 0,
        ..WhepOptions::default()
    };
    let measured = runner::measure(
        args.common.cpu_of,
        args.duration,
        open_viewers(&args, &options),
        session_report,
    )
    .await?;
    let report = summarize(&args, measured);
    runner::print(&report, args.common.json, print_text)?;
    Ok(runner::exit_code(report.sessions_failed))
}

/// POSTs viewer i at ramp start + i × ramp and waits for it to connect; returns the viewers
/// that connected and a report for each that did not (its resource DELETEd if it had one).
async fn open_viewers(args: &WhepArgs, options: &WhepOptions) -> (Vec<Viewer>, Vec<SessionReport>) {
    let client = WhepClient::new();
    let connect_timeout = Duration::from_secs_f64(args.connect_timeout);
    let open = |index: usize| {
        let (client, options, url) = (client.clone(), options.clone(), args.url.clone());
        async move {
            open_one(&client, &url, &options, connect_timeout)
                .await
                .map(|(session, connect)| Viewer {
                    index,
                    session,
                    connect,
                })
                .map_err(|(label, status)| SessionReport {
                    index,
                    error: Some(label),
                    delete_status: status,
                    ..SessionReport::default()
                })
        }
    };
    let task_failed = |why| SessionReport {
        error: Some(why),
        ..SessionReport::default()
    };
    runner::ramp(args.sessions as usize, args.ramp_ms, open, task_failed).await
}

/// One viewer: POST, then wait to connect; on failure, the failure's label and the status of
/// the DELETE of its resource if it got one.
async fn open_one(
    client: &WhepClient,
    url: &str,
    options: &WhepOptions,
    connect_timeout: Duration,
) -> Result<(WhepSession, Duration), (String, Option<u16>)> {
    let session = client
        .play(url, options)
        .await
        .map_err(|e| (failure_label(&e), None))?;
    match session.wait_connected(connect_timeout).await {
        Ok(connect) => Ok((session, connect)),
        Err(e) => {
            let status = session.delete().await.ok();
            session.close().await;
            Err((failure_label(&e), status))
        }
    }
}

fn session_report(
    viewer: &Viewer,
    before: &SessionStats,
    after: &SessionStats,
    window: Duration,
) -> SessionReport {
    let secs = window.as_secs_f64().max(f64::EPSILON);
    let bytes = |s: &SessionStats| s.video.payload_bytes + s.audio.payload_bytes;
    let millis = |d: Duration| d.as_secs_f64() * 1e3;
    SessionReport {
        index: viewer.index,
        error: None,
        connect_ms: Some(millis(viewer.connect)),
        first_frame_ms: after.first_frame_at.map(millis),
        bitrate_bps: (bytes(after) - bytes(before)) as f64 * 8.0 / secs,
        video_fps: (after.video.frames - before.video.frames) as f64 / secs,
        audio_packets_per_sec: (after.audio.packets - before.audio.packets) as f64 / secs,
        packets_received: after.video.packets + after.audio.packets,
        packets_lost: after.video.packets_lost + after.audio.packets_lost,
        closed_during_window: false,
        delete_status: None,
    }
}

fn summarize(args: &WhepArgs, measured: Measured<SessionReport>) -> Report {
    let Measured {
        rows: sessions,
        connected,
        ramp_secs,
        window_secs,
        gateway,
        bench,
    } = measured;
    let reached: Vec<&SessionReport> = sessions.iter().filter(|s| s.error.is_none()).collect();
    let values = |f: fn(&SessionReport) -> Option<f64>| -> Vec<f64> {
        reached.iter().filter_map(|s| f(s)).collect()
    };
    let (failures, deletes) = runner::tally_ends(
        sessions
            .iter()
            .map(|s| (s.error.as_deref(), s.delete_status)),
    );
    let first_frames = values(|s| s.first_frame_ms);
    Report {
        url: args.url.clone(),
        ice_check_ms: args.ice_check_ms,
        sessions_requested: args.sessions as usize,
        sessions_connected: connected,
        sessions_failed: args.sessions as usize - connected,
        failures,
        ramp_secs,
        window_secs,
        total_bitrate_bps: reached.iter().fold(0.0, |sum, s| sum + s.bitrate_bps),
        bitrate_bps: Distribution::of(&values(|s| Some(s.bitrate_bps))),
        video_fps: Distribution::of(&values(|s| Some(s.video_fps))),
        sessions_without_first_frame: reached.len() - first_frames.len(),
        first_frame_ms: Distribution::of(&first_frames),
        connect_ms: Distribution::of(&values(|s| s.connect_ms)),
        packets_received: reached.iter().map(|s| s.packets_received).sum(),
        packets_lost: reached.iter().map(|s| s.packets_lost).sum(),
        closed_during_window: reached.iter().filter(|s| s.closed_during_window).count(),
        deletes,
        gateway,
        bench,
        sessions,
    }
}

/// Per-session lines are printed for small runs; larger runs get distributions only
/// (`--json` always has every session).
const SESSION_LINES_UP_TO: usize = 10;

fn print_text(r: &Report) {
    let mbps = |bps: f64| bps / 1e6;
    println!(
        "livegate-bench whep {} (viewers' ICE checks every {} ms)",
        r.url, r.ice_check_ms
    );
    println!(
        "sessions      requested {}, connected {}, failed {}, closed by the gateway during the window {}",
        r.sessions_requested, r.sessions_connected, r.sessions_failed, r.closed_during_window
    );
    runner::print_failures(&r.failures);
    println!(
        "window        {:.1} s steady state after a {:.1} s ramp",
        r.window_secs, r.ramp_secs
    );
    println!(
        "received      {:.2} Mbit/s in total",
        mbps(r.total_bitrate_bps)
    );
    if let Some(d) = &r.bitrate_bps {
        println!(
            "  per session min {:.3}  p50 {:.3}  max {:.3} Mbit/s",
            mbps(d.min),
            mbps(d.p50),
            mbps(d.max)
        );
    }
    if let Some(d) = &r.video_fps {
        println!(
            "video fps     per session min {:.1}  p50 {:.1}  max {:.1}",
            d.min, d.p50, d.max
        );
    }
    if let Some(d) = &r.first_frame_ms {
        println!(
            "first frame   since POST p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms ({} sessions without one)",
            d.p50, d.p90, d.p99, d.max, r.sessions_without_first_frame
        );
    } else if r.sessions_connected > 0 {
        println!("first frame   none received");
    }
    if let Some(d) = &r.connect_ms {
        println!(
            "connected     since POST p50 {:.0} ms  p90 {:.0} ms  max {:.0} ms",
            d.p50, d.p90, d.max
        );
    }
    let lost_percent = if r.packets_received + r.packets_lost > 0 {
        r.packets_lost as f64 * 100.0 / (r.packets_received + r.packets_lost) as f64
    } else {
        0.0
    };
    println!(
        "packets       {} received, {} lost (RTP sequence gaps, {:.3} %)",
        r.packets_received, r.packets_lost, lost_percent
    );
    runner::print_deletes_and_usage(&r.deletes, r.gateway.as_ref(), r.bench.as_ref(), "viewer");
    if r.sessions.len() <= SESSION_LINES_UP_TO {
        for s in &r.sessions {
            match &s.error {
                Some(error) => println!("  #{:<3} failed: {error}", s.index),
                None => println!(
                    "  #{:<3} {:.3} Mbit/s  {:.1} fps  first frame {}  lost {}",
                    s.index,
                    mbps(s.bitrate_bps),
                    s.video_fps,
                    s.first_frame_ms
                        .map_or("-".to_owned(), |ms| format!("{ms:.0} ms")),
                    s.packets_lost
                ),
            }
        }
    }
}
