//! Our host candidates: which addresses a server advertises, the candidate lines every
//! answer carries, and which candidate a packet arrived on.
//!
//! `rtc` gathers nothing itself and only accepts a packet whose `TransportContext::local_addr`
//! is the address of one of the local candidates it was given
//! (`rtc-ice` `Agent::find_local_candidate`), so the candidates and that mapping must agree;
//! keeping both here is what makes them agree. Not here: sockets, routing between sessions.
//!
//! Bound to an unspecified address (`0.0.0.0`, `[::]`), a server advertises every usable
//! address of the host in the bound family, read from the interfaces once at bind time:
//! link-local addresses are left out (unreachable beyond the link, and their IPv6 form
//! needs a zone), so are addresses of interfaces that are down, and loopback is advertised
//! only when nothing else is, so remote peers are never sent checking their own
//! localhost. A 1:1 NAT's addresses (`advertised_ips`) replace them all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};

use crate::config::RtcConfig;

/// RFC 8445 §5.1.2.2 type preference of host candidates.
const HOST_TYPE_PREFERENCE: u32 = 126;
/// RFC 6544 §4.2 local preference of a passive TCP host candidate: direction-pref 4 in the
/// top 3 bits, other-pref below; below every UDP candidate's 65535 so browsers prefer UDP.
const TCP_PASSIVE_LOCAL_PREFERENCE: u32 = (4 << 13) + 8_191;
const UDP_LOCAL_PREFERENCE: u32 = 65_535;

/// The addresses one server advertises, all on the same port, and how a packet's
/// destination maps to one of them.
#[derive(Debug, Clone)]
pub(crate) struct HostCandidates {
    /// In the order of preference; never empty.
    ips: Vec<IpAddr>,
    port: u16,
    /// The IPs are 1:1 NAT addresses, not ours: no packet arrives on them, so every packet is
    /// said to arrive on the first, and the kernel picks the source address of replies.
    nat: bool,
    /// Whether a passive TCP candidate accompanies each UDP one.
    ice_tcp: bool,
    /// Bound to an unspecified address: the kernel would pick our source address by route,
    /// so we name it on every send.
    unspecified: bool,
}

impl HostCandidates {
    /// The candidates of a server bound to `local` (its actual address, port resolved).
    pub(crate) fn new(config: &RtcConfig, local: SocketAddr) -> HostCandidates {
        Self::with_interfaces(config, local, interface_addrs)
    }

    /// As [`HostCandidates::new`], with the host's interface addresses from `interfaces`
    /// (read only for an unspecified bind without NAT addresses).
    fn with_interfaces(
        config: &RtcConfig,
        local: SocketAddr,
        interfaces: impl FnOnce() -> Vec<InterfaceAddr>,
    ) -> HostCandidates {
        let unspecified = local.ip().is_unspecified();
        let (ips, nat) = if !config.advertised_ips.is_empty() {
            (config.advertised_ips.clone(), true)
        } else if unspecified {
            (usable_ips(local.is_ipv4(), interfaces()), false)
        } else {
            (vec![local.ip()], false)
        };
        tracing::info!(
            ?ips,
            port = local.port(),
            nat,
            "advertised ICE host candidates"
        );
        HostCandidates {
            ips,
            port: local.port(),
            nat,
            ice_tcp: config.ice_tcp,
            unspecified,
        }
    }

    /// The advertised IP addresses, in order of preference.
    pub(crate) fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// The local address to hand `rtc` with a packet whose destination IP was `destination`
    /// (`None` where the platform does not tell).
    ///
    /// A destination we do not advertise (an address that appeared after bind, a link-local
    /// one) is mapped to the first candidate: over TCP the connection fixes the addresses, so
    /// that is exactly right; over UDP our reply leaves from the first candidate's address,
    /// which a strict peer ignores, no worse than dropping the packet here.
    pub(crate) fn local_addr(&self, destination: Option<IpAddr>) -> SocketAddr {
        let first = SocketAddr::new(self.ips[0], self.port);
        match destination.map(|ip| ip.to_canonical()) {
            Some(ip) if !self.nat && self.ips.contains(&ip) => SocketAddr::new(ip, self.port),
            _ => first,
        }
    }

