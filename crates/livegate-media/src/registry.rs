//! Streams by key: each with its input buffer (written by the publisher) and its current
//! output buffer (written by the pipeline worker), and a way for a viewer to wait until a
//! stream's output exists.
//!
//! The registry is the meeting point between publishers, pipeline workers and viewers; it
//! knows nothing of WebRTC, HTTP or worker processes, and it does not start or stop anything:
//! whoever creates a stream owns its life and closes it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ring::{RingBuffer, DEFAULT_CAPACITY_BYTES};
use crate::stream_key::StreamKey;

/// Why a stream could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A stream with this key exists and is not closed.
    #[error("stream {0} already has a live publisher")]
    AlreadyLive(StreamKey),
}

/// Why a wait for a stream's output ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed first.
    #[error("no output before the deadline")]
    TimedOut,
    /// The stream closed for good while waited for.
    #[error("the stream closed")]
    StreamClosed,
}

/// The stream is closed for good: it will have no further output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream closed")]
pub struct StreamClosed;

impl From<StreamClosed> for WaitError {
    fn from(_: StreamClosed) -> WaitError {
        WaitError::StreamClosed
    }
}

/// A stream's output as seen through [`Stream::subscribe_output`].
///
/// A new `generation` with `closed == false` means the output was replaced (a worker restart):
/// viewers switch to the new buffer and rebase their timelines. `closed == true` means the
/// stream ended for good.
#[derive(Debug, Clone, Default)]
pub struct OutputSlot {
    /// Number of [`Stream::set_output`] calls that installed a buffer; 0 before the first.
    pub generation: u64,
    /// The current output buffer, if the pipeline has produced one.
    pub buffer: Option<Arc<RingBuffer>>,
    /// The stream is closed for good; no further output will come.
    pub closed: bool,
}

/// One stream: its key, its input buffer and its replaceable output buffer.
///
/// # Concurrency contract
///
/// - The publisher writes [`Stream::input`]; the pipeline that owns the stream calls
///   [`Stream::set_output`], once per worker start; any task may read the output or
///   subscribe to it.
/// - Replacing the output closes the previous buffer *after* the new one is visible, so a
///   viewer whose reader reports [`ReadOutcome::Closed`](crate::ring::ReadOutcome::Closed)
///   finds either the replacement or `closed` when it then calls [`Stream::next_output`].
/// - [`Stream::close`] is final and idempotent: it closes the input and current output
///   buffers (their readers drain and end) and wakes every waiter. An output set after that
///   is closed at once, so the worker's writes fail with
///   [`RingClosed`](crate::ring::RingClosed).
#[derive(Debug)]
pub struct Stream {
    key: StreamKey,
    input: Arc<RingBuffer>,
    output: watch::Sender<OutputSlot>,
    /// What the pipeline worker last measured; read by viewers' opt-in metrics.
    pipeline_latency: Mutex<Option<PipelineLatency>>,
    /// Bumped each time a worker needs a keyframe that only the publisher can make.
    keyframe_requests: watch::Sender<u64>,
}

/// How long frames take from the stream's input buffer to its output buffer, as the
/// pipeline worker measured it over its recent frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineLatency {
    /// Median of the recent frames.
    pub p50: std::time::Duration,
    /// 99th percentile of the recent frames.
    pub p99: std::time::Duration,
    /// Frames the figures are taken over.
    pub frames: usize,
}

impl Stream {
    fn new(key: StreamKey, input_capacity_bytes: usize) -> Stream {
        Stream {
            key,
            input: RingBuffer::new(input_capacity_bytes),
            output: watch::Sender::new(OutputSlot::default()),
            pipeline_latency: Mutex::new(None),
            keyframe_requests: watch::Sender::new(0),
        }
    }

    /// A pipeline worker needs a keyframe (its upstream sent a PLI, say): the stream's
    /// publisher session is asked, and its own rate limit decides when to pass it on.
    pub fn request_keyframe(&self) {
        self.keyframe_requests.send_modify(|n| *n += 1);
    }

