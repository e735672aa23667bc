//! Gateway configuration: every setting is an environment variable in go-livepeer's
//! `LIVE_AI_*` style and the same setting as a command-line flag, each with a default that
//! makes the gateway work on one machine with nothing else installed.
//!
//! Parsing is strict: a bad value stops start-up with a message naming the variable, rather
//! than running with a surprise.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use livegate_pipeline::file_source::{self, FileSourceSpec};
use livegate_pipeline::{Pipeline, Supervision};
use livegate_rtc::IceServer;
use livegate_whip::OnConflict;

/// Settings of one gateway process. `livegate --help` lists them with their defaults.
///
/// `Debug` prints tokens, secrets, the Redis URL (which may hold a password) and the ICE
/// servers' credentials as `***`, so a config can be logged whole.
#[derive(Clone, Parser)]
#[command(
    name = "livegate",
    version,
    about = "WHIP/WHEP media gateway for live AI video"
)]
pub struct Config {
    /// TCP address of the HTTP server (WHIP, WHEP, health, metrics).
    #[arg(
        long,
        env = "LIVE_AI_HTTP_ADDR",
        value_name = "LIVE_AI_HTTP_ADDR",
        default_value = "0.0.0.0:8935"
    )]
    pub http_addr: SocketAddr,

    /// UDP address of the WHIP server's single ICE port, or `off` to disable WHIP.
    #[arg(
        long,
        env = "LIVE_AI_WHIP_ADDR",
        value_name = "LIVE_AI_WHIP_ADDR",
        default_value = "0.0.0.0:7290"
    )]
    pub whip_addr: IceAddr,

    /// UDP address of the WHEP server's single ICE port, or `off` to disable WHEP.
    #[arg(
        long,
        env = "LIVE_AI_WHEP_ADDR",
        value_name = "LIVE_AI_WHEP_ADDR",
        default_value = "0.0.0.0:7291"
    )]
    pub whep_addr: IceAddr,

    /// Comma-separated public IPs advertised in ICE candidates instead of the bound address
    /// (1:1 NAT, e.g. a cloud VM or a Kubernetes node). Empty: advertise the bound address.
    #[arg(
        long,
        env = "LIVE_AI_NAT_IP",
        value_name = "LIVE_AI_NAT_IP",
        default_value = ""
    )]
    pub nat_ip: NatIps,

    /// Also accept ICE over TCP (passive, RFC 6544) on the TCP port of the same number as each
    /// WebRTC UDP port, for networks that block UDP.
    #[arg(long, env = "LIVE_AI_ICE_TCP", value_name = "LIVE_AI_ICE_TCP", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub ice_tcp: bool,

    /// Send a stream's output back to a WHIP publisher whose offer is `sendrecv`, on its own
    /// peer connection: what a realtime AI service does, so one livegate can be another's
    /// `whip:` upstream. Off by default: many WHIP clients offer `sendrecv` without wanting
    /// media back, and it would double their traffic.
    #[arg(long, env = "LIVE_AI_WHIP_ECHO", value_name = "LIVE_AI_WHIP_ECHO", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub whip_echo: bool,

    /// STUN/TURN servers announced to WHIP/WHEP clients in `Link` headers (RFC 9725 §4.4),
    /// comma-separated, e.g. `stun:stun.example.org:3478, turn:user:pass@turn.example.org:3478?transport=udp`.
    #[arg(long, env = "LIVE_AI_ICE_SERVERS", value_name = "LIVE_AI_ICE_SERVERS", default_value = "", value_parser = parse_ice_servers, hide_env_values = true)]
    pub ice_servers: IceServers,

    /// Answer CORS preflights and add `Access-Control-Allow-Origin: *` to every response, so
    /// browser players on other origins can use WHIP and WHEP.
    #[arg(long, env = "LIVE_AI_ALLOW_CORS", value_name = "LIVE_AI_ALLOW_CORS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub allow_cors: bool,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(
        long,
        env = "LIVE_AI_LOG_FORMAT",
        value_name = "LIVE_AI_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter in `tracing` EnvFilter syntax, e.g. `info` or `info,livegate_rtc=debug`.
    #[arg(
        long,
        env = "LIVE_AI_LOG_LEVEL",
        value_name = "LIVE_AI_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// Pipeline that turns a stream's input into its output: `passthrough` (the input
    /// itself), `exec:<command line>` (a process per stream, MPEG-TS on stdin and stdout),
    /// `trickle:<url>` (a remote trickle server), `trickle` (trickle channels hosted at
    /// `/ai/trickle/`) or `whip:<url>` (an upstream realtime AI service over WHIP).
    #[arg(
        long,
        env = "LIVE_AI_PIPELINE",
        value_name = "LIVE_AI_PIPELINE",
        default_value = "passthrough"
    )]
    pub pipeline: Pipeline,

    /// A worker that writes no output for this long while its input flows is stuck and is
    /// restarted (a remote one reconnected). `0s` turns the watchdog off.
    #[arg(long, env = "LIVE_AI_OUT_TIMEOUT", value_name = "LIVE_AI_OUT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub out_timeout: Duration,

    /// Worker restarts (crashes and watchdog restarts) allowed per stream within
    /// `LIVE_AI_RESTART_WINDOW`; one more ends the stream with a logged reason.
    #[arg(
        long,
        env = "LIVE_AI_MAX_RESTARTS",
        value_name = "LIVE_AI_MAX_RESTARTS",
        default_value = "5"
    )]
    pub max_restarts: u32,

    /// The window `LIVE_AI_MAX_RESTARTS` is counted over.
    #[arg(long, env = "LIVE_AI_RESTART_WINDOW", value_name = "LIVE_AI_RESTART_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub restart_window: Duration,

    /// Bearer token sent to the upstream of the `whip:` pipeline (`Authorization: Bearer ...`
    /// on its WHIP POST and DELETE). Empty: none.
    #[arg(
        long,
        env = "LIVE_AI_UPSTREAM_TOKEN",
        value_name = "LIVE_AI_UPSTREAM_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub upstream_token: String,

    /// Shortest input segment of the trickle pipelines: segments start at a keyframe and last
    /// at least this long, measured on the video timestamps.
    #[arg(long, env = "LIVE_AI_MIN_SEG_DUR", value_name = "LIVE_AI_MIN_SEG_DUR", default_value = "1s", value_parser = parse_duration)]
    pub min_seg_dur: Duration,

    /// Bearer token every WHIP request must carry (`Authorization: Bearer ...`). Empty: no
    /// token needed.
    #[arg(
        long,
        env = "LIVE_AI_WHIP_TOKEN",
        value_name = "LIVE_AI_WHIP_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub whip_token: String,

    /// URL asked (POST, JSON) before each WHIP publisher is answered: a 2xx reply allows it
    /// (and may choose its pipeline), anything else denies it with 403. Empty: no webhook.
    #[arg(
        long,
        env = "LIVE_AI_AUTH_WEBHOOK_URL",
        value_name = "LIVE_AI_AUTH_WEBHOOK_URL",
        default_value = ""
    )]
    pub auth_webhook_url: String,

    /// Most streams published at once; beyond it a WHIP POST gets 503. `0`: unlimited.
    #[arg(
        long,
        env = "LIVE_AI_MAX_STREAMS",
        value_name = "LIVE_AI_MAX_STREAMS",
        default_value = "0"
    )]
    pub max_streams: usize,

    /// What a second publisher of a live stream key gets: `reject` (409) or `replace` (the
    /// old publisher is closed and the stream goes on with the new one).
    #[arg(
        long,
        env = "LIVE_AI_WHIP_ON_CONFLICT",
        value_name = "LIVE_AI_WHIP_ON_CONFLICT",
        default_value = "reject"
    )]
    pub whip_on_conflict: OnConflict,

    /// How long a stream outlives its publisher, so that a publisher that reconnects in time
    /// continues it and its viewers only see a freeze.
    #[arg(long, env = "LIVE_AI_REPUBLISH_GRACE", value_name = "LIVE_AI_REPUBLISH_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub republish_grace: Duration,

    /// A connected publisher that sends no media for this long is dropped.
    #[arg(long, env = "LIVE_AI_WHIP_MEDIA_TIMEOUT", value_name = "LIVE_AI_WHIP_MEDIA_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub whip_media_timeout: Duration,

    /// How long a WHEP request waits for its stream's output before it gets 409 (a player may
    /// ask before the publisher has connected).
    #[arg(long, env = "LIVE_AI_WHEP_WAIT_TIMEOUT", value_name = "LIVE_AI_WHEP_WAIT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub whep_wait_timeout: Duration,

    /// Most WHEP viewers of one stream, waiting requests included; beyond it 429. `0`:
    /// unlimited.
    #[arg(
        long,
        env = "LIVE_AI_WHEP_MAX_SESSIONS",
        value_name = "LIVE_AI_WHEP_MAX_SESSIONS",
        default_value = "0"
    )]
    pub whep_max_sessions: usize,

    /// Most WHEP requests from one client address waiting for output at once; beyond it
    /// 429, so one client cannot hold every waiting place. `0`: unlimited.
    #[arg(
        long,
        env = "LIVE_AI_WHEP_MAX_PENDING_PER_IP",
        value_name = "LIVE_AI_WHEP_MAX_PENDING_PER_IP",
        default_value = "64"
    )]
    pub whep_max_pending_per_ip: usize,

    /// Most WebRTC peer connections at once, WHIP publishers and WHEP viewers together;
    /// beyond it 503 with `Retry-After`. `0`: unlimited.
    #[arg(
        long,
        env = "LIVE_AI_MAX_SESSIONS",
        value_name = "LIVE_AI_MAX_SESSIONS",
        default_value = "0"
    )]
    pub max_sessions: usize,

    /// Bearer token every WHEP request must carry (`Authorization: Bearer ...`). Empty: no
    /// token needed.
    #[arg(
        long,
        env = "LIVE_AI_WHEP_TOKEN",
        value_name = "LIVE_AI_WHEP_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub whep_token: String,

    /// Bearer token every operator request must carry (`GET /streams`,
    /// `DELETE /streams/{key}`). Empty: `DELETE /streams/{key}` is not served, and
    /// `GET /streams` answers only clients on this machine.
    #[arg(
        long,
        env = "LIVE_AI_ADMIN_TOKEN",
        value_name = "LIVE_AI_ADMIN_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_token: String,

    /// Play MPEG-TS files in a loop as streams' outputs, for smoke tests and for checking
    /// playback before any publisher exists: comma-separated `name=path.ts`.
    #[arg(long, env = "LIVE_AI_TEST_STREAM", value_name = "LIVE_AI_TEST_STREAM", default_value = "", value_parser = parse_test_streams)]
    pub test_stream: TestStreams,

    /// How long a client may take to send a request's headers, and an SDP offer's or
    /// trickle-ICE fragment's whole body; a slower one is cut off (slow-loris).
    #[arg(long, env = "LIVE_AI_HTTP_READ_TIMEOUT", value_name = "LIVE_AI_HTTP_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_read_timeout: Duration,

    /// How long a SIGTERM/SIGINT drain may take before the process exits anyway.
    #[arg(long, env = "LIVE_AI_SHUTDOWN_TIMEOUT", value_name = "LIVE_AI_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Redis of a fleet of gateways (`redis://host:port/db`): turns cluster mode on. Empty:
    /// this gateway runs alone.
    #[arg(
        long,
        env = "LIVE_AI_REDIS_URL",
        value_name = "LIVE_AI_REDIS_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// How the other gateways of the fleet reach this one's HTTP server, e.g.
    /// `http://10.0.0.5:8935`. Empty: `http://` and the bound HTTP address, which must then
    /// be a concrete IP.
    #[arg(
        long,
        env = "LIVE_AI_NODE_URL",
        value_name = "LIVE_AI_NODE_URL",
        default_value = ""
    )]
    pub node_url: String,

    /// Shared secret of the fleet's internal endpoint (bearer token of the edge pulls);
    /// required in cluster mode.
    #[arg(
        long,
        env = "LIVE_AI_CLUSTER_SECRET",
        value_name = "LIVE_AI_CLUSTER_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub cluster_secret: String,

    /// Answer a WHEP POST for a stream published on another gateway with a 307 redirect to
    /// it, instead of pulling the stream to this one.
    #[arg(long, env = "LIVE_AI_CLUSTER_REDIRECT", value_name = "LIVE_AI_CLUSTER_REDIRECT", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub cluster_redirect: bool,

    /// Lifetime of a gateway's heartbeat and origin claims in Redis without renewal (renewed
    /// every third of it): how long a dead gateway lingers in the fleet.
    #[arg(long, env = "LIVE_AI_CLUSTER_TTL", value_name = "LIVE_AI_CLUSTER_TTL", default_value = "6s", value_parser = parse_duration)]
    pub cluster_ttl: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..`: a new field does not compile until it is listed here,
        // so a new secret cannot slip into the output unredacted.
        let Config {
            http_addr,
            whip_addr,
            whep_addr,
            nat_ip,
            ice_tcp,
            whip_echo,
            ice_servers,
            allow_cors,
            log_format,
            log_level,
            pipeline,
            out_timeout,
            max_restarts,
            restart_window,
            upstream_token,
            min_seg_dur,
            whip_token,
            auth_webhook_url,
            max_streams,
            whip_on_conflict,
            republish_grace,
            whip_media_timeout,
            whep_wait_timeout,
            whep_max_sessions,
            whep_max_pending_per_ip,
            max_sessions,
            whep_token,
            admin_token,
            test_stream,
            http_read_timeout,
            shutdown_timeout,
            redis_url,
            node_url,
            cluster_secret,
            cluster_redirect,
            cluster_ttl,
        } = self;
        f.debug_struct("Config")
            .field("http_addr", http_addr)
            .field("whip_addr", whip_addr)
            .field("whep_addr", whep_addr)
            .field("nat_ip", nat_ip)
            .field("ice_tcp", ice_tcp)
            .field("whip_echo", whip_echo)
            .field(
                "ice_servers",
                &format_args!("{} servers (***)", ice_servers.0.len()),
            )
            .field("allow_cors", allow_cors)
            .field("log_format", log_format)
            .field("log_level", log_level)
            .field("pipeline", pipeline)
            .field("out_timeout", out_timeout)
            .field("max_restarts", max_restarts)
            .field("restart_window", restart_window)
            .field("upstream_token", &Redacted(upstream_token))
            .field("min_seg_dur", min_seg_dur)
            .field("whip_token", &Redacted(whip_token))
            .field("auth_webhook_url", auth_webhook_url)
            .field("max_streams", max_streams)
            .field("whip_on_conflict", whip_on_conflict)
            .field("republish_grace", republish_grace)
            .field("whip_media_timeout", whip_media_timeout)
            .field("whep_wait_timeout", whep_wait_timeout)
            .field("whep_max_sessions", whep_max_sessions)
            .field("whep_max_pending_per_ip", whep_max_pending_per_ip)
            .field("max_sessions", max_sessions)
            .field("whep_token", &Redacted(whep_token))
            .field("admin_token", &Redacted(admin_token))
            .field("test_stream", test_stream)
            .field("http_read_timeout", http_read_timeout)
            .field("shutdown_timeout", shutdown_timeout)
            // The URL may carry Redis's password.
            .field("redis_url", &Redacted(redis_url))
            .field("node_url", node_url)
            .field("cluster_secret", &Redacted(cluster_secret))
            .field("cluster_redirect", cluster_redirect)
            .field("cluster_ttl", cluster_ttl)
            .finish()
    }
}

/// A secret in `Debug` output: `***` when set, `""` when not (whether it is set is useful,
/// its value never is).
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("***")
        }
    }
}

impl Config {
    /// How the streams' pipeline workers are supervised.
    pub fn supervision(&self) -> Supervision {
        Supervision {
            out_timeout: (!self.out_timeout.is_zero()).then_some(self.out_timeout),
            max_restarts: self.max_restarts,
            restart_window: self.restart_window,
        }
    }

    /// Parses flags and environment, exiting with clap's message on a bad value. Each
    /// setting's value name is its environment variable, so the message names the variable
    /// whichever way the value came in.
    pub fn from_env_and_args() -> Config {
        Config::parse()
    }
}

/// The address of a server's single ICE port, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceAddr {
    Off,
    Udp(SocketAddr),
}

impl IceAddr {
    /// The address to bind, or `None` when the server is disabled.
    pub fn socket_addr(self) -> Option<SocketAddr> {
        match self {
            IceAddr::Off => None,
            IceAddr::Udp(addr) => Some(addr),
        }
    }
}

impl FromStr for IceAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(IceAddr::Off);
        }
        s.parse()
            .map(IceAddr::Udp)
            .map_err(|_| format!("expected HOST:PORT with an IP host, or `off`; got {s:?}"))
    }
}

impl fmt::Display for IceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceAddr::Off => f.write_str("off"),
            IceAddr::Udp(addr) => addr.fmt(f),
        }
    }
}

/// The IPs of `LIVE_AI_NAT_IP`: a comma-separated list, empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatIps(pub Vec<IpAddr>);

impl NatIps {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for NatIps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|ip| !ip.is_empty())
            .map(|ip| {
                ip.parse().map_err(|_| {
                    format!("expected comma-separated IP addresses; {ip:?} is not one")
                })
            })
            .collect::<Result<_, _>>()
            .map(NatIps)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The servers of `LIVE_AI_ICE_SERVERS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServers(pub Vec<IceServer>);