    /// The source IP to send from, for a packet `rtc` sends from candidate `local`: the
    /// candidate's own address when bound to an unspecified address, so a peer's check is
    /// answered from the address it was sent to (RFC 8445 §7.2.5.2.1 requires symmetric
    /// addresses); `None` (the kernel's choice, which is then the bound address or the
    /// route's) for a specific bind, and behind a 1:1 NAT, where the candidate's address is
    /// not ours.
    pub(crate) fn source_ip(&self, local: SocketAddr) -> Option<IpAddr> {
        (self.unspecified && !self.nat && !local.ip().is_unspecified()).then_some(local.ip())
    }

    /// The candidate lines for `rtc`: one UDP host candidate per address and, with ICE-TCP,
    /// one passive TCP host candidate per address, each with a distinct priority
    /// (RFC 8445 §5.1.2.1: unique local preference per candidate of a component).
    pub(crate) fn inits(&self) -> Result<Vec<RTCIceCandidateInit>, rtc::shared::error::Error> {
        let mut inits = Vec::new();
        let mut protocols = vec![("udp", TcpType::Unspecified, UDP_LOCAL_PREFERENCE)];
        if self.ice_tcp {
            protocols.push(("tcp", TcpType::Passive, TCP_PASSIVE_LOCAL_PREFERENCE));
        }
        for (network, tcp_type, preference) in protocols {
            for (i, ip) in self.ips.iter().enumerate() {
                let local_preference = preference.saturating_sub(i as u32);
                let candidate = CandidateHostConfig {
                    base_config: CandidateConfig {
                        network: network.to_owned(),
                        address: ip.to_string(),
                        port: self.port,
                        component: 1,
                        priority: (HOST_TYPE_PREFERENCE << 24) + (local_preference << 8) + 255,
                        ..Default::default()
                    },
                    tcp_type,
                }
                .new_candidate_host()?;
                inits.push(RTCIceCandidate::from(&candidate).to_json()?);
            }
        }
        Ok(inits)
    }
}

/// One address of a host interface, as far as choosing candidates cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InterfaceAddr {
    ip: IpAddr,
    down: bool,
}

fn interface_addrs() -> Vec<InterfaceAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .iter()
            .map(|i| InterfaceAddr {
                ip: i.ip(),
                down: i.oper_status == if_addrs::IfOperStatus::Down,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the network interfaces; advertising loopback");
            Vec::new()
        }
    }
}

