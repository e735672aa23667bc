//! From a publisher's RTP timestamps to one 90 kHz clock for audio and video.
//!
//! Each track of a WebRTC publisher has its own RTP clock: 32 bits that wrap, from a random
//! base (RFC 3550 §5.1), at the codec's rate (90 kHz for H.264, RFC 6184 §8.2.1; 48 kHz for
//! Opus, RFC 7587 §4.1). The pieces, in the order a timestamp passes through them:
//!
//! - `RtpUnwrapper`: 32-bit RTP timestamp → continuous 64-bit count in the track's clock.
//! - [`TrackClock`]: that count → 90 kHz ticks, exactly (Opus: × 15/8; 1 MHz video: × 9/100).
//! - `VideoClockDetector`: notices publishers that stamp H.264 with a 1 MHz clock while
//!   announcing 90 kHz (iOS 18.4 and later), by comparing timestamp deltas with arrival-time
//!   deltas over the first frames.
//! - `ArrivalAnchor` and `sender_report_offset`: the offset that puts a track's 90 kHz
//!   time on the shared clock, from the arrival times of its first packets, or from an RTCP
//!   sender report's NTP/RTP pair (RFC 3550 §6.4.1) when the publisher sends them.
//!
//! Choosing which offsets to use and where the stream's timeline starts is the ingest's job
//! ([`crate::Ingest`]). Nothing here reads a clock: arrival times are passed in.

use std::time::{Duration, Instant};

/// Extends 32-bit RTP timestamps to a continuous 64-bit count by taking, for each value, the
/// candidate `ts + k * 2^32` nearest to the previous result (RFC 1982 serial-number order),
/// so reordered packets and the wrap both land on the right side.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RtpUnwrapper {
    /// The last raw timestamp and its extended value.
    last: Option<(u32, i64)>,
}

impl RtpUnwrapper {
    /// The extended value of `ts`; the first maps to itself.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let extended = self.peek(ts).unwrap_or(i64::from(ts));
        self.last = Some((ts, extended));
        extended
    }

    /// The extended value `ts` would get, without moving the reference; `None` before the
    /// first timestamp.
    pub fn peek(&self, ts: u32) -> Option<i64> {
        self.last
            .map(|(raw, extended)| extended + i64::from(ts.wrapping_sub(raw) as i32))
    }

    /// Forgets the history, for a new sender on the track.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// The clock a track's RTP timestamps run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackClock {
    /// 90 kHz: H.264 as RFC 6184 §8.2.1 says.
    Hz90k,
    /// 48 kHz: Opus, whatever the coded bandwidth (RFC 7587 §4.1).
    Hz48k,
    /// 1 MHz: H.264 from publishers that stamp video in microseconds.
    Hz1M,
}

impl TrackClock {
    /// `ticks` of this clock in 90 kHz ticks, rounded down. Exact for every Opus frame (a
    /// multiple of 120 samples) and computed on the absolute count, so no error accumulates.
    pub const fn to_90k(self, ticks: i64) -> i64 {
        match self {
            TrackClock::Hz90k => ticks,
            TrackClock::Hz48k => (ticks * 15).div_euclid(8),
            TrackClock::Hz1M => (ticks * 9).div_euclid(100),
        }
    }
}

/// Evidence needed before the quick decision: with 100 ms of arrivals, ±30 ms of jitter
/// moves the measured rate by less than a factor of 2.
const QUICK_SPAN: Duration = Duration::from_millis(100);
/// Below this rate ratio (RTP ticks per 90 kHz arrival tick) the quick decision is 90 kHz,
/// above [`QUICK_1MHZ_RATIO`] it is 1 MHz; in between, wait for [`FULL_SPAN`].
const QUICK_90K_RATIO: f64 = 2.0;
const QUICK_1MHZ_RATIO: f64 = 6.0;
/// Evidence for the final decision: long enough for a paced first keyframe to stop
/// distorting arrival times.
const FULL_SPAN: Duration = Duration::from_millis(400);
/// The geometric mean of 1 (90 kHz) and 1 000 000 / 90 000 (1 MHz): the ratio that is
/// equally far from both on a log scale.
const SPLIT_RATIO: f64 = 3.333;
/// With no usable evidence this long after the first timestamp, assume the clock the SDP
/// announced.
const GIVE_UP_AFTER: Duration = Duration::from_secs(1);
/// Samples are distinct timestamps (frames); a few dozen settle any realistic case.
const MAX_SAMPLES: u32 = 30;

/// Tells a 90 kHz video clock from a 1 MHz one by how fast timestamps advance against
/// arrival time.
///
/// Feed it the first packet of each frame with its arrival time; it decides after 100 ms of
/// arrivals when the evidence is clear (a 90 kHz clock reads about 1 tick per 90 kHz tick of
/// arrival time, a 1 MHz clock about 11), after 400 ms or 30 frames otherwise, and on a
/// timeout at [`poll_timeout`](Self::poll_timeout) in favour of 90 kHz if nothing could be
/// measured (timestamps that stand still or go back).
#[derive(Debug, Clone, Default)]
pub(crate) struct VideoClockDetector {
    first: Option<(i64, Instant)>,
    last_timestamp: Option<i64>,
    samples: u32,
    decided: Option<TrackClock>,
}

