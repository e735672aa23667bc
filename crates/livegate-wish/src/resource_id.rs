//! Session resource ids: the last segment of a session's URL.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// An unguessable session id: 128 bits from the thread's cryptographically secure generator
/// (`rand`'s ChaCha generator seeded from the OS), written as 32 lowercase hex digits.
///
/// Knowing a session's URL is the capability to DELETE or PATCH it (RFC 9725 §4.1 leaves
/// authorization of the resource to the server), so ids must not be enumerable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceId(u128);

impl ResourceId {
    pub fn random() -> ResourceId {
        ResourceId(rand::rng().random())
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The path segment is not a resource id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id")]
pub struct NotAResourceId;

impl FromStr for ResourceId {
    type Err = NotAResourceId;

    /// Only the exact form [`ResourceId`] writes, so one session has one URL.
    fn from_str(s: &str) -> Result<ResourceId, NotAResourceId> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(NotAResourceId);
        }
        u128::from_str_radix(s, 16)
            .map(ResourceId)
            .map_err(|_| NotAResourceId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_text() {
        for _ in 0..100 {
            let id = ResourceId::random();
            let text = id.to_string();
            assert_eq!(text.len(), 32);
            assert_eq!(text.parse::<ResourceId>(), Ok(id));
        }
    }

    #[test]
    fn ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| ResourceId::random()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn other_spellings_are_refused() {
        let id = ResourceId::random().to_string();
        for bad in [
            id.to_uppercase(),
            format!("{id}0"),
            id[1..].to_owned(),
            "../../etc/passwd".to_owned(),
            format!("+{}", &id[1..]),
        ] {
            assert_eq!(bad.parse::<ResourceId>(), Err(NotAResourceId), "{bad}");
        }
    }
}
