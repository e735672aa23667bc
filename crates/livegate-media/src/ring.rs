//! The closable, many-reader ring that holds a stream's input or output MPEG-TS.
//!
//! A [`RingBuffer`] keeps the most recent chunks of a live stream; every consumer reads it
//! through its own [`RingReader`]. It is not a byte pipe with flow control: the writer is a
//! live source (a publisher or a pipeline worker) that must never wait for a slow viewer, so a
//! reader that falls behind loses data and is told exactly how much. Chunks are `Bytes`, so
//! every reader shares the writer's allocation. It does not parse what it holds: finding
//! keyframes or packet boundaries is the reader's business.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

/// Default capacity of a stream buffer: about 4 s of a 4 Mbit/s stream, enough to hold the
/// current GOP for an instant start and to ride out a worker's hiccup.
pub const DEFAULT_CAPACITY_BYTES: usize = 2 * 1024 * 1024;

/// Default bound on the number of chunks held whatever their size, so a writer of tiny chunks
/// cannot grow the index without bound. Chunks are normally 7 TS packets (1316 bytes), so a
/// [`DEFAULT_CAPACITY_BYTES`] ring holds about 1600 of them.
pub const DEFAULT_MAX_CHUNKS: usize = 16 * 1024;

/// A write after [`RingBuffer::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("write to a closed ring buffer")]
pub struct RingClosed;

/// What a [`RingReader`] gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The next chunk, exactly as written (a clone of the writer's `Bytes`, not a copy).
    Chunk(Bytes),
    /// The reader fell so far behind that the chunk it was to read next was evicted. It has
    /// been moved to the newest chunk held, which its next read returns; `skipped_bytes` is
    /// exactly the number of bytes written between its old position and that chunk.
    Lagged {
        /// Bytes this reader will never see.
        skipped_bytes: u64,
    },
    /// The buffer is closed and the reader has drained everything it held.
    Closed,
}

/// Counters for metrics, read with [`RingBuffer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Bytes written since the ring was made.
    pub bytes_written: u64,
    /// Chunks written since the ring was made.
    pub chunks_written: u64,
    /// Bytes currently held.
    pub fill_bytes: usize,
    /// Chunks currently held.
    pub fill_chunks: usize,
    /// Live [`RingReader`]s.
    pub readers: usize,
}

struct State {
    /// Held chunks, oldest first: `chunks[i]` is chunk number `first_index + i`.
    chunks: VecDeque<Bytes>,
    /// Absolute number of the oldest held chunk (chunks ever evicted).
    first_index: u64,
    /// Absolute byte offset of the oldest held chunk (bytes ever evicted).
    first_offset: u64,
    fill_bytes: usize,
    closed: bool,
    readers: usize,
}

impl State {
    /// Absolute number of the next chunk to be written.
    fn end_index(&self) -> u64 {
        self.first_index + self.chunks.len() as u64
    }

    /// Absolute byte offset of the next chunk to be written (= bytes ever written).
    fn end_offset(&self) -> u64 {
        self.first_offset + self.fill_bytes as u64
    }
}

