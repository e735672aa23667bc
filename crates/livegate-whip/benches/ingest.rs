//! Ingest throughput: RTP packets per second from `push_rtp` to MPEG-TS in the ring.
//!
//! Run with `cargo bench -p livegate-whip --bench ingest`. The packets are those of
//! `h264-baseline-opus.ts` (2 s of 320x240 H.264 and stereo Opus) as a WebRTC publisher sends
//! them: H.264 packetized by livegate-whep's RFC 6184 packetizer at 1200 bytes, one Opus
//! packet per RTP packet. Each iteration makes a fresh `Ingest` and ring and pushes every
//! packet with its arrival time, so reordering, depacketizing, timing, the start queue,
//! muxing and the ring writes are all in the figure; single-threaded, so it is CPU per packet.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::ring::RingBuffer;
use livegate_media::Codec;
use livegate_whip::{Ingest, IngestConfig};

#[path = "../tests/common/mod.rs"]
mod common;

const FIXTURE: &str = "h264-baseline-opus.ts";

fn bench_push_rtp(c: &mut Criterion) {
    let (_, sent) = common::publish(FIXTURE, common::Clocks::default());
    let bytes: usize = sent.iter().map(|s| s.packet.payload.len()).sum();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(sent.len() as u64));
    group.bench_function(
        format!("push_rtp/{FIXTURE} ({} packets, {bytes} bytes)", sent.len()),
        |b| {
            b.iter(|| {
                let ring = RingBuffer::new(16 << 20);
                let mut ingest = Ingest::new(
                    IngestConfig::default(),
                    &[Codec::H264, Codec::Opus],
                    Arc::clone(&ring),
                )
                .unwrap();
                let t0 = Instant::now();
                for s in &sent {
                    ingest.push_rtp(s.codec, &s.packet, t0 + s.arrival).unwrap();
                }
                black_box(ring.stats().bytes_written)
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench_push_rtp);
criterion_main!(benches);
