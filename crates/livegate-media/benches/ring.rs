//! Ring buffer write + read throughput with 1, 10 and 100 readers, in bytes written per
//! second (each reader reads every byte).
//!
//! `cargo bench -p livegate-media --bench ring`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate_media::ring::{ReadOutcome, RingBuffer};

const CHUNK: usize = 7 * 188;
const CHUNKS: usize = 1_000;

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    let chunk = Bytes::from(vec![0x47u8; CHUNK]);
    for readers in [1usize, 10, 100] {
        group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
        group.bench_with_input(BenchmarkId::new("write_read", readers), &readers, |b, &n| {
            b.iter(|| {
                // Readers drain after every write, as live viewers do, so none lags.
                let ring = RingBuffer::new(CHUNK * 64);
                let mut readers: Vec<_> = (0..n).map(|_| ring.reader()).collect();
                let mut read = 0usize;
                for _ in 0..CHUNKS {
                    ring.write(chunk.clone()).unwrap();
                    for reader in &mut readers {
                        while let Some(ReadOutcome::Chunk(c)) = reader.try_read() {
                            read += c.len();
                        }
                    }
                }
                read
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