/// A bounded ring of MPEG-TS chunks with one writer and any number of readers.
///
/// Each [`write`] appends one `Bytes` chunk, normally a whole number of 188-byte TS packets, so
/// any chunk boundary is a packet boundary and a reader that resynchronises lands on one.
///
/// # Concurrency contract
///
/// - **One writer.** Only the stream's producer (the publisher session for an input ring, the
///   pipeline worker for an output ring) calls [`write`]. Several writers are memory-safe but
///   interleave their chunks, which breaks TS continuity.
/// - **The writer never waits for readers.** [`write`] takes the internal lock for a few
///   instructions, evicts the oldest chunks beyond `capacity_bytes` or `max_chunks` (the
///   newest chunk is always kept, however large), and wakes waiting readers.
/// - **Readers may lag, and are told.** Each [`RingReader`] has its own absolute position. A
///   reader whose next chunk was evicted gets [`ReadOutcome::Lagged`] with the exact byte count
///   it missed and continues at the newest chunk held.
/// - **Closing is final.** [`close`] wakes every waiting reader; readers drain what is still
///   held and then see [`ReadOutcome::Closed`]; later writes fail with [`RingClosed`].
/// - The lock is a `parking_lot` mutex and is never held across an `.await`. Async readers
///   wait on a `tokio::sync::Notify`, thread readers on a `parking_lot::Condvar`; both are
///   woken after every write and on close.
///
/// ```
/// use bytes::Bytes;
/// use livegate_media::ring::{ReadOutcome, RingBuffer};
///
/// let ring = RingBuffer::new(4 * 188);
/// let mut reader = ring.reader();
/// ring.write(Bytes::from_static(&[0x47; 188])).unwrap();
/// ring.close();
/// assert!(matches!(reader.try_read(), Some(ReadOutcome::Chunk(c)) if c.len() == 188));
/// assert_eq!(reader.try_read(), Some(ReadOutcome::Closed));
/// ```
///
/// [`write`]: RingBuffer::write
/// [`close`]: RingBuffer::close
pub struct RingBuffer {
    capacity_bytes: usize,
    max_chunks: usize,
    state: Mutex<State>,
    /// Wakes async readers after each write and on close.
    notify: Notify,
    /// Wakes readers blocked on a plain thread.
    condvar: Condvar,
}

impl RingBuffer {
    /// A ring holding at most `capacity_bytes` and [`DEFAULT_MAX_CHUNKS`] chunks.
    pub fn new(capacity_bytes: usize) -> Arc<RingBuffer> {
        RingBuffer::with_limits(capacity_bytes, DEFAULT_MAX_CHUNKS)
    }

    /// A ring holding at most `capacity_bytes` and `max_chunks` chunks (always at least the
    /// newest chunk).
    pub fn with_limits(capacity_bytes: usize, max_chunks: usize) -> Arc<RingBuffer> {
        Arc::new(RingBuffer {
            capacity_bytes,
            max_chunks: max_chunks.max(1),
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                first_index: 0,
                first_offset: 0,
                fill_bytes: 0,
                closed: false,
                readers: 0,
            }),
            notify: Notify::new(),
            condvar: Condvar::new(),
        })
    }

    /// The byte bound beyond which the oldest chunks are evicted.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Appends one chunk, evicting the oldest ones beyond the limits, and wakes the readers.
    /// Never waits for a reader. An empty chunk is ignored.
    pub fn write(&self, chunk: Bytes) -> Result<(), RingClosed> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(RingClosed);
            }
            if chunk.is_empty() {
                return Ok(());
            }
            state.fill_bytes += chunk.len();
            state.chunks.push_back(chunk);
            while state.chunks.len() > 1
                && (state.fill_bytes > self.capacity_bytes || state.chunks.len() > self.max_chunks)
            {
                let evicted = state.chunks.pop_front().expect("len > 1");
                state.fill_bytes -= evicted.len();
                state.first_offset += evicted.len() as u64;
                state.first_index += 1;
            }
        }
        self.wake();
        Ok(())
    }

    /// Closes the ring for good and wakes every reader. Idempotent.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake();
    }

    /// Whether [`RingBuffer::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// A reader that starts at the newest position: its first chunk is the next one written.
    pub fn reader(self: &Arc<Self>) -> RingReader {
        self.reader_at(|state| (state.end_index(), state.end_offset()))
    }

    /// A reader that starts with the oldest chunk still held (for an instant start: a new
    /// viewer can skip forward to the last keyframe held instead of waiting for the next one).
    pub fn reader_from_oldest(self: &Arc<Self>) -> RingReader {
        self.reader_at(|state| (state.first_index, state.first_offset))
    }

    fn reader_at(self: &Arc<Self>, start: impl FnOnce(&State) -> (u64, u64)) -> RingReader {
        let mut state = self.state.lock();
        state.readers += 1;
        let (next_index, next_offset) = start(&state);
        drop(state);
        RingReader {
            ring: self.clone(),
            position: Position {
                next_index,
                next_offset,
            },
        }
    }

    /// The chunks currently held, oldest first.
    pub fn snapshot(&self) -> Vec<Bytes> {
        self.state.lock().chunks.iter().cloned().collect()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> RingStats {
        let state = self.state.lock();
        RingStats {
            bytes_written: state.end_offset(),
            chunks_written: state.end_index(),
            fill_bytes: state.fill_bytes,
            fill_chunks: state.chunks.len(),
            readers: state.readers,
        }
    }

    fn wake(&self) {
        self.notify.notify_waiters();
        self.condvar.notify_all();
    }
}

