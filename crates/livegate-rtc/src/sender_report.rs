//! RTCP sender reports (RFC 3550 §6.4.1) for the tracks a session sends.
//!
//! A viewer needs them to line audio up with video (the NTP/RTP timestamp pair of each track)
//! and to give us the round-trip time (its reports echo our last SR). rtc's sender-report
//! interceptor did this from inside every outgoing packet's path; a track here counts its
//! packets as it sends them and the shard's timer asks for a report once a second.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc::rtcp::sender_report::SenderReport;

/// How often each sending track reports.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// What one sending track's report says: where its RTP clock stands against the wall clock,
/// and how much it sent.
#[derive(Debug)]
pub(crate) struct SenderClock {
    clock_rate: u32,
    /// The RTP timestamp of the newest frame and when it was sent.
    latest: Option<(u32, Instant)>,
    packets: u32,
    octets: u32,
}

impl SenderClock {
    pub(crate) fn new(clock_rate: u32) -> SenderClock {
        SenderClock {
            clock_rate,
            latest: None,
            packets: 0,
            octets: 0,
        }
    }

    /// A frame with RTP timestamp `timestamp` leaves now, in `packets` packets carrying
    /// `payload_octets` bytes of payload (RFC 3550: headers and padding not counted).
    pub(crate) fn sent(&mut self, timestamp: u32, now: Instant, packets: u32, payload_octets: u32) {
        self.latest = Some((timestamp, now));
        self.packets = self.packets.wrapping_add(packets);
        self.octets = self.octets.wrapping_add(payload_octets);
    }

    /// The report of track `ssrc` at `now` (wall clock `wall`), once it has sent a frame: the
    /// RTP timestamp is the newest frame's, advanced by the time since it left.
    pub(crate) fn report(&self, ssrc: u32, now: Instant, wall: SystemTime) -> Option<SenderReport> {
        let (timestamp, at) = self.latest?;
        let elapsed = now.saturating_duration_since(at);
        let advance = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u64;
        Some(SenderReport {
            ssrc,
            ntp_time: ntp_time(wall),
            rtp_time: timestamp.wrapping_add(advance as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

/// A wall-clock time as a 64-bit NTP timestamp: seconds since 1900, then the fraction.
pub(crate) fn ntp_time(wall: SystemTime) -> u64 {
    let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET_S;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_report_before_the_first_frame() {
        let clock = SenderClock::new(90_000);
        assert!(clock.report(1, Instant::now(), SystemTime::now()).is_none());
    }

    #[test]
    fn reports_the_rtp_clock_advanced_to_now_and_the_counts() {
        let mut clock = SenderClock::new(90_000);
        let start = Instant::now();
        clock.sent(1_000, start, 3, 3_000);
        clock.sent(u32::MAX - 1_499, start + Duration::from_millis(10), 2, 500);
        let wall = UNIX_EPOCH + Duration::from_millis(1_500);
        let report = clock
            .report(7, start + Duration::from_millis(110), wall)
            .unwrap();
        // 100 ms after the newest frame: 9000 ticks on, across the 32-bit wrap.
        assert_eq!(report.rtp_time, 7_500);
        assert_eq!(
            (report.ssrc, report.packet_count, report.octet_count),
            (7, 5, 3_500)
        );
        // 1.5 s after 1970 in NTP: the seconds since 1900, then half of 2^32.
        assert_eq!(report.ntp_time, ((NTP_UNIX_OFFSET_S + 1) << 32) | (1 << 31));
    }
}