/// The addresses to advertise for an unspecified bind of the given family, in interface
/// order; loopback only when there is nothing else, so the list is never empty.
fn usable_ips(ipv4: bool, interfaces: Vec<InterfaceAddr>) -> Vec<IpAddr> {
    let family = |ip: &IpAddr| ip.is_ipv4() == ipv4;
    let link_local = |ip: &IpAddr| match ip {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.is_unicast_link_local(),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    for interface in interfaces {
        let ip = interface.ip;
        if interface.down
            || !family(&ip)
            || link_local(&ip)
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.is_unspecified()
            || ips.contains(&ip)
        {
            continue;
        }
        ips.push(ip);
    }
    if ips.is_empty() {
        ips.push(if ipv4 {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        });
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(ip: &str) -> InterfaceAddr {
        InterfaceAddr {
            ip: ip.parse().unwrap(),
            down: false,
        }
    }

    fn host() -> Vec<InterfaceAddr> {
        vec![
            up("127.0.0.1"),
            up("::1"),
            up("192.0.2.2"),
            up("fd00::2"),
            up("fe80::fc:ff:fe00:1"),
            up("169.254.3.4"),
            InterfaceAddr {
                ip: "198.51.100.9".parse().unwrap(),
                down: true,
            },
            up("203.0.113.5"),
            // The same address on a second interface (a bridge and its member).
            up("192.0.2.2"),
        ]
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn an_unspecified_bind_advertises_the_usable_addresses_of_its_family() {
        assert_eq!(usable_ips(true, host()), ips(&["192.0.2.2", "203.0.113.5"]));
        assert_eq!(usable_ips(false, host()), ips(&["fd00::2"]));
    }

    #[test]
    fn loopback_is_advertised_only_when_nothing_else_is() {
        let lonely = vec![up("127.0.0.1"), up("::1"), up("fe80::1")];
        assert_eq!(usable_ips(true, lonely.clone()), ips(&["127.0.0.1"]));
        assert_eq!(usable_ips(false, lonely), ips(&["::1"]));
        assert_eq!(usable_ips(true, Vec::new()), ips(&["127.0.0.1"]));
    }

    #[test]
    fn an_unspecified_bind_maps_each_destination_to_its_own_candidate_and_sends_from_it() {
        let local: SocketAddr = "0.0.0.0:7290".parse().unwrap();
        let candidates = HostCandidates::with_interfaces(&config(false, &[]), local, host);
        let second: SocketAddr = "203.0.113.5:7290".parse().unwrap();
        assert_eq!(candidates.local_addr(Some(second.ip())), second);
        assert_eq!(candidates.source_ip(second), Some(second.ip()));
        // Unknown or untold destinations go to the first candidate.
        let first: SocketAddr = "192.0.2.2:7290".parse().unwrap();
        assert_eq!(candidates.local_addr("127.0.0.1".parse().ok()), first);
        assert_eq!(candidates.local_addr(None), first);
        let lines: Vec<String> = candidates
            .inits()
            .unwrap()
            .into_iter()
            .map(|i| i.candidate)
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains(" 192.0.2.2 7290 "), "{lines:?}");
        assert!(lines[1].contains(" 203.0.113.5 7290 "), "{lines:?}");
    }

    #[test]
    fn nat_addresses_are_not_ours_to_send_from() {
        let local: SocketAddr = "0.0.0.0:7290".parse().unwrap();
        let candidates =
            HostCandidates::with_interfaces(&config(false, &["203.0.113.1"]), local, || {
                panic!("interfaces are not read under NAT")
            });
        assert_eq!(
            candidates.source_ip("203.0.113.1:7290".parse().unwrap()),
            None
        );
    }

    fn config(ice_tcp: bool, nat: &[&str]) -> RtcConfig {
        let mut config = RtcConfig::new("0.0.0.0:0".parse().unwrap());
        config.ice_tcp = ice_tcp;
        config.advertised_ips = nat.iter().map(|ip| ip.parse().unwrap()).collect();
        config
    }

    #[test]
    fn tcp_candidates_are_passive_and_rank_below_udp() {
        let local = "192.0.2.7:7291".parse().unwrap();
        let inits = HostCandidates::new(&config(true, &[]), local)
            .inits()
            .unwrap();
        assert_eq!(inits.len(), 2);
        let fields: Vec<Vec<&str>> = inits
            .iter()
            .map(|i| i.candidate.split_whitespace().collect())
            .collect();
        assert_eq!(fields[0][2], "udp");
        assert_eq!(fields[1][2], "tcp");
        assert!(inits[1].candidate.ends_with("typ host tcptype passive"));
        for f in &fields {
            assert_eq!((f[4], f[5]), ("192.0.2.7", "7291"));
        }
        let priority = |f: &Vec<&str>| f[3].parse::<u32>().unwrap();
        assert!(priority(&fields[0]) > priority(&fields[1]));
    }

    #[test]
    fn without_ice_tcp_there_is_no_tcp_candidate() {
        let local = "192.0.2.7:7291".parse().unwrap();
        let inits = HostCandidates::new(&config(false, &[]), local)
            .inits()
            .unwrap();
        assert_eq!(inits.len(), 1);
        assert!(!inits[0].candidate.contains("tcp"));
    }

    #[test]
    fn nat_addresses_replace_ours_and_every_packet_arrives_on_the_first() {
        let local: SocketAddr = "10.0.0.5:7290".parse().unwrap();
        let candidates =
            HostCandidates::new(&config(false, &["203.0.113.1", "203.0.113.2"]), local);
        let first: SocketAddr = "203.0.113.1:7290".parse().unwrap();
        assert_eq!(candidates.local_addr(Some(local.ip())), first);
        assert_eq!(candidates.local_addr("203.0.113.2".parse().ok()), first);
        let inits = candidates.inits().unwrap();
        let fields: Vec<(&str, &str)> = inits
            .iter()
            .map(|i| {
                let f: Vec<&str> = i.candidate.split_whitespace().collect();
                (f[3], f[4])
            })
            .collect();
        assert_eq!(fields[0].1, "203.0.113.1");
        assert_eq!(fields[1].1, "203.0.113.2");
        assert_ne!(fields[0].0, fields[1].0);
    }

    #[test]
    fn a_specific_bind_maps_its_own_address() {
        let local: SocketAddr = "192.0.2.7:7291".parse().unwrap();
        let candidates = HostCandidates::new(&config(false, &[]), local);
        assert_eq!(candidates.local_addr(Some(local.ip())), local);
        assert_eq!(candidates.local_addr(None), local);
        // The kernel sends from the bound address anyway.
        assert_eq!(candidates.source_ip(local), None);
        // A v4-mapped destination (dual-stack socket) is the same address.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(candidates.local_addr(Some(mapped)), local);
    }
}