    /// Moves on every [`Stream::request_keyframe`]; what the publisher session watches.
    pub fn subscribe_keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframe_requests.subscribe()
    }

    /// Records what the pipeline worker measured (`None`: it cannot tell, e.g. it rewrites
    /// timestamps). Written by the worker, about once a second.
    pub fn set_pipeline_latency(&self, latency: Option<PipelineLatency>) {
        *self.pipeline_latency.lock() = latency;
    }

    /// The pipeline worker's latest measurement, if it made one.
    pub fn pipeline_latency(&self) -> Option<PipelineLatency> {
        *self.pipeline_latency.lock()
    }

    /// The stream's key.
    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    /// The buffer the publisher writes into and the pipeline reads.
    pub fn input(&self) -> &Arc<RingBuffer> {
        &self.input
    }

    /// Installs `buffer` as the output and closes the previous one, so its readers drain and
    /// move to the new one. On a closed stream, closes `buffer` instead.
    pub fn set_output(&self, buffer: Arc<RingBuffer>) {
        let mut previous = None;
        self.output.send_if_modified(|slot| {
            if slot.closed {
                buffer.close();
                return false;
            }
            if slot
                .buffer
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, &buffer))
            {
                return false;
            }
            previous = slot.buffer.replace(buffer.clone());
            slot.generation += 1;
            true
        });
        if let Some(previous) = previous {
            previous.close();
        }
    }

    /// The current output buffer, if the pipeline has produced one (still returned, closed,
    /// after the stream closes).
    pub fn output(&self) -> Option<Arc<RingBuffer>> {
        self.output.borrow().buffer.clone()
    }

    /// The output slot now and every later change to it.
    pub fn subscribe_output(&self) -> watch::Receiver<OutputSlot> {
        self.output.subscribe()
    }

    /// Waits until the output is a buffer other than `current` (any buffer when `None`):
    /// what a viewer calls first, and again when its buffer ends. Fails once the stream is
    /// closed. Cancel-safe: dropping the future leaves nothing behind.
    pub async fn next_output(
        &self,
        current: Option<&Arc<RingBuffer>>,
    ) -> Result<Arc<RingBuffer>, StreamClosed> {
        let mut slots = self.output.subscribe();
        loop {
            {
                let slot = slots.borrow_and_update();
                if slot.closed {
                    return Err(StreamClosed);
                }
                match (&slot.buffer, current) {
                    (Some(buffer), Some(current)) if Arc::ptr_eq(buffer, current) => {}
                    (Some(buffer), _) => return Ok(buffer.clone()),
                    (None, _) => {}
                }
            }
            // The sender lives in `self`, which outlives this borrow, so this cannot fail.
            let _ = slots.changed().await;
        }
    }

    /// Ends the stream for good: closes its input and output buffers and wakes every waiter.
    pub fn close(&self) {
        self.input.close();
        self.output.send_if_modified(|slot| {
            if slot.closed {
                return false;
            }
            slot.closed = true;
            if let Some(buffer) = &slot.buffer {
                buffer.close();
            }
            true
        });
    }

    /// Whether [`Stream::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.output.borrow().closed
    }
}

struct Inner {
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    /// Bumped whenever a stream is created, so waiters for a key that does not exist yet
    /// wake without polling.
    created: watch::Sender<u64>,
    input_capacity_bytes: usize,
}

/// Streams by key. Cheap to clone; clones share the same streams.
///
/// At most one live stream per key. A closed stream stays registered until its owner
/// [removes](StreamRegistry::remove) it, and may be replaced by a new one meanwhile (a
/// publisher reconnecting before the old session has finished cleaning up).
#[derive(Clone)]
pub struct StreamRegistry {
    inner: Arc<Inner>,
}

impl Default for StreamRegistry {
    fn default() -> StreamRegistry {
        StreamRegistry::new()
    }
}

