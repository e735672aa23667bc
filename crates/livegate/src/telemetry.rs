//! Logging: `tracing` to stderr, as text for people or JSON for log collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The webrtc-rs crates log every signalling and ICE state change at `info`: several lines
/// per viewer that drown the gateway's own. They start at `warn` unless the filter names
/// them.
const QUIET_WEBRTC: [&str; 6] = [
    "rtc",
    "rtc_ice",
    "rtc_dtls",
    "rtc_sctp",
    "rtc_srtp",
    "rtc_interceptor",
];

/// Installs the global subscriber. Fails if `filter` is not valid EnvFilter syntax.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = with_quiet_webrtc(filter);
    let filter = EnvFilter::try_new(&filter)
        .map_err(|e| anyhow::anyhow!("LIVE_AI_LOG_LEVEL: invalid filter {filter:?}: {e}"))?;
    // Colours only on a terminal: escape codes in files and log collectors are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

fn with_quiet_webrtc(filter: &str) -> String {
    let mut filter = filter.to_owned();
    if !filter.contains("rtc") {
        for target in QUIET_WEBRTC {
            // rtc_dtls warns about every TLS 1.3 extension in a browser's ClientHello.
            let level = if target == "rtc_dtls" {
                "error"
            } else {
                "warn"
            };
            filter.push_str(&format!(",{target}={level}"));
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_crates_are_quiet_unless_named() {
        assert_eq!(
            with_quiet_webrtc("info"),
            "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,rtc_sctp=warn,rtc_srtp=warn,rtc_interceptor=warn"
        );
        assert_eq!(
            with_quiet_webrtc("info,rtc_ice=debug"),
            "info,rtc_ice=debug"
        );
        assert!(EnvFilter::try_new(with_quiet_webrtc("debug")).is_ok());
    }
}
