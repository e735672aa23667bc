//! Settings of one WebRTC server (one role: WHIP or WHEP).

use crate::session_limit::SessionLimit;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How one [`crate::RtcServer`] binds and behaves.
#[derive(Debug, Clone)]
pub struct RtcConfig {
    /// The single UDP port every peer connection of this server shares.
    pub bind: SocketAddr,
    /// Addresses advertised in our host candidates instead of the bound one (1:1 NAT). Empty:
    /// the bound address or, bound to `0.0.0.0` / `[::]`, the host's interface addresses of
    /// that family read at bind time (no link-local; loopback only if there is nothing else).
    pub advertised_ips: Vec<IpAddr>,
    /// No traffic for this long: the connection is disconnected (go-livepeer: 5 s).
    pub disconnected_timeout: Duration,
    /// Disconnected for this much longer: failed, and the session is removed (go-livepeer:
    /// failed 10 s after the last traffic).
    pub failed_timeout: Duration,
    /// Interval of our consent checks (go-livepeer: 2 s).
    pub keepalive_interval: Duration,
    /// Event loops the peer connections are spread over, so DTLS and SRTP use several
    /// cores. Default: the number of CPUs.
    pub shards: usize,
    /// Capacity of each session's event queue; events beyond it are dropped and counted so a
    /// slow owner never stalls the event loop.
    pub event_queue: usize,
    /// Also accept ICE over TCP (RFC 6544, passive only) on a TCP listener bound to the same
    /// IP and port number as the UDP socket, and advertise a `tcptype passive` candidate next
    /// to each UDP one. For viewers behind firewalls that block UDP. Default: off.
    pub ice_tcp: bool,
    /// Peer connections allowed at once, shared with the other servers given a clone
    /// (`LIVE_AI_MAX_SESSIONS`); beyond it [`crate::RtcServer::accept`] refuses with
    /// [`crate::AcceptError::TooManySessions`]. `None`: unlimited.
    pub session_limit: Option<SessionLimit>,
}

impl RtcConfig {
    /// Defaults in line with go-livepeer's production ICE settings.
    pub fn new(bind: SocketAddr) -> RtcConfig {
        RtcConfig {
            bind,
            advertised_ips: Vec::new(),
            disconnected_timeout: Duration::from_secs(5),
            failed_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(2),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            event_queue: 1024,
            ice_tcp: false,
            session_limit: None,
        }
    }
}
