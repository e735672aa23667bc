//! `livegate-bench churn`: the soak's load. Publishers come and go, viewers join and leave,
//! and pipeline workers are killed under them, for a bounded number of each; what the
//! gateway must show afterwards (sessions, streams and tasks back to idle, memory back to
//! its warm value) is checked by `scripts/soak.sh` on `/metrics`, not here.
//!
//! `--streams` lanes run at once. Each lane runs publish cycles one after another, each on a
//! new stream key (`{prefix}{lane}-{cycle}`), so every cycle creates and removes a stream:
//!
//! 1. POST a WHIP publisher playing `--file` in a loop; wait until it is connected.
//! 2. Viewers join in batches of `--viewers-at-once`: POST the WHEP offer, wait until
//!    connected and the first video frame is in, DELETE (200 expected), wait until the
//!    gateway closed the peer connection.
//! 3. When this cycle has a worker kill, halfway through the joins: read the worker's pid
//!    from `GET /live/{stream}/status`, check it is a child of `--gateway-pid`, SIGKILL it,
//!    and wait until the status shows another pid. The joins after it prove the stream
//!    plays again.
//! 4. Hold until the cycle has lasted its share of `--duration`, DELETE the publisher, wait
//!    until its peer connection is closed.
//!
//! Joins and kills are spread evenly over the cycles. Any failure is counted with its
//! reason; the exit code is 0 only when every step of every cycle succeeded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use livegate_bench::whep::{WhepClient, WhepClientError, WhepOptions};
use livegate_bench::whip::{MediaFile, WhipClient, WhipOptions};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinSet;

use super::proc_stat;
use super::summary::failure_label;
use super::summary::{Tally, TallyEntry};
use super::{parse_secs, target, CommonArgs, MAX_SESSIONS};

/// Most publish cycles and worker kills one run may do.
pub const MAX_CYCLES: u32 = 1_000;
/// Most viewer joins one run may do: a soak is long, not wide.
pub const MAX_JOINS: u32 = 20_000;
/// How often the status is read while waiting for a killed worker's replacement.
const STATUS_POLL: Duration = Duration::from_millis(100);

/// Arguments of `livegate-bench churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// The gateway's base URL, e.g. http://127.0.0.1:8935
    #[arg(long)]
    pub url: String,
    /// MPEG-TS file (H.264 + Opus) every publisher plays in a loop.
    #[arg(long)]
    pub file: PathBuf,
    /// Streams published at the same time (lanes of cycles).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// Publish/unpublish cycles in all, each on a new stream key.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CYCLES)))]
    pub publish_cycles: u32,
    /// WHEP joins (POST, first frame, DELETE) in all.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_JOINS)))]
    pub whep_joins: u32,
    /// Viewers of one stream joining at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SESSIONS)))]
    pub viewers_at_once: u32,
    /// Pipeline workers to SIGKILL in all (at most one per cycle); needs --gateway-pid.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_CYCLES)))]
    pub worker_kills: u32,
    /// The gateway's pid: a worker is killed only if it is this process's child.
    #[arg(long, value_name = "PID")]
    pub gateway_pid: Option<u32>,
    /// The run is spread over at least this many seconds (cycles are held to their share).
    #[arg(long, default_value = "60", value_parser = parse_secs)]
    pub duration: f64,
    /// Limit of each wait: connected, first frame, closed, worker restarted; in seconds.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    pub step_timeout: f64,
    /// Stream keys are `{prefix}{lane}-{cycle}`.
    #[arg(long, default_value = "churn")]
    pub stream_prefix: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ChurnArgs {
    /// The longest the run may take: every cycle's steps at their limits, lanes in parallel.
    pub fn bound(&self) -> Duration {
        let cycles_per_lane = self.publish_cycles.div_ceil(self.streams);
        let joins_per_cycle = self.whep_joins.div_ceil(self.publish_cycles);
        let batches = joins_per_cycle.div_ceil(self.viewers_at_once);
        // Publisher: connect, close; each batch: connect, frame, close; a kill: restart.
        let steps_per_cycle = 2 + 3 * batches + 1;
        Duration::from_secs_f64(
            self.duration + f64::from(cycles_per_lane * steps_per_cycle) * self.step_timeout,
        )
    }
}

