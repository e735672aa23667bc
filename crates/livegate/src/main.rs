//! `livegate`: parse configuration, start the gateway, drain on SIGINT/SIGTERM.

use livegate::config::Config;
use livegate::{telemetry, Gateway};

fn main() -> std::process::ExitCode {
    let config = Config::from_env_and_args();
    if let Err(e) = telemetry::init(config.log_format, &config.log_level) {
        eprintln!("livegate: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("livegate: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("livegate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::start(&config).await?;
    let signal = wait_for_signal().await?;
    tracing::info!(signal, "shutting down");
    let clean = gateway.shutdown(config.shutdown_timeout).await;
    tracing::info!(clean, "stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names the one that came.
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
