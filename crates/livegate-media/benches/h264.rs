//! H.264 helper cost per access unit on `h264-baseline-opus.ts` (demuxed once): the keyframe
//! check the demuxer runs on every video access unit, a full NAL walk (what an RTP
//! packetizer does), and parameter-set injection into a keyframe stripped of its SPS/PPS.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::h264::{is_idr_access_unit, nal_type, nal_units, NalType, ParameterSetCache};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::Codec;

fn video_units() -> Vec<Bytes> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/h264-baseline-opus.ts"
    );
    let stream = std::fs::read(path).expect("fixture");
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(&stream, &mut events);
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|event| match event {
            DemuxEvent::AccessUnit(au) if au.codec == Codec::H264 => Some(au.data),
            _ => None,
        })
        .collect()
}

fn h264(c: &mut Criterion) {
    let units = video_units();
    let bytes: usize = units.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("h264");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("is_idr_access_unit/all", |b| {
        b.iter(|| units.iter().filter(|au| is_idr_access_unit(au)).count())
    });
    group.bench_function("nal_units/all", |b| {
        b.iter(|| units.iter().map(|au| nal_units(au).count()).sum::<usize>())
    });
    group.finish();

    let mut cache = ParameterSetCache::new();
    cache.observe(&units[0]);
    let keyframe = &units[0];
    let mut stripped = BytesMut::new();
    for nal in nal_units(keyframe) {
        if !matches!(nal_type(nal), Some(NalType::SPS | NalType::PPS)) {
            stripped.put_slice(&[0, 0, 0, 1]);
            stripped.put_slice(nal);
        }
    }
    let stripped = stripped.freeze();
    let mut group = c.benchmark_group("h264");
    group.throughput(Throughput::Bytes(stripped.len() as u64));
    group.bench_function("with_parameter_sets/keyframe", |b| {
        b.iter(|| cache.with_parameter_sets(stripped.clone()).len())
    });
    group.finish();
}

criterion_group!(benches, h264);
criterion_main!(benches);
