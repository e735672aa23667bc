//! Which session a datagram on the shared port belongs to.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::SessionId;

/// Routes datagrams of one UDP socket to sessions: connectivity checks by the local ufrag in
/// their USERNAME, everything else (STUN responses, DTLS, SRTP) by the remote address the
/// session has been seen talking to. Routing by address is not an optimisation: once a pair
/// is selected, `rtc` accepts non-STUN packets from any source, so only this table keeps one
/// peer's packets out of another's session.
#[derive(Debug, Default)]
pub(crate) struct Router {
    by_ufrag: HashMap<String, SessionId>,
    by_addr: HashMap<SocketAddr, SessionId>,
    /// Addresses of each session, so removal is O(addresses of that session).
    addrs_of: HashMap<SessionId, Vec<SocketAddr>>,
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
    pub(crate) fn add_addr(&mut self, addr: SocketAddr, session: SessionId) {
        if self.by_addr.insert(addr, session) != Some(session) {
            self.addrs_of.entry(session).or_default().push(addr);
        }
    }

    pub(crate) fn by_ufrag(&self, ufrag: &str) -> Option<SessionId> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<SessionId> {
        self.by_addr.get(addr).copied()
    }

    pub(crate) fn remove(&mut self, session: SessionId) {
        for addr in self.addrs_of.remove(&session).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&session) {
                self.by_addr.remove(&addr);
            }
        }
        for ufrag in self.ufrags_of.remove(&session).unwrap_or_default() {
            if self.by_ufrag.get(&ufrag) == Some(&session) {
                self.by_ufrag.remove(&ufrag);
            }
        }
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
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        router.add_ufrag("ua".into(), a);
        router.add_addr(addr, a);
        // The address moves to b (the peer reused its port for a new session).
        router.add_addr(addr, b);
        router.remove(a);
        assert_eq!(router.by_addr(&addr), Some(b));
        assert_eq!(router.by_ufrag("ua"), None);
        router.remove(b);
        assert_eq!(router.len(), (0, 0));
    }
}
