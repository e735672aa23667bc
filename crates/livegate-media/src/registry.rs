//! Streams by key: each with its input buffer (written by the publisher) and its current
//! output buffer (written by the pipeline worker), and a way for a viewer to wait until a
//! stream's output exists.
//!
//! The registry knows nothing of WebRTC or workers; it is the meeting point between them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ring::RingBuffer;
use crate::stream_key::StreamKey;

/// Why a stream could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("stream {0} already has a live publisher")]
    AlreadyLive(StreamKey),
}

/// Why a wait for a stream's output ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("no output before the deadline")]
    TimedOut,
    #[error("the stream closed")]
    StreamClosed,
}

/// The current output of a stream. A new `generation` means the pipeline replaced its
/// output buffer (a worker restart): viewers switch to the new buffer and rebase their
/// timelines.
#[derive(Debug, Clone, Default)]
pub struct OutputSlot {
    pub generation: u64,
    pub buffer: Option<Arc<RingBuffer>>,
    /// The stream is closed for good; no further output will come.
    pub closed: bool,
}

/// One live stream.
///
/// Concurrency contract: any task may read the output slot or subscribe to it; the pipeline
/// that owns the stream calls [`Stream::set_output`]; whoever ends the stream (publisher gone,
/// admin kick, shutdown) calls [`Stream::close`], which is final and idempotent.
#[derive(Debug)]
pub struct Stream {
    key: StreamKey,
    input: Arc<RingBuffer>,
    output: watch::Sender<OutputSlot>,
}

impl Stream {
    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    /// The buffer the publisher writes into.
    pub fn input(&self) -> &Arc<RingBuffer> {
        &self.input
    }

    /// Installs a new output buffer, closing the previous one so its readers notice.
    /// Ignored (and the buffer closed) when the stream is already closed.
    pub fn set_output(&self, buffer: Arc<RingBuffer>) {
        let mut previous = None;
        self.output.send_modify(|slot| {
            if slot.closed {
                buffer.close();
                return;
            }
            previous = slot.buffer.replace(buffer.clone());
            slot.generation += 1;
        });
        if let Some(previous) = previous {
            previous.close();
        }
    }

    /// The current output buffer, if the pipeline has produced one.
    pub fn output(&self) -> Option<Arc<RingBuffer>> {
        self.output.borrow().buffer.clone()
    }

    /// The output slot now and every change to it.
    pub fn subscribe_output(&self) -> watch::Receiver<OutputSlot> {
        self.output.subscribe()
    }

    /// Ends the stream: closes its input and output buffers and wakes every waiter.
    pub fn close(&self) {
        self.input.close();
        self.output.send_modify(|slot| {
            slot.closed = true;
            if let Some(buffer) = &slot.buffer {
                buffer.close();
            }
        });
    }

    pub fn is_closed(&self) -> bool {
        self.output.borrow().closed
    }
}

#[derive(Default)]
struct Inner {
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    /// Bumped whenever a stream is created, so waiters for a key that does not exist yet
    /// wake without polling.
    created: watch::Sender<u64>,
}

/// Streams by key. Cheap to clone; clones share the same streams.
#[derive(Clone, Default)]
pub struct StreamRegistry {
    inner: Arc<Inner>,
}

impl StreamRegistry {
    pub fn new() -> StreamRegistry {
        StreamRegistry::default()
    }

    /// Creates the stream `key` with an input buffer of `input_capacity_bytes`. A closed
    /// stream of the same key is replaced; a live one is an error.
    pub fn create(
        &self,
        key: StreamKey,
        input_capacity_bytes: usize,
    ) -> Result<Arc<Stream>, RegistryError> {
        let stream = {
            let mut streams = self.inner.streams.lock();
            if let Some(existing) = streams.get(&key) {
                if !existing.is_closed() {
                    return Err(RegistryError::AlreadyLive(key));
                }
            }
            let stream = Arc::new(Stream {
                key: key.clone(),
                input: RingBuffer::new(input_capacity_bytes),
                output: watch::Sender::new(OutputSlot::default()),
            });
            streams.insert(key, stream.clone());
            stream
        };
        self.inner.created.send_modify(|n| *n += 1);
        Ok(stream)
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        self.inner.streams.lock().get(key).cloned()
    }

