//! Demux throughput: how many MB/s of MPEG-TS one core turns into access units.
//!
//! Run with `cargo bench -p livegate-media --bench demux`. The fixtures are small (70-200 KB),
//! so each iteration demuxes a whole file, fed in 1316-byte chunks (7 TS packets, the usual
//! UDP/SRT payload) as a live input would arrive.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};

/// Seven TS packets: what one UDP datagram of a live MPEG-TS feed carries.
const CHUNK_BYTES: usize = 7 * 188;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn demux(data: &[u8], events: &mut Vec<DemuxEvent>) -> usize {
    let mut demuxer = Demuxer::new();
    events.clear();
    for chunk in data.chunks(CHUNK_BYTES) {
        demuxer.push(chunk, events);
    }
    demuxer.finish(events);
    events.len()
}

fn bench_demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("ts_demux");
    for name in ["h264-baseline-opus.ts", "pts-wrap.ts"] {
        let data = fixture(name);
        let mut events = Vec::new();
        assert!(demux(&data, &mut events) > 0, "{name} demuxes to nothing");
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| demux(black_box(&data), &mut events));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_demux);
criterion_main!(benches);
