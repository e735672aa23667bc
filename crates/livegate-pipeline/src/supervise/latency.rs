//! How long a frame spends in the pipeline: from the moment it is read from the stream's
//! input to the moment the worker's output carrying the same picture is written to the
//! output buffer, matched by the video PES PTS.
//!
//! Matching by PTS is exact for workers that keep timestamps (`ffmpeg -copyts`, the trickle
//! and WebRTC workers that echo them); a worker that rewrites them never matches, and the
//! probe says so ([`TimestampMode::Rewritten`]) instead of inventing a figure.
//!
//! The scanner reads only the PES header of packets that start a video PES (stream ids
//! 0xE0–0xEF, ISO/IEC 13818-1 §2.4.3.7): no PAT/PMT, no reassembly, so it costs a few
//! comparisons per 188-byte packet on the worker's copy paths.

use std::collections::VecDeque;
use std::time::Duration;

use prometheus::Histogram;
use serde::Serialize;
use tokio::time::Instant;

const TS_PACKET: usize = 188;
/// Input frames remembered while they are in the worker: 30 s of 30 fps video, far longer
/// than any useful live pipeline keeps a frame.
const PENDING_FRAMES: usize = 900;
/// Latencies the summary is taken over: the last 4 s at 30 fps.
const RECENT_FRAMES: usize = 120;
/// Output frames with no input match before the worker is said to rewrite timestamps.
const UNMATCHED_BEFORE_REWRITTEN: u64 = 30;

/// Finds the PTS of every video PES that starts in a byte stream given in any chunking.
#[derive(Debug, Default)]
pub struct VideoPtsScanner {
    /// A partial packet carried to the next chunk.
    carry: Vec<u8>,
}

impl VideoPtsScanner {
    /// Calls `found` with the 33-bit PTS of each video PES starting in `chunk`.
    pub fn scan(&mut self, mut chunk: &[u8], mut found: impl FnMut(u64)) {
        if !self.carry.is_empty() {
            let need = TS_PACKET - self.carry.len();
            let take = need.min(chunk.len());
            self.carry.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.carry.len() < TS_PACKET {
                return;
            }
            let packet = std::mem::take(&mut self.carry);
            if let Some(pts) = video_pes_pts(&packet) {
                found(pts);
            }
        }
        while !chunk.is_empty() {
            if chunk[0] != 0x47 {
                // Lost sync: skip to the next sync byte rather than misread everything.
                match chunk.iter().position(|&b| b == 0x47) {
                    Some(at) => chunk = &chunk[at..],
                    None => return,
                }
                continue;
            }
            if chunk.len() < TS_PACKET {
                self.carry.extend_from_slice(chunk);
                return;
            }
            if let Some(pts) = video_pes_pts(&chunk[..TS_PACKET]) {
                found(pts);
            }
            chunk = &chunk[TS_PACKET..];
        }
    }
}

/// The PTS of the video PES this packet starts, if it starts one and carries a PTS.
fn video_pes_pts(packet: &[u8]) -> Option<u64> {
    let payload_unit_start = packet[1] & 0x40 != 0;
    let adaptation = (packet[3] >> 4) & 0x3;
    if !payload_unit_start || adaptation & 0x1 == 0 {
        return None;
    }
    let start = if adaptation & 0x2 != 0 {
        5 + usize::from(packet[4])
    } else {
        4
    };
    let pes = packet.get(start..)?;
    if pes.len() < 14 || pes[..3] != [0, 0, 1] || !(0xE0..=0xEF).contains(&pes[3]) {
        return None;
    }
    if pes[7] & 0x80 == 0 {
        return None;
    }
    let b = &pes[9..14];
    Some(
        (u64::from(b[0] >> 1) & 0x7) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1),
    )
}

/// Whether the worker's output timestamps can be matched with its input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampMode {
    /// Not enough output yet to tell.
    Unknown,
    /// Output frames carry their input frames' PTS: latency is measured per frame.
    Kept,
    /// The worker rewrites PTS: per-frame latency cannot be measured.
    Rewritten,
}

/// Latency of the recent frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub frames: usize,
}

/// Input frames waiting to come out, and the latencies of those that did.
///
/// One per worker, shared by its input and output paths under a lock held for a few
/// comparisons per frame.
#[derive(Debug)]
pub struct LatencyProbe {
    /// (PTS, when it was read from the input), in input order.
    pending: VecDeque<(u64, Instant)>,
    recent: VecDeque<Duration>,
    matched: u64,
    unmatched: u64,
    last_input_pts: Option<u64>,
    last_output_pts: Option<u64>,
    histogram: Option<Histogram>,
}

impl LatencyProbe {
    /// A probe that also observes every match in `histogram`.
    pub fn new(histogram: Option<Histogram>) -> LatencyProbe {
        LatencyProbe {
            pending: VecDeque::with_capacity(64),
            recent: VecDeque::with_capacity(RECENT_FRAMES),
            matched: 0,
            unmatched: 0,
            last_input_pts: None,
            last_output_pts: None,
            histogram,
        }
    }