    /// Removes `stream` if it is still the registered one for its key, so a late remover
    /// cannot delete a newer stream of the same key. Returns whether it removed it.
    pub fn remove(&self, stream: &Arc<Stream>) -> bool {
        let mut streams = self.inner.streams.lock();
        match streams.get(&stream.key) {
            Some(current) if Arc::ptr_eq(current, stream) => {
                streams.remove(&stream.key);
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.streams.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn keys(&self) -> Vec<StreamKey> {
        self.inner.streams.lock().keys().cloned().collect()
    }

    /// Waits until the stream `key` exists and has an output buffer, or until `deadline`.
    /// The stream need not exist yet. Ends at once with [`WaitError::StreamClosed`] when the
    /// stream closes while waited for.
    ///
    /// Cancel-safe: dropping the future leaves nothing registered.
    pub async fn wait_for_output(
        &self,
        key: &StreamKey,
        deadline: Instant,
    ) -> Result<(Arc<Stream>, Arc<RingBuffer>), WaitError> {
        tokio::time::timeout_at(deadline, self.wait_for_output_forever(key))
            .await
            .map_err(|_| WaitError::TimedOut)?
    }

    async fn wait_for_output_forever(
        &self,
        key: &StreamKey,
    ) -> Result<(Arc<Stream>, Arc<RingBuffer>), WaitError> {
        let mut created = self.inner.created.subscribe();
        let stream = loop {
            // Subscribed before looking, so a stream created in between is not missed.
            created.borrow_and_update();
            if let Some(stream) = self.get(key) {
                break stream;
            }
            // The sender lives in `self`, so this cannot fail while we hold `self`.
            let _ = created.changed().await;
        };
        let mut output = stream.subscribe_output();
        loop {
            {
                let slot = output.borrow_and_update();
                if slot.closed {
                    return Err(WaitError::StreamClosed);
                }
                if let Some(buffer) = &slot.buffer {
                    return Ok((stream.clone(), buffer.clone()));
                }
            }
            // The sender lives in the stream we hold.
            let _ = output.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(s: &str) -> StreamKey {
        StreamKey::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_viewer_waiting_before_the_stream_exists_gets_its_output() {
        let registry = StreamRegistry::new();
        let waiter = {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .wait_for_output(&key("cam"), Instant::now() + Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        let stream = registry.create(key("cam"), 1_000).unwrap();
        let output = RingBuffer::new(1_000);
        stream.set_output(output.clone());
        let (got_stream, got_output) = waiter.await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&got_stream, &stream));
        assert!(Arc::ptr_eq(&got_output, &output));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_the_deadline() {
        let registry = StreamRegistry::new();
        registry.create(key("idle"), 1_000).unwrap();
        let start = Instant::now();
        let result = registry
            .wait_for_output(&key("idle"), start + Duration::from_secs(30))
            .await;
        assert_eq!(result.unwrap_err(), WaitError::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_stream_ends_the_wait_at_once() {
        let registry = StreamRegistry::new();
        let stream = registry.create(key("s"), 1_000).unwrap();
        let waiter = {
            let registry = registry.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let result = registry
                    .wait_for_output(&key("s"), start + Duration::from_secs(30))
                    .await;
                (result.map(|_| ()), start.elapsed())
            })
        };
        tokio::task::yield_now().await;
        stream.close();
        let (result, elapsed) = waiter.await.unwrap();
        assert_eq!(result, Err(WaitError::StreamClosed));
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
        assert!(stream.input().is_closed());
    }

    #[test]
    fn replacing_the_output_closes_the_old_one_and_notifies_subscribers() {
        let registry = StreamRegistry::new();
        let stream = registry.create(key("s"), 1_000).unwrap();
        let mut slots = stream.subscribe_output();
        let first = RingBuffer::new(100);
        stream.set_output(first.clone());
        assert!(slots.has_changed().unwrap());
        assert_eq!(slots.borrow_and_update().generation, 1);
        let second = RingBuffer::new(100);
        stream.set_output(second.clone());
        assert!(first.is_closed());
        assert!(!second.is_closed());
        let slot = slots.borrow_and_update().clone();
        assert_eq!(slot.generation, 2);
        assert!(Arc::ptr_eq(slot.buffer.as_ref().unwrap(), &second));
        stream.close();
        assert!(second.is_closed());
        assert!(slots.borrow().closed);
    }

    #[test]
    fn one_live_stream_per_key_and_stale_removal_is_ignored() {
        let registry = StreamRegistry::new();
        let old = registry.create(key("k"), 1_000).unwrap();
        assert_eq!(
            registry.create(key("k"), 1_000).unwrap_err(),
            RegistryError::AlreadyLive(key("k"))
        );
        old.close();
        let new = registry.create(key("k"), 1_000).unwrap();
        assert!(
            !registry.remove(&old),
            "a stale remover must not delete the new stream"
        );
        assert_eq!(registry.len(), 1);
        assert!(registry.remove(&new));
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_nothing_behind() {
        let registry = StreamRegistry::new();
        let key = key("x");
        let wait = registry.wait_for_output(&key, Instant::now() + Duration::from_secs(30));
        // Poll once so it registers, then drop it.
        let _ = tokio::time::timeout(Duration::from_millis(1), wait).await;
        assert_eq!(registry.inner.created.receiver_count(), 0);
        assert!(registry.is_empty());
    }
}