impl std::fmt::Debug for RingBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingBuffer")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("max_chunks", &self.max_chunks)
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

/// One consumer's position in a [`RingBuffer`], made with [`RingBuffer::reader`] or
/// [`RingBuffer::reader_from_oldest`]. Each consumer makes its own; readers never affect each
/// other or the writer.
pub struct RingReader {
    ring: Arc<RingBuffer>,
    position: Position,
}

struct Position {
    /// Absolute number of the next chunk to return.
    next_index: u64,
    /// Absolute byte offset of that chunk, so a lag is reported to the byte.
    next_offset: u64,
}

impl Position {
    fn advance(&mut self, state: &State) -> Option<ReadOutcome> {
        if self.next_index < state.first_index {
            // Something was evicted, so at least the newest chunk is held (eviction keeps it).
            let newest = state
                .chunks
                .back()
                .expect("eviction keeps the newest chunk");
            let newest_offset = state.end_offset() - newest.len() as u64;
            let skipped_bytes = newest_offset - self.next_offset;
            self.next_index = state.end_index() - 1;
            self.next_offset = newest_offset;
            return Some(ReadOutcome::Lagged { skipped_bytes });
        }
        let held = (self.next_index - state.first_index) as usize;
        if let Some(chunk) = state.chunks.get(held) {
            self.next_index += 1;
            self.next_offset += chunk.len() as u64;
            return Some(ReadOutcome::Chunk(chunk.clone()));
        }
        state.closed.then_some(ReadOutcome::Closed)
    }
}

impl RingReader {
    /// The next outcome if one is ready, without waiting; `None` means nothing new yet.
    pub fn try_read(&mut self) -> Option<ReadOutcome> {
        let state = self.ring.state.lock();
        self.position.advance(&state)
    }

    /// Waits for the next outcome.
    ///
    /// Cancel-safe: dropping the future before it completes consumes nothing, and the next
    /// read starts where this one would have.
    pub async fn read(&mut self) -> ReadOutcome {
        loop {
            let notified = self.ring.notify.notified();
            tokio::pin!(notified);
            // Register as a waiter before looking, so a write between the look and the await
            // still wakes us (`notify_waiters` wakes only registered waiters and stores no
            // permit).
            notified.as_mut().enable();
            let ready = {
                let state = self.ring.state.lock();
                self.position.advance(&state)
            };
            if let Some(outcome) = ready {
                return outcome;
            }
            notified.await;
        }
    }

    /// Blocks the calling thread until the next outcome. For plain threads only (such as one
    /// feeding a worker process's stdin); never call it on an async runtime thread.
    pub fn read_blocking(&mut self) -> ReadOutcome {
        let mut state = self.ring.state.lock();
        loop {
            if let Some(outcome) = self.position.advance(&state) {
                return outcome;
            }
            // Waiting releases the lock atomically, so a write cannot slip in unseen.
            self.ring.condvar.wait(&mut state);
        }
    }

    /// Moves to the newest position, skipping everything held; returns the bytes skipped.
    pub fn skip_to_newest(&mut self) -> u64 {
        let state = self.ring.state.lock();
        let skipped_bytes = state.end_offset() - self.position.next_offset;
        self.position.next_index = state.end_index();
        self.position.next_offset = state.end_offset();
        skipped_bytes
    }