impl std::fmt::Debug for StreamRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRegistry")
            .field("streams", &self.keys())
            .field("input_capacity_bytes", &self.inner.input_capacity_bytes)
            .finish()
    }
}

impl StreamRegistry {
    /// A registry whose streams get input buffers of [`DEFAULT_CAPACITY_BYTES`].
    pub fn new() -> StreamRegistry {
        StreamRegistry::with_input_capacity(DEFAULT_CAPACITY_BYTES)
    }

    /// A registry whose streams get input buffers of `input_capacity_bytes`.
    pub fn with_input_capacity(input_capacity_bytes: usize) -> StreamRegistry {
        StreamRegistry {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                created: watch::Sender::new(0),
                input_capacity_bytes,
            }),
        }
    }

    /// Creates and registers the stream `key`. A closed stream of the same key is replaced;
    /// a live one is an error.
    pub fn create(&self, key: StreamKey) -> Result<Arc<Stream>, RegistryError> {
        let stream = {
            let mut streams = self.inner.streams.lock();
            if streams.get(&key).is_some_and(|s| !s.is_closed()) {
                return Err(RegistryError::AlreadyLive(key));
            }
            let stream = Arc::new(Stream::new(key.clone(), self.inner.input_capacity_bytes));
            streams.insert(key, stream.clone());
            stream
        };
        self.inner.created.send_modify(|n| *n += 1);
        Ok(stream)
    }

    /// The stream registered under `key`, live or closed.
    pub fn get(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        self.inner.streams.lock().get(key).cloned()
    }

    /// Closes `stream` and unregisters it if it is still the one registered for its key, so
    /// a late remover cannot delete a newer stream of the same key. Returns whether it was
    /// unregistered.
    pub fn remove(&self, stream: &Arc<Stream>) -> bool {
        // Closed first, so that nobody keeps waiting on a stream they can no longer find.
        stream.close();
        let mut streams = self.inner.streams.lock();
        match streams.get(&stream.key) {
            Some(current) if Arc::ptr_eq(current, stream) => {
                streams.remove(&stream.key);
                true
            }
            _ => false,
        }
    }

    /// Number of registered streams, live or closed.
    pub fn len(&self) -> usize {
        self.inner.streams.lock().len()
    }

    /// Whether no stream is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every registered stream, live or closed, in no particular order: a snapshot for
    /// metrics and status pages.
    pub fn snapshot(&self) -> Vec<Arc<Stream>> {
        self.inner.streams.lock().values().cloned().collect()
    }

    /// Keys of the registered streams, sorted.
    pub fn keys(&self) -> Vec<StreamKey> {
        let mut keys: Vec<_> = self.inner.streams.lock().keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Waits until a live stream `key` exists and has an output buffer, or until `deadline`.
    ///
    /// The stream need not exist yet (a viewer may arrive before the publisher); a closed
    /// stream still registered counts as not existing yet. Once a live stream is found, its
    /// closing ends the wait at once with [`WaitError::StreamClosed`].
    ///
    /// Cancel-safe: dropping the future (the viewer's request was aborted) unregisters its
    /// subscriptions and leaves nothing behind.
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
        loop {
            // Marked seen before looking, so a stream created in between is not missed.
            created.borrow_and_update();
            if let Some(stream) = self.get(key).filter(|s| !s.is_closed()) {
                let output = stream.next_output(None).await?;
                return Ok((stream, output));
            }
            // The sender lives in `self`, so this cannot fail while we hold `self`.
            let _ = created.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::ring::ReadOutcome;

    fn key(s: &str) -> StreamKey {
        StreamKey::parse(s).unwrap()
    }

    /// Polls once with a no-op waker, to get a future registered without a runtime or timer.
    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Only a safety net against a hang; the tests never wait for it.
    const SAFETY_NET: Duration = Duration::from_secs(10);

    type Waited = Result<(Arc<Stream>, Arc<RingBuffer>), WaitError>;

    /// `wait_for_output` as a boxed future that owns its key, so it can be polled step by step.
    fn wait_for(
        registry: &StreamRegistry,
        name: &str,
        deadline: Instant,
    ) -> Pin<Box<impl Future<Output = Waited>>> {
        let (registry, key) = (registry.clone(), key(name));
        Box::pin(async move { registry.wait_for_output(&key, deadline).await })
    }

    #[tokio::test]
    async fn a_viewer_waiting_before_the_stream_exists_gets_its_output() {
        let registry = StreamRegistry::with_input_capacity(1_000);
        let mut wait = wait_for(&registry, "cam", Instant::now() + SAFETY_NET);
        assert!(poll_once(wait.as_mut()).is_pending());

        let stream = registry.create(key("cam")).unwrap();
        assert_eq!(stream.input().capacity_bytes(), 1_000);
        assert!(poll_once(wait.as_mut()).is_pending(), "no output yet");
        let output = RingBuffer::new(1_000);
        stream.set_output(output.clone());

        let (got_stream, got_output) = wait.await.unwrap();
        assert!(Arc::ptr_eq(&got_stream, &stream));
        assert!(Arc::ptr_eq(&got_output, &output));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_the_deadline() {
        let registry = StreamRegistry::new();
        registry.create(key("idle")).unwrap();
        let start = Instant::now();
        let existing = registry
            .wait_for_output(&key("idle"), start + Duration::from_secs(30))
            .await;
        assert_eq!(existing.unwrap_err(), WaitError::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(30));

        let start = Instant::now();
        let missing = registry
            .wait_for_output(&key("never"), start + Duration::from_secs(5))
            .await;
        assert_eq!(missing.unwrap_err(), WaitError::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_stream_ends_the_wait_at_once() {
        let registry = StreamRegistry::new();
        let stream = registry.create(key("s")).unwrap();
        let start = Instant::now();
        let mut wait = wait_for(&registry, "s", start + SAFETY_NET);
        assert!(poll_once(wait.as_mut()).is_pending());
        stream.close();
        assert_eq!(wait.await.unwrap_err(), WaitError::StreamClosed);
        // Paused time moves only when every task is idle, so any wait would show here.
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(stream.input().is_closed());
    }

    #[tokio::test]
    async fn a_closed_stream_still_registered_is_waited_past_for_its_replacement() {
        let registry = StreamRegistry::new();
        let old = registry.create(key("k")).unwrap();
        old.close();
        let mut wait = wait_for(&registry, "k", Instant::now() + SAFETY_NET);
        assert!(poll_once(wait.as_mut()).is_pending());
        let new = registry.create(key("k")).unwrap();
        let output = RingBuffer::new(100);
        new.set_output(output.clone());
        let (stream, got) = wait.await.unwrap();
        assert!(Arc::ptr_eq(&stream, &new));
        assert!(Arc::ptr_eq(&got, &output));
    }

    #[tokio::test]
    async fn replacing_the_output_closes_the_old_one_and_notifies_subscribers() {
        let registry = StreamRegistry::new();
        let stream = registry.create(key("s")).unwrap();
        let mut slots = stream.subscribe_output();
        let first = RingBuffer::new(100);
        stream.set_output(first.clone());
        stream.set_output(first.clone());
        assert!(slots.has_changed().unwrap());
        assert_eq!(slots.borrow_and_update().generation, 1, "same buffer twice");

        // A viewer reading the first output is told of the replacement.
        let mut reader = first.reader();
        first.write(Bytes::from_static(b"tail")).unwrap();
        let mut next = Box::pin(stream.next_output(Some(&first)));
        assert!(poll_once(next.as_mut()).is_pending());
        let second = RingBuffer::new(100);
        stream.set_output(second.clone());
        let got = tokio::time::timeout(SAFETY_NET, next)
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&got, &second));
        assert!(first.is_closed() && !second.is_closed());
        // The old buffer drains before it ends.
        let tail = ReadOutcome::Chunk(Bytes::from_static(b"tail"));
        assert_eq!(reader.read().await, tail);
        assert_eq!(reader.read().await, ReadOutcome::Closed);

        let slot = slots.borrow_and_update().clone();
        assert_eq!(slot.generation, 2);
        assert!(!slot.closed);
        assert!(Arc::ptr_eq(slot.buffer.as_ref().unwrap(), &second));

        // Closed for good is distinct from replaced.
        stream.close();
        assert!(second.is_closed());
        assert!(slots.has_changed().unwrap());
        let slot = slots.borrow_and_update().clone();
        assert!(slot.closed);
        assert_eq!(slot.generation, 2);
        assert_eq!(
            stream.next_output(Some(&second)).await.err(),
            Some(StreamClosed)
        );

        // A worker restarting after the close gets a closed buffer to write to.
        let late = RingBuffer::new(100);
        stream.set_output(late.clone());
        assert!(late.is_closed());
        assert!(Arc::ptr_eq(&stream.output().unwrap(), &second));
    }

    #[test]
    fn one_live_stream_per_key_and_a_stale_remove_does_nothing() {
        let registry = StreamRegistry::new();
        let old = registry.create(key("k")).unwrap();
        assert_eq!(
            registry.create(key("k")).unwrap_err(),
            RegistryError::AlreadyLive(key("k"))
        );
        old.close();
        let new = registry.create(key("k")).unwrap();
        registry.create(key("a")).unwrap();
        assert!(
            !registry.remove(&old),
            "a stale remover must not delete the new stream"
        );
        assert!(Arc::ptr_eq(&registry.get(&key("k")).unwrap(), &new));
        assert!(!new.is_closed());
        assert_eq!(registry.keys(), vec![key("a"), key("k")]);

        assert!(registry.remove(&new));
        assert!(new.is_closed(), "a removed stream is closed");
        assert!(registry.get(&key("k")).is_none());
        assert_eq!(registry.len(), 1);
    }

    #[tokio::test]
    async fn removing_a_stream_ends_its_waiters() {
        let registry = StreamRegistry::new();
        let stream = registry.create(key("s")).unwrap();
        let mut wait = wait_for(&registry, "s", Instant::now() + SAFETY_NET);
        assert!(poll_once(wait.as_mut()).is_pending());
        assert!(registry.remove(&stream));
        assert_eq!(wait.await.unwrap_err(), WaitError::StreamClosed);
    }

    #[test]
    fn waits_can_run_on_a_multi_threaded_runtime() {
        // Fails to compile if a lock guard or watch borrow is held across an await.
        fn assert_send<T: Send>(_: T) {}
        let registry = StreamRegistry::new();
        let (key, stream) = (key("k"), registry.create(key("k")).unwrap());
        assert_send(registry.wait_for_output(&key, Instant::now()));
        assert_send(stream.next_output(None));
    }

    #[test]
    fn a_dropped_waiter_leaves_nothing_behind() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let registry = StreamRegistry::new();
        let deadline = Instant::now() + SAFETY_NET;

        // Waiting for a stream that does not exist yet.
        let mut wait = wait_for(&registry, "x", deadline);
        assert!(poll_once(wait.as_mut()).is_pending());
        assert_eq!(registry.inner.created.receiver_count(), 1);
        drop(wait);
        assert_eq!(registry.inner.created.receiver_count(), 0);
        assert!(registry.is_empty());

        // Waiting for the output of one that does.
        let stream = registry.create(key("y")).unwrap();
        let mut wait = wait_for(&registry, "y", deadline);
        assert!(poll_once(wait.as_mut()).is_pending());
        assert_eq!(stream.output.receiver_count(), 1);
        drop(wait);
        assert_eq!(stream.output.receiver_count(), 0);
        assert_eq!(registry.inner.created.receiver_count(), 0);
        assert_eq!(Arc::strong_count(&stream), 2, "ours and the registry's");
    }
}
