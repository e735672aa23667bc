//! `livegate-bench`: load runs against a livegate gateway, one subcommand per protocol.
//!
//! ```sh
//! livegate-bench whep --url http://127.0.0.1:8935/live/cam/whep --sessions 100 \
//!     --duration 20 --cpu-of "$(pidof livegate)"
//! livegate-bench whip --url 'http://127.0.0.1:8935/live/load{n}/whip' --streams 10 \
//!     --file target/bench/720p-2mbps.ts --duration 20 --cpu-of "$(pidof livegate)"
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
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Whep(args) => load::whep::run(args).await,
            Command::Whip(args) => load::whip::run(args).await,
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