impl VideoClockDetector {
    /// A detector that has decided already: for publishers known to use 90 kHz.
    pub fn decided(clock: TrackClock) -> Self {
        VideoClockDetector {
            decided: Some(clock),
            ..Self::default()
        }
    }

    /// Takes one packet's extended timestamp and arrival time; returns the clock once decided.
    pub fn observe(&mut self, timestamp: i64, arrival: Instant) -> Option<TrackClock> {
        if self.decided.is_some() || self.last_timestamp == Some(timestamp) {
            return self.decided;
        }
        self.last_timestamp = Some(timestamp);
        self.samples += 1;
        let &mut (first_ts, first_arrival) = self.first.get_or_insert((timestamp, arrival));
        let span = arrival.saturating_duration_since(first_arrival);
        let ticks = timestamp - first_ts;
        if ticks > 0 && span >= QUICK_SPAN {
            let ratio = ticks as f64 / (span.as_secs_f64() * 90_000.0);
            let full = span >= FULL_SPAN || self.samples >= MAX_SAMPLES;
            self.decided = if ratio < QUICK_90K_RATIO || (full && ratio < SPLIT_RATIO) {
                Some(TrackClock::Hz90k)
            } else if ratio > QUICK_1MHZ_RATIO || full {
                Some(TrackClock::Hz1M)
            } else {
                None
            };
        }
        self.decided
    }

    /// When [`handle_timeout`](Self::handle_timeout) settles the question if no evidence
    /// comes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.decided, self.first) {
            (None, Some((_, first))) => Some(first + GIVE_UP_AFTER),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<TrackClock> {
        if self.poll_timeout().is_some_and(|deadline| deadline <= now) {
            self.decided = Some(TrackClock::Hz90k);
        }
        self.decided
    }
}

/// Most arrival samples kept per track.
const MAX_ARRIVAL_SAMPLES: usize = 64;

/// The offset from a track's 90 kHz media time to arrival time, from the packets that
/// arrived with the least delay.
///
/// Network and pacing delays only ever add to a packet's arrival time, so the smallest
/// `arrival − media time` over the first frames is the best estimate of when the media was
/// sent. Samples (first packet of each frame) are kept in the track's raw clock, so the
/// offset can be computed after [`VideoClockDetector`] has decided what that clock is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArrivalAnchor {
    /// (extended RTP timestamp, arrival in 90 kHz ticks since the ingest's epoch).
    samples: Vec<(i64, i64)>,
}

impl ArrivalAnchor {
    pub fn observe(&mut self, timestamp: i64, arrival_90k: i64) {
        let new_frame = self.samples.last().is_none_or(|&(ts, _)| ts != timestamp);
        if new_frame && self.samples.len() < MAX_ARRIVAL_SAMPLES {
            self.samples.push((timestamp, arrival_90k));
        }
    }

    /// `arrival − media time` (90 kHz) of the least delayed sample.
    pub fn offset_90k(&self, clock: TrackClock) -> Option<i64> {
        self.samples
            .iter()
            .map(|&(ts, arrival)| arrival - clock.to_90k(ts))
            .min()
    }

    pub fn reset(&mut self) {
        self.samples.clear();
    }
}

/// An RTCP sender report's pairing of wall-clock and RTP time (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderReport {
    /// NTP timestamp: seconds since 1900 in the high 32 bits, the fraction in the low 32.
    pub ntp_time: u64,
    pub rtp_time: u32,
}

/// NTP time (64-bit fixed point) in 90 kHz ticks.
pub(crate) fn ntp_to_90k(ntp_time: u64) -> i64 {
    let seconds = (ntp_time >> 32) as i64;
    let fraction = ntp_time & 0xFFFF_FFFF;
    seconds * 90_000 + ((fraction * 90_000) >> 32) as i64
}

