//! Ring buffer write + read throughput with 1, 10 and 100 readers, in bytes written per
//! second; every reader reads every byte, so bytes delivered are that times the readers.
//!
//! - `ring/try_read/N`: one thread writes a chunk and then drains each reader with
//!   `try_read`: the cost of the lock and the `Bytes` clones alone.
//! - `ring/async_tasks/N`: the readers are tasks on a single-threaded tokio runtime, woken by
//!   the ring's `Notify` after each write, as WHEP viewers are.
//!
//! `cargo bench -p livegate-media --bench ring -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate_media::ring::{ReadOutcome, RingBuffer};

/// Seven TS packets: what fits in one UDP datagram, the usual write unit.
const CHUNK_BYTES: usize = 7 * 188;
const CHUNKS: usize = 1_000;
/// Enough slack that no reader lags: the benches measure delivery, not loss.
const CAPACITY_BYTES: usize = CHUNK_BYTES * 64;

fn try_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/try_read");
    group.throughput(Throughput::Bytes((CHUNK_BYTES * CHUNKS) as u64));
    let chunk = Bytes::from(vec![0x47u8; CHUNK_BYTES]);
    for readers in [1usize, 10, 100] {
        group.bench_with_input(BenchmarkId::from_parameter(readers), &readers, |b, &n| {
            b.iter(|| {
                let ring = RingBuffer::new(CAPACITY_BYTES);
                let mut readers: Vec<_> = (0..n).map(|_| ring.reader()).collect();
                let mut read_bytes = 0usize;
                for _ in 0..CHUNKS {
                    ring.write(chunk.clone()).unwrap();
                    for reader in &mut readers {
                        while let Some(ReadOutcome::Chunk(c)) = reader.try_read() {
                            read_bytes += c.len();
                        }
                    }
                }
                assert_eq!(read_bytes, n * CHUNKS * CHUNK_BYTES);
                black_box(read_bytes)
            })
        });
    }
    group.finish();
}

fn async_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/async_tasks");
    group.throughput(Throughput::Bytes((CHUNK_BYTES * CHUNKS) as u64));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let chunk = Bytes::from(vec![0x47u8; CHUNK_BYTES]);
    for readers in [1usize, 10, 100] {
        group.bench_with_input(BenchmarkId::from_parameter(readers), &readers, |b, &n| {
            b.iter(|| {
                runtime.block_on(async {
                    let ring = RingBuffer::new(CAPACITY_BYTES);
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let mut reader = ring.reader();
                            tokio::spawn(async move {
                                let mut read_bytes = 0usize;
                                loop {
                                    match reader.read().await {
                                        ReadOutcome::Chunk(c) => read_bytes += c.len(),
                                        ReadOutcome::Lagged { .. } => panic!("reader lagged"),
                                        ReadOutcome::Closed => return read_bytes,
                                    }
                                }
                            })
                        })
                        .collect();
                    for _ in 0..CHUNKS {
                        ring.write(chunk.clone()).unwrap();
                        // Let the woken readers run, as a writer fed by a socket would.
                        tokio::task::yield_now().await;
                    }
                    ring.close();
                    let mut read_bytes = 0;
                    for task in tasks {
                        read_bytes += task.await.unwrap();
                    }
                    assert_eq!(read_bytes, n * CHUNKS * CHUNK_BYTES);
                    black_box(read_bytes)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, try_read, async_tasks);
criterion_main!(benches);
