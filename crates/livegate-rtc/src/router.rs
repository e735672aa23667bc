//! Which session a datagram on the shared port (or a frame on one of its ICE-TCP
//! connections) belongs to.

use std::collections::HashMap;
use std::net::SocketAddr;

use rtc::shared::TransportProtocol;

use crate::SessionId;

/// A remote transport address: the same IP:port over UDP and over TCP are different peers
/// (RFC 6544 §3 keeps a TCP candidate's transport apart from a UDP one's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PeerAddr {
    pub(crate) addr: SocketAddr,
    pub(crate) protocol: TransportProtocol,
}

impl PeerAddr {
    pub(crate) fn udp(addr: SocketAddr) -> PeerAddr {
        PeerAddr {
            addr,
            protocol: TransportProtocol::UDP,
        }
    }

    pub(crate) fn tcp(addr: SocketAddr) -> PeerAddr {
        PeerAddr {
            addr,
            protocol: TransportProtocol::TCP,
        }
    }
}

/// Routes datagrams of one UDP socket to sessions: connectivity checks by the local ufrag in
/// their USERNAME, everything else (STUN responses, DTLS, SRTP) by the remote address the
/// session has been seen talking to. Routing by address is not an optimisation: once a pair
/// is selected, `rtc` accepts non-STUN packets from any source, so only this table keeps one
/// peer's packets out of another's session.
#[derive(Debug, Default)]
pub(crate) struct Router {
    by_ufrag: HashMap<String, SessionId>,
    by_addr: HashMap<PeerAddr, SessionId>,
    /// Addresses of each session, so removal is O(addresses of that session).
    addrs_of: HashMap<SessionId, Vec<PeerAddr>>,
    ufrags_of: HashMap<SessionId, Vec<String>>,
}

impl Router {
    pub(crate) fn add_ufrag(&mut self, ufrag: String, session: SessionId) {
        self.ufrags_of
            .entry(session)
            .or_default()
            .push(ufrag.clone());
        self.by_ufrag.insert(ufrag, session);
    }

    /// Binds `addr` to `session` (a check from it authenticated for that session, or the
    /// session sent to it). An address moves to the newest session that claims it.
    pub(crate) fn add_addr(&mut self, addr: PeerAddr, session: SessionId) {
        if self.by_addr.insert(addr, session) != Some(session) {
            self.addrs_of.entry(session).or_default().push(addr);
        }
    }

    pub(crate) fn by_ufrag(&self, ufrag: &str) -> Option<SessionId> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub(crate) fn by_addr(&self, addr: &PeerAddr) -> Option<SessionId> {
        self.by_addr.get(addr).copied()
    }

    /// Forgets a session; returns the addresses that were still routed to it, so the caller
    /// can close their TCP connections.
    pub(crate) fn remove(&mut self, session: SessionId) -> Vec<PeerAddr> {
        let mut removed = Vec::new();
        for addr in self.addrs_of.remove(&session).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&session) {
                self.by_addr.remove(&addr);
                removed.push(addr);
            }
        }
        for ufrag in self.ufrags_of.remove(&session).unwrap_or_default() {
            if self.by_ufrag.get(&ufrag) == Some(&session) {
                self.by_ufrag.remove(&ufrag);
            }
        }
        removed
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_forgets_only_what_still_points_at_the_session() {
        let mut router = Router::default();
        let (a, b) = (SessionId(1), SessionId(2));
        let addr = PeerAddr::udp("127.0.0.1:5000".parse().unwrap());
        router.add_ufrag("ua".into(), a);
        router.add_addr(addr, a);
        // The address moves to b (the peer reused its port for a new session).
        router.add_addr(addr, b);
        assert_eq!(router.remove(a), vec![]);
        assert_eq!(router.by_addr(&addr), Some(b));
        assert_eq!(router.by_ufrag("ua"), None);
        assert_eq!(router.remove(b), vec![addr]);
        assert_eq!(router.len(), (0, 0));
    }

    #[test]
    fn the_same_address_over_udp_and_tcp_is_two_peers() {
        let mut router = Router::default();
        let addr = "127.0.0.1:5000".parse().unwrap();
        router.add_addr(PeerAddr::udp(addr), SessionId(1));
        router.add_addr(PeerAddr::tcp(addr), SessionId(2));
        assert_eq!(router.by_addr(&PeerAddr::udp(addr)), Some(SessionId(1)));
        assert_eq!(router.by_addr(&PeerAddr::tcp(addr)), Some(SessionId(2)));
    }
}
