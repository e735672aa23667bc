//! The closable, many-reader ring that holds a stream's input or output MPEG-TS.
//!
//! It is not a byte pipe with flow control: the writer is a live source that must never wait
//! for a slow viewer or worker, so readers that fall behind lose data and are told exactly how
//! much. Chunks are `Bytes`, so every reader shares the writer's allocation.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

/// Default capacity of a stream buffer: about 4 s of a 4 Mbit/s stream, enough to hold the
/// current GOP for an instant start and to ride out a worker's hiccup.
pub const DEFAULT_CAPACITY_BYTES: usize = 2 * 1024 * 1024;

/// Most chunks kept whatever their size, so tiny writes cannot grow the index without bound.
const MAX_CHUNKS: usize = 64 * 1024;

/// A write after [`RingBuffer::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("write to a closed ring buffer")]
pub struct RingClosed;

/// What a reader gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The next chunk, exactly as written.
    Chunk(Bytes),
    /// The reader fell more than the capacity behind; `skipped_bytes` were overwritten before
    /// it could read them and it now continues at the oldest chunk still held.
    Lagged { skipped_bytes: u64 },
    /// The buffer is closed and the reader has drained everything that was written.
    Closed,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    pub bytes_written: u64,
    pub chunks_written: u64,
    /// Bytes currently held.
    pub fill_bytes: usize,
    pub readers: usize,
}

struct State {
    /// Held chunks with their absolute chunk index: `chunks[i]` is chunk `first_index + i`.
    chunks: VecDeque<Bytes>,
    first_index: u64,
    /// Absolute byte offset of the first held chunk.
    first_offset: u64,
    fill_bytes: usize,
    bytes_written: u64,
    closed: bool,
    readers: usize,
}

impl State {
    fn next_index(&self) -> u64 {
        self.first_index + self.chunks.len() as u64
    }

    /// Absolute byte offset just past the newest chunk.
    fn end_offset(&self) -> u64 {
        self.first_offset + self.fill_bytes as u64
    }
}

/// A bounded ring of MPEG-TS chunks with one writer and any number of readers.
///
/// Concurrency contract:
/// - One writer by convention (the publisher session or the pipeline worker). [`write`] never
///   blocks on readers: when the ring is full it evicts the oldest chunks.
/// - Each [`RingReader`] has its own position. A reader that is overtaken gets
///   [`ReadOutcome::Lagged`] with the exact number of bytes it missed and continues at the oldest
///   held chunk; it decides itself whether to skip further (e.g. to the next keyframe).
/// - [`close`] is final: readers drain what is left and then see [`ReadOutcome::Closed`];
///   later writes fail with [`RingClosed`].
/// - The internal lock is held for a few instructions and never across an `.await`.
///
/// [`write`]: RingBuffer::write
/// [`close`]: RingBuffer::close
pub struct RingBuffer {
    capacity_bytes: usize,
    state: Mutex<State>,
    /// Wakes async readers after each write and on close.
    notify: Notify,
    /// Wakes readers blocked on a plain thread.
    condvar: Condvar,
}

