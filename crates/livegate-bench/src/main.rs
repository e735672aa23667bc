//! `livegate-bench`: load runs against a livegate gateway, one subcommand per protocol.
//!
//! ```sh
//! livegate-bench whep --url http://127.0.0.1:8935/live/cam/whep --sessions 100 \
//!     --duration 20 --cpu-of "$(pidof livegate)"
//! livegate-bench whip --url 'http://127.0.0.1:8935/live/load{n}/whip' --streams 10 \
//!     --file target/bench/720p-2mbps.ts --duration 20 --cpu-of "$(pidof livegate)"
//! livegate-bench latency --whip-url http://127.0.0.1:8935/live/lat/whip \
//!     --whep-url http://127.0.0.1:8935/live/lat/whep --file target/bench/720p-2mbps.ts --duration 20
//! livegate-bench churn --url http://127.0.0.1:8935 --file tests/fixtures/h264-baseline-opus.ts \
//!     --publish-cycles 100 --whep-joins 1000 --worker-kills 20 --gateway-pid "$(pidof livegate)" \
//!     --duration 600
//! ```
//!
//! Every run stops by itself (bounded sessions and window) and refuses non-loopback hosts
//! unless `--allow-remote`.

mod load;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "livegate-bench",
    version,
    about = "Load runs against a livegate gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One subcommand per protocol.
#[derive(Debug, Subcommand)]
enum Command {
    /// Open N WHEP viewers, hold them for a window, DELETE them; report what they received
    /// (bitrate, fps, time to first frame, loss) and, with --cpu-of, the gateway's cost.
    Whep(load::whep::WhepArgs),
    /// Open K WHIP publishers of one file (one stream each), hold them for a window, DELETE
    /// them; report what they sent, POST → 201 times and, with --cpu-of, the gateway's cost
    /// per published stream.
    Whip(load::whip::WhipArgs),
    /// Publish a file over WHIP and play the same stream over WHEP in this process; report
    /// each video frame's time from the publisher's send to the viewer's receive (p50, p90,
    /// p99, max), the viewer's first second (the GOP cache replay) apart.
    Latency(load::latency::LatencyArgs),
    /// Publish/unpublish cycles (a new stream each), WHEP joins and leaves, and pipeline
    /// worker kills, for a bounded count of each spread over a duration: the soak's load.
    /// Exits 0 only when every step succeeded.
    Churn(load::churn::ChurnArgs),
}

/// Time allowed for DELETEs and closes after the window, on top of the run's own timings.
const TEARDOWN_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest a run may take.
fn watchdog(command: &Command) -> std::time::Duration {
    let (sessions, ramp_ms, connect_timeout, duration) = match command {
        Command::Whep(a) => (a.sessions, a.ramp_ms, a.connect_timeout, a.duration),
        Command::Whip(a) => (a.streams, a.ramp_ms, a.connect_timeout, a.duration),
        // Two connects in turn (publisher, then viewer).
        Command::Latency(a) => (1, 0, 2.0 * a.connect_timeout, a.duration),
        Command::Churn(a) => return a.bound() + TEARDOWN_MARGIN,
    };
    let ramp = std::time::Duration::from_millis(ramp_ms.saturating_mul(u64::from(sessions)));
    ramp + std::time::Duration::from_secs_f64(connect_timeout.max(0.0) + duration.max(0.0))
        + TEARDOWN_MARGIN
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("livegate-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deadline = watchdog(&cli.command);
    let outcome = runtime.block_on(async {
        let run = async {
            match cli.command {
                Command::Whep(args) => load::whep::run(args).await,
                Command::Whip(args) => load::whip::run(args).await,
                Command::Latency(args) => load::latency::run(args).await,
                Command::Churn(args) => load::churn::run(args).await,
            }
        };
        // A run stops by itself whatever the gateway does: every wait inside has its own
        // limit, and this catches a wait that has none.
        match tokio::time::timeout(deadline, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!(
                "the run did not finish within {deadline:?} (ramp + connect timeout + window + \
                 {TEARDOWN_MARGIN:?} to tear down): a session hung"
            )),
        }
    });
    // The peer connections are closed by now; do not wait for stragglers.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("livegate-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
