//! Demux throughput on the fixtures, in bytes of MPEG-TS per second.
//!
//! `cargo bench -p livegate-media --bench demux`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::ts::demux::Demuxer;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("demux");
    for name in ["h264-baseline-opus.ts", "pts-wrap.ts"] {
        let data = fixture(name);
        group.throughput(Throughput::Bytes(data.len() as u64));
        // Chunks of 7 packets, as a ring buffer delivers them.
        group.bench_function(name, |b| {
            let mut events = Vec::new();
            b.iter(|| {
                let mut demuxer = Demuxer::new();
                for chunk in data.chunks(7 * 188) {
                    demuxer.push(chunk, &mut events);
                }
                demuxer.finish(&mut events);
                let n = events.len();
                events.clear();
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, demux);
criterion_main!(benches);