    /// A video frame with `pts` entered the worker at `at`.
    pub fn on_input(&mut self, pts: u64, at: Instant) {
        self.last_input_pts = Some(pts);
        if self.pending.len() == PENDING_FRAMES {
            self.pending.pop_front();
        }
        self.pending.push_back((pts, at));
    }

    /// A video frame with `pts` left the worker at `at`; returns its latency when it
    /// matches an input frame.
    pub fn on_output(&mut self, pts: u64, at: Instant) -> Option<Duration> {
        self.last_output_pts = Some(pts);
        let Some(index) = self.pending.iter().position(|(p, _)| *p == pts) else {
            self.unmatched += 1;
            return None;
        };
        let entered = self.pending[index].1;
        // Frames before it in input order were dropped by the worker; they will not come.
        self.pending.drain(..=index);
        let latency = at.saturating_duration_since(entered);
        self.matched += 1;
        if self.recent.len() == RECENT_FRAMES {
            self.recent.pop_front();
        }
        self.recent.push_back(latency);
        if let Some(histogram) = &self.histogram {
            histogram.observe(latency.as_secs_f64());
        }
        Some(latency)
    }

    /// Forgets frames in flight: the worker they went to is gone.
    pub fn restart(&mut self) {
        self.pending.clear();
    }

    /// PTS of the last video frame that entered the worker.
    pub fn last_input_pts(&self) -> Option<u64> {
        self.last_input_pts
    }

    /// PTS of the last video frame that left the worker.
    pub fn last_output_pts(&self) -> Option<u64> {
        self.last_output_pts
    }

    pub fn timestamps(&self) -> TimestampMode {
        if self.matched > 0 {
            TimestampMode::Kept
        } else if self.unmatched >= UNMATCHED_BEFORE_REWRITTEN {
            TimestampMode::Rewritten
        } else {
            TimestampMode::Unknown
        }
    }

    /// Median and 99th percentile of the recent frames, if any matched.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.recent.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            let index = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted[index].as_secs_f64() * 1e3
        };
        Some(LatencySummary {
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            frames: sorted.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use livegate_media::ts::demux::{DemuxEvent, Demuxer};
    use livegate_media::Codec;
    use proptest::prelude::*;

    use super::*;

    /// Every video PTS of a fixture, found by our demuxer, is what the scanner finds.
    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/h264-baseline-opus.ts"
        ))
        .unwrap()
    }

    fn demuxed_video_pts(bytes: &[u8]) -> Vec<u64> {
        let mut demuxer = Demuxer::new();
        let mut events = Vec::new();
        demuxer.push(bytes, &mut events);
        demuxer.finish(&mut events);
        events
            .into_iter()
            .filter_map(|event| match event {
                DemuxEvent::AccessUnit(au) if au.codec == Codec::H264 => Some(au.pts.ticks()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_scanner_finds_every_video_pts_the_demuxer_finds() {
        let bytes = fixture();
        let mut found = Vec::new();
        VideoPtsScanner::default().scan(&bytes, |pts| found.push(pts));
        assert!(found.len() > 10);
        assert_eq!(found, demuxed_video_pts(&bytes));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn chunking_does_not_change_what_is_found(cuts in proptest::collection::vec(1usize..5000, 1..40)) {
            let bytes = fixture();
            let mut whole = Vec::new();
            VideoPtsScanner::default().scan(&bytes, |pts| whole.push(pts));
            let mut scanner = VideoPtsScanner::default();
            let mut pieces = Vec::new();
            let mut rest = &bytes[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let n = (*cut).min(rest.len());
                scanner.scan(&rest[..n], |pts| pieces.push(pts));
                rest = &rest[n..];
            }
            prop_assert_eq!(pieces, whole);
        }
    }

    #[test]
    fn outputs_match_inputs_by_pts_and_dropped_frames_are_forgotten() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut probe = LatencyProbe::new(None);
        for (i, pts) in [1000, 4000, 7000, 10000].into_iter().enumerate() {
            probe.on_input(pts, t0 + ms(33 * i as u64));
        }
        assert_eq!(probe.timestamps(), TimestampMode::Unknown);
        assert_eq!(probe.on_output(1000, t0 + ms(40)), Some(ms(40)));
        // 4000 was dropped by the worker: 7000 matches and 4000 is forgotten.
        assert_eq!(probe.on_output(7000, t0 + ms(100)), Some(ms(34)));
        assert_eq!(probe.on_output(4000, t0 + ms(110)), None);
        assert_eq!(probe.timestamps(), TimestampMode::Kept);
        let summary = probe.summary().unwrap();
        assert_eq!(summary.frames, 2);
        assert_eq!(summary.p99_ms, 40.0);
    }

    #[test]
    fn a_worker_that_rewrites_timestamps_is_named_as_such() {
        let t0 = Instant::now();
        let mut probe = LatencyProbe::new(None);
        for i in 0..40u64 {
            probe.on_input(i * 3000, t0);
            assert_eq!(probe.on_output(i * 3000 + 126_000, t0), None);
        }
        assert_eq!(probe.timestamps(), TimestampMode::Rewritten);
        assert_eq!(probe.summary(), None);
    }
}