fn parse_ice_servers(s: &str) -> Result<IceServers, String> {
    IceServer::parse_list(s)
        .map(IceServers)
        .map_err(|e| e.to_string())
}

/// The file sources of `LIVE_AI_TEST_STREAM`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestStreams(pub Vec<FileSourceSpec>);

fn parse_test_streams(s: &str) -> Result<TestStreams, String> {
    file_source::parse_specs(s)
        .map(TestStreams)
        .map_err(|e| e.to_string())
}

/// Booleans as ops write them in environment files: 1/0, true/false, yes/no, on/off.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!(
            "expected true/false (or 1/0, yes/no, on/off); got {other:?}"
        )),
    }
}

/// Durations such as `10s`, `500ms`, `2m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("expected a duration such as 10s or 500ms; got {s:?} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens_and_secrets() {
        let config = Config::try_parse_from([
            "livegate",
            "--whip-token",
            "tok-whip",
            "--whep-token",
            "tok-whep",
            "--admin-token",
            "tok-admin",
            "--upstream-token",
            "tok-upstream",
            "--cluster-secret",
            "tok-cluster",
            "--redis-url",
            "redis://:tok-redis@redis:6379/0",
            "--ice-servers",
            "turn:user:tok-turn@turn.example.org:3478",
        ])
        .unwrap();
        let debug = format!("{config:?}");
        for secret in [
            "tok-whip",
            "tok-whep",
            "tok-admin",
            "tok-upstream",
            "tok-cluster",
            "tok-redis",
            "tok-turn",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains(r#"whip_token: ***"#), "{debug}");
        assert!(debug.contains(r#"admin_token: ***"#), "{debug}");
        assert!(debug.contains("http_addr: 0.0.0.0:8935"), "{debug}");
    }

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("livegate").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_work_on_one_machine() {
        let config = parse(&[]).unwrap();
        assert_eq!(
            config.http_addr,
            "0.0.0.0:8935".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            config.whip_addr,
            IceAddr::Udp("0.0.0.0:7290".parse().unwrap())
        );
        assert_eq!(
            config.whep_addr,
            IceAddr::Udp("0.0.0.0:7291".parse().unwrap())
        );
        assert!(config.nat_ip.is_empty());
        assert!(!config.allow_cors);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.pipeline, Pipeline::Passthrough);
        assert_eq!(config.whep_wait_timeout, Duration::from_secs(30));
        assert_eq!(config.whep_max_sessions, 0);
        assert!(config.whep_token.is_empty());
        assert!(config.admin_token.is_empty());
        assert!(config.test_stream.0.is_empty());
        assert!(!config.ice_tcp);
        assert!(config.whip_token.is_empty());
        assert!(config.auth_webhook_url.is_empty());
        assert_eq!(config.max_streams, 0);
        assert_eq!(config.whip_on_conflict, OnConflict::Reject);
        assert_eq!(config.republish_grace, Duration::from_secs(10));
        assert_eq!(config.whip_media_timeout, Duration::from_secs(10));
        assert!(config.ice_servers.0.is_empty());
        assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
        assert!(config.redis_url.is_empty(), "standalone by default");
        assert!(!config.cluster_redirect);
        assert_eq!(config.cluster_ttl, Duration::from_secs(6));
    }

    #[test]
    fn off_disables_a_server_and_nat_ips_are_a_list() {
        let config = parse(&[
            "--whip-addr",
            "off",
            "--nat-ip",
            "203.0.113.7,2001:db8::1",
            "--allow-cors",
            "yes",
        ])
        .unwrap();
        assert_eq!(config.whip_addr.socket_addr(), None);
        assert_eq!(
            config.nat_ip,
            NatIps(vec![
                "203.0.113.7".parse().unwrap(),
                "2001:db8::1".parse().unwrap()
            ])
        );
        assert!(config.allow_cors);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = parse(&["--whep-addr", "localhost"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LIVE_AI_WHEP_ADDR"), "{err}");
        assert!(err.contains("`off`"), "{err}");
        let err = parse(&["--pipeline", "magic"]).unwrap_err().to_string();
        assert!(err.contains("unknown pipeline"), "{err}");
        let err = parse(&["--ice-servers", "http://x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LIVE_AI_ICE_SERVERS"), "{err}");
        let err = parse(&["--test-stream", "cam"]).unwrap_err().to_string();
        assert!(err.contains("LIVE_AI_TEST_STREAM"), "{err}");
        let err = parse(&["--shutdown-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("duration"), "{err}");
    }
}