/// What one run did, as printed.
#[derive(Debug, Default, Serialize)]
struct Report {
    url: String,
    elapsed_secs: f64,
    publish_cycles: u32,
    publish_cycles_ok: u32,
    whep_joins: u32,
    whep_joins_ok: u32,
    worker_kills: u32,
    worker_restarts_seen: u32,
    failures: Vec<TallyEntry>,
    gateway_rss_kib_before: Option<u64>,
    gateway_rss_kib_after: Option<u64>,
}

/// Counters every lane adds to.
#[derive(Default)]
struct Counts {
    cycles_ok: u32,
    joins_ok: u32,
    kills: u32,
    restarts_seen: u32,
    failures: Tally,
}

/// What a lane shares with the others.
struct Shared {
    args: ChurnArgs,
    base: String,
    whip: WhipClient,
    whip_options: WhipOptions,
    whep: WhepClient,
    whep_options: WhepOptions,
    http: reqwest::Client,
    counts: Mutex<Counts>,
}

impl Shared {
    fn fail(&self, what: &str, why: impl std::fmt::Display) {
        eprintln!("livegate-bench churn: {what}: {why}");
        self.counts.lock().failures.add(format!("{what}: {why}"));
    }

    fn step_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.args.step_timeout)
    }
}

/// Runs the subcommand; the exit code is 0 when every cycle, join and kill succeeded.
pub async fn run(args: ChurnArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.worker_kills > 0 && args.gateway_pid.is_none() {
        anyhow::bail!(
            "--worker-kills needs --gateway-pid (workers are killed only if its children)"
        );
    }
    if args.worker_kills > args.publish_cycles {
        anyhow::bail!("--worker-kills is at most one per cycle (--publish-cycles)");
    }
    let base = args.url.trim_end_matches('/').to_owned();
    target::check(&base, args.common.allow_remote).await?;
    let media = MediaFile::load(&args.file)
        .await
        .with_context(|| format!("--file {}", args.file.display()))?;
    let loopback_only = !args.common.allow_remote;
    let shared = Arc::new(Shared {
        whip_options: WhipOptions {
            media: Some(media),
            loopback_only,
            ..WhipOptions::default()
        },
        whep_options: WhepOptions {
            loopback_only,
            // Nothing is measured per frame; the log would cost memory per viewer.
            frame_log_limit: 0,
            ..WhepOptions::default()
        },
        whip: WhipClient::new(),
        whep: WhepClient::new(),
        http: reqwest::Client::new(),
        base,
        counts: Mutex::new(Counts::default()),
        args: args.clone(),
    });
    let rss = |pid: Option<u32>| {
        pid.and_then(|p| proc_stat::sample(Some(p)).ok())
            .map(|s| s.rss_kib)
    };
    let rss_before = rss(args.gateway_pid);
    let started = Instant::now();
    let mut lanes = JoinSet::new();
    for lane in 0..args.streams {
        lanes.spawn(run_lane(shared.clone(), lane));
    }
    while lanes.join_next().await.is_some() {}
    let counts = std::mem::take(&mut *shared.counts.lock());
    let report = Report {
        url: args.url.clone(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        publish_cycles: args.publish_cycles,
        publish_cycles_ok: counts.cycles_ok,
        whep_joins: args.whep_joins,
        whep_joins_ok: counts.joins_ok,
        worker_kills: counts.kills,
        worker_restarts_seen: counts.restarts_seen,
        failures: counts.failures.entries(),
        gateway_rss_kib_before: rss_before,
        gateway_rss_kib_after: rss(args.gateway_pid),
    };
    let ok = report.failures.is_empty()
        && report.publish_cycles_ok == args.publish_cycles
        && report.whep_joins_ok == args.whep_joins
        && report.worker_restarts_seen == args.worker_kills;
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// The `share`-th of `total` split evenly over `parts` (the first ones take the remainder).
fn share(total: u32, parts: u32, index: u32) -> u32 {
    total / parts + u32::from(index < total % parts)
}

/// Cycles `lane`, `lane + streams`, `lane + 2 × streams`… in turn.
async fn run_lane(shared: Arc<Shared>, lane: u32) {
    let args = &shared.args;
    // Each cycle is held to its share of the duration, lanes running side by side.
    let cycle_secs = args.duration * f64::from(args.streams) / f64::from(args.publish_cycles);
    let mut cycle = lane;
    while cycle < args.publish_cycles {
        let joins = share(args.whep_joins, args.publish_cycles, cycle);
        let kill = share(args.worker_kills, args.publish_cycles, cycle) > 0;
        let hold_until = Instant::now() + Duration::from_secs_f64(cycle_secs);
        if run_cycle(&shared, lane, cycle, joins, kill, hold_until).await {
            shared.counts.lock().cycles_ok += 1;
        }
        cycle += args.streams;
    }
}

/// One publish cycle; true when the publisher connected and was removed cleanly.
async fn run_cycle(
    shared: &Shared,
    lane: u32,
    cycle: u32,
    joins: u32,
    kill: bool,
    hold_until: Instant,
) -> bool {
    let stream = format!("{}{lane}-{cycle}", shared.args.stream_prefix);
    let whip_url = format!("{}/live/{stream}/whip", shared.base);
    let timeout = shared.step_timeout();
    let publisher = match shared.whip.publish(&whip_url, &shared.whip_options).await {
        Ok(publisher) => publisher,
        Err(e) => {
            shared.fail("publish", failure_label(&e));
            return false;
        }
    };
    let mut ok = true;
    if let Err(e) = publisher.wait_connected(timeout).await {
        shared.fail("publish", failure_label(&e));
        ok = false;
    } else {
        let before_kill = if kill { joins / 2 } else { joins };
        let phases = async {
            join_viewers(shared, &stream, before_kill).await;
            if kill {
                kill_worker(shared, &stream).await;
            }
            join_viewers(shared, &stream, joins - before_kill).await;
        };
        // Each join and the kill bound their own waits; this names the phase if something
        // between them does not (a soak run stalled once after its joins, cause unknown).
        let limit = shared.step_timeout() * (3 * joins + 2).max(1);
        if tokio::time::timeout(limit, phases).await.is_err() {
            shared.fail("whep joins", format!("stalled for {limit:?}"));
            ok = false;
        }
        // Pacing, not synchronisation: the stream stays published for its share of the run.
        tokio::time::sleep_until(hold_until.into()).await;
    }
    match tokio::time::timeout(timeout, publisher.delete()).await {
        Ok(Ok(200)) => {}
        Ok(Ok(status)) => {
            shared.fail("unpublish", format!("DELETE answered {status}"));
            ok = false;
        }
        Ok(Err(e)) => {
            shared.fail("unpublish", failure_label(&e));
            ok = false;
        }
        Err(_) => {
            shared.fail("unpublish", "the publisher did not stop its media in time");
            ok = false;
        }
    }
    if let Err(e) = publisher.wait_closed(timeout).await {
        shared.fail("unpublish", failure_label(&e));
        ok = false;
    }
    if tokio::time::timeout(timeout, publisher.close())
        .await
        .is_err()
    {
        shared.fail("unpublish", "the publisher's loop did not end in time");
        ok = false;
    }
    ok
}

/// `count` viewers of `stream`, `--viewers-at-once` at a time.
async fn join_viewers(shared: &Shared, stream: &str, count: u32) {
    let url = format!("{}/live/{stream}/whep", shared.base);
    let mut left = count;
    while left > 0 {
        let batch = left.min(shared.args.viewers_at_once);
        left -= batch;
        let mut viewers = JoinSet::new();
        for _ in 0..batch {
            let (client, options, url) = (
                shared.whep.clone(),
                shared.whep_options.clone(),
                url.clone(),
            );
            let timeout = shared.step_timeout();
            viewers.spawn(async move { join_once(&client, &url, &options, timeout).await });
        }
        while let Some(joined) = viewers.join_next().await {
            match joined {
                Ok(Ok(())) => shared.counts.lock().joins_ok += 1,
                Ok(Err(why)) => shared.fail("whep join", why),
                Err(e) => shared.fail("whep join", e),
            }
        }
    }
}

/// One viewer: POST, connected, first video frame, DELETE → 200, closed by the gateway.
async fn join_once(
    client: &WhepClient,
    url: &str,
    options: &WhepOptions,
    timeout: Duration,
) -> Result<(), String> {
    let session = client
        .play(url, options)
        .await
        .map_err(|e| failure_label(&e))?;
    let watched = async {
        session.wait_connected(timeout).await?;
        session.wait_video_frames(1, timeout).await?;
        Ok::<_, WhepClientError>(())
    }
    .await;
    let deleted = session.delete().await;
    let closed = session.wait_closed(timeout).await;
    session.close().await;
    watched.map_err(|e| failure_label(&e))?;
    match deleted {
        Ok(200) => {}
        Ok(status) => return Err(format!("DELETE answered {status}")),
        Err(e) => return Err(failure_label(&e)),
    }
    closed.map(|_| ()).map_err(|e| failure_label(&e))
}

/// Kills the stream's worker and waits for the supervisor to start another.
async fn kill_worker(shared: &Shared, stream: &str) {
    let status_url = format!("{}/live/{stream}/status", shared.base);
    let gateway = shared.args.gateway_pid.expect("checked at start");
    let deadline = tokio::time::Instant::now() + shared.step_timeout();
    let pid = match poll_worker_pid(shared, &status_url, None, deadline).await {
        Ok(pid) => pid,
        Err(why) => return shared.fail("worker kill", why),
    };
    if parent_pid(pid) != Some(gateway) {
        return shared.fail(
            "worker kill",
            format!("pid {pid} is not a child of the gateway ({gateway}); not killed"),
        );
    }
    // SAFETY: kill(2) with a pid just read from the gateway and checked to be its child.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
        return shared.fail("worker kill", std::io::Error::last_os_error());
    }
    shared.counts.lock().kills += 1;
    match poll_worker_pid(shared, &status_url, Some(pid), deadline).await {
        Ok(_) => shared.counts.lock().restarts_seen += 1,
        Err(why) => shared.fail("worker restart", why),
    }
}

/// Reads the status until its `worker.pid` is set and differs from `old`.
async fn poll_worker_pid(
    shared: &Shared,
    url: &str,
    old: Option<u32>,
    deadline: tokio::time::Instant,
) -> Result<u32, String> {
    loop {
        let last = match read_worker_pid(&shared.http, url).await {
            Ok(Some(pid)) if Some(pid) != old => return Ok(pid),
            Ok(pid) => format!("worker.pid is {pid:?}"),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{url}: no new worker pid in time ({last})"));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

async fn read_worker_pid(http: &reqwest::Client, url: &str) -> Result<Option<u32>, String> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let status: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(status
        .pointer("/worker/pid")
        .and_then(serde_json::Value::as_u64)
        .and_then(|pid| u32::try_from(pid).ok()))
}

/// The parent of `pid` (field 4 of proc(5) `stat`, counted after the command's last `)`).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn print_text(report: &Report) {
    println!(
        "churn against {} for {:.1} s",
        report.url, report.elapsed_secs
    );
    println!(
        "  publish cycles: {}/{} ok; whep joins: {}/{} ok; worker kills: {}, restarts seen: {}",
        report.publish_cycles_ok,
        report.publish_cycles,
        report.whep_joins_ok,
        report.whep_joins,
        report.worker_kills,
        report.worker_restarts_seen
    );
    if let (Some(before), Some(after)) =
        (report.gateway_rss_kib_before, report.gateway_rss_kib_after)
    {
        println!("  gateway RSS: {before} KiB before, {after} KiB after");
    }
    for failure in &report.failures {
        println!("  failed {}×: {}", failure.count, failure.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, parts) in [(1000, 100), (7, 3), (0, 5), (3, 10)] {
            let sum: u32 = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total, "{total} over {parts}");
        }
        assert_eq!(share(3, 10, 2), 1);
        assert_eq!(share(3, 10, 3), 0);
    }

    #[test]
    fn the_parent_of_this_process_is_read_from_proc() {
        let parent = std::os::unix::process::parent_id();
        assert_eq!(parent_pid(std::process::id()), Some(parent));
    }
}
