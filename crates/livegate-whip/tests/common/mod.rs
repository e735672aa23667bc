//! A publisher made from a fixture: its access units as the RTP a WebRTC sender would send,
//! with arrival times, for the integration tests and the bench.

#![allow(dead_code)]

use std::time::Duration;

use livegate_media::h264::{nal_type, nal_units, NalType};
use livegate_media::time::PtsUnwrapper;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec};
use livegate_whep::packetize::H264Packetizer;

pub use livegate_media::testing::fixture;

/// The access units of an MPEG-TS stream, in stream order.
pub fn demux(ts: &[u8]) -> Vec<AccessUnit> {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    for chunk in ts.chunks(7 * 188) {
        demuxer.push(chunk, &mut events);
    }
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        })
        .collect()
}

/// The NAL units of an access unit other than delimiters, which RTP does not carry and the
/// muxer adds back.
pub fn nal_units_without_delimiters(au: &[u8]) -> Vec<&[u8]> {
    nal_units(au)
        .filter(|nal| nal_type(nal) != Some(NalType::ACCESS_UNIT_DELIMITER))
        .collect()
}

/// The RTP clocks of the simulated publisher.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub video_base: u32,
    /// 90 000, or 1 000 000 for a publisher that stamps video in microseconds.
    pub video_hz: u64,
    pub audio_base: u32,
    pub video_seq: u16,
    pub audio_seq: u16,
}

impl Default for Clocks {
    /// Both RTP clocks and both sequence numbers wrap within the first second.
    fn default() -> Self {
        Clocks {
            video_base: u32::MAX - 45_000,
            video_hz: 90_000,
            audio_base: u32::MAX - 24_000,
            video_seq: 65_500,
            audio_seq: 65_530,
        }
    }
}

/// One packet as the session would hand it over.
#[derive(Debug, Clone)]
pub struct Sent {
    pub codec: Codec,
    pub packet: rtc::rtp::Packet,
    /// Arrival time since the first packet.
    pub arrival: Duration,
}

/// The input access units (unwrapped 90 kHz time, unit) and their packets in arrival order:
/// each unit's packets arrive at its presentation time (100 µs apart), as from a live
/// sender on a perfect network.
pub fn publish(name: &str, clocks: Clocks) -> (Vec<(i64, AccessUnit)>, Vec<Sent>) {
    let units = demux(&fixture(name));
    let mut unwrapper = PtsUnwrapper::default();
    let timed: Vec<(i64, AccessUnit)> = units
        .into_iter()
        .map(|au| (unwrapper.unwrap(au.pts).0, au))
        .collect();
    let start = timed
        .iter()
        .map(|(t, _)| *t)
        .min()
        .expect("a non-empty fixture");
    let mut packetizer = H264Packetizer::default();
    let (mut video_seq, mut audio_seq) = (clocks.video_seq, clocks.audio_seq);
    let mut sent = Vec::new();
    for (t, au) in &timed {
        let since_start = (t - start) as u64;
        let arrival = Duration::from_nanos(since_start * 1_000_000_000 / 90_000);
        let (payloads, timestamp, seq) = match au.codec {
            Codec::H264 => (
                packetizer.packetize(&au.data).to_vec(),
                clocks
                    .video_base
                    .wrapping_add((since_start * clocks.video_hz / 90_000) as u32),
                &mut video_seq,
            ),
            Codec::Opus => (
                vec![au.data.clone()],
                clocks
                    .audio_base
                    .wrapping_add((since_start * 8 / 15) as u32),
                &mut audio_seq,
            ),
        };
        let last = payloads.len() - 1;
        for (i, payload) in payloads.into_iter().enumerate() {
            let mut packet = rtc::rtp::Packet::default();
            packet.header.ssrc = if au.codec == Codec::H264 { 1 } else { 2 };
            packet.header.sequence_number = *seq;
            packet.header.timestamp = timestamp;
            packet.header.marker = i == last;
            packet.payload = payload;
            *seq = seq.wrapping_add(1);
            sent.push(Sent {
                codec: au.codec,
                packet,
                arrival: arrival + Duration::from_micros(100 * i as u64),
            });
        }
    }
    sent.sort_by_key(|s| s.arrival);
    (timed, sent)
}
