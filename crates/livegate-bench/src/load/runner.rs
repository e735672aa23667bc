//! The phases `whep` and `whip` runs share, whatever their sessions are: the ramp that opens
//! them, the steady-state window with the process samples around it, the tear-down, and the
//! parts of the report that read the same (failures, DELETEs, CPU and memory, exit code).
//!
//! Phases, in [`measure`]: baseline sample → ramp → window start sample → window → window end
//! sample → tear-down. Rates are over the window only, so ramp and teardown do not blur the
//! steady state the per-session figures describe.
//!
//! Not here: what a session is or what its figures mean; each run says with [`Held`] and
//! [`Row`].

use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant as StdInstant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::proc_stat::{self, ProcSample, ProcUsage};
use super::summary::{Tally, TallyEntry};

/// A session that reached the window.
pub(super) trait Held: Send + 'static {
    /// What is read of it at both ends of the window.
    type Counters;
    fn counters(&self) -> Self::Counters;
    /// Notes whether the gateway had closed it, DELETEs it and closes it: (closed during
    /// the window, DELETE status).
    fn end(self) -> impl Future<Output = (bool, Option<u16>)> + Send + 'static;
}

/// One session's line of a report, whether it reached the window or not.
pub(super) trait Row {
    fn index(&self) -> usize;
    /// How its tear-down went.
    fn ended(&mut self, closed_during_window: bool, delete_status: Option<u16>);
}

/// What [`measure`] found: every session's row in index order and the run's figures.
pub(super) struct Measured<R> {
    pub(super) rows: Vec<R>,
    /// Sessions that reached the window.
    pub(super) connected: usize,
    pub(super) ramp_secs: f64,
    pub(super) window_secs: f64,
    pub(super) gateway: Option<ProcUsage>,
    pub(super) bench: Option<ProcUsage>,
}

/// Runs the phases: `open` is the ramp (the sessions that reached the window and the rows of
/// those that did not), `row` makes a held session's row from its counters at the window's
/// start and end and the window's length.
pub(super) async fn measure<H: Held, R: Row>(
    gateway: Option<u32>,
    window_secs: f64,
    open: impl Future<Output = (Vec<H>, Vec<R>)>,
    row: impl Fn(&H, &H::Counters, &H::Counters, Duration) -> R,
) -> anyhow::Result<Measured<R>> {
    let baseline = Samples::take(gateway)?;

    let ramp_started = StdInstant::now();
    let (held, mut failed) = open.await;
    let ramp_secs = ramp_started.elapsed().as_secs_f64();

    let window = Window::hold(gateway, window_secs, || {
        held.iter().map(Held::counters).collect()
    })
    .await?;
    let mut rows: Vec<R> = held
        .iter()
        .zip(window.before.iter().zip(&window.after))
        .map(|(session, (before, after))| row(session, before, after, window.length()))
        .collect();
    let ends = tear_down(held, Held::end).await;
    for (row, (closed, delete_status)) in rows.iter_mut().zip(ends) {
        row.ended(closed, delete_status);
    }
    let connected = rows.len();
    rows.append(&mut failed);
    rows.sort_by_key(Row::index);

    let (gateway, bench) = window.usage(&baseline, gateway, connected);
    Ok(Measured {
        rows,
        connected,
        ramp_secs,
        window_secs: window.length().as_secs_f64(),
        gateway,
        bench,
    })
}

/// Opens `count` sessions, session i at the ramp's start + i × `ramp_ms`, each on its own
/// task so a slow one delays no other. Returns those `open` made, in index order, and the
/// failures; a task that panicked becomes `task_failed(why)`.
pub(super) async fn ramp<T, R, Fut>(
    count: usize,
    ramp_ms: u64,
    open: impl Fn(usize) -> Fut,
    task_failed: impl Fn(String) -> R,
) -> (Vec<T>, Vec<R>)
where
    Fut: Future<Output = Result<T, R>> + Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let at = start + Duration::from_millis(ramp_ms) * index as u32;
        let opening = open(index);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            (index, opening.await)
        });
    }
    let mut opened = Vec::new();
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(session))) => opened.push((index, session)),
            Ok((_, Err(report))) => failed.push(report),
            Err(e) => failed.push(task_failed(format!("task failed: {e}"))),
        }
    }
    opened.sort_by_key(|(index, _)| *index);
    (
        opened.into_iter().map(|(_, session)| session).collect(),
        failed,
    )
}

/// Readings of the gateway (with `--cpu-of`) and of this process at one moment.
struct Samples {
    gateway: Option<ProcSample>,
    bench: ProcSample,
}

impl Samples {
    fn take(gateway: Option<u32>) -> anyhow::Result<Samples> {
        Ok(Samples {
            gateway: gateway
                .map(|pid| proc_stat::sample(Some(pid)))
                .transpose()?,
            bench: proc_stat::sample(None)?,
        })
    }
}

/// The steady-state window: the samples at its ends and each session's counters there.
struct Window<C> {
    start: Samples,
    end: Samples,
    before: Vec<C>,
    after: Vec<C>,
}

