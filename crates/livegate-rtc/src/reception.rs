//! What a peer's RTCP reception reports say about the media we send it: cumulative loss, the
//! fraction lost since its previous report, interarrival jitter and the round-trip time
//! (RFC 3550 §6.4.1).
//!
//! `rtc` 0.21 never feeds received RTCP into its own statistics
//! (`InterceptorHandler::process_read_rtcp_for_stats` in `handler/interceptor.rs` is never
//! called), so a sending session reads the reports itself. Not here: RTCP we receive about
//! media we receive (rtc's inbound-stream stats cover that).

use std::time::SystemTime;

use rtc::rtcp::reception_report::ReceptionReport;

/// The latest report about one of our streams.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RemoteReception {
    /// Cumulative packets lost (RFC 3550 §6.4.1: signed, duplicates can make it negative).
    pub(crate) packets_lost: i64,
    /// Packets lost since the previous report, 0 to 1.
    pub(crate) fraction_lost: f64,
    /// Interarrival jitter in seconds.
    pub(crate) jitter_s: f64,
    /// From LSR and DLSR, when the peer has seen a sender report of ours.
    pub(crate) rtt_s: Option<f64>,
}

impl RemoteReception {
    /// Reads one reception report about a stream with RTP clock `clock_rate_hz` that arrived
    /// when our NTP clock read `now_ntp_mid32`.
    pub(crate) fn from_report(
        report: &ReceptionReport,
        now_ntp_mid32: u32,
        clock_rate_hz: u32,
    ) -> RemoteReception {
        RemoteReception {
            packets_lost: sign_extend_24(report.total_lost),
            // An 8-bit fixed-point fraction, the binary point at the left edge.
            fraction_lost: f64::from(report.fraction_lost) / 256.0,
            // In timestamp units of the stream's RTP clock.
            jitter_s: f64::from(report.jitter) / f64::from(clock_rate_hz.max(1)),
            rtt_s: rtt_s(now_ntp_mid32, report.last_sender_report, report.delay),
        }
    }
}

/// The 24-bit two's-complement cumulative-loss field as a number.
fn sign_extend_24(field: u32) -> i64 {
    let field = field & 0x00FF_FFFF;
    if field & 0x0080_0000 != 0 {
        i64::from(field) - (1 << 24)
    } else {
        i64::from(field)
    }
}

/// RTT = arrival − LSR − DLSR, all in the middle 32 bits of NTP time (1/65536 s). `None`
/// before the peer has seen a sender report (LSR 0) or when the clocks went backwards.
fn rtt_s(now_ntp_mid32: u32, last_sender_report: u32, delay: u32) -> Option<f64> {
    if last_sender_report == 0 {
        return None;
    }
    let rtt = now_ntp_mid32
        .wrapping_sub(last_sender_report)
        .wrapping_sub(delay);
    // A "negative" RTT (wall clock stepped back) wraps to a huge value; ignore it.
    (rtt < 1 << 31).then(|| f64::from(rtt) / 65_536.0)
}

/// The middle 32 bits of the current NTP time, on the wall clock our sender reports are
/// stamped with ([`crate::sender_report`]).
pub(crate) fn now_ntp_mid32() -> u32 {
    (crate::sender_report::ntp_time(SystemTime::now()) >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc3550_rtt_example() {
        // RFC 3550 §6.4.1, Figure 2: A = 0xb710_8000 (46864.500 s), LSR = 0xb705_2000
        // (46853.125 s), DLSR = 0x0005_4000 (5.250 s): RTT 6.125 s.
        assert_eq!(rtt_s(0xb710_8000, 0xb705_2000, 0x0005_4000), Some(6.125));
    }

    #[test]
    fn no_rtt_before_a_sender_report_or_across_a_clock_step() {
        assert_eq!(rtt_s(0xb710_8000, 0, 0), None);
        assert_eq!(rtt_s(0x0000_1000, 0x0000_2000, 0), None);
        // Across the wrap of the 16-bit seconds field.
        assert_eq!(rtt_s(0x0000_8000, 0xFFFF_8000, 0), Some(1.0));
    }

    #[test]
    fn a_report_in_our_units() {
        let report = ReceptionReport {
            ssrc: 1,
            fraction_lost: 64,
            total_lost: 0x00FF_FFFE,
            last_sequence_number: 1_000,
            jitter: 900,
            last_sender_report: 0xb705_2000,
            delay: 0x0005_4000,
        };
        let reception = RemoteReception::from_report(&report, 0xb710_8000, 90_000);
        assert_eq!(
            reception,
            RemoteReception {
                packets_lost: -2,
                fraction_lost: 0.25,
                jitter_s: 0.01,
                rtt_s: Some(6.125),
            }
        );
    }

    #[test]
    fn cumulative_loss_is_signed_24_bit() {
        assert_eq!(sign_extend_24(5), 5);
        assert_eq!(sign_extend_24(0x00FF_FFFF), -1);
        assert_eq!(sign_extend_24(0x0080_0000), -(1 << 23));
        assert_eq!(sign_extend_24(0x007F_FFFF), (1 << 23) - 1);
    }

    #[test]
    fn the_ntp_clock_agrees_with_the_wall_clock() {
        let a = now_ntp_mid32();
        let b = now_ntp_mid32();
        // Consecutive reads are a few microseconds apart: at most a tick or two of 15 µs.
        assert!(b.wrapping_sub(a) < 65_536 / 100, "{a:#x} {b:#x}");
    }
}