/// `wall-clock time − media time` (90 kHz) of a track according to its sender report, or
/// `None` while the track has no timestamp to unwrap the report's against.
pub(crate) fn sender_report_offset(
    report: SenderReport,
    unwrapper: &RtpUnwrapper,
    clock: TrackClock,
) -> Option<i64> {
    let media = clock.to_90k(unwrapper.peek(report.rtp_time)?);
    Some(ntp_to_90k(report.ntp_time) - media)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn unwraps_across_the_32_bit_wrap_both_ways() {
        let mut u = RtpUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(u.unwrap(5), (1 << 32) + 5);
        assert_eq!(u.unwrap(u32::MAX), i64::from(u32::MAX), "reordered back");
        assert_eq!(u.peek(20), Some((1 << 32) + 20));
        u.reset();
        assert_eq!(u.peek(20), None);
    }

    #[test]
    fn clock_conversions_are_exact_for_whole_frames() {
        // 20 ms of Opus is 960 samples, 1800 ticks, from any base.
        for base in [0i64, 7, 1 << 33, -13] {
            let d = TrackClock::Hz48k.to_90k(base + 960) - TrackClock::Hz48k.to_90k(base);
            assert_eq!(d, 1_800, "base {base}");
        }
        assert_eq!(TrackClock::Hz1M.to_90k(1_000_000), 90_000);
        assert_eq!(TrackClock::Hz90k.to_90k(-5), -5);
    }

    #[test]
    fn ntp_seconds_and_fractions() {
        assert_eq!(ntp_to_90k(3 << 32), 270_000);
        assert_eq!(ntp_to_90k((3 << 32) | (1 << 31)), 315_000);
    }

    /// Frames every 33 ms with a timestamp clock of `hz`, arrival jitter from `jitter_ms`,
    /// fed until the detector decides.
    fn detect(hz: i64, jitter_ms: &[u64], start_ts: i64) -> (Option<TrackClock>, usize) {
        let t0 = Instant::now();
        let mut detector = VideoClockDetector::default();
        for (i, j) in jitter_ms.iter().enumerate() {
            let ts = start_ts + i as i64 * hz / 30;
            let arrival = t0 + Duration::from_millis(i as u64 * 33 + j);
            if let Some(clock) = detector.observe(ts, arrival) {
                return (Some(clock), i);
            }
        }
        (None, jitter_ms.len())
    }

    #[test]
    fn a_paced_first_keyframe_does_not_fool_it() {
        // The first frame is a keyframe whose packets take 150 ms to send; the next frames
        // queue behind it and catch up by the tenth.
        let jitter = [0, 150, 130, 110, 90, 70, 50, 30, 10, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(detect(90_000, &jitter, 0).0, Some(TrackClock::Hz90k));
        assert_eq!(detect(1_000_000, &jitter, 0).0, Some(TrackClock::Hz1M));
    }

    #[test]
    fn gives_up_for_90k_when_timestamps_do_not_move() {
        let t0 = Instant::now();
        let mut detector = VideoClockDetector::default();
        assert_eq!(detector.observe(100, t0), None);
        assert_eq!(detector.observe(90, t0 + Duration::from_millis(500)), None);
        assert_eq!(detector.poll_timeout(), Some(t0 + GIVE_UP_AFTER));
        assert_eq!(
            detector.handle_timeout(t0 + GIVE_UP_AFTER),
            Some(TrackClock::Hz90k)
        );
    }

    #[test]
    fn the_least_delayed_packet_anchors_the_track() {
        let mut anchor = ArrivalAnchor::default();
        anchor.observe(960, 10_000);
        anchor.observe(1_920, 11_000); // media +1800, arrival +1000: less delayed
        anchor.observe(1_920, 0); // same frame: ignored
        assert_eq!(anchor.offset_90k(TrackClock::Hz48k), Some(11_000 - 3_600));
    }

    proptest! {
        /// Whatever the base, wrap position and frame rate (10–60 fps), and with arrival
        /// jitter up to ±30 ms, a 90 kHz clock is never taken for 1 MHz nor the reverse.
        #[test]
        fn tells_the_clocks_apart(
            base in any::<u32>(),
            fps in 10i64..=60,
            jitter in proptest::collection::vec(0u64..60, 40),
            micro in any::<bool>(),
        ) {
            let hz = if micro { 1_000_000 } else { 90_000 };
            let t0 = Instant::now();
            let mut unwrapper = RtpUnwrapper::default();
            let mut detector = VideoClockDetector::default();
            let mut decided = None;
            for (i, j) in jitter.iter().enumerate() {
                let raw = base.wrapping_add((i as i64 * hz / fps) as u32);
                let arrival = t0 + Duration::from_millis(i as u64 * 1_000 / fps as u64 + j);
                decided = detector.observe(unwrapper.unwrap(raw), arrival);
                if decided.is_some() { break; }
            }
            let want = if micro { TrackClock::Hz1M } else { TrackClock::Hz90k };
            prop_assert_eq!(decided, Some(want));
        }

        /// Unwrapping a timestamp sequence with steps below 2^31 either way recovers it.
        #[test]
        fn unwrap_recovers_the_sequence(
            start in any::<i64>().prop_map(|s| s >> 8),
            steps in proptest::collection::vec(-(1i64 << 30)..(1 << 30), 1..200),
        ) {
            let mut u = RtpUnwrapper::default();
            let mut truth = start;
            let first = u.unwrap(truth as u32);
            for step in steps {
                truth += step;
                prop_assert_eq!(u.unwrap(truth as u32) - first, truth - start);
            }
        }
    }
}