impl RingBuffer {
    /// A ring holding at most `capacity_bytes` (always at least the newest chunk).
    pub fn new(capacity_bytes: usize) -> Arc<RingBuffer> {
        Arc::new(RingBuffer {
            capacity_bytes,
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                first_index: 0,
                first_offset: 0,
                fill_bytes: 0,
                bytes_written: 0,
                closed: false,
                readers: 0,
            }),
            notify: Notify::new(),
            condvar: Condvar::new(),
        })
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Appends one chunk, evicting the oldest ones beyond the capacity. Empty chunks are
    /// ignored.
    pub fn write(&self, chunk: Bytes) -> Result<(), RingClosed> {
        if chunk.is_empty() {
            return if self.is_closed() {
                Err(RingClosed)
            } else {
                Ok(())
            };
        }
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(RingClosed);
            }
            state.fill_bytes += chunk.len();
            state.bytes_written += chunk.len() as u64;
            state.chunks.push_back(chunk);
            while state.chunks.len() > 1
                && (state.fill_bytes > self.capacity_bytes || state.chunks.len() > MAX_CHUNKS)
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

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// A reader that starts with the next chunk written.
    pub fn reader(self: &Arc<Self>) -> RingReader {
        let mut state = self.state.lock();
        state.readers += 1;
        let (next_index, next_offset) = (state.next_index(), state.end_offset());
        drop(state);
        RingReader {
            ring: self.clone(),
            position: Position {
                next_index,
                next_offset,
            },
        }
    }

    /// A reader that starts with the oldest chunk still held.
    pub fn reader_from_oldest(self: &Arc<Self>) -> RingReader {
        let mut state = self.state.lock();
        state.readers += 1;
        let (next_index, next_offset) = (state.first_index, state.first_offset);
        drop(state);
        RingReader {
            ring: self.clone(),
            position: Position {
                next_index,
                next_offset,
            },
        }
    }

    /// The chunks currently held, oldest first (for instant start: a new viewer scans them
    /// for the last keyframe).
    pub fn snapshot(&self) -> Vec<Bytes> {
        self.state.lock().chunks.iter().cloned().collect()
    }

    pub fn stats(&self) -> RingStats {
        let state = self.state.lock();
        RingStats {
            bytes_written: state.bytes_written,
            chunks_written: state.next_index(),
            fill_bytes: state.fill_bytes,
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
            .field("stats", &self.stats())
            .finish()
    }
}

/// One reader's position in a [`RingBuffer`]. Not shared: each consumer makes its own.
pub struct RingReader {
    ring: Arc<RingBuffer>,
    position: Position,
}

struct Position {
    /// Absolute index of the next chunk to return.
    next_index: u64,
    /// Absolute byte offset of that chunk, so a lag is reported to the byte.
    next_offset: u64,
}

impl Position {
    fn advance(&mut self, state: &State) -> Option<ReadOutcome> {
        if self.next_index < state.first_index {
            let skipped_bytes = state.first_offset - self.next_offset;
            self.next_index = state.first_index;
            self.next_offset = state.first_offset;
            return Some(ReadOutcome::Lagged { skipped_bytes });
        }
        let pos = (self.next_index - state.first_index) as usize;
        if let Some(chunk) = state.chunks.get(pos) {
            self.next_index += 1;
            self.next_offset += chunk.len() as u64;
            return Some(ReadOutcome::Chunk(chunk.clone()));
        }
        state.closed.then_some(ReadOutcome::Closed)
    }
}

impl RingReader {
    /// The next outcome if one is ready, without waiting.
    pub fn try_read(&mut self) -> Option<ReadOutcome> {
        let state = self.ring.state.lock();
        self.position.advance(&state)
    }

    /// Waits for the next outcome. Cancel-safe: dropping the future loses nothing.
    pub async fn read(&mut self) -> ReadOutcome {
        loop {
            let ring = &self.ring;
            let notified = ring.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a write between the check and the await is not
            // missed (Notify::notify_waiters only wakes registered waiters).
            notified.as_mut().enable();
            if let Some(outcome) = self.position.advance(&ring.state.lock()) {
                return outcome;
            }
            notified.await;
        }
    }

    /// Blocks the calling thread until the next outcome. For plain threads only (such as one
    /// feeding a worker process); never call it on an async runtime thread.
    pub fn read_blocking(&mut self) -> ReadOutcome {
        let mut state = self.ring.state.lock();
        loop {
            if let Some(outcome) = self.position.advance(&state) {
                return outcome;
            }
            self.ring.condvar.wait(&mut state);
        }
    }

    /// Moves to the newest position, skipping everything held.
    pub fn skip_to_newest(&mut self) {
        let state = self.ring.state.lock();
        self.position.next_index = state.next_index();
        self.position.next_offset = state.end_offset();
    }

