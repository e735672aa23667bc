//! Cost of timestamping one access unit on the send path: [`Timeline::output_time`] (PTS
//! unwrap and offset) plus [`RtpClock::timestamp`], for an interleaved 30 fps H.264 + 20 ms
//! Opus stream that crosses the 2^33 PTS wrap. Throughput is in access units.
//!
//! `cargo bench -p livegate-media --bench time -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use livegate_media::time::{RtpClock, Ticks90k, Timeline};
use livegate_media::{Codec, Pts90k, PTS_WRAP};

/// Ten seconds of media: 300 video frames and 500 Opus packets.
fn units() -> Vec<(Codec, Pts90k)> {
    let start = PTS_WRAP - 5 * 90_000;
    let video = (0..300u64).map(|i| (Codec::H264, start + i * 3_000));
    let audio = (0..500u64).map(|i| (Codec::Opus, start + i * 1_800));
    let mut units: Vec<(u64, Codec)> = video.chain(audio).map(|(c, t)| (t, c)).collect();
    units.sort_by_key(|&(t, _)| t);
    units
        .into_iter()
        .map(|(t, c)| (c, Pts90k::new(t)))
        .collect()
}

fn timestamp(c: &mut Criterion) {
    let units = units();
    let video = RtpClock::new(Codec::H264.rtp_clock_rate());
    let audio = RtpClock::new(Codec::Opus.rtp_clock_rate());
    let mut group = c.benchmark_group("time");
    group.throughput(Throughput::Elements(units.len() as u64));
    group.bench_function("output_time_and_rtp", |b| {
        b.iter(|| {
            let mut timeline = Timeline::new();
            timeline.anchor(units[0].1, Ticks90k(0));
            let mut sum = 0u32;
            for &(codec, pts) in &units {
                let Some(output) = timeline.output_time(black_box(pts)) else {
                    continue;
                };
                let clock = if codec == Codec::H264 { &video } else { &audio };
                sum = sum.wrapping_add(clock.timestamp(output).0);
            }
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, timestamp);
criterion_main!(benches);
