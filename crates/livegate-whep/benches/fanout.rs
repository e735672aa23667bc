//! Fan-out throughput: frames per second from access units to N viewers.
//!
//! Run with `cargo bench -p livegate-whep --bench fanout`. Two measurements, both on the
//! access units of `h264-baseline-opus.ts` (2 s: 60 H.264 access units, 100 Opus packets):
//!
//! - `packetize_broadcast/N`: what the output's reader does per frame (packetize once,
//!   one `MediaFrame`, one broadcast send) plus what N viewers do (one receive each, which
//!   clones the frame's handles, not its payload). Single-threaded, so it is CPU per frame.
//! - `stream_output/N`: the whole path through the public API on a current-thread runtime:
//!   MPEG-TS written into the output ring, demuxed and packetized by the stream's reader
//!   task, received by N `ViewerFeed`s.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate_media::registry::StreamRegistry;
use livegate_media::ring::RingBuffer;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec, StreamKey};
use livegate_whep::packetize::{opus_payloads, H264Packetizer};
use livegate_whep::{MediaFrame, OutputConfig, StreamOutputs};
use tokio::sync::broadcast;

const FIXTURE: &str = "h264-baseline-opus.ts";
const CHUNK_BYTES: usize = 7 * 188;
const SUBSCRIBERS: [usize; 3] = [1, 10, 100];

fn fixture() -> Bytes {
    let path = format!(
        "{}/../../tests/fixtures/{FIXTURE}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn access_units(ts: &[u8]) -> Vec<AccessUnit> {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    demuxer.push(ts, &mut events);
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        })
        .collect()
}

fn bench_packetize_broadcast(c: &mut Criterion) {
    let units = access_units(&fixture());
    let mut group = c.benchmark_group("packetize_broadcast");
    group.throughput(Throughput::Elements(units.len() as u64));
    for subscribers in SUBSCRIBERS {
        let (sender, _) = broadcast::channel::<MediaFrame>(512);
        let mut receivers: Vec<_> = (0..subscribers).map(|_| sender.subscribe()).collect();
        let mut packetizer = H264Packetizer::default();
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| {
                b.iter(|| {
                    for au in &units {
                        let payloads = match au.codec {
                            Codec::H264 => packetizer.packetize(&au.data),
                            Codec::Opus => opus_payloads(au.data.clone()),
                        };
                        let frame = MediaFrame {
                            codec: au.codec,
                            pts: au.pts,
                            keyframe: au.keyframe,
                            source_generation: 1,
                            payloads,
                            access_unit_bytes: au.data.len(),
                        };
                        sender.send(frame).expect("receivers exist");
                        for receiver in &mut receivers {
                            black_box(receiver.try_recv().expect("one frame queued"));
                        }
                    }
                });
            },
        );
    }
    group.finish();
}

/// Chunks up to the one that completes the second H.264 access unit, so the first is cached.
fn prefix_chunks(ts: &[u8]) -> usize {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    let mut video = 0;
    for (i, chunk) in ts.chunks(CHUNK_BYTES).enumerate() {
        demuxer.push(chunk, &mut events);
        video += events
            .drain(..)
            .filter(|e| matches!(e, DemuxEvent::AccessUnit(au) if au.codec == Codec::H264))
            .count();
        if video >= 2 {
            return i + 1;
        }
    }
    panic!("{FIXTURE} has fewer than two video access units");
}

/// One stream through its output to `subscribers` viewers; returns the frames received.
async fn stream_output(ts: &Bytes, subscribers: usize) -> usize {
    let registry = StreamRegistry::new();
    let stream = registry.create(StreamKey::parse("bench").unwrap()).unwrap();
    let ring = RingBuffer::new(8 * 1024 * 1024);
    stream.set_output(ring.clone());
    let outputs = StreamOutputs::new(OutputConfig::default()).unwrap();
    let mut feeds: Vec<_> = (0..subscribers)
        .map(|_| outputs.get_or_start(&stream))
        .collect();
    // Every viewer joins on the first keyframe, then the rest flows live.
    let mut chunks = ts.chunks(CHUNK_BYTES);
    for chunk in chunks.by_ref().take(prefix_chunks(ts)) {
        ring.write(Bytes::copy_from_slice(chunk)).unwrap();
    }
    let mut received = 0;
    for feed in &mut feeds {
        black_box(feed.recv().await.expect("first keyframe"));
        received += 1;
    }
    for chunk in chunks {
        ring.write(Bytes::copy_from_slice(chunk)).unwrap();
    }
    stream.close();
    for feed in &mut feeds {
        while let Some(frame) = feed.recv().await {
            black_box(frame);
            received += 1;
        }
    }
    received
}

fn bench_stream_output(c: &mut Criterion) {
    let ts = fixture();
    let frames = access_units(&ts).len() as u64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("stream_output");
    group.throughput(Throughput::Elements(frames));
    for subscribers in SUBSCRIBERS {
        let received = runtime.block_on(stream_output(&ts, subscribers));
        assert!(received as u64 >= (frames - 2) * subscribers as u64);
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, &n| b.iter(|| runtime.block_on(stream_output(&ts, n))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_packetize_broadcast, bench_stream_output);
criterion_main!(benches);