impl<C> Window<C> {
    /// Holds the window for `secs` (or until Ctrl-C), reading `counters` of every session at
    /// both ends. With no session there is no steady state to wait for.
    async fn hold(
        gateway: Option<u32>,
        secs: f64,
        counters: impl Fn() -> Vec<C>,
    ) -> anyhow::Result<Window<C>> {
        let start = Samples::take(gateway)?;
        let before = counters();
        let hold = if before.is_empty() { 0.0 } else { secs };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(hold)) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("livegate-bench: interrupted; ending the window early"),
        }
        let end = Samples::take(gateway)?;
        let after = counters();
        Ok(Window {
            start,
            end,
            before,
            after,
        })
    }

    /// How long the window lasted, as this process's samples measured it.
    fn length(&self) -> Duration {
        self.end.bench.at.duration_since(self.start.bench.at)
    }

    /// What the gateway (with `--cpu-of`) and this process used, charged to `connected`
    /// sessions: memory from `baseline`, CPU over the window.
    fn usage(
        &self,
        baseline: &Samples,
        gateway: Option<u32>,
        connected: usize,
    ) -> (Option<ProcUsage>, Option<ProcUsage>) {
        let usage = |pid: u32, pick: fn(&Samples) -> Option<&ProcSample>| {
            Some(ProcUsage::between(
                pid,
                pick(baseline)?,
                pick(&self.start)?,
                pick(&self.end)?,
                connected,
            ))
        };
        (
            gateway.and_then(|pid| usage(pid, |s| s.gateway.as_ref())),
            usage(std::process::id(), |s| Some(&s.bench)),
        )
    }
}

/// Ends every session at once with `end` (which notes whether the gateway had closed it,
/// DELETEs and closes it); returns (closed during the window, DELETE status) in their order.
async fn tear_down<S, Fut>(sessions: Vec<S>, end: impl Fn(S) -> Fut) -> Vec<(bool, Option<u16>)>
where
    Fut: Future<Output = (bool, Option<u16>)> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let count = sessions.len();
    for (position, session) in sessions.into_iter().enumerate() {
        let ending = end(session);
        tasks.spawn(async move {
            let (closed, status) = ending.await;
            (position, closed, status)
        });
    }
    let mut ends = vec![(false, None); count];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((position, closed, status)) = joined {
            ends[position] = (closed, status);
        }
    }
    ends
}

/// Failures by label, and DELETE statuses by code, of sessions given as (failure, DELETE
/// status). A session that reached the window and got no DELETE answer counts as
/// "no response"; one that failed before it had nothing to DELETE, or said so in its status.
pub(super) fn tally_ends<'a>(
    sessions: impl Iterator<Item = (Option<&'a str>, Option<u16>)>,
) -> (Vec<TallyEntry>, Vec<TallyEntry>) {
    let mut failures = Tally::default();
    let mut deletes = Tally::default();
    for (error, delete_status) in sessions {
        if let Some(error) = error {
            failures.add(error);
        }
        match delete_status {
            Some(status) => deletes.add(status.to_string()),
            None if error.is_none() => deletes.add("no response"),
            None => {}
        }
    }
    (failures.entries(), deletes.entries())
}

/// The report as JSON or as text.
pub(super) fn print<R: Serialize>(
    report: &R,
    json: bool,
    text: impl FnOnce(&R),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        text(report);
    }
    Ok(())
}

/// 0 when every session connected, 1 otherwise.
pub(super) fn exit_code(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One text line per failure label.
pub(super) fn print_failures(failures: &[TallyEntry]) {
    for failure in failures {
        println!("  failed      {} × {}", failure.count, failure.label);
    }
}

/// The DELETE, gateway and bench lines; `per` names what usage is charged to ("viewer",
/// "stream").
pub(super) fn print_deletes_and_usage(
    deletes: &[TallyEntry],
    gateway: Option<&ProcUsage>,
    bench: Option<&ProcUsage>,
    per: &str,
) {
    let deletes: Vec<String> = deletes
        .iter()
        .map(|d| format!("{} × {}", d.count, d.label))
        .collect();
    if !deletes.is_empty() {
        println!("DELETE        {}", deletes.join(", "));
    }
    if let Some(g) = gateway {
        print_usage("gateway", g, per);
    }
    if let Some(b) = bench {
        print_usage("bench", b, per);
    }
}

fn print_usage(who: &str, u: &ProcUsage, per: &str) {
    let per_session_cpu = u
        .cpu_percent_per_viewer
        .map_or(String::new(), |p| format!(", {p:.3} % per {per}"));
    let per_session_rss = u
        .rss_kib_per_viewer
        .map_or(String::new(), |k| format!(", {k:.0} KiB per {per}"));
    println!(
        "{who:<13} pid {}: CPU {:.1} % of one core{per_session_cpu}; RSS {:.1} → {:.1} MiB ({:+.1} MiB{per_session_rss})",
        u.pid,
        u.cpu_percent_of_core,
        u.rss_before_kib as f64 / 1024.0,
        u.rss_after_kib as f64 / 1024.0,
        u.rss_delta_kib as f64 / 1024.0,
    );
}