    pub fn ring(&self) -> &Arc<RingBuffer> {
        &self.ring
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.ring.state.lock().readers -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn chunk(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    #[test]
    fn a_stuck_reader_never_blocks_the_writer_and_learns_its_exact_lag() {
        let ring = RingBuffer::new(1_000);
        let mut stuck = ring.reader();
        for i in 0..1_000u32 {
            ring.write(chunk(i as u8, 100)).unwrap();
        }
        // 100 000 bytes written, 1 000 held: the reader missed exactly 99 000.
        assert_eq!(
            stuck.try_read(),
            Some(ReadOutcome::Lagged {
                skipped_bytes: 99_000
            })
        );
        // It continues with the oldest chunk still held, in order.
        for i in 990..1_000u32 {
            assert_eq!(
                stuck.try_read(),
                Some(ReadOutcome::Chunk(chunk(i as u8, 100)))
            );
        }
        assert_eq!(stuck.try_read(), None);
        assert_eq!(ring.stats().fill_bytes, 1_000);
    }

    #[test]
    fn readers_drain_then_see_closed_and_writes_after_close_fail() {
        let ring = RingBuffer::new(1_000);
        let mut early = ring.reader();
        ring.write(chunk(1, 10)).unwrap();
        let mut late = ring.reader();
        let mut oldest = ring.reader_from_oldest();
        ring.write(chunk(2, 10)).unwrap();
        ring.close();
        assert_eq!(ring.write(chunk(3, 10)), Err(RingClosed));
        assert_eq!(early.try_read(), Some(ReadOutcome::Chunk(chunk(1, 10))));
        assert_eq!(early.try_read(), Some(ReadOutcome::Chunk(chunk(2, 10))));
        assert_eq!(early.try_read(), Some(ReadOutcome::Closed));
        assert_eq!(late.try_read(), Some(ReadOutcome::Chunk(chunk(2, 10))));
        assert_eq!(late.try_read(), Some(ReadOutcome::Closed));
        assert_eq!(oldest.try_read(), Some(ReadOutcome::Chunk(chunk(1, 10))));
        assert_eq!(ring.stats().readers, 3);
        drop((early, late, oldest));
        assert_eq!(ring.stats().readers, 0);
    }

    #[tokio::test]
    async fn close_wakes_a_waiting_reader() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        let waiting = tokio::spawn(async move { reader.read().await });
        // Let the reader reach its await; the outcome is the same if it has not yet.
        tokio::task::yield_now().await;
        ring.close();
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("reader woken")
            .unwrap();
        assert_eq!(outcome, ReadOutcome::Closed);
    }

    #[test]
    fn a_blocked_thread_reader_is_woken_by_a_write() {
        let ring = RingBuffer::new(1_000);
        let mut reader = ring.reader();
        let thread = std::thread::spawn(move || reader.read_blocking());
        ring.write(chunk(7, 3)).unwrap();
        assert_eq!(thread.join().unwrap(), ReadOutcome::Chunk(chunk(7, 3)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Concurrent readers see every chunk in order, or a lag that accounts exactly for the
        /// bytes they did not see.
        #[test]
        fn concurrent_readers_see_everything_or_an_exact_lag(
            sizes in proptest::collection::vec(1usize..600, 1..400),
            capacity in 200usize..5_000,
            readers in 1usize..5,
        ) {
            let ring = RingBuffer::new(capacity);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let handles: Vec<_> = (0..readers)
                .map(|_| {
                    let mut reader = ring.reader();
                    runtime.spawn(async move {
                        let (mut seen, mut skipped, mut last) = (0u64, 0u64, None::<u32>);
                        loop {
                            match reader.read().await {
                                ReadOutcome::Chunk(c) => {
                                    // Each chunk starts with its sequence number.
                                    let seq = u32::from_be_bytes(c[..4].try_into().unwrap());
                                    if let Some(last) = last {
                                        assert!(seq > last);
                                    }
                                    last = Some(seq);
                                    seen += c.len() as u64;
                                }
                                ReadOutcome::Lagged { skipped_bytes } => skipped += skipped_bytes,
                                ReadOutcome::Closed => return (seen, skipped),
                            }
                        }
                    })
                })
                .collect();
            let mut total = 0u64;
            for (seq, size) in sizes.iter().enumerate() {
                let mut data = vec![0u8; size + 4];
                data[..4].copy_from_slice(&(seq as u32).to_be_bytes());
                total += data.len() as u64;
                ring.write(Bytes::from(data)).unwrap();
            }
            ring.close();
            for handle in handles {
                let (seen, skipped) = runtime.block_on(handle).unwrap();
                prop_assert_eq!(seen + skipped, total);
            }
        }
    }
}
