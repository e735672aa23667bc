//! The live sessions of one endpoint, by resource id.

use std::collections::HashMap;
use std::sync::Arc;

use livegate_media::StreamKey;

use crate::ResourceId;

/// A session as a [`SessionTable`] holds it: it belongs to one stream.
pub trait StreamSession {
    fn stream(&self) -> &StreamKey;
}

/// Sessions by resource id. A session URL carries its stream as well as its id, and a
/// look-up by URL finds the session only under that stream: one stream's key with another
/// stream's session id names nothing, so a client allowed on one stream cannot end or
/// PATCH the sessions of another.
///
/// Not synchronized: each endpoint keeps it under the lock of its own table, beside the
/// rest of what that lock guards.
#[derive(Debug)]
pub struct SessionTable<E> {
    by_id: HashMap<ResourceId, Arc<E>>,
}

impl<E> Default for SessionTable<E> {
    fn default() -> Self {
        SessionTable {
            by_id: HashMap::new(),
        }
    }
}

impl<E: StreamSession> SessionTable<E> {
    pub fn insert(&mut self, id: ResourceId, session: Arc<E>) {
        self.by_id.insert(id, session);
    }

    /// Session `id` of `stream`.
    pub fn get(&self, stream: &StreamKey, id: ResourceId) -> Option<&Arc<E>> {
        self.by_id.get(&id).filter(|s| s.stream() == stream)
    }

    /// Takes session `id` of `stream` out of the table.
    pub fn take(&mut self, stream: &StreamKey, id: ResourceId) -> Option<Arc<E>> {
        self.get(stream, id)?;
        self.by_id.remove(&id)
    }

    /// Takes session `id` out whatever its stream: for the server itself (the session's task
    /// ending, a replacement), never for an id from a URL.
    pub fn remove(&mut self, id: ResourceId) -> Option<Arc<E>> {
        self.by_id.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Session(StreamKey);

    impl StreamSession for Session {
        fn stream(&self) -> &StreamKey {
            &self.0
        }
    }

    #[test]
    fn a_session_is_found_only_under_its_own_stream() {
        let (cam, other) = (
            StreamKey::parse("cam").unwrap(),
            StreamKey::parse("other").unwrap(),
        );
        let id = ResourceId::random();
        let mut table = SessionTable::default();
        table.insert(id, Arc::new(Session(cam.clone())));

        assert!(table.get(&other, id).is_none());
        assert!(table.take(&other, id).is_none());
        assert_eq!(table.len(), 1);
        assert!(table.get(&cam, id).is_some());
        assert!(table.take(&cam, id).is_some());
        assert!(table.is_empty());
    }
}
