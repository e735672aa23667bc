//! Drives a WHIP [`Ingest`] with RTP packets decoded from fuzz input, as a publisher's session
//! does: sequence numbers that jump, repeat and go back (loss, duplication, reordering),
//! timestamps that jump, SSRC changes, markers anywhere, arrival times that advance by up to
//! a second, and arbitrary payloads. Every byte that comes out must be whole MPEG-TS packets
//! that our own demuxer takes without a resync.
//!
//! Input, repeated until it runs out (a truncated record ends the stream):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | flags: bit 0 marker, bit 1 the other track (with two tracks), bit 2 new SSRC, bits 3–5 arrival step |
//! | 1 | sequence number step, signed |
//! | 2 | RTP timestamp step, signed, times 16 |
//! | 1 | payload length |
//! | n | payload |

use std::time::{Duration, Instant};

use bytes::Bytes;
use livegate_media::ring::{ReadOutcome, RingBuffer};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::Codec;
use livegate_whip::{Ingest, IngestConfig};

/// Arrival steps, in ms, that bits 3–5 of the flags pick: back-to-back packets up to a stall
/// longer than the reorder delay and the video start timeout.
const ARRIVAL_STEPS_MS: [u64; 8] = [0, 0, 1, 5, 20, 33, 150, 1_100];

struct TrackCursor {
    codec: Codec,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
}

pub fn run(tracks: &[Codec], data: &[u8]) {
    let ring = RingBuffer::new(1 << 20);
    let mut reader = ring.reader();
    let config = IngestConfig {
        // Audio-only streams start at once; mixed ones still wait for a keyframe a while.
        video_optional: !tracks.contains(&Codec::H264) || data.first().is_some_and(|b| b & 1 == 1),
        ..IngestConfig::default()
    };
    let mut ingest = Ingest::new(config, tracks, ring.clone()).expect("valid tracks");
    let mut cursors: Vec<TrackCursor> = tracks
        .iter()
        .map(|&codec| TrackCursor {
            codec,
            sequence_number: 1000,
            timestamp: 3000,
            ssrc: 1,
        })
        .collect();
    let mut now = Instant::now();
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    let mut rest = data;
    while let [flags, seq_step, ts_hi, ts_lo, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let cursor = &mut cursors[usize::from(flags & 0b10 != 0) % tracks.len()];
        cursor.sequence_number = cursor
            .sequence_number
            .wrapping_add_signed(i16::from(*seq_step as i8));
        let ts_step = i32::from(i16::from_be_bytes([*ts_hi, *ts_lo])) * 16;
        cursor.timestamp = cursor.timestamp.wrapping_add_signed(ts_step);
        if flags & 0b100 != 0 {
            cursor.ssrc = cursor.ssrc.wrapping_add(1);
        }
        now += Duration::from_millis(ARRIVAL_STEPS_MS[usize::from(flags >> 3 & 0b111)]);
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.marker = flags & 1 != 0;
        packet.header.sequence_number = cursor.sequence_number;
        packet.header.timestamp = cursor.timestamp;
        packet.header.ssrc = cursor.ssrc;
        packet.payload = Bytes::copy_from_slice(payload);
        if ingest.push_rtp(cursor.codec, &packet, now).is_err() {
            // The session ends the publisher here; nothing more would be pushed.
            return;
        }
        drain(&mut reader, &mut demuxer, &mut events);
    }
    let _ = ingest.finish(now + Duration::from_secs(2));
    drain(&mut reader, &mut demuxer, &mut events);
    demuxer.finish(&mut events);
    for event in events {
        if let DemuxEvent::AccessUnit(au) = event {
            assert!(tracks.contains(&au.codec), "{:?} not negotiated", au.codec);
        }
    }
}

/// Reads what the ingest wrote: whole TS packets only, each chunk fed to the demuxer.
fn drain(
    reader: &mut livegate_media::ring::RingReader,
    demuxer: &mut Demuxer,
    events: &mut Vec<DemuxEvent>,
) {
    while let Some(outcome) = reader.try_read() {
        match outcome {
            ReadOutcome::Chunk(ts) => {
                assert_eq!(ts.len() % 188, 0, "a chunk of partial TS packets");
                assert!(
                    ts.chunks(188).all(|p| p[0] == 0x47),
                    "a TS packet out of sync"
                );
                demuxer.push(&ts, events);
            }
            ReadOutcome::Lagged { .. } => panic!("the fuzz reader drains after every packet"),
            ReadOutcome::Closed => panic!("the ingest never closes its output"),
        }
    }
}