    /// Bytes written that this reader has not read yet (including any it has lost but not yet
    /// been told about): its lag, for metrics.
    pub fn pending_bytes(&self) -> u64 {
        self.ring.state.lock().end_offset() - self.position.next_offset
    }

    /// The ring this reader reads.
    pub fn ring(&self) -> &Arc<RingBuffer> {
        &self.ring
    }
}

impl std::fmt::Debug for RingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingReader")
            .field("next_index", &self.position.next_index)
            .field("next_offset", &self.position.next_offset)
            .finish_non_exhaustive()
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.ring.state.lock().readers -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn chunk(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    /// A waker that records whether it was woken, to observe wakeups without a runtime.
    #[derive(Default)]
    struct WakeFlag(AtomicBool);

    impl Wake for WakeFlag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl WakeFlag {
        fn poll<F: Future>(self: &Arc<Self>, future: Pin<&mut F>) -> Poll<F::Output> {
            let waker = Waker::from(self.clone());
            future.poll(&mut Context::from_waker(&waker))
        }

        fn woken(&self) -> bool {
            self.0.swap(false, Ordering::SeqCst)
        }
    }

    #[test]
    fn a_stuck_reader_never_blocks_the_writer_and_learns_its_exact_lag() {
        let ring = RingBuffer::new(1_000);
        // One reader never reads; the other is parked in `read()` and never polled again.
        let mut stuck = ring.reader();
        let mut parked = ring.reader();
        let flag = Arc::new(WakeFlag::default());
        let mut parked_read = Box::pin(parked.read());
        assert!(flag.poll(parked_read.as_mut()).is_pending());

        // 100 × the capacity, in 1 000 chunks of 100 bytes tagged with their number.
        for i in 0..1_000u32 {
            ring.write(chunk(i as u8, 100)).unwrap();
        }
        assert!(flag.woken());
        assert_eq!(ring.stats().fill_bytes, 1_000);

        // Every chunk before the newest (number 999) is lost to both readers: 99 900 bytes.
        let lagged = ReadOutcome::Lagged {
            skipped_bytes: 99_900,
        };
        assert_eq!(flag.poll(parked_read.as_mut()), Poll::Ready(lagged.clone()));
        drop(parked_read);
        assert_eq!(stuck.try_read(), Some(lagged));
        for reader in [&mut stuck, &mut parked] {
            assert_eq!(
                reader.try_read(),
                Some(ReadOutcome::Chunk(chunk(999u32 as u8, 100)))
            );
            assert_eq!(reader.try_read(), None);
        }
        // And then they follow the writer again.
        ring.write(chunk(1, 7)).unwrap();
        assert_eq!(stuck.try_read(), Some(ReadOutcome::Chunk(chunk(1, 7))));
        assert_eq!(parked.try_read(), Some(ReadOutcome::Chunk(chunk(1, 7))));
    }

    #[test]
    fn the_chunk_bound_evicts_tiny_chunks_and_the_newest_chunk_is_always_kept() {
        let ring = RingBuffer::with_limits(1_000_000, 4);
        let mut reader = ring.reader();
        for i in 0..10 {
            ring.write(chunk(i, 1)).unwrap();
        }
        let stats = ring.stats();
        assert_eq!((stats.fill_chunks, stats.fill_bytes), (4, 4));
        assert_eq!((stats.chunks_written, stats.bytes_written), (10, 10));
        assert_eq!(reader.pending_bytes(), 10);
        assert_eq!(
            reader.try_read(),
            Some(ReadOutcome::Lagged { skipped_bytes: 9 })
        );
        assert_eq!(reader.try_read(), Some(ReadOutcome::Chunk(chunk(9, 1))));

        // A chunk larger than the whole capacity replaces everything but is itself kept.
        let small = RingBuffer::new(10);
        small.write(chunk(1, 5)).unwrap();
        small.write(chunk(2, 50)).unwrap();
        assert_eq!(small.snapshot(), vec![chunk(2, 50)]);
    }

    #[test]
    fn readers_drain_in_order_then_see_closed_and_writes_after_close_fail() {
        let ring = RingBuffer::new(1_000);
        let mut early = ring.reader();
        ring.write(chunk(1, 10)).unwrap();
        let mut late = ring.reader();
        let mut oldest = ring.reader_from_oldest();
        ring.write(chunk(2, 10)).unwrap();
        ring.write(chunk(3, 10)).unwrap();
        ring.close();
        ring.close();
        assert!(ring.is_closed());
        assert_eq!(ring.write(chunk(4, 10)), Err(RingClosed));
        assert_eq!(ring.write(Bytes::new()), Err(RingClosed));

        for (reader, first) in [(&mut early, 1), (&mut late, 2), (&mut oldest, 1)] {
            for tag in first..=3 {
                assert_eq!(reader.try_read(), Some(ReadOutcome::Chunk(chunk(tag, 10))));
            }
            assert_eq!(reader.try_read(), Some(ReadOutcome::Closed));
            // Closed is sticky.
            assert_eq!(reader.try_read(), Some(ReadOutcome::Closed));
        }
        assert_eq!(ring.reader().try_read(), Some(ReadOutcome::Closed));
        assert_eq!(ring.stats().readers, 3);
        drop((early, late, oldest));
        assert_eq!(ring.stats().readers, 0);
    }

    #[test]
    fn an_empty_write_is_no_chunk() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        ring.write(Bytes::new()).unwrap();
        assert_eq!(reader.try_read(), None);
        assert_eq!(ring.stats().chunks_written, 0);
    }

    #[test]
    fn close_wakes_a_reader_waiting_in_read() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        ring.write(chunk(5, 10)).unwrap();
        let flag = Arc::new(WakeFlag::default());
        {
            let mut read = Box::pin(reader.read());
            assert_eq!(
                flag.poll(read.as_mut()),
                Poll::Ready(ReadOutcome::Chunk(chunk(5, 10)))
            );
        }
        let mut read = Box::pin(reader.read());
        assert!(flag.poll(read.as_mut()).is_pending());
        assert!(!flag.woken());
        ring.close();
        assert!(flag.woken(), "close must wake a waiting reader");
        assert_eq!(flag.poll(read.as_mut()), Poll::Ready(ReadOutcome::Closed));
    }

    #[tokio::test]
    async fn close_wakes_a_reader_task() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            started_tx.send(()).unwrap();
            reader.read().await
        });
        // On this single-threaded runtime the task runs on from `send` until `read` parks,
        // so once we are woken the reader is waiting.
        started_rx.await.unwrap();
        ring.close();
        // The timeout is only a safety net against a hang.
        let outcome = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("reader woken by close")
            .unwrap();
        assert_eq!(outcome, ReadOutcome::Closed);
    }

    #[test]
    fn a_thread_blocked_in_read_blocking_is_woken_by_writes_and_close() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                match reader.read_blocking() {
                    ReadOutcome::Chunk(c) => seen.push(c),
                    ReadOutcome::Lagged { .. } => panic!("nothing was evicted"),
                    ReadOutcome::Closed => return seen,
                }
            }
        });
        ring.write(chunk(7, 3)).unwrap();
        ring.write(chunk(8, 3)).unwrap();
        ring.close();
        assert_eq!(thread.join().unwrap(), vec![chunk(7, 3), chunk(8, 3)]);
    }

    #[test]
    fn skip_to_newest_reports_what_it_skipped() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader_from_oldest();
        ring.write(chunk(1, 10)).unwrap();
        ring.write(chunk(2, 20)).unwrap();
        assert_eq!(reader.skip_to_newest(), 30);
        assert_eq!(reader.pending_bytes(), 0);
        ring.write(chunk(3, 5)).unwrap();
        assert_eq!(reader.try_read(), Some(ReadOutcome::Chunk(chunk(3, 5))));
    }

    /// What a reader saw, checked against the writer's chunk sizes.
    #[derive(Debug, Default)]
    struct Audit {
        next_seq: usize,
        unexplained_skip: u64,
    }

    impl Audit {
        /// Chunks carry their sequence number in their first 4 bytes; chunk `n` is
        /// `sizes[n]` bytes long. A gap must be explained, to the byte, by the lags before it.
        fn see(&mut self, outcome: ReadOutcome, sizes: &[usize]) -> Result<bool, String> {
            match outcome {
                ReadOutcome::Chunk(c) => {
                    let seq = u32::from_be_bytes(c[..4].try_into().unwrap()) as usize;
                    if seq < self.next_seq || c.len() != sizes[seq] {
                        return Err(format!("chunk {seq} out of order or torn: {self:?}"));
                    }
                    let missing: u64 = sizes[self.next_seq..seq].iter().map(|&s| s as u64).sum();
                    if missing != self.unexplained_skip {
                        return Err(format!(
                            "missed {missing} bytes before chunk {seq}, told {}",
                            self.unexplained_skip
                        ));
                    }
                    self.next_seq = seq + 1;
                    self.unexplained_skip = 0;
                    Ok(true)
                }
                ReadOutcome::Lagged { skipped_bytes } => {
                    if skipped_bytes == 0 {
                        return Err("a lag of 0 bytes".into());
                    }
                    self.unexplained_skip += skipped_bytes;
                    Ok(true)
                }
                ReadOutcome::Closed => Ok(false),
            }
        }

        /// The newest chunk is never evicted, so every reader ends having read the last one.
        fn finish(self, sizes: &[usize]) -> Result<(), String> {
            if self.next_seq == sizes.len() && self.unexplained_skip == 0 {
                Ok(())
            } else {
                Err(format!("closed early: {self:?} of {}", sizes.len()))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Readers on async tasks and on plain threads, racing a writer on its own thread, see
        /// every chunk in order, or a lag that accounts exactly for the chunks they missed.
        #[test]
        fn concurrent_readers_see_everything_or_an_exact_lag(
            body_sizes in proptest::collection::vec(0usize..600, 1..300),
            capacity in 200usize..5_000,
            max_chunks in 2usize..64,
            task_readers in 1usize..4,
            thread_readers in 0usize..3,
        ) {
            let sizes: Arc<Vec<usize>> = Arc::new(body_sizes.iter().map(|b| b + 4).collect());
            let ring = RingBuffer::with_limits(capacity, max_chunks);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let tasks: Vec<_> = (0..task_readers)
                .map(|_| {
                    let (mut reader, sizes) = (ring.reader(), sizes.clone());
                    runtime.spawn(async move {
                        let mut audit = Audit::default();
                        while audit.see(reader.read().await, &sizes)? {}
                        audit.finish(&sizes)
                    })
                })
                .collect();
            let threads: Vec<_> = (0..thread_readers)
                .map(|_| {
                    let (mut reader, sizes) = (ring.reader(), sizes.clone());
                    std::thread::spawn(move || {
                        let mut audit = Audit::default();
                        while audit.see(reader.read_blocking(), &sizes)? {}
                        audit.finish(&sizes)
                    })
                })
                .collect();
            let writer = {
                let (ring, sizes) = (ring.clone(), sizes.clone());
                std::thread::spawn(move || {
                    for (seq, &size) in sizes.iter().enumerate() {
                        let mut data = vec![0u8; size];
                        data[..4].copy_from_slice(&(seq as u32).to_be_bytes());
                        ring.write(Bytes::from(data)).unwrap();
                    }
                    ring.close();
                })
            };
            writer.join().unwrap();
            for task in tasks {
                prop_assert_eq!(runtime.block_on(task).unwrap(), Ok(()));
            }
            for thread in threads {
                prop_assert_eq!(thread.join().unwrap(), Ok(()));
            }
            prop_assert_eq!(
                ring.stats().bytes_written,
                sizes.iter().map(|&s| s as u64).sum::<u64>()
            );
        }
    }
}
