//! The load subcommands of `livegate-bench` and what they share: the target check, the
//! process sampling and the figures. Each protocol is one module with its `Args` and `run`
//! (`whep`, `whip`), plus `latency`, which pairs a publisher with a viewer, and `churn`,
//! the soak's publishers, viewers and worker kills coming and going.

pub mod churn;
pub mod latency;
pub mod proc_stat;
mod runner;
pub mod summary;
pub mod target;
pub mod whep;
pub mod whip;

/// The most sessions one run may open: 300 is the largest planned figure; the cap keeps a
/// typo from becoming a flood.
pub const MAX_SESSIONS: u32 = 2_000;
/// The longest steady-state window, in seconds: every run stops by itself.
pub const MAX_WINDOW_SECS: f64 = 3_600.0;

/// Options every load subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Allow a URL whose host is not a loopback address (a test host of this project).
    /// Without it, a non-loopback URL is refused and only loopback ICE candidates are used.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print one JSON object (with per-session figures) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also charge this process (the gateway) per viewer: CPU over the steady-state
    /// window, resident memory before the first session and at the end of the window.
    #[arg(long, value_name = "PID")]
    pub cpu_of: Option<u32>,
}

/// Parses a duration in seconds within (0, MAX_WINDOW_SECS].
pub fn parse_secs(value: &str) -> Result<f64, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value}: not a number of seconds"))?;
    if secs > 0.0 && secs <= MAX_WINDOW_SECS {
        Ok(secs)
    } else {
        Err(format!(
            "{value}: must be above 0 and at most {MAX_WINDOW_SECS}"
        ))
    }
}
