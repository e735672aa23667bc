//! Mux throughput: the access units of `h264-baseline-opus.ts`, demuxed once, muxed again
//! and again into a reused buffer. Throughput is counted in access-unit payload bytes.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::ts::mux::Muxer;
use livegate_media::{AccessUnit, Track};

fn fixture_units() -> (Vec<Track>, Vec<AccessUnit>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/h264-baseline-opus.ts"
    );
    let stream = std::fs::read(path).expect("fixture");
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(&stream, &mut events);
    demuxer.finish(&mut events);
    let mut tracks = Vec::new();
    let mut units = Vec::new();
    for event in events {
        match event {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::AccessUnit(au) => units.push(au),
        }
    }
    (tracks, units)
}

fn mux_throughput(c: &mut Criterion) {
    let (tracks, units) = fixture_units();
    let payload_bytes: usize = units.iter().map(|au| au.data.len()).sum();
    let mut group = c.benchmark_group("mux");
    group.throughput(Throughput::Bytes(payload_bytes as u64));
    let mut out = BytesMut::with_capacity(2 * payload_bytes);
    group.bench_function("h264-baseline-opus", |b| {
        b.iter(|| {
            let mut muxer = Muxer::new(&tracks).expect("muxable tracks");
            out.clear();
            for au in &units {
                muxer.write(au, &mut out).expect("muxable unit");
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, mux_throughput);
criterion_main!(benches);
